//! `ControlStore` on the ControlTable: one partition per workspace, documents as JSON.
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | workspace | `W#{ws}` | `WS` | `WS` / `{created ms}#{ws}` |
//! | API key | `W#{ws}` | `KEY#{id}` | `KEY#{id}` / `KEY` |
//! | destination | `W#{ws}` | `DEST#{id}` | — |
//! | user | `W#{ws}` | `USER#{id}` | — |
//! | login (unique email) | `W#{ws}` | `LOGIN#{sha256(lowercase email)}` | — |
//! | unique userName | `W#{ws}` | `UNAME#{sha256(user_name_key)}` (see `user_names`) | — |
//!
//! The last-admin rule (`set_user_role_keeping_an_admin`, `delete_user_keeping_an_admin`)
//! is one TransactWriteItems: the write of the user, conditioned on their document being the
//! one read, and a condition check that another admin's document is still the one read (so
//! still an admin). Transactions are serializable: of two admins demoting each other at
//! once, the second to commit finds the first's document changed and fails.
//!
//! Account data carries the TTL attribute `expires_at`: a key record 90 days after the key
//! ended; a closed workspace and its users, logins, userNames and key records 90 days after
//! the closure.
//! DynamoDB deletes late (moto never), so every read leaves out what expired by `now`. The
//! workspace's data-subject requests and suppression entries share its partition but belong
//! to the DSR store, which stamps them itself (`DynamoDsrStore::end_with_account`).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use futures_util::{stream, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::destination::{Destination, DestinationId};
use tracklayer_core::error::StoreError;
use tracklayer_core::keys::{ApiKeyRecord, KeyId, Role};
use tracklayer_core::ports::{ControlReader, ControlStore, KeyUsage};
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::{User, Workspace, WorkspaceId};

use super::{
    doc, expired, get_n, get_s, key, n, query_all, query_first, s, to_json, transact_write, ttl,
    Item, Table,
};
use crate::error::{condition_held, on_existing};

/// Items deleted at once when a workspace closes.
const CLOSE_CONCURRENCY: usize = 8;

/// The control plane on DynamoDB. Reads of the base table are strongly consistent: the admin
/// API reads what it just wrote, and ingest caches what it reads.
#[derive(Debug, Clone)]
pub struct DynamoControlStore {
    table: Table,
    /// Items per Query page of a workspace's items; `None`: DynamoDB's own (1 MB).
    page: Option<i32>,
}

mod last_admin;
mod saml;
mod scim;
mod user_names;

fn ws_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}")
}

fn login(email: &str) -> String {
    format!(
        "LOGIN#{}",
        hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
    )
}

fn with_doc(mut item: Item, doc: String) -> Item {
    item.insert("doc".into(), s(doc));
    item
}

