//! Signed webhooks, per the Standard Webhooks specification.
//!
//! Source: Standard Webhooks 1.0.0
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! headers `webhook-id` (the same across retries of a message), `webhook-timestamp` (Unix
//! seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed with the base64-decoded secret after its `whsec_` prefix. The reference libraries'
//! test vector (`libraries/python/tests/test_webhooks.py`, `test_sign_function`) is this
//! crate's test vector.
//!
//! Body: `{"events": [...]}`, each event
//!
//! ```json
//! {"messageId": "…", "event_id": "evt_…", "type": "track", "name": "Order Completed",
//!  "timestamp": "2026-03-01T12:00:00Z", "properties": {…},
//!  "user_data": {"email": "<sha256>", …}, "context": {"ip": "…", "user_agent": "…",
//!  "page_url": "…"}}
//! ```
//!
//! `user_data` holds the SHA-256 digests (Meta-normalized, see
//! `DestinationKind::profile`) under the field names TrackLayer uses everywhere
//! (`email`, `phone`, `first_name`, ...). `name` follows `config.event_names` when it maps
//! the event, and is the event's own name otherwise.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tracklayer_core::deliver::{Connector, HttpRequest, HttpResponse, OpenedItem, Outcome, Target};
use tracklayer_core::dsr::SentToVendor;

use crate::common::{self, put};

/// Items a request carries unless `config.batch_size` says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// The largest `config.batch_size` honoured.
pub const MAX_BATCH_SIZE: usize = 1000;

/// The signed-webhook connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Webhook;

/// `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`, keyed with the base64
/// secret (its `whsec_` prefix optional). Fails on a secret that is not base64 or is empty;
/// the error never contains the secret.
pub fn sign_webhook(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the webhook signing secret is not whsec_ followed by base64".to_owned())?;
    if key.is_empty() {
        return Err("the webhook signing secret is empty".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| "the webhook signing secret cannot key HMAC-SHA256".to_owned())?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok(format!("v1,{signature}"))
}

/// The `webhook-id` of a request: `msg_` and 32 hex characters of SHA-256 over the event ids
/// of its items, in order. The same items give the same id, so retries keep it.
pub fn message_id(items: &[&OpenedItem]) -> String {
    let mut hasher = Sha256::new();
    for opened in items {
        hasher.update(opened.item.event_id.to_string().as_bytes());
        hasher.update(b"\n");
    }
    let digest = hex::encode(hasher.finalize());
    format!("msg_{}", &digest[..32])
}

/// The request's URL: the destination's `endpoint` override, else `config.url`. (A
/// non-empty `target.base_url`, which the delivery service fills from the endpoint, counts as
/// the override too: the webhook kind has no production base URL of its own.)
pub fn url(target: &Target<'_>) -> Result<String, String> {
    let endpoint = target
        .destination
        .endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .or_else(|| Some(target.base_url.trim()).filter(|b| !b.is_empty()));
    let url = match endpoint {
        Some(e) => e,
        None => common::required_config(target, "url")?,
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("webhook: the URL must be http(s)".into());
    }
    Ok(url.to_owned())
}

/// One event of the body: the stored event view ([`common::stored_event`]) with its
/// `context` (IP address, user agent, page URL).
pub fn event(target: &Target<'_>, opened: &OpenedItem) -> Value {
    let mut context = Map::new();
    let s = &opened.sealed;
    put(&mut context, "ip", common::clean(s.ip.as_deref()));
    put(
        &mut context,
        "user_agent",
        common::clean(s.user_agent.as_deref()),
    );
    put(
        &mut context,
        "page_url",
        common::outgoing_url(s.page_url.as_deref()),
    );
    let mut event = common::stored_event(target, opened);
    event.insert("context".into(), Value::Object(context));
    Value::Object(event)
}

impl Connector for Webhook {
    fn batch_limit(&self, target: &Target<'_>) -> usize {
        target
            .destination
            .config
            .get("batch_size")
            .and_then(Value::as_u64)
            .map(|n| usize::try_from(n).unwrap_or(MAX_BATCH_SIZE))
            .map(|n| n.clamp(1, MAX_BATCH_SIZE))
            .unwrap_or(DEFAULT_BATCH_SIZE)
    }

    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        if items.is_empty() {
            return Err("webhook: a request needs at least one event".into());
        }
        common::within_limit(target.destination.kind, items, self.batch_limit(target))?;
        let url = url(target)?;
        let secret = common::required_secret(target, "signing_secret")?;
        let events: Vec<Value> = items.iter().map(|o| event(target, o)).collect();
        let body = common::to_body(&json!({ "events": events }))?;
        let id = message_id(items);
        let timestamp = target.now.unix_timestamp();
        let signature = sign_webhook(secret, &id, timestamp, &body)?;
        Ok(HttpRequest {
            url,
            headers: vec![
                common::json_header(),
                ("webhook-id".to_owned(), id),
                ("webhook-timestamp".to_owned(), timestamp.to_string()),
                ("webhook-signature".to_owned(), signature),
            ],
            body,
        })
    }

    fn classify(&self, _items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        common::status_outcome(response)
    }

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let (n, period) = (sent.delivered, sent.period);
        format!(
            "TrackLayer sends webhooks events, not erasure notices. Your webhook receiver \
             got {n} events of the subject {period}, carrying the subject's hashed \
             identifiers and event ids; delete them in the receiving system."
        )
    }
}
