//! `SessionStore` on the ControlTable: console sessions, one-time links, password
//! credentials and failed sign-in counters, each in partitions of their own (never a
//! workspace's `W#` partition, which closure walks).
//!
//! | item | pk | sk | other attributes |
//! |---|---|---|---|
//! | session | `SES#{ws}` | `{session id}` | `user`, `token` (hash), `doc`, `expires_at` = its end |
//! | session token | `SESTOK#{token hash}` | `SESTOK` | `ws`, `id`, `expires_at` = absolute end |
//! | credential | `CRED#{sha256(email)}` | `CRED` | `doc` (argon2id verifier, no email) |
//! | one-time link | `LINK#{token hash}` | `LINK` | `kind`, `ends_ms`, `doc`, `expires_at` |
//! | failure counter | `FAIL#{key}` | `{window start ms}` | `count`, `ends_ms`, `expires_at` |
//!
//! `expires_at` is the table's TTL attribute (Unix seconds, rounded up); reads compare the
//! exact end in milliseconds, since DynamoDB deletes late. A session and its token item are
//! written in one transaction; a link is redeemed by one conditional `DeleteItem` (kind and
//! end checked in the condition), so two concurrent redemptions cannot both get it; a
//! counter is one `UpdateItem … ADD`, atomic across Lambda instances.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::SessionStore;
use tracklayer_core::sessions::{
    Credential, LinkKind, LinkRecord, LoginKey, Session, SessionId, StoredSession, TokenHash,
};
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::WorkspaceId;

use super::{doc, get_n, get_s, key, n, query_all, s, to_json, transact_write, ttl, Item, Table};
use crate::error::store;

/// Console sign-in state on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoSessionStore {
    table: Table,
}

fn session_key(ws: &WorkspaceId, id: &SessionId) -> Item {
    key(format!("SES#{ws}"), id.as_str())
}

fn token_key(hash: &TokenHash) -> Item {
    key(format!("SESTOK#{}", hash.as_str()), "SESTOK")
}

fn credential_key(login: &LoginKey) -> Item {
    key(format!("CRED#{}", login.as_str()), "CRED")
}

fn link_key(hash: &TokenHash) -> Item {
    key(format!("LINK#{}", hash.as_str()), "LINK")
}

fn failure_key(k: &str, window: OffsetDateTime) -> Item {
    key(format!("FAIL#{k}"), unix_millis(window).to_string())
}

fn with(
    mut item: Item,
    attrs: impl IntoIterator<Item = (&'static str, aws_sdk_dynamodb::types::AttributeValue)>,
) -> Item {
    for (name, value) in attrs {
        item.insert(name.into(), value);
    }
    item
}

fn session_item(s: &StoredSession) -> Result<Item, StoreError> {
    let session = &s.session;
    Ok(with(
        session_key(&session.workspace_id, &session.id),
        [
            ("user", self::s(session.user_id.as_str())),
            ("token", self::s(s.token_hash.as_str())),
            ("doc", self::s(to_json("session", s)?)),
            ("expires_at", n(ttl(session.ends_at()))),
        ],
    ))
}

impl DynamoSessionStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = Table::new(client, table);
        Self { table }
    }

    /// Deletes a session item and its token item.
    async fn delete_stored(&self, ws: &WorkspaceId, id: &SessionId) -> Result<bool, StoreError> {
        let deleted = self.table.delete("delete_session", session_key(ws, id));
        let Some(old) = deleted.await? else {
            return Ok(false);
        };
        let hash: StoredSession = doc(&old, "delete_session")?;
        let token = token_key(&hash.token_hash);
        self.table.delete("delete_session", token).await?;
        Ok(true)
    }

    async fn sessions_in(&self, ws: &WorkspaceId) -> Result<Vec<StoredSession>, StoreError> {
        let q = self.table.query_prefix(format!("SES#{ws}"), "ses_");
        query_all("sessions_of", q)
            .await?
            .iter()
            .map(|item| doc(item, "sessions_of"))
            .collect()
    }
}

