//! Amazon Data Firehose: `PutRecordBatch` into the customer's own stream, as a SigV4-signed
//! REST call (JSON 1.1 protocol) — no SDK crate: the signer is `tracklayer-sigv4`, shared with
//! the SES mailer and STS.
//!
//! Sources: the API reference of `PutRecordBatch`
//! (<https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>): up to
//! 500 records per call, each record's data up to 1,000 KiB before base64 encoding, at most
//! 4 MiB for the whole request; a 200 answer can still carry per-record failures
//! (`FailedPutCount`, `RequestResponses[i].ErrorCode`: `ServiceUnavailableException` or
//! `InternalFailure`), which are resent alone. Errors of the whole call are read from
//! `x-amzn-errortype` / `__type` (Common Errors and the operation's Errors section).
//!
//! Request: `POST https://firehose.<region>.amazonaws.com/` (or the destination's `endpoint`
//! override, guarded like every endpoint), `content-type: application/x-amz-json-1.1`,
//! `x-amz-target: Firehose_20150804.PutRecordBatch`, body
//! `{"DeliveryStreamName": "<config.stream_name>", "Records": [{"Data": "<base64>"}, ...]}`.
//!
//! Each record is one line of newline-delimited JSON: the stored event view, as the trace API
//! shows it — ids, type, name, timestamp, scrubbed properties and the SHA-256 digests of its
//! identifiers (Meta-normalized, like webhooks) — and never a clear identifier, IP address or
//! user agent:
//!
//! ```json
//! {"messageId":"…","event_id":"evt_…","type":"track","name":"Order Completed",
//!  "timestamp":"2026-03-01T12:00:00Z","properties":{…},"user_data":{"email":"<sha256>"}}
//! ```
//!
//! Credentials: `config.role_arn` (assumed by the delivery service with STS, external id = the
//! workspace id; the credentials reach [`Connector::build`] among the secrets, see
//! `tracklayer_core::deliver::roles`) or static keys in the write-only secrets.

use std::time::SystemTime;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tracklayer_core::deliver::roles::RoleRequest;
use tracklayer_core::deliver::{
    ByteLimits, Connector, DropReason, HttpRequest, HttpResponse, OpenedItem, Outcome, Target,
};
use tracklayer_core::dsr::SentToVendor;
use tracklayer_sigv4::{error_code, signature_headers, Credentials, Scope, Unsigned};

use crate::common;

/// Records per `PutRecordBatch`.
pub const MAX_RECORDS: usize = 500;
/// Most bytes of one record's data, before base64 encoding (1,000 KiB).
pub const MAX_RECORD_BYTES: usize = 1000 * 1024;
/// Most bytes of one request (4 MiB), counted on the encoded body.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Room kept in a request for its envelope (`{"DeliveryStreamName":"…","Records":[…]}`).
const ENVELOPE_BYTES: usize = 1024;
/// What a record adds to the body besides its base64 data: `{"Data":""},`.
const RECORD_OVERHEAD: usize = 12;

/// Codes of a whole call worth trying again: throttling, Firehose unavailable, credentials
/// that expired in flight (assumed again before the next attempt).
const RETRYABLE: &[&str] = &[
    "ServiceUnavailableException",
    "ThrottlingException",
    "LimitExceededException",
    "InternalFailure",
    "ExpiredTokenException",
    "RequestExpired",
];

/// The Firehose connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Firehose;

/// One record's data: the event's stored view as one JSON line, newline-terminated.
pub fn record(target: &Target<'_>, opened: &OpenedItem) -> Result<Vec<u8>, String> {
    let mut line = common::to_body(&Value::Object(common::stored_event(target, opened)))?;
    line.push(b'\n');
    Ok(line)
}

/// The request URL: the `endpoint` override, else the stream's regional endpoint.
fn url(target: &Target<'_>) -> Result<String, String> {
    let base = target.base_url.trim().trim_end_matches('/');
    if !base.is_empty() {
        return Ok(format!("{base}/"));
    }
    let region = common::required_config(target, "region")?;
    Ok(format!("https://firehose.{region}.amazonaws.com/"))
}

/// The credentials requests are signed with: the assumed role's (secrets filled in by the
/// delivery service) or the static keys.
fn credentials(target: &Target<'_>) -> Result<Credentials, String> {
    let id = common::secret(target, "aws_access_key_id");
    let key = common::secret(target, "aws_secret_access_key");
    let (Some(id), Some(key)) = (id, key) else {
        return Err(if common::config_str(target, "role_arn").is_some() {
            "firehose: the role's credentials are missing (the role is assumed by delivery \
             on the AWS deployment)"
                .into()
        } else {
            "firehose: secrets.aws_access_key_id and secrets.aws_secret_access_key are missing"
                .into()
        });
    };
    let token = common::secret(target, "aws_session_token").map(str::to_owned);
    Ok(Credentials::new(id, key, token, None, "tracklayer"))
}

/// The encoded size of `data` as a record of the body.
fn encoded_size(data_len: usize) -> usize {
    data_len.div_ceil(3) * 4 + RECORD_OVERHEAD
}

impl Connector for Firehose {
    fn batch_limit(&self, _target: &Target<'_>) -> usize {
        MAX_RECORDS
    }

