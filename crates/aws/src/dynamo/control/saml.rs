//! `SamlStore` on the ControlTable, in the workspace's partition:
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | SAML connection | `W#{ws}` | `SAML` | `doc` |
//! | AuthnRequest in flight | `W#{ws}` | `SAMLREQ#{browser hash}` | `request_id`, `expires_at` (TTL) |
//! | used assertion id | `W#{ws}` | `SAMLUSED#{sha256(assertion id)}` | `expires_at` (TTL) |
//!
//! A request is taken with one `DeleteItem` returning the old item, so only one of two
//! concurrent takes gets it. A used assertion id is one `PutItem` conditioned on there being
//! no live item (`attribute_not_exists(pk) OR expires_at <= :now`): of two instances
//! accepting the same response at once, one write fails and that one refuses the replay.
//! DynamoDB's TTL deletes late (moto never), so the expiry is compared on every read.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracklayer_core::error::StoreError;
use tracklayer_core::saml::{AssertionUse, PendingRequest, SamlConnection, SamlStore};
use tracklayer_core::workspace::WorkspaceId;

use super::{key, n, s, to_json, ttl, with_doc, ws_pk, DynamoControlStore};
use crate::dynamo::{expired, get_s, EXPIRES_AT};
use crate::error::condition_held;

const CONNECTION: &str = "SAML";

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
        let item = with_doc(
            key(ws_pk(&connection.workspace_id), CONNECTION),
            to_json("put_saml_connection", connection)?,
        );
        self.table.put("put_saml_connection", item, None).await
    }

    async fn delete_saml_connection(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        let item_key = key(ws_pk(ws), CONNECTION);
        let old = self
            .table
            .delete("delete_saml_connection", item_key)
            .await?;
        Ok(old.is_some())
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
