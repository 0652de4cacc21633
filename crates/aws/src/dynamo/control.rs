//! `ControlStore` on the ControlTable: one partition per workspace, documents as JSON.
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | workspace | `W#{ws}` | `WS` | `WS` / `{created ms}#{ws}` |
//! | API key | `W#{ws}` | `KEY#{id}` | `KEY#{id}` / `KEY` |
//! | destination | `W#{ws}` | `DEST#{id}` | — |
//! | user | `W#{ws}` | `USER#{id}` | — |
//! | login (unique email) | `W#{ws}` | `LOGIN#{sha256(lowercase email)}` | — |

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};
use tracklayer_core::clock::unix_millis;
use tracklayer_core::destination::{Destination, DestinationId};
use tracklayer_core::error::StoreError;
use tracklayer_core::keys::{ApiKeyRecord, KeyId};
use tracklayer_core::ports::{ControlReader, ControlStore};
use tracklayer_core::workspace::{User, Workspace, WorkspaceId};

use super::{doc, get_s, key, query_all, s, to_json, Item};
use crate::error::store;

/// The control plane on DynamoDB. Reads of the base table are strongly consistent: the admin
/// API reads what it just wrote, and ingest caches what it reads.
#[derive(Debug, Clone)]
pub struct DynamoControlStore {
    client: Client,
    table: String,
}

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
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, context: &'static str, item_key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store(context, e))?;
        Ok(out.item)
    }

    async fn prefix(
        &self,
        context: &'static str,
        ws: &WorkspaceId,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        query_all(
            context,
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":pk", s(ws_pk(ws)))
                .expression_attribute_values(":p", s(prefix))
                .consistent_read(true),
        )
        .await
    }

    /// PutItem under a condition; a failed condition becomes `on_fail`.
    async fn put(
        &self,
        context: &'static str,
        item: Item,
        condition: Option<&str>,
        on_fail: StoreError,
    ) -> Result<(), StoreError> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match store(context, e) {
                StoreError::Conflict(_) => Err(on_fail),
                other => Err(other),
            },
        }
    }

    async fn transact(
        &self,
        context: &'static str,
        items: Vec<TransactWriteItem>,
        on_condition: StoreError,
    ) -> Result<(), StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactWriteItemsError::TransactionCanceledException(c)
                        if c.cancellation_reasons().iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                ) =>
            {
                Err(on_condition)
            }
            Err(e) => Err(store(context, e)),
        }
    }

    fn tx_put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
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
            .table_name(&self.table)
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
    Ok(item)
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

fn user_item(u: &User) -> Result<Item, StoreError> {
    let mut item = with_doc(
        key(ws_pk(&u.workspace_id), format!("USER#{}", u.id)),
        to_json("user", u)?,
    );
    item.insert("login".into(), s(login(&u.email)));
    Ok(item)
}

fn login_item(u: &User) -> Item {
    let mut item = key(ws_pk(&u.workspace_id), login(&u.email));
    item.insert("user".into(), s(u.id.clone()));
    item
}

#[async_trait]
impl ControlReader for DynamoControlStore {
    async fn workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        self.get("workspace", key(ws_pk(id), "WS"))
            .await?
            .map(|i| doc(&i, "workspace"))
            .transpose()
    }

    async fn api_key(&self, id: &KeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        // Key ids are global: ingest finds the key (and its workspace) by id alone.
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :k")
            .expression_attribute_values(":k", s(format!("KEY#{id}")))
            .limit(1)
            .send()
            .await
            .map_err(|e| store("api_key", e))?;
        out.items
            .unwrap_or_default()
            .first()
            .map(|i| doc(i, "api_key"))
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
        self.get("destination", key(ws_pk(ws), format!("DEST#{id}")))
            .await?
            .map(|i| doc(&i, "destination"))
            .transpose()
    }
}