fn put(item: Item, table: &str, context: &'static str) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| StoreError::permanent(context, e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

#[async_trait]
impl SessionStore for DynamoSessionStore {
    async fn create_session(&self, st: &StoredSession) -> Result<(), StoreError> {
        let session = &st.session;
        let pointer = with(
            token_key(&st.token_hash),
            [
                ("ws", s(session.workspace_id.as_str())),
                ("id", s(session.id.as_str())),
                ("expires_at", n(ttl(session.expires_at))),
            ],
        );
        let items = vec![
            put(session_item(st)?, self.table.name(), "create_session")?,
            put(pointer, self.table.name(), "create_session")?,
        ];
        let codes = ["ConditionalCheckFailed", "TransactionConflict"];
        if transact_write(self.table.client(), "create_session", items, &codes).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict("create_session"))
        }
    }

    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<StoredSession>, StoreError> {
        let Some(pointer) = self.table.get("session_by_token", token_key(hash)).await? else {
            return Ok(None);
        };
        let ws = WorkspaceId::parse(get_s(&pointer, "ws", "session_by_token")?)
            .map_err(|e| StoreError::corrupt("session_by_token", e))?;
        let id = SessionId::parse(get_s(&pointer, "id", "session_by_token")?)
            .map_err(|e| StoreError::corrupt("session_by_token", e))?;
        let item_key = session_key(&ws, &id);
        let stored: Option<StoredSession> =
            self.table.get_doc("session_by_token", item_key).await?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        Ok((stored.token_hash == *hash && stored.session.is_live(now)).then_some(stored))
    }

    async fn touch_session(&self, st: &StoredSession) -> Result<(), StoreError> {
        let item = session_item(st)?;
        let result = self
            .table
            .put("touch_session", item, Some("attribute_exists(pk)"))
            .await;
        match result {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn sessions_of(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions: Vec<Session> = self
            .sessions_in(ws)
            .await?
            .into_iter()
            .map(|st| st.session)
            .filter(|s| s.user_id == *user && s.is_live(now))
            .collect();
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    async fn session(
        &self,
        ws: &WorkspaceId,
        id: &SessionId,
    ) -> Result<Option<StoredSession>, StoreError> {
        self.table.get_doc("session", session_key(ws, id)).await
    }

    async fn delete_session(&self, ws: &WorkspaceId, id: &SessionId) -> Result<bool, StoreError> {
        self.delete_stored(ws, id).await
    }

    async fn delete_sessions_of(&self, ws: &WorkspaceId, user: &UserId) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for st in self.sessions_in(ws).await? {
            if st.session.user_id == *user && self.delete_stored(ws, &st.session.id).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn put_credential(&self, c: &Credential) -> Result<(), StoreError> {
        let item = with(
            credential_key(&c.login),
            [("doc", s(to_json("put_credential", c)?))],
        );
        self.table.put("put_credential", item, None).await
    }

    async fn credential(&self, login: &LoginKey) -> Result<Option<Credential>, StoreError> {
        self.table
            .get_doc("credential", credential_key(login))
            .await
    }

    async fn delete_credential(&self, login: &LoginKey) -> Result<(), StoreError> {
        let item_key = credential_key(login);
        self.table.delete("delete_credential", item_key).await?;
        Ok(())
    }

    async fn put_link(&self, link: &LinkRecord) -> Result<(), StoreError> {
        let item = with(
            link_key(&link.hash),
            [
                ("kind", s(link.kind.as_str())),
                ("ends_ms", n(unix_millis(link.expires_at))),
                ("doc", s(to_json("put_link", link)?)),
                ("expires_at", n(ttl(link.expires_at))),
            ],
        );
        let condition = Some("attribute_not_exists(pk)");
        self.table.put("put_link", item, condition).await
    }

    async fn redeem_link(
        &self,
        hash: &TokenHash,
        kind: LinkKind,
        now: OffsetDateTime,
    ) -> Result<Option<LinkRecord>, StoreError> {
        let result = self
            .table
            .delete_item(link_key(hash))
            .condition_expression("attribute_exists(pk) AND kind = :k AND ends_ms > :now")
            .expression_attribute_values(":k", s(kind.as_str()))
            .expression_attribute_values(":now", n(unix_millis(now)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store("redeem_link", e));
        match result {
            Ok(out) => out
                .attributes
                .map(|item| doc(&item, "redeem_link"))
                .transpose(),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn add_failure(
        &self,
        key: &str,
        window: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let out = self
            .table
            .update_item(failure_key(key, window))
            .update_expression("ADD #c :one SET ends_ms = :e, expires_at = :t")
            .expression_attribute_names("#c", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":e", n(unix_millis(expires_at)))
            .expression_attribute_values(":t", n(ttl(expires_at)))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store("add_failure", e))?;
        let count = out
            .attributes
            .as_ref()
            .and_then(|a| get_n(a, "count"))
            .ok_or_else(|| StoreError::corrupt("add_failure", "no count returned"))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn failures(
        &self,
        key: &str,
        window: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError> {
        let Some(item) = self.table.get("failures", failure_key(key, window)).await? else {
            return Ok(0);
        };
        if get_n(&item, "ends_ms").is_none_or(|end| end <= unix_millis(now)) {
            return Ok(0);
        }
        Ok(get_n(&item, "count").map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    async fn clear_failures(&self, key: &str, window: OffsetDateTime) -> Result<(), StoreError> {
        let item_key = failure_key(key, window);
        self.table.delete("clear_failures", item_key).await?;
        Ok(())
    }

    /// DynamoDB's TTL deletes what ended; reads leave it out before.
    async fn sweep(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }
}
