//! `userName` unique per workspace on DynamoDB ([`user_name_key`]): a uniqueness item
//! `W#{ws}` / `UNAME#{sha256(key)}` is written with `attribute_not_exists` in the same
//! TransactWriteItems as the user, as the email's `LOGIN#` item is. The user item keeps both
//! sort keys (`login`, `uname`), so a change moves them in its own transaction and a removal
//! deletes them with the user; that write is conditioned on the keys it read, so a concurrent
//! rename of the same user fails instead of leaving an item behind.
//!
//! Users written before `uname` existed have neither the attribute nor the item: their first
//! change writes both.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use sha2::{Digest, Sha256};
use tracklayer_core::error::StoreError;
use tracklayer_core::scim::profile::{user_name_key, USER_NAME_TAKEN};
use tracklayer_core::workspace::User;

use super::{get_s, keep_expiry, key, login, login_item, s, user_item, ws_pk, DynamoControlStore};
use crate::dynamo::Item;
use crate::error::store;

/// The user item's attribute holding the sort key of its `UNAME#` item.
pub(super) const UNAME: &str = "uname";

/// The sort key of the uniqueness item of `user`'s userName.
pub(super) fn uname(user: &User) -> String {
    format!(
        "UNAME#{}",
        hex::encode(Sha256::digest(user_name_key(user).as_bytes()))
    )
}

pub(super) fn uname_item(u: &User) -> Item {
    let mut item = key(ws_pk(&u.workspace_id), uname(u));
    item.insert("user".into(), s(u.id.clone()));
    item
}

/// A concurrent change of the user's keys (or a removal) between the read and the write.
const CHANGED: StoreError = StoreError::Conflict("the user changed meanwhile; retry");

impl DynamoControlStore {
    pub(super) async fn create_user_item(&self, user: &User) -> Result<(), StoreError> {
        let items = vec![
            self.tx_put(user_item(user)?, Some("attribute_not_exists(pk)"))?,
            self.tx_put(login_item(user), Some("attribute_not_exists(pk)"))?,
            self.tx_put(uname_item(user), Some("attribute_not_exists(pk)"))?,
        ];
        let taken = || StoreError::Conflict("a user with this id or email exists");
        self.transact_user("create_user", items, Some(2), taken(), taken())
            .await
    }

    pub(super) async fn update_user_item(&self, user: &User) -> Result<(), StoreError> {
        let context = "update_user";
        let pk = ws_pk(&user.workspace_id);
        let old = self
            .table
            .get(context, key(&pk, format!("USER#{}", user.id)))
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        let old_login = get_s(&old, "login", context)?.to_owned();
        let old_name = held_name(&old);
        let (new_login, new_name) = (login(&user.email), uname(user));
        // The keys as read: the write fails if another one moved them meanwhile.
        let mut condition = "login = :login".to_owned();
        let mut values = HashMap::from([(":login".to_owned(), s(&old_login))]);
        match &old_name {
            Some(n) => {
                condition.push_str(" AND uname = :uname");
                values.insert(":uname".into(), s(n));
            }
            None => condition.push_str(" AND attribute_not_exists(uname)"),
        }
        let item = keep_expiry(user_item(user)?, &old);
        if old_login == new_login && old_name.as_deref() == Some(new_name.as_str()) {
            // Neither key moves: one conditional PutItem (a transaction costs twice the units).
            let put = self
                .table
                .put_item()
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values));
            return match put.send().await.map_err(|e| store(context, e)) {
                Err(StoreError::Conflict(_)) => Err(CHANGED),
                other => other.map(|_| ()),
            };
        }
        let put = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| StoreError::permanent(context, e))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if old_login != new_login {
            items.push(self.tx_delete(key(&pk, old_login), None)?);
            items.push(self.tx_put(
                keep_expiry(login_item(user), &old),
                Some("attribute_not_exists(pk)"),
            )?);
        }
        let mut name_at = None;
        if old_name.as_deref() != Some(new_name.as_str()) {
            if let Some(n) = old_name {
                items.push(self.tx_delete(key(&pk, n), None)?);
            }
            name_at = Some(items.len());
            items.push(self.tx_put(
                keep_expiry(uname_item(user), &old),
                Some("attribute_not_exists(pk)"),
            )?);
        }
        let taken = StoreError::Conflict("another user has this email or userName");
        self.transact_user(context, items, name_at, CHANGED, taken)
            .await
    }

    /// Writes `items` (the user's first) at once. A refusal is `first` when the user item
    /// failed its condition, [`USER_NAME_TAKEN`] when only the item at `name_at` (the new
    /// `UNAME#` item) did, else `taken`; a transaction conflict (a concurrent transaction on
    /// the same items, such as the racing write of the same name or email) is `taken` too.
    async fn transact_user(
        &self,
        context: &'static str,
        items: Vec<TransactWriteItem>,
        name_at: Option<usize>,
        first: StoreError,
        taken: StoreError,
    ) -> Result<(), StoreError> {
        let sent = self
            .table
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let e = match sent {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let reasons: Vec<Option<String>> = match &e {
            SdkError::ServiceError(se) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().map(str::to_owned))
                    .collect(),
                _ => return Err(store(context, e)),
            },
            _ => return Err(store(context, e)),
        };
        let failed = |i: usize| {
            reasons
                .get(i)
                .and_then(Option::as_deref)
                .is_some_and(|c| c == "ConditionalCheckFailed")
        };
        if failed(0) {
            return Err(first);
        }
        // Another item's clash (the email's) first: a user the admin API makes is named by
        // their email, so a taken email fails both, and the email is what the caller changes.
        let others = (1..reasons.len()).filter(|&i| Some(i) != name_at);
        if name_at.is_some_and(failed) && !others.clone().any(failed) {
            return Err(StoreError::Conflict(USER_NAME_TAKEN));
        }
        let refused = reasons
            .iter()
            .flatten()
            .any(|c| c == "ConditionalCheckFailed" || c == "TransactionConflict");
        if refused {
            Err(taken)
        } else {
            Err(store(context, e))
        }
    }
}

/// The `UNAME#` sort key an item of a user holds, if it was written with one.
pub(super) fn held_name(item: &Item) -> Option<String> {
    item.get(UNAME).and_then(|v| match v {
        AttributeValue::S(n) => Some(n.clone()),
        _ => None,
    })
}