#[async_trait]
impl ControlStore for DynamoControlStore {
    async fn create_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        self.put(
            "create_workspace",
            workspace_item(ws)?,
            Some("attribute_not_exists(pk)"),
            StoreError::Conflict("workspace exists"),
        )
        .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> Result<(), StoreError> {
        self.put(
            "update_workspace",
            workspace_item(ws)?,
            Some("attribute_exists(pk)"),
            StoreError::NotFound("workspace"),
        )
        .await
    }

    async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        let items = query_all(
            "workspaces",
            self.client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :w")
                .expression_attribute_values(":w", s("WS")),
        )
        .await?;
        sorted_docs(items, "workspaces", |a: &Workspace, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }

    async fn create_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.put(
            "create_api_key",
            key_item(k)?,
            Some("attribute_not_exists(pk)"),
            StoreError::Conflict("api key exists"),
        )
        .await
    }

    async fn update_api_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.put(
            "update_api_key",
            key_item(k)?,
            Some("attribute_exists(pk)"),
            StoreError::NotFound("api key"),
        )
        .await
    }

    async fn api_keys(&self, ws: &WorkspaceId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let items = self.prefix("api_keys", ws, "KEY#").await?;
        sorted_docs(items, "api_keys", |a: &ApiKeyRecord, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }

    async fn put_destination(&self, d: &Destination) -> Result<(), StoreError> {
        let item = with_doc(
            key(ws_pk(&d.workspace_id), format!("DEST#{}", d.id)),
            to_json("put_destination", d)?,
        );
        self.put(
            "put_destination",
            item,
            None,
            StoreError::Conflict("put_destination"),
        )
        .await
    }

    async fn delete_destination(
        &self,
        ws: &WorkspaceId,
        id: &DestinationId,
    ) -> Result<(), StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(ws_pk(ws), format!("DEST#{id}"))))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match store("delete_destination", e) {
                StoreError::Conflict(_) => Err(StoreError::NotFound("destination")),
                other => Err(other),
            },
        }
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let items = vec![
            self.tx_put(user_item(user)?, "attribute_not_exists(pk)")?,
            self.tx_put(login_item(user), "attribute_not_exists(pk)")?,
        ];
        self.transact(
            "create_user",
            items,
            StoreError::Conflict("a user with this id or email exists"),
        )
        .await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let pk = ws_pk(&user.workspace_id);
        let old = self
            .get("update_user", key(&pk, format!("USER#{}", user.id)))
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        let old_login = get_s(&old, "login", "update_user")?.to_owned();
        if old_login == login(&user.email) {
            return self
                .put(
                    "update_user",
                    user_item(user)?,
                    Some("attribute_exists(pk)"),
                    StoreError::NotFound("user"),
                )
                .await;
        }
        // The email changed: move its uniqueness entry in the same transaction.
        let items = vec![
            self.tx_put(user_item(user)?, "attribute_exists(pk)")?,
            self.tx_delete(key(&pk, old_login), None)?,
            self.tx_put(login_item(user), "attribute_not_exists(pk)")?,
        ];
        self.transact(
            "update_user",
            items,
            StoreError::Conflict("another user has this email"),
        )
        .await
    }

    async fn delete_user(&self, ws: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        let pk = ws_pk(ws);
        let old = self
            .get("delete_user", key(&pk, format!("USER#{id}")))
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        let old_login = get_s(&old, "login", "delete_user")?.to_owned();
        let items = vec![
            self.tx_delete(key(&pk, format!("USER#{id}")), Some("attribute_exists(pk)"))?,
            self.tx_delete(key(&pk, old_login), None)?,
        ];
        self.transact("delete_user", items, StoreError::NotFound("user"))
            .await
    }

    async fn user(&self, ws: &WorkspaceId, id: &str) -> Result<Option<User>, StoreError> {
        self.get("user", key(ws_pk(ws), format!("USER#{id}")))
            .await?
            .map(|i| doc(&i, "user"))
            .transpose()
    }

    async fn users(&self, ws: &WorkspaceId) -> Result<Vec<User>, StoreError> {
        let items = self.prefix("users", ws, "USER#").await?;
        sorted_docs(items, "users", |a: &User, b| {
            (a.created_at, &a.id).cmp(&(b.created_at, &b.id))
        })
    }
}
