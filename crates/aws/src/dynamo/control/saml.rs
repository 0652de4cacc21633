//! `SamlStore` on the ControlTable, in the workspace's partition:
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | SAML connection | `W#{ws}` | `SAML` | `doc` |
//! | AuthnRequest in flight | `W#{ws}` | `SAMLREQ#{browser hash}` | `request_id`, `expires_at` (TTL) |
//! | used assertion id | `W#{ws}` | `SAMLUSED#{sha256(assertion id)}` | `expires_at` (TTL) |
//! | managed domain | `SAMLDOMAIN#{domain}` | `W#{ws}` | — |
//!
//! A connection is written with its managed-domain items in one TransactWriteItems (the
//! connection, an item per domain it names, a delete per domain the replaced one named), so
//! the sign-in page finds the workspaces of a domain with one Query. Two writes of the same
//! connection racing may both read the same old domains: the last to commit has put all of
//! its own, so every domain the connection names has its item, and an item of a domain it no
//! longer names may outlive the race; readers check the connection (see the port).
//!
//! A request is taken with one `DeleteItem` returning the old item, so only one of two
//! concurrent takes gets it. A used assertion id is one `PutItem` conditioned on there being
//! no live item (`attribute_not_exists(pk) OR expires_at <= :now`): of two instances
//! accepting the same response at once, one write fails and that one refuses the replay.
//! DynamoDB's TTL deletes late (moto never), so the expiry is compared on every read.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracklayer_core::error::StoreError;
use tracklayer_core::saml::{AssertionUse, PendingRequest, SamlConnection, SamlStore};
use tracklayer_core::workspace::WorkspaceId;

use super::{key, n, s, to_json, ttl, with_doc, ws_pk, DynamoControlStore};
use crate::dynamo::{expired, get_s, query_up_to, transact_write, EXPIRES_AT};
use crate::error::condition_held;

const CONNECTION: &str = "SAML";

/// The partition of the workspaces that manage `domain`.
fn domain_pk(domain: &str) -> String {
    format!("SAMLDOMAIN#{domain}")
}

/// The domains that `old` named and `new` (if any) does not.
fn dropped<'a>(old: Option<&'a SamlConnection>, new: Option<&SamlConnection>) -> Vec<&'a str> {
    old.map(|o| o.managed_domains.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|d| new.is_none_or(|n| !n.managed_domains.contains(d)))
        .map(String::as_str)
        .collect()
}

impl DynamoControlStore {
    /// Deletes of the domain items of `domains` for workspace `ws`.
    fn domain_deletes(
        &self,
        ws: &WorkspaceId,
        domains: &[&str],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        domains
            .iter()
            .map(|d| self.tx_delete(key(domain_pk(d), ws_pk(ws)), None))
            .collect()
    }
}

/// What a racing write of the same connection makes of ours: send it again.
const RACED: StoreError =
    StoreError::Conflict("the SAML connection was being changed at the same time; send it again");

fn used_sk(assertion_id: &str) -> String {
    format!(
        "SAMLUSED#{}",
        hex::encode(Sha256::digest(assertion_id.as_bytes()))
    )
}

#[async_trait]
impl SamlStore for DynamoControlStore {
    async fn saml_connection(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Option<SamlConnection>, StoreError> {
        let item_key = key(ws_pk(ws), CONNECTION);
        self.table.get_doc("saml_connection", item_key).await
    }

    async fn put_saml_connection(&self, connection: &SamlConnection) -> Result<(), StoreError> {
        const CONTEXT: &str = "put_saml_connection";
        let ws = &connection.workspace_id;
        let old = self.saml_connection(ws).await?;
        let mut items = vec![self.tx_put(
            with_doc(key(ws_pk(ws), CONNECTION), to_json(CONTEXT, connection)?),
            None,
        )?];
        for d in &connection.managed_domains {
            items.push(self.tx_put(key(domain_pk(d), ws_pk(ws)), None)?);
        }
        items.extend(self.domain_deletes(ws, &dropped(old.as_ref(), Some(connection)))?);
        let client = self.table.client();
        if transact_write(client, CONTEXT, items, &["TransactionConflict"]).await? {
            Ok(())
        } else {
            Err(RACED)
        }
    }

    async fn delete_saml_connection(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        const CONTEXT: &str = "delete_saml_connection";
        let Some(old) = self.saml_connection(ws).await? else {
            return Ok(false);
        };
        let exists = Some("attribute_exists(pk)");
        let mut items = vec![self.tx_delete(key(ws_pk(ws), CONNECTION), exists)?];
        items.extend(self.domain_deletes(ws, &dropped(Some(&old), None))?);
        let client = self.table.client();
        let codes = ["ConditionalCheckFailed", "TransactionConflict"];
        if transact_write(client, CONTEXT, items, &codes).await? {
            return Ok(true);
        }
        // Deleted by a racing delete (that one answers `true`), or changed by a racing put.
        match self.saml_connection(ws).await? {
            None => Ok(false),
            Some(_) => Err(RACED),
        }
    }

    async fn workspaces_managing_domain(
        &self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<WorkspaceId>, StoreError> {
        const CONTEXT: &str = "workspaces_managing_domain";
        let q = self
            .table
            .query()
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(domain_pk(domain)))
            .consistent_read(true);
        let page = |wanted: usize| Some(i32::try_from(wanted).unwrap_or(i32::MAX));
        query_up_to(CONTEXT, q, limit, page, |item| {
            let sk = get_s(&item, "sk", CONTEXT)?;
            let id = sk.strip_prefix("W#").unwrap_or(sk);
            WorkspaceId::parse(id)
                .map(Some)
                .map_err(|e| StoreError::corrupt(CONTEXT, e))
        })
        .await
    }

    async fn put_saml_request(
        &self,
        ws: &WorkspaceId,
        request: &PendingRequest<'_>,
    ) -> Result<(), StoreError> {
        let mut item = key(ws_pk(ws), format!("SAMLREQ#{}", request.browser));
        item.insert("request_id".into(), s(request.request_id));
        item.insert(EXPIRES_AT.into(), n(ttl(request.expires_at)));
        self.table.put("put_saml_request", item, None).await
    }

    async fn take_saml_request(
        &self,
        ws: &WorkspaceId,
        browser: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        let item_key = key(ws_pk(ws), format!("SAMLREQ#{browser}"));
        match self.table.delete("take_saml_request", item_key).await? {
            Some(item) if !expired(&item, now) => Ok(Some(
                get_s(&item, "request_id", "take_saml_request")?.to_owned(),
            )),
            _ => Ok(None),
        }
    }

    async fn first_use_of_assertion(
        &self,
        ws: &WorkspaceId,
        assertion: &AssertionUse<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut item = key(ws_pk(ws), used_sk(assertion.id));
        item.insert(EXPIRES_AT.into(), n(ttl(assertion.until)));
        let written = self
            .table
            .put_item()
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .send()
            .await;
        condition_held("first_use_of_assertion", written)
    }
}
