//! `HttpEgress`: the `Egress` port over reqwest with rustls.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracklayer_core::deliver::{HttpRequest, HttpResponse};
use tracklayer_core::ports::{Egress, EgressError};

use crate::guard::{self, EgressPolicy};

/// How much of a response body is kept; the rest is not read.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// How `HttpEgress` talks to destinations.
// nosemgrep: tl-debug-derive-pii — user_agent is our own outgoing User-Agent, not a visitor's
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// Whole request, from connecting to the last byte of the (capped) body. Default 10 s.
    pub timeout: Duration,
    /// DNS lookup, TCP connect and TLS handshake. Default 3 s.
    pub connect_timeout: Duration,
    /// Which addresses may be reached. Default: public https only.
    pub policy: EgressPolicy,
    /// `User-Agent` of every request. Default `tracklayer/<version>`.
    pub user_agent: String,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            policy: EgressPolicy::default(),
            user_agent: concat!("tracklayer/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The HTTP client could not be built (TLS backend, an invalid user agent).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the egress HTTP client")]
pub struct BuildError(#[source] reqwest::Error);

/// Posts requests to destinations over HTTPS (rustls, webpki roots), with the SSRF guard on
/// every request and at every connect, no redirects, no proxies, timeouts and a body cap.
///
/// Build it once and share it: it keeps a connection pool.
#[derive(Debug, Clone)]
pub struct HttpEgress {
    /// `https` URLs.
    client: reqwest::Client,
    /// `http` URLs, with private egress only: its resolver admits internal addresses only.
    plain: Option<reqwest::Client>,
    config: EgressConfig,
}

impl HttpEgress {
    pub fn new(config: EgressConfig) -> Result<Self, BuildError> {
        let client = Self::client(&config, false)?;
        let plain = if config.policy.allow_private {
            Some(Self::client(&config, true)?)
        } else {
            None
        };
        Ok(Self {
            client,
            plain,
            config,
        })
    }

    /// A client for `https` URLs, or (`plain_http`) for `http` URLs to internal addresses.
    fn client(config: &EgressConfig, plain_http: bool) -> Result<reqwest::Client, BuildError> {
        reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // A redirect could point at an internal address; a 3xx is handed back as it is.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, out of the guard's reach.
            .no_proxy()
            .https_only(!plain_http)
            .user_agent(config.user_agent.clone())
            .dns_resolver(Arc::new(GuardedResolver {
                policy: config.policy,
                plain_http,
            }))
            .build()
            .map_err(BuildError)
    }

    pub fn config(&self) -> &EgressConfig {
        &self.config
    }

    async fn send(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<HttpResponse, EgressError> {
        let client = match (url.scheme(), &self.plain) {
            ("http", Some(plain)) => plain,
            _ => &self.client,
        };
        let mut response = client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.map_error(e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.map_error(e))? {
            let room = MAX_RESPONSE_BODY - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                // Dropping the response closes the connection instead of reading the rest.
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    fn map_error(&self, err: reqwest::Error) -> EgressError {
        // reqwest puts the URL, query and all, into its messages.
        let err = err.without_url();
        if let Some(refused) = find_cause::<ForbiddenResolution>(&err) {
            return EgressError::Refused(refused.to_string());
        }
        if err.is_timeout() {
            let limit = if err.is_connect() {
                self.config.connect_timeout
            } else {
                self.config.timeout
            };
            return EgressError::Timeout(limit);
        }
        if err.is_builder() {
            return EgressError::Refused(describe(&err));
        }
        EgressError::Connect(describe(&err))
    }
}

#[async_trait]
impl Egress for HttpEgress {
    async fn post(&self, request: &HttpRequest) -> Result<HttpResponse, EgressError> {
        // Again at send time: IP literals never reach the resolver.
        let checked = guard::parse(&request.url, &self.config.policy)?;
        let url = checked.url;
        let host = url.host_str().unwrap_or_default().to_owned();
        let path = url.path().to_owned();
        let query = url.query().filter(|q| !q.is_empty()).map(str::to_owned);
        let headers = header_map(&request.headers)?;
        let result = self.send(url, headers, request.body.clone()).await;
        // Never the query (access tokens) nor headers: host and path only.
        match result {
            Ok(response) => {
                tracing::debug!(
                    host = %host,
                    path = %path,
                    status = response.status,
                    bytes = response.body.len(),
                    "egress response"
                );
                Ok(response)
            }
            Err(err) => {
                let err = scrub(err, query.as_deref());
                tracing::debug!(host = %host, path = %path, error = %err, "egress failed");
                Err(err)
            }
        }
    }
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, EgressError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| EgressError::Refused("invalid header name".to_owned()))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| EgressError::Refused(format!("invalid value for header {header}")))?;
        // Keeps tokens out of any Debug output of the request.
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

/// Belt and braces: no message leaves with the query in it.
fn scrub(err: EgressError, query: Option<&str>) -> EgressError {
    let Some(query) = query else {
        return err;
    };
    let clean = |msg: String| msg.replace(query, "<redacted>");
    match err {
        EgressError::Refused(msg) => EgressError::Refused(clean(msg)),
        EgressError::Connect(msg) => EgressError::Connect(clean(msg)),
        timeout @ EgressError::Timeout(_) => timeout,
    }
}

/// The error and its causes, `outer: inner: innermost`, skipping a cause whose text its parent
/// already shows.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The first cause of type `T` in `err`'s chain, looking inside `io::Error` wrappers too (their
/// `source` skips the wrapped error).
fn find_cause<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<T>())
        {
            return Some(inner);
        }
        current = e.source();
    }
    None
}

