//! How a delivery-queue message travels on SQS: its attributes, its body and its limits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use base64::Engine as _;
use time::OffsetDateTime;
use tracklayer_core::clock::{from_unix_millis, unix_millis};
use tracklayer_core::destination::DestinationId;
use tracklayer_core::error::StoreError;
use tracklayer_core::event::QueueBody;
use tracklayer_core::ports::Received;
use tracklayer_core::workspace::WorkspaceId;

/// SQS limits.
pub(super) const BATCH_MAX: usize = 10;
pub(super) const BATCH_BYTES: usize = 256 * 1024;
pub(super) const MAX_DELAY_S: u64 = 900;
pub(super) const MAX_VISIBILITY_S: u64 = 12 * 60 * 60;

pub(super) const WORKSPACE: &str = "workspace_id";
pub(super) const DESTINATION: &str = "destination_id";
pub(super) const REASON: &str = "reason";
pub(super) const DEAD_AT: &str = "dead_at";
pub(super) const ENCODING: &str = "body_encoding";
pub(super) const REDRIVEN: &str = "received more often than the queue's maximum receive count";

/// The body of a held message's copy: the receives of the original before this one count as
/// attempts, since the copy starts with none ([`QueueConsumer::hold`]). A body TrackLayer did
/// not write goes as it is.
///
/// [`QueueConsumer::hold`]: tracklayer_core::ports::QueueConsumer::hold
pub(super) fn held_body(m: &Received) -> Vec<u8> {
    match QueueBody::decode(&m.body) {
        Ok(mut body) => {
            let earlier = m.receive_count.saturating_sub(1);
            body.attempts = body.attempts.saturating_add(earlier);
            body.encode()
        }
        Err(_) => m.body.clone(),
    }
}

/// Whole seconds, rounded up, at most `max`.
pub(super) fn secs_ceil(d: Duration, max: u64) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.min(max) as i32
}

pub(super) fn attr(data_type: &str, value: String) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| StoreError::permanent("sqs attributes", e))
}

/// Bodies of at least this many bytes travel deflated, base64-encoded, with
/// `body_encoding = deflate`: SQS bills every started 64 KiB of a request's payload (the
/// send, and again the receive), and a packed message's JSON deflates to about a third.
const DEFLATE_FROM: usize = 1024;
const DEFLATE: &str = "deflate";
/// What a deflated body may inflate to at most (SQS carries at most 256 KiB deflated).
const MAX_INFLATED: u64 = 16 * 1024 * 1024;

fn deflated(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(body.len() / 3),
        flate2::Compression::default(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

fn inflated(raw: &str) -> Option<Vec<u8>> {
    let z = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    let mut out = Vec::with_capacity(z.len() * 3);
    flate2::read::DeflateDecoder::new(z.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_INFLATED).then_some(out)
}

/// The body as SQS carries it (a string) and its encoding attribute.
pub(super) fn encode_body(body: &[u8]) -> (String, Option<&'static str>) {
    if body.len() >= DEFLATE_FROM {
        if let Some(z) = deflated(body) {
            let text = base64::engine::general_purpose::STANDARD.encode(z);
            if text.len() < body.len() {
                return (text, Some(DEFLATE));
            }
        }
    }
    match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(body),
            Some("base64"),
        ),
    }
}

pub(super) fn string_attr<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.message_attributes()?.get(name)?.string_value()
}

pub(super) fn system_attr(m: &Message, name: MessageSystemAttributeName) -> Option<i64> {
    m.attributes()?.get(&name)?.parse().ok()
}

/// A message read back: its ids, its body, and when it was sent.
pub(super) struct Parsed {
    pub(super) workspace_id: WorkspaceId,
    pub(super) destination_id: DestinationId,
    pub(super) body: Vec<u8>,
    pub(super) sent_at: OffsetDateTime,
}

/// Why and when a dead letter died: its `reason` and `dead_at` attributes, or for one SQS
/// redrove (it has neither) "received too often" at its send time.
pub(super) fn death(m: &Message, p: &Parsed) -> (String, OffsetDateTime) {
    let reason = string_attr(m, REASON).unwrap_or(REDRIVEN).to_owned();
    let dead_at = string_attr(m, DEAD_AT)
        .and_then(|v| v.parse().ok())
        .map_or(p.sent_at, from_unix_millis);
    (reason, dead_at)
}

pub(super) fn parse(m: &Message) -> Option<Parsed> {
    parse_parts(
        |name| string_attr(m, name),
        m.body().unwrap_or_default(),
        system_attr(m, MessageSystemAttributeName::SentTimestamp),
    )
}

/// A message from its string attributes (by name), its body and its `SentTimestamp`.
pub(super) fn parse_parts<'a>(
    attribute: impl Fn(&str) -> Option<&'a str>,
    raw: &str,
    sent_timestamp_ms: Option<i64>,
) -> Option<Parsed> {
    let workspace_id = WorkspaceId::parse(attribute(WORKSPACE)?).ok()?;
    let destination_id = DestinationId::parse(attribute(DESTINATION)?).ok()?;
    let body = decode_body(attribute(ENCODING), raw)?;
    let sent_at = sent_timestamp_ms.map_or(OffsetDateTime::UNIX_EPOCH, from_unix_millis);
    Some(Parsed {
        workspace_id,
        destination_id,
        body,
        sent_at,
    })
}

