//! A SigV4-signed REST client for the few AWS operations TrackLayer calls without a generated
//! SDK crate (SES v2, STS `AssumeRole`): the workspace's reqwest/rustls client, where the
//! service is, and who we are. Credentials, region and endpoint come from the SDK
//! configuration, so the standard credential chain and `AWS_ENDPOINT_URL` (moto) apply; the
//! signature is `tracklayer-sigv4`'s, the one signer.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use tracklayer_sigv4::{error_code, signature_headers, Scope, Unsigned};

/// One service's signed client.
#[derive(Debug, Clone)]
pub(crate) struct SignedRest {
    http: reqwest::Client,
    /// `https://<host prefix>.<region>.amazonaws.com`, or the configured endpoint (moto).
    endpoint: String,
    region: String,
    /// The service's signing name (`ses`, `sts`).
    service: &'static str,
    credentials: Option<SharedCredentialsProvider>,
}

/// A non-2xx answer: its status and error code (never the message text, which can name a
/// recipient or a resource), and the body for protocols whose code is elsewhere (STS's XML).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    /// From `x-amzn-errortype` or a JSON body's `__type`; `HTTP <status>` when neither names one.
    pub(crate) code: String,
    pub(crate) body: Vec<u8>,
}

/// Why a call got no answer, or an answer other than 2xx.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// No credentials are configured, or the request cannot be built or signed: fails again.
    Unsendable(String),
    /// Credentials could not be loaded now, or the network failed: try again.
    Unavailable(String),
    /// The service answered with an error.
    Refused(Refusal),
}

impl SignedRest {
    /// A client of `service` (signing name) at `https://<host_prefix>.<region>.amazonaws.com`
    /// unless the SDK configuration names an endpoint.
    pub(crate) fn new(sdk: &SdkConfig, service: &'static str, host_prefix: &str) -> Self {
        let region = sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = sdk
            .endpoint_url()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{host_prefix}.{region}.amazonaws.com"));
        // The AWS API endpoint of the SDK config, never a customer URL (and the egress guard
        // would refuse moto on loopback in tests).
        // nosemgrep: tl-reqwest-outside-egress — AWS endpoint, see above
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with rustls and timeouts always builds");
        Self {
            http,
            endpoint,
            region,
            service,
            credentials: sdk.credentials_provider(),
        }
    }

    /// POSTs a signed body to `path`; the 2xx answer's body.
    pub(crate) async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        let url = format!("{}{path}", self.endpoint);
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", content_type)
            .body(body)
            .map_err(|e| CallError::Unsendable(format!("request: {e}")))?;
        self.sign(&mut request).await?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| CallError::Unsendable(format!("request: {e}")))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| CallError::Unavailable(transport_kind(&e).to_owned()))?;
        let status = response.status();
        let header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.unwrap_or_default().to_vec();
        if status.is_success() {
            return Ok(body);
        }
        let code = error_code(header.as_deref(), &body)
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        Err(CallError::Refused(Refusal {
            status: status.as_u16(),
            code,
            body,
        }))
    }

    /// Adds the SigV4 headers of this service.
    async fn sign(&self, request: &mut http::Request<Vec<u8>>) -> Result<(), CallError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| CallError::Unsendable("no AWS credentials are configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| CallError::Unavailable(format!("credentials: {e}")))?;
        let added = {
            let headers: Vec<(&str, &str)> = request
                .headers()
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
                .collect();
            let url = request.uri().to_string();
            let unsigned = Unsigned {
                method: request.method().as_str(),
                url: &url,
                headers: &headers,
                body: request.body(),
            };
            let scope = Scope {
                region: &self.region,
                service: self.service,
                time: SystemTime::now(),
            };
            signature_headers(&unsigned, &credentials, &scope)
                .map_err(|e| CallError::Unsendable(e.to_string()))?
        };
        for (name, value) in added {
            let name = http::HeaderName::try_from(name)
                .map_err(|e| CallError::Unsendable(format!("signing: {e}")))?;
            let value = http::HeaderValue::try_from(value)
                .map_err(|e| CallError::Unsendable(format!("signing: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

/// A transport error's kind, without the URL or anything the peer sent.
fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    }
}