/// Every address a name resolved to was forbidden.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to forbidden addresses ({addrs})")]
struct ForbiddenResolution {
    host: String,
    addrs: String,
}

/// The system resolver, minus forbidden addresses: checked at connect time, so a name that
/// passed `check_url` and later answers with an internal address (DNS rebinding) connects only
/// to its public addresses, or not at all.
/// With private egress, it drops link-local and metadata addresses, and for plain `http` every
/// public address.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    policy: EgressPolicy,
    plain_http: bool,
}

impl GuardedResolver {
    /// The addresses this resolver may hand out, and the ones it drops.
    fn admit(&self, resolved: Vec<SocketAddr>) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        resolved
            .into_iter()
            .partition(|a| guard::refusal(a.ip(), &self.policy, self.plain_http).is_none())
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (allowed, forbidden) = resolver.admit(resolved);
            if !forbidden.is_empty() {
                let addrs = forbidden
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                tracing::warn!(host = %host, forbidden = %addrs, allowed = allowed.len(), "egress resolver dropped forbidden addresses");
                if allowed.is_empty() {
                    return Err(Box::new(ForbiddenResolution { host, addrs }) as _);
                }
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_ten_seconds_total_three_to_connect_and_public_https_only() {
        let config = EgressConfig::default();
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert!(!config.policy.allow_private);
        assert!(config.user_agent.starts_with("tracklayer/"));
    }

    #[test]
    fn finds_a_forbidden_resolution_behind_io_and_boxed_wrappers() {
        let forbidden = ForbiddenResolution {
            host: "rebind.example".to_owned(),
            addrs: "127.0.0.1".to_owned(),
        };
        let io = std::io::Error::other(forbidden);
        let found = find_cause::<ForbiddenResolution>(&io);
        assert_eq!(found.map(|f| f.host.as_str()), Some("rebind.example"));
    }

    #[test]
    fn scrubs_the_query_from_messages() {
        let err = EgressError::Connect("failed for /x?access_token=SECRET".to_owned());
        let err = scrub(err, Some("access_token=SECRET"));
        assert_eq!(
            err.to_string(),
            "connection failed: failed for /x?<redacted>"
        );
    }

    #[test]
    fn refuses_invalid_headers_without_echoing_their_values() {
        let bad_value = [("authorization".to_owned(), "Bearer SECRET\n".to_owned())];
        let Err(err) = header_map(&bad_value) else {
            panic!("a newline in a header value should be refused");
        };
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let bad_name = [("bad header".to_owned(), "x".to_owned())];
        assert!(matches!(
            header_map(&bad_name),
            Err(EgressError::Refused(_))
        ));
    }

    #[tokio::test]
    async fn resolver_drops_loopback_answers_unless_private_egress_is_allowed() {
        let name: Name = "localhost".parse().expect("a valid name");
        let strict = GuardedResolver {
            policy: EgressPolicy::default(),
            plain_http: false,
        };
        let Err(err) = strict.resolve(name).await else {
            panic!("localhost should resolve only to forbidden addresses");
        };
        assert!(err
            .to_string()
            .contains("resolves only to forbidden addresses"));

        let name: Name = "localhost".parse().expect("a valid name");
        let lax = GuardedResolver {
            policy: EgressPolicy {
                allow_private: true,
            },
            plain_http: true,
        };
        let addrs: Vec<SocketAddr> = match lax.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("localhost should resolve: {e}"),
        };
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
    }

    #[test]
    fn private_egress_resolver_drops_metadata_answers_and_for_plain_http_public_ones() {
        let addr = |s: &str| SocketAddr::new(s.parse().expect("a test address"), 0);
        let answers = || {
            vec![
                addr("127.0.0.1"),
                addr("10.1.2.3"),
                addr("169.254.169.254"),
                addr("fd00:ec2::254"),
                addr("fe80::1"),
                addr("8.8.8.8"),
            ]
        };
        let lax = EgressPolicy {
            allow_private: true,
        };
        let https = GuardedResolver {
            policy: lax,
            plain_http: false,
        };
        let (allowed, dropped) = https.admit(answers());
        assert_eq!(
            allowed,
            [addr("127.0.0.1"), addr("10.1.2.3"), addr("8.8.8.8")]
        );
        assert_eq!(dropped.len(), 3);

        let http = GuardedResolver {
            policy: lax,
            plain_http: true,
        };
        let (allowed, _) = http.admit(answers());
        assert_eq!(allowed, [addr("127.0.0.1"), addr("10.1.2.3")]);
    }
}
