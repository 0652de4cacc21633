//! The one AWS Signature Version 4 signer, shared by every signed REST call TrackLayer makes
//! without a generated SDK client: SES v2 (`tracklayer-aws`'s mailer), STS `AssumeRole`
//! (`tracklayer-aws`'s role credentials) and Firehose `PutRecordBatch`
//! (`tracklayer-connectors`'s `firehose`, a pure request builder: time and credentials come in).
//!
//! It wraps `aws-sigv4` (the SDK's own signer) with default settings: the signature goes in
//! the `authorization` header, `x-amz-date` names the signing time, and temporary credentials
//! add `x-amz-security-token`.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

pub use aws_credential_types::Credentials;

/// What is signed: the request as it will be sent.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// Every header the request will carry (all are signed).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Where and when: the credential scope's region and service, and the signing time.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub region: &'a str,
    /// The signing name of the service (`ses`, `sts`, `firehose`).
    pub service: &'a str,
    pub time: SystemTime,
}

/// The request cannot be signed (a malformed URL or header, an empty region). Never carries a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request cannot be signed: {0}")]
pub struct SignError(String);

/// The headers to add to `request` so that AWS accepts it as signed by `credentials`:
/// `authorization`, `x-amz-date` and, for temporary credentials, `x-amz-security-token`.
pub fn signature_headers(
    request: &Unsigned<'_>,
    credentials: &Credentials,
    scope: &Scope<'_>,
) -> Result<Vec<(String, String)>, SignError> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(scope.time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// The error code of an AWS answer: its `x-amzn-errortype` header, else the `__type`, `code`
/// or `Code` of a JSON error body, without namespace (`com.amazonaws.ses#X` → `X`) or
/// documentation suffix (`X:http://internal.amazon.com/...` → `X`). The message text is
/// never read: it can name a recipient or a resource.
pub fn error_code(header: Option<&str>, body: &[u8]) -> Option<String> {
    fn bare(raw: &str) -> String {
        let raw = raw.rsplit('#').next().unwrap_or(raw);
        raw.split(':').next().unwrap_or(raw).trim().to_owned()
    }
    if let Some(h) = header.filter(|h| !h.trim().is_empty()) {
        return Some(bare(h));
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["__type", "code", "Code"]
        .iter()
        .find_map(|k| value.get(*k).and_then(|v| v.as_str()))
        .map(bare)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn signed(credentials: &Credentials) -> Vec<(String, String)> {
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Firehose_20150804.PutRecordBatch"),
        ];
        signature_headers(
            &Unsigned {
                method: "POST",
                url: "https://firehose.eu-central-1.amazonaws.com/",
                headers: &headers,
                body: b"{}",
            },
            credentials,
            &Scope {
                region: "eu-central-1",
                service: "firehose",
                time: at(1_764_900_000),
            },
        )
        .unwrap()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_signature_names_the_key_the_scope_and_every_header_signed() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"; // pragma: allowlist secret
        let creds = Credentials::new("AKIDEXAMPLE", secret, None, None, "test");
        let headers = signed(&creds);
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251205/eu-central-1/firehose/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
            ),
            "{auth}"
        );
        assert_eq!(header(&headers, "x-amz-date"), Some("20251205T020000Z"));
        assert_eq!(header(&headers, "x-amz-security-token"), None);
        assert!(!auth.contains("wJalr"), "the secret key never leaves");
        // Deterministic: the same request, credentials and time sign the same.
        assert_eq!(headers, signed(&creds));
    }

    #[test]
    fn error_codes_lose_their_documentation_suffix_and_namespace() {
        assert_eq!(
            error_code(
                Some("MessageRejected:http://internal.amazon.com/coral/"),
                b""
            )
            .as_deref(),
            Some("MessageRejected")
        );
        assert_eq!(
            error_code(
                None,
                br#"{"__type":"com.amazonaws.ses#TooManyRequestsException"}"#
            )
            .as_deref(),
            Some("TooManyRequestsException")
        );
        assert_eq!(error_code(None, b"not json"), None);
    }

    #[test]
    fn temporary_credentials_add_their_session_token() {
        let creds = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("session-token".into()),
            None,
            "test",
        );
        let headers = signed(&creds);
        assert_eq!(
            header(&headers, "x-amz-security-token"),
            Some("session-token")
        );
    }
}