impl DynamoControlStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = Table::new(client, table);
        Self { table, page: None }
    }

    /// Reads a workspace's items (users, groups, keys, …) in pages of at most `items`: every
    /// such read already follows `LastEvaluatedKey` to the end; the contract tests set a small
    /// page so that they cross pages as a large workspace's 1 MB pages would.
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page = Some(items);
        self
    }

    /// The workspace's items whose sort key starts with `prefix`, expired or not; only the
    /// attributes in `projection` when there is one.
    async fn items_with_prefix(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        prefix: &str,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        query_all(
            context,
            self.table
                .query_prefix(ws_pk(ws), prefix)
                .set_projection_expression(projection.map(str::to_owned))
                .set_limit(self.page),
        )
        .await
    }

    async fn prefix(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.items_with_prefix(context, ws, prefix, None).await
    }

    /// The `pk`, `sk` and `expires_at` of the workspace's items whose sort key starts with
    /// `prefix`, expired or not.
    async fn keys_of(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        self.items_with_prefix(context, ws, prefix, Some("pk, sk, expires_at"))
            .await
    }

    /// Deletes items by key, a few at a time (`DeleteItem`: the admin role has no
    /// `BatchWriteItem` on this table, and a workspace has few destinations).
    async fn delete_all(&self, items: Vec<Item>) -> Result<(), StoreError> {
        stream::iter(items)
            .map(|item| async move {
                let key = key(
                    get_s(&item, "pk", "close_workspace")?,
                    get_s(&item, "sk", "close_workspace")?,
                );
                self.table.delete("close_workspace", key).await.map(|_| ())
            })
            .buffer_unordered(CLOSE_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Why a conditional write of the workspace item failed: there is none, or it is closed.
    async fn closed_or_missing(&self, ws: &WorkspaceId, context: &'static str) -> StoreError {
        match self.table.get(context, key(ws_pk(ws), "WS")).await {
            Ok(Some(_)) => StoreError::Conflict("the workspace is closed"),
            Ok(None) => StoreError::NotFound("workspace"),
            Err(e) => e,
        }
    }

    /// Writes a new item: `Conflict(exists)` when one with its key is there already.
    async fn create(
        &self,
        context: &'static str,
        item: Item,
        exists: &'static str,
    ) -> Result<(), StoreError> {
        let condition = Some("attribute_not_exists(pk)");
        match self.table.put(context, item, condition).await {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(exists)),
            other => other,
        }
    }

    async fn transact(
        &self,
        context: &'static str,
        items: Vec<TransactWriteItem>,
        on_condition: StoreError,
    ) -> Result<(), StoreError> {
        let codes = ["ConditionalCheckFailed"];
        if transact_write(self.table.client(), context, items, &codes).await? {
            Ok(())
        } else {
            Err(on_condition)
        }
    }

    fn tx_put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table.name())
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(|e| StoreError::permanent("control transaction", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn tx_delete(
        &self,
        item_key: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table.name())
            .set_key(Some(item_key))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(|e| StoreError::permanent("control transaction", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

fn sorted_docs<T: serde::de::DeserializeOwned>(
    items: Vec<Item>,
    context: &'static str,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) -> Result<Vec<T>, StoreError> {
    let mut docs = items
        .iter()
        .map(|i| doc(i, context))
        .collect::<Result<Vec<T>, _>>()?;
    docs.sort_by(order);
    Ok(docs)
}

fn workspace_item(ws: &Workspace) -> Result<Item, StoreError> {
    let mut item = with_doc(key(ws_pk(&ws.id), "WS"), to_json("workspace", ws)?);
    item.insert("gsi1pk".into(), s("WS"));
    item.insert(
        "gsi1sk".into(),
        s(format!("{:013}#{}", unix_millis(ws.created_at), ws.id)),
    );
    // A closed workspace: DynamoDB's TTL removes it 90 days after the closure.
    if let Some(until) = ws.account_data_expires_at() {
        item.insert(super::EXPIRES_AT.into(), n(ttl(until)));
    }
    Ok(item)
}

/// The item's document, unless it expired by `now`.
fn live_doc<T: serde::de::DeserializeOwned>(
    item: &Item,
    now: OffsetDateTime,
    context: &'static str,
) -> Option<Result<T, StoreError>> {
    (!expired(item, now)).then(|| doc(item, context))
}

fn live(items: Vec<Item>, now: OffsetDateTime) -> Vec<Item> {
    items.into_iter().filter(|i| !expired(i, now)).collect()
}

/// The attribute `touch_api_key` moves forward (unix milliseconds), apart from `doc`, so a
/// rewrite of the document never moves it back and the condition can compare it.
const LAST_USED: &str = "last_used_ms";

/// A key record with its `last_used_at` from [`LAST_USED`], when that is later.
fn key_doc(item: &Item, context: &'static str) -> Result<ApiKeyRecord, StoreError> {
    let mut k: ApiKeyRecord = doc(item, context)?;
    let used = get_n(item, LAST_USED)
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
    if used > k.last_used_at {
        k.last_used_at = used;
    }
    Ok(k)
}

fn key_item(k: &ApiKeyRecord) -> Result<Item, StoreError> {
    let mut item = with_doc(
        key(ws_pk(&k.workspace_id), format!("KEY#{}", k.id)),
        to_json("api key", k)?,
    );
    item.insert("gsi1pk".into(), s(format!("KEY#{}", k.id)));
    item.insert("gsi1sk".into(), s("KEY"));
    // Account data: DynamoDB's TTL removes the record 90 days after the key ended.
    item.insert(
        super::EXPIRES_AT.into(),
        super::n(super::ttl(k.retained_until())),
    );
    Ok(item)
}

/// Keeps the TTL of an item being replaced (a closed workspace's user keeps its stamp).
fn keep_expiry(mut item: Item, old: &Item) -> Item {
    if let Some(t) = get_n(old, super::EXPIRES_AT) {
        item.insert(super::EXPIRES_AT.into(), n(t));
    }
    item
}

fn user_item(u: &User) -> Result<Item, StoreError> {
    let mut item = with_doc(
        key(ws_pk(&u.workspace_id), format!("USER#{}", u.id)),
        to_json("user", u)?,
    );
    item.insert("login".into(), s(login(&u.email)));
    item.insert(user_names::UNAME.into(), s(user_names::uname(u)));
    Ok(item)
}

fn login_item(u: &User) -> Item {
    let mut item = key(ws_pk(&u.workspace_id), login(&u.email));
    item.insert("user".into(), s(u.id.clone()));
    item
}

#[async_trait]
impl ControlReader for DynamoControlStore {
    async fn workspace(
        &self,
        id: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Option<Workspace>, StoreError> {
        self.table
            .get("workspace", key(ws_pk(id), "WS"))
            .await?
            .and_then(|i| live_doc(&i, now, "workspace"))
            .transpose()
    }

    async fn api_key(
        &self,
        id: &KeyId,
        now: OffsetDateTime,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        // Key ids are global: ingest finds the key (and its workspace) by id alone.
        let by_id = self
            .table
            .query()
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :k")
            .expression_attribute_values(":k", s(format!("KEY#{id}")));
        query_first("api_key", by_id)
            .await?
            .and_then(|i| (!expired(&i, now)).then(|| key_doc(&i, "api_key")))
            .transpose()
    }

    async fn destinations(&self, ws: &WorkspaceId) -> Result<Vec<Destination>, StoreError> {
        let items = self.prefix("destinations", ws, "DEST#").await?;
        sorted_docs(items, "destinations", |a: &Destination, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }

    async fn destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<Option<Destination>, StoreError> {
        let item_key = key(ws_pk(ws), format!("DEST#{id}"));
        self.table.get_doc("destination", item_key).await
    }
}

#[async_trait]
impl KeyUsage for DynamoControlStore {
    async fn touch_api_key(
        &self,
        ws: &WorkspaceId,
        id: &KeyId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let result = self
            .table
            .update_item(key(ws_pk(ws), format!("KEY#{id}")))
            .update_expression("SET #u = :at")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#u) OR #u < :at)")
            .expression_attribute_names("#u", LAST_USED)
            .expression_attribute_values(":at", n(unix_millis(at)))
            .send()
            .await;
        // Gone, or used later already: nothing to move.
        condition_held("touch_api_key", result).map(drop)
    }
}

#[async_trait]
impl ControlStore for DynamoControlStore {
    async fn create_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        let item = workspace_item(ws)?;
        self.create("create_workspace", item, "workspace exists")
            .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        // A write that does not know of the closure (it read the workspace before) must not
        // open it again.
        let condition = if ws.is_closed() {
            "attribute_exists(pk)"
        } else {
            "attribute_exists(pk) AND attribute_not_exists(expires_at)"
        };
        let item = workspace_item(ws)?;
        match self
            .table
            .put("update_workspace", item, Some(condition))
            .await
        {
            Err(StoreError::Conflict(_)) => {
                Err(self.closed_or_missing(&ws.id, "update_workspace").await)
            }
            other => other,
        }
    }

    async fn close_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        let until = ws.account_data_expires_at().ok_or_else(|| {
            StoreError::permanent("close_workspace", "the workspace has no closed_at")
        })?;
        let until = ttl(until);
        match self
            .table
            .get("close_workspace", key(ws_pk(&ws.id), "WS"))
            .await?
        {
            None => return Err(StoreError::NotFound("workspace")),
            Some(item) if item.contains_key(super::EXPIRES_AT) => {
                return Err(StoreError::Conflict("the workspace is closed already"))
            }
            Some(_) => {}
        }
        // Secrets end with the account: destinations go now, and so does the identity
        // provider's directory (SCIM groups and their role mapping, `SCIM…` items).
        self.delete_all(self.keys_of("close_workspace", &ws.id, "DEST#").await?)
            .await?;
        self.delete_all(self.keys_of("close_workspace", &ws.id, "SCIM").await?)
            .await?;
        // Users and their email entries expire with the workspace; key records only if they
        // would outlive it (a revoked key's record already expires 90 days after revocation).
        let mut stamp = self.keys_of("close_workspace", &ws.id, "USER#").await?;
        stamp.extend(self.keys_of("close_workspace", &ws.id, "LOGIN#").await?);
        stamp.extend(self.keys_of("close_workspace", &ws.id, "UNAME#").await?);
        stamp.extend(
            self.keys_of("close_workspace", &ws.id, "KEY#")
                .await?
                .into_iter()
                .filter(|i| get_n(i, super::EXPIRES_AT).is_none_or(|t| t > until)),
        );
        let (client, table) = (self.table.client(), self.table.name());
        super::stamp_expiry(client, "close_workspace", table, stamp, until).await?;
        // Last, so that a failed call can be repeated: the workspace, closed, with its TTL.
        let open = Some("attribute_exists(pk) AND attribute_not_exists(expires_at)");
        match self
            .table
            .put("close_workspace", workspace_item(ws)?, open)
            .await
        {
            Err(StoreError::Conflict(_)) => {
                Err(self.closed_or_missing(&ws.id, "close_workspace").await)
            }
            other => other,
        }
    }

    async fn workspaces(&self, now: OffsetDateTime) -> Result<Vec<Workspace>, StoreError> {
        let items = query_all(
            "workspaces",
            self.table
                .query()
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :w")
                .expression_attribute_values(":w", s("WS")),
        )
        .await?;
        sorted_docs(live(items, now), "workspaces", |a: &Workspace, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }

    async fn create_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        let item = key_item(k)?;
        self.create("create_api_key", item, "api key exists").await
    }

    async fn update_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        // A key's expiry only moves earlier (revocation, rotation): if the record's TTL is
        // earlier already (its workspace closed), the document changes and the TTL stays.
        let item_key = key(ws_pk(&k.workspace_id), format!("KEY#{}", k.id));
        let update = |with_ttl: bool| {
            let q = self
                .table
                .update_item(item_key.clone())
                .expression_attribute_values(":doc", s(to_json("api key", k)?));
            Ok::<_, StoreError>(if with_ttl {
                q.update_expression("SET doc = :doc, expires_at = :t")
                    .condition_expression(
                        "attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at >= :t)",
                    )
                    .expression_attribute_values(":t", n(ttl(k.retained_until())))
            } else {
                q.update_expression("SET doc = :doc")
                    .condition_expression("attribute_exists(pk)")
            })
        };
        if condition_held("update_api_key", update(true)?.send().await)? {
            return Ok(());
        }
        on_existing("update_api_key", "api key", update(false)?.send().await)
    }

    async fn api_keys(
        &self,
        ws: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let items = self.prefix("api_keys", ws, "KEY#").await?;
        let mut keys = live(items, now)
            .iter()
            .map(|i| key_doc(i, "api_keys"))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn put_destination(&self, d: &Destination) -> Result<(), StoreError> {
        let item = with_doc(
            key(ws_pk(&d.workspace_id), format!("DEST#{}", d.id)),
            to_json("put_destination", d)?,
        );
        self.table.put("put_destination", item, None).await
    }

    async fn delete_destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<(), StoreError> {
        let sent = self
            .table
            .delete_item(key(ws_pk(ws), format!("DEST#{id}")))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        on_existing("delete_destination", "destination", sent)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.create_user_item(user).await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        self.update_user_item(user).await
    }

    async fn delete_user(&self, ws: &WorkspaceId, id: &UserId) -> Result<(), StoreError> {
        let pk = ws_pk(ws);
        let old = self
            .table
            .get("delete_user", key(&pk, format!("USER#{id}")))
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        let old_login = get_s(&old, "login", "delete_user")?.to_owned();
        let mut items = vec![
            self.tx_delete(key(&pk, format!("USER#{id}")), Some("attribute_exists(pk)"))?,
            self.tx_delete(key(&pk, old_login), None)?,
        ];
        if let Some(name) = user_names::held_name(&old) {
            items.push(self.tx_delete(key(&pk, name), None)?);
        }
        self.transact("delete_user", items, StoreError::NotFound("user"))
            .await
    }

    async fn set_user_role_keeping_an_admin(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let context = "set_user_role";
        self.keeping_an_admin(context, ws, id, now, role != Role::Admin, |item, old| {
            let mut user = old.clone();
            user.role = role;
            let put = Put::builder()
                .table_name(self.table.name())
                .set_item(Some(keep_expiry(user_item(&user)?, item)))
                .condition_expression("doc = :doc")
                .expression_attribute_values(":doc", item["doc"].clone())
                .build()
                .map_err(|e| StoreError::permanent(context, e))?;
            Ok(vec![TransactWriteItem::builder().put(put).build()])
        })
        .await
    }

    async fn delete_user_keeping_an_admin(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let context = "delete_user";
        let pk = ws_pk(ws);
        self.keeping_an_admin(context, ws, id, now, true, |item, _| {
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(key(&pk, format!("USER#{id}"))))
                .condition_expression("doc = :doc")
                .expression_attribute_values(":doc", item["doc"].clone())
                .build()
                .map_err(|e| StoreError::permanent(context, e))?;
            let login = get_s(item, "login", context)?.to_owned();
            let mut items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.tx_delete(key(&pk, login), None)?,
            ];
            if let Some(name) = user_names::held_name(item) {
                items.push(self.tx_delete(key(&pk, name), None)?);
            }
            Ok(items)
        })
        .await
    }

    async fn user(
        &self,
        ws: &WorkspaceId,
        id: &UserId,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        self.table
            .get("user", key(ws_pk(ws), format!("USER#{id}")))
            .await?
            .and_then(|i| live_doc(&i, now, "user"))
            .transpose()
    }

    async fn users(&self, ws: &WorkspaceId, now: OffsetDateTime) -> Result<Vec<User>, StoreError> {
        let items = self.prefix("users", ws, "USER#").await?;
        sorted_docs(live(items, now), "users", |a: &User, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }
}
