//! The last-admin rule on DynamoDB: a user's role change or removal is one TransactWriteItems
//! whose items are conditioned on the documents read, with a condition check on another
//! admin's document, so two admins demoting each other at once cannot both succeed.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};
use time::OffsetDateTime;
use tracklayer_core::error::StoreError;
use tracklayer_core::keys::Role;
use tracklayer_core::ports::LAST_ADMIN;
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::{User, WorkspaceId};

use super::{doc, live, DynamoControlStore};
use crate::dynamo::{transact_write, Item};

impl DynamoControlStore {
    /// Changes or deletes the user `id` unless that would leave the workspace without an
    /// admin (see the module documentation). `write` builds the transaction's items for the
    /// user item and document read; they must be conditioned on `doc = :doc`.
    pub(super) async fn keeping_an_admin(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
        removes_admin: bool,
        write: impl FnOnce(&Item, &User) -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<User, StoreError> {
        let mut users = Vec::new();
        for item in live(self.prefix(context, ws, "USER#").await?, now) {
            let user: User = doc(&item, context)?;
            users.push((item, user));
        }
        users.sort_by(|(_, a), (_, b)| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let (item, old) = users
            .iter()
            .find(|(_, u)| u.id == *id)
            .ok_or(StoreError::NotFound("user"))?;
        let mut items = write(item, old)?;
        if removes_admin && old.role == Role::Admin {
            let (other, _) = users
                .iter()
                .find(|(_, u)| u.id != *id && u.role == Role::Admin)
                .ok_or(StoreError::Conflict(LAST_ADMIN))?;
            let check = ConditionCheck::builder()
                .table_name(self.table.name())
                .key("pk", other["pk"].clone())
                .key("sk", other["sk"].clone())
                .condition_expression("doc = :doc")
                .expression_attribute_values(":doc", other["doc"].clone())
                .build()
                .map_err(|e| StoreError::permanent(context, e))?;
            items.push(TransactWriteItem::builder().condition_check(check).build());
        }
        // A condition failed or a concurrent transaction touched the same items: the
        // admins changed between the read and the write.
        let codes = ["ConditionalCheckFailed", "TransactionConflict"];
        if transact_write(self.table.client(), context, items, &codes).await? {
            Ok(old.clone())
        } else {
            Err(StoreError::Conflict(
                "the workspace's users changed meanwhile; retry",
            ))
        }
    }
}