    /// 4 MiB a call, counted in encoded records; a record's own limit (1,000 KiB of data
    /// before base64) is the screen's, which names the exact size: every screened record fits
    /// a request, so the item limit is the request's.
    fn byte_limits(&self, _target: &Target<'_>) -> Option<ByteLimits> {
        let request = MAX_REQUEST_BYTES - ENVELOPE_BYTES;
        Some(ByteLimits {
            request,
            item: request,
        })
    }

    fn item_bytes(&self, target: &Target<'_>, item: &OpenedItem) -> usize {
        record(target, item).map_or(0, |r| encoded_size(r.len()))
    }

    fn screen(&self, target: &Target<'_>, opened: &OpenedItem) -> Result<(), DropReason> {
        let data = record(target, opened).map_err(DropReason::Unsendable)?;
        if data.len() > MAX_RECORD_BYTES {
            return Err(DropReason::Unsendable(format!(
                "the event is {} bytes as a Firehose record; Firehose takes at most {} bytes \
                 (1,000 KiB) per record",
                data.len(),
                MAX_RECORD_BYTES
            )));
        }
        Ok(())
    }

    fn assumed_role(&self, target: &Target<'_>) -> Option<RoleRequest> {
        common::config_str(target, "role_arn").map(|arn| RoleRequest::for_target(target, arn))
    }

    fn build(&self, target: &Target<'_>, items: &[&OpenedItem]) -> Result<HttpRequest, String> {
        if items.is_empty() {
            return Err("firehose: a request needs at least one record".into());
        }
        common::within_limit(target.destination.kind, items, MAX_RECORDS)?;
        let stream = common::required_config(target, "stream_name")?;
        let engine = base64::engine::general_purpose::STANDARD;
        let records = items
            .iter()
            .map(|o| Ok(json!({ "Data": engine.encode(record(target, o)?) })))
            .collect::<Result<Vec<Value>, String>>()?;
        let body = common::to_body(&json!({
            "DeliveryStreamName": stream,
            "Records": records,
        }))?;
        if body.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "firehose: the request is {} bytes; Firehose takes at most {MAX_REQUEST_BYTES}",
                body.len()
            ));
        }
        let url = url(target)?;
        let region = common::required_config(target, "region")?;
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            (
                "x-amz-target".to_owned(),
                "Firehose_20150804.PutRecordBatch".to_owned(),
            ),
        ];
        let signed = {
            let list: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let unsigned = Unsigned {
                method: "POST",
                url: &url,
                headers: &list,
                body: &body,
            };
            let scope = Scope {
                region,
                service: "firehose",
                time: SystemTime::from(target.now),
            };
            signature_headers(&unsigned, &credentials(target)?, &scope)
                .map_err(|e| format!("firehose: {e}"))?
        };
        headers.extend(signed);
        Ok(HttpRequest { url, headers, body })
    }

    fn classify(&self, items: &[&OpenedItem], response: &HttpResponse) -> Outcome {
        if !(200..300).contains(&response.status) {
            return call_failed(response);
        }
        let Ok(answer) = serde_json::from_slice::<PutRecordBatchOutput>(&response.body) else {
            return common::retry(
                response,
                "firehose: the PutRecordBatch answer is not the documented JSON".into(),
            );
        };
        if answer.failed_put_count == 0 {
            return Outcome::Delivered;
        }
        if answer.request_responses.len() != items.len() {
            return common::retry(
                response,
                format!(
                    "firehose: {} records failed and the answer lists {} of {} records",
                    answer.failed_put_count,
                    answer.request_responses.len(),
                    items.len()
                ),
            );
        }
        Outcome::PerItem(
            answer
                .request_responses
                .into_iter()
                .enumerate()
                .map(|(i, r)| match r.error_code {
                    None => (i, Outcome::Delivered),
                    // Per record, Firehose reports only ServiceUnavailableException and
                    // InternalFailure: both are worth resending (that record alone).
                    Some(code) => (
                        i,
                        Outcome::Retry {
                            after: None,
                            reason: format!("firehose: the record failed ({code})"),
                        },
                    ),
                })
                .collect(),
        )
    }

    fn erasure_guidance(&self, sent: &SentToVendor<'_>) -> String {
        let (n, period) = (sent.delivered, sent.period);
        format!(
            "TrackLayer wrote {n} records of the subject {period} to your Firehose stream; \
             they carry the subject's hashed identifiers and event ids. Firehose keeps \
             nothing itself: delete them where the stream delivers (S3 objects, warehouse \
             tables)."
        )
    }
}

/// The whole call failed: retry what AWS says is passing, refuse the rest.
fn call_failed(response: &HttpResponse) -> Outcome {
    let code = error_code(response.header("x-amzn-errortype"), &response.body)
        .unwrap_or_else(|| format!("HTTP {}", response.status));
    let reason = format!(
        "HTTP {}: Firehose refused the call ({code})",
        response.status
    );
    if RETRYABLE.contains(&code.as_str()) || common::retryable_status(response.status) {
        common::retry(response, reason)
    } else {
        Outcome::Permanent { reason }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBatchOutput {
    failed_put_count: u64,
    #[serde(default)]
    request_responses: Vec<RecordResponse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordResponse {
    #[serde(default)]
    error_code: Option<String>,
}