/// A body as it was sent, from the string SQS carries and its `body_encoding` attribute;
/// `None` if it does not decode.
pub fn decode_body(encoding: Option<&str>, raw: &str) -> Option<Vec<u8>> {
    match encoding {
        Some("base64") => base64::engine::general_purpose::STANDARD.decode(raw).ok(),
        Some(DEFLATE) => inflated(raw),
        _ => Some(raw.as_bytes().to_vec()),
    }
}

/// One message to send: its attributes and its size as SQS counts it.
pub(super) struct Entry {
    pub(super) body: String,
    pub(super) attributes: HashMap<String, MessageAttributeValue>,
    pub(super) delay_s: i32,
    pub(super) size: usize,
}

pub(super) fn entry(
    workspace_id: &WorkspaceId,
    destination_id: &DestinationId,
    body: &[u8],
    delay: Duration,
    dead: Option<(&str, OffsetDateTime)>,
) -> Result<Entry, StoreError> {
    let (body, encoding) = encode_body(body);
    let mut values = vec![
        (WORKSPACE, "String", workspace_id.to_string()),
        (DESTINATION, "String", destination_id.to_string()),
    ];
    if let Some(e) = encoding {
        values.push((ENCODING, "String", e.to_owned()));
    }
    if let Some((reason, at)) = dead {
        values.push((REASON, "String", reason.chars().take(1000).collect()));
        values.push((DEAD_AT, "Number", unix_millis(at).to_string()));
    }
    let size = body.len()
        + values
            .iter()
            .map(|(n, t, v)| n.len() + t.len() + v.len())
            .sum::<usize>();
    if size > BATCH_BYTES {
        return Err(StoreError::permanent(
            "enqueue",
            format!("a queue message of {size} bytes is over the SQS limit of 256 KiB"),
        ));
    }
    let requested = delay.as_secs();
    if requested > MAX_DELAY_S {
        tracing::warn!(
            requested_s = requested,
            "SQS delays a message at most 900 s: it becomes visible after 900 s"
        );
    }
    let attributes = values
        .into_iter()
        .map(|(n, t, v)| Ok((n.to_owned(), attr(t, v)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(Entry {
        body,
        attributes,
        delay_s: secs_ceil(delay, MAX_DELAY_S),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds_within_the_sqs_limit() {
        assert_eq!(secs_ceil(Duration::from_millis(1500), 900), 2);
        assert_eq!(secs_ceil(Duration::from_secs(2), 900), 2);
        assert_eq!(secs_ceil(Duration::ZERO, 900), 0);
        assert_eq!(secs_ceil(Duration::from_secs(3600), MAX_DELAY_S), 900);
        assert_eq!(
            secs_ceil(Duration::from_secs(86_400), MAX_VISIBILITY_S),
            43_200
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_travels_as_base64() {
        assert_eq!(encode_body(b"{\"v\":1}"), ("{\"v\":1}".to_owned(), None));
        let (s, enc) = encode_body(&[0xff, 0x00]);
        assert_eq!(enc, Some("base64"));
        assert_eq!(s, "/wA=");
    }

    #[test]
    fn a_large_body_travels_deflated_and_reads_back_byte_for_byte() {
        let body: Vec<u8> = (0..2_000)
            .flat_map(|i| format!("{{\"event_id\":\"e-{i}\",\"v\":1}},").into_bytes())
            .collect();
        let (text, enc) = encode_body(&body);
        assert_eq!(enc, Some("deflate"));
        assert!(
            text.len() * 4 < body.len(),
            "{} of {}",
            text.len(),
            body.len()
        );
        assert_eq!(decode_body(enc, &text), Some(body));
        // Small bodies stay as they are: deflate would not pay.
        assert_eq!(encode_body(b"{\"v\":1}").1, None);
    }

    #[test]
    fn a_deflated_body_that_inflates_past_the_limit_is_unreadable() {
        let bomb = deflated(&vec![b'x'; MAX_INFLATED as usize + 1]).unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(bomb);
        assert_eq!(decode_body(Some("deflate"), &text), None);
        assert_eq!(decode_body(Some("deflate"), "not base64!"), None);
    }

    #[test]
    fn refuses_a_message_over_256_kib() {
        let ws = WorkspaceId::new(tracklayer_core::workspace::Region::Us, "a");
        let d = DestinationId::new("d");
        // Text that deflate cannot shrink (base64-like noise), so it travels as it is.
        let mut x: u64 = 1;
        let noise: Vec<u8> = (0..256 * 1024)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(x >> 58) as usize]
            })
            .collect();
        let err = entry(&ws, &d, &noise, Duration::ZERO, None)
            .err()
            .expect("too big");
        assert!(matches!(err, StoreError::Permanent { .. }), "{err:?}");
        assert!(entry(&ws, &d, &vec![b'x'; 200 * 1024], Duration::ZERO, None).is_ok());
    }
}
