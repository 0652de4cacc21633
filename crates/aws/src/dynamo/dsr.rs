//! `DsrStore` (and the `SuppressionList` ingest reads): data-subject requests and the
//! suppression list on the ControlTable, access exports on the EventsTable (its 7-day
//! point-in-time recovery, not the control table's 35, bounds how long an export of personal
//! data can be restored).
//!
//! | item | table | pk | sk | attributes |
//! |---|---|---|---|---|
//! | request | Control | `W#{ws}` | `DSR#{id}` | `doc` (JSON); while open `gsi1pk` = `DSR#OPEN`, `gsi1sk` = `{submitted ms}#{id}` |
//! | suppression | Control | `W#{ws}` | `SUP#{token}` | `at` (Unix ms) |
//! | export part | Events | `W#{ws}#X#{id}` | `{part:06}` | `data` (sealed bytes), `until` (Unix ms), `expires_at` |
//!
//! Request ids are UUIDv7, so the workspace's requests sort by submission in `sk`. Reads of
//! export parts filter `until` exactly (DynamoDB's TTL deletes late, moto never).
//!
//! A closed workspace's requests and suppression entries end with its account data:
//! `end_with_account` sets the TTL attribute `expires_at` (closure + 90 days) on each that
//! has none or a later one (`UpdateItem`, 1 write unit per item under 1 KB; a request still
//! open also updates its `gsi1` entry, 1 more). `update_request` is an `UpdateItem` too, so
//! it keeps that stamp. Reads of requests and suppressions do not filter on it: after the
//! closure every key of the workspace is revoked, so only the DSR worker reads them, and it
//! completes open requests long before the 90 days end.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;
use tracklayer_core::clock::unix_millis;
use tracklayer_core::crypto::Sealed;
use tracklayer_core::dsr::{DsrId, DsrRequest};
use tracklayer_core::error::StoreError;
use tracklayer_core::ports::{DsrStore, ExportPart, SuppressionList};
use tracklayer_core::workspace::WorkspaceId;

use super::{
    b, batch_write, doc, get_b, get_n, get_s, key, n, query_all, query_up_to, s, stamp_expiry,
    to_json, ttl, BatchWrite, Item, Table, EXPIRES_AT,
};
use crate::error::on_existing;

/// The sparse `gsi1` partition of requests not completed yet.
const OPEN: &str = "DSR#OPEN";
/// An export part's sealed bytes; the item stays under DynamoDB's 400 KB.
const PART_MAX: usize = 380 * 1024;

/// Data-subject requests, suppressions and access exports on DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDsrStore {
    control: Table,
    events: Table,
}

/// A page of a request listing: what is still wanted, 1 to 100.
fn page_of(wanted: usize) -> Option<i32> {
    Some(wanted.clamp(1, 100) as i32)
}

fn ws_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}")
}

fn export_pk(ws: &WorkspaceId, id: &DsrId) -> String {
    format!("W#{ws}#X#{id}")
}

fn request_item(r: &DsrRequest) -> Result<Item, StoreError> {
    let mut item = key(ws_pk(&r.workspace_id), format!("DSR#{}", r.id));
    item.insert("doc".into(), s(to_json("dsr request", r)?));
    if r.status.is_open() {
        item.insert("gsi1pk".into(), s(OPEN));
        item.insert("gsi1sk".into(), s(open_sk(r)));
    }
    Ok(item)
}

/// A request's sort key in the open-requests index: oldest first.
fn open_sk(r: &DsrRequest) -> String {
    format!("{:013}#{}", unix_millis(r.submitted_at), r.id)
}

impl DynamoDsrStore {
    /// `control` and `events` are the stack's ControlTable and EventsTable.
    pub fn new(client: Client, control: impl Into<String>, events: impl Into<String>) -> Self {
        Self {
            control: Table::new(client.clone(), control),
            events: Table::new(client, events),
        }
    }

    async fn put_request(
        &self,
        context: &'static str,
        r: &DsrRequest,
        condition: &str,
        on_fail: StoreError,
    ) -> Result<(), StoreError> {
        let item = request_item(r)?;
        match self.control.put(context, item, Some(condition)).await {
            Err(StoreError::Conflict(_)) => Err(on_fail),
            other => other,
        }
    }

    async fn export_keys(&self, ws: &WorkspaceId, id: &DsrId) -> Result<Vec<Item>, StoreError> {
        query_all(
            "delete_export",
            self.export_query(ws, id).projection_expression("pk, sk"),
        )
        .await
    }

    /// A consistent query of the parts of an access export.
    fn export_query(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.events
            .query()
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(export_pk(ws, id)))
            .consistent_read(true)
    }
}

#[async_trait]
impl SuppressionList for DynamoDsrStore {
    async fn suppressed(&self, ws: &WorkspaceId) -> Result<Vec<String>, StoreError> {
        let items = query_all(
            "suppressed",
            self.control
                .query_prefix(ws_pk(ws), "SUP#")
                .projection_expression("sk"),
        )
        .await?;
        items
            .iter()
            .map(|i| {
                Ok(get_s(i, "sk", "suppressed")?
                    .trim_start_matches("SUP#")
                    .to_owned())
            })
            .collect()
    }
}

#[async_trait]
impl DsrStore for DynamoDsrStore {
    async fn create_request(&self, request: &DsrRequest) -> Result<(), StoreError> {
        self.put_request(
            "create_request",
            request,
            "attribute_not_exists(pk)",
            StoreError::Conflict("data-subject request exists"),
        )
        .await
    }

    async fn update_request(&self, r: &DsrRequest) -> Result<(), StoreError> {
        // An update, not a put: the item keeps its `expires_at` (a closed workspace's stamp).
        let q = self
            .control
            .update_item(key(ws_pk(&r.workspace_id), format!("DSR#{}", r.id)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":doc", s(to_json("dsr request", r)?));
        let q = if r.status.is_open() {
            q.update_expression("SET doc = :doc, gsi1pk = :gp, gsi1sk = :gs")
                .expression_attribute_values(":gp", s(OPEN))
                .expression_attribute_values(":gs", s(open_sk(r)))
        } else {
            // Completed: out of the open-requests index.
            q.update_expression("SET doc = :doc REMOVE gsi1pk, gsi1sk")
        };
        on_existing("update_request", "data-subject request", q.send().await)
    }

    async fn request(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
    ) -> Result<Option<DsrRequest>, StoreError> {
        let item_key = key(ws_pk(ws), format!("DSR#{id}"));
        self.control.get_doc("request", item_key).await
    }

    async fn requests(
        &self,
        ws: &WorkspaceId,
        limit: usize,
    ) -> Result<Vec<DsrRequest>, StoreError> {
        let q = self.control.query_prefix(ws_pk(ws), "DSR#");
        let q = q.scan_index_forward(false);
        query_up_to("requests", q, limit, page_of, |i| {
            doc(&i, "requests").map(Some)
        })
        .await
    }

    async fn open_requests(&self, limit: usize) -> Result<Vec<DsrRequest>, StoreError> {
        let q = self
            .control
            .query()
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :o")
            .expression_attribute_values(":o", s(OPEN));
        query_up_to("open_requests", q, limit, page_of, |i| {
            let r: DsrRequest = doc(&i, "open_requests")?;
            // The index is eventually consistent: a request completed a moment ago may
            // still be listed.
            Ok(r.status.is_open().then_some(r))
        })
        .await
    }

    async fn suppress(
        &self,
        ws: &WorkspaceId,
        tokens: &[String],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut unique: Vec<&String> = tokens.iter().collect();
        unique.sort();
        unique.dedup();
        let puts = unique.into_iter().map(|t| {
            let mut item = key(ws_pk(ws), format!("SUP#{t}"));
            item.insert("at".into(), n(unix_millis(at)));
            BatchWrite::Put(item)
        });
        let control = &self.control;
        batch_write(control.client(), "suppress", control.name(), puts).await
    }

    async fn put_export_part(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
        part: &ExportPart,
    ) -> Result<(), StoreError> {
        let ExportPart {
            number,
            sealed,
            expires_at,
        } = part;
        if sealed.0.len() > PART_MAX {
            return Err(StoreError::permanent(
                "put_export_part",
                format!(
                    "an export part of {} bytes is over the {PART_MAX}-byte item budget",
                    sealed.0.len()
                ),
            ));
        }
        let mut item = key(export_pk(ws, id), format!("{number:06}"));
        item.insert("data".into(), b(sealed.0.clone()));
        item.insert("until".into(), n(unix_millis(*expires_at)));
        item.insert(EXPIRES_AT.into(), n(ttl(*expires_at)));
        self.events.put("put_export_part", item, None).await
    }

    async fn export_parts(
        &self,
        ws: &WorkspaceId,
        id: &DsrId,
        now: OffsetDateTime,
    ) -> Result<Vec<Sealed>, StoreError> {
        let items = query_all("export_parts", self.export_query(ws, id)).await?;
        let now_ms = unix_millis(now);
        items
            .iter()
            .filter(|i| get_n(i, "until").is_some_and(|u| u > now_ms))
            .map(|i| Ok(Sealed(get_b(i, "data", "export_parts")?.to_vec())))
            .collect()
    }

    async fn delete_export(&self, ws: &WorkspaceId, id: &DsrId) -> Result<u64, StoreError> {
        let keys = self.export_keys(ws, id).await?;
        let n = keys.len() as u64;
        let events = &self.events;
        let deletes = keys.into_iter().map(BatchWrite::Delete);
        batch_write(events.client(), "delete_export", events.name(), deletes).await?;
        Ok(n)
    }

    async fn end_with_account(
        &self,
        ws: &WorkspaceId,
        until: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let until = ttl(until);
        let mut stamp = Vec::new();
        for prefix in ["DSR#", "SUP#"] {
            let items = query_all(
                "end_with_account",
                self.control
                    .query_prefix(ws_pk(ws), prefix)
                    .projection_expression("pk, sk, expires_at"),
            )
            .await?;
            stamp.extend(
                items
                    .into_iter()
                    .filter(|i| get_n(i, EXPIRES_AT).is_none_or(|t| t > until)),
            );
        }
        let n = stamp.len() as u64;
        let control = &self.control;
        stamp_expiry(
            control.client(),
            "end_with_account",
            control.name(),
            stamp,
            until,
        )
        .await?;
        Ok(n)
    }

    /// DynamoDB's TTL deletes expired parts, requests and suppression entries (late); reads
    /// of export parts filter them meanwhile.
    async fn sweep(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }
}
