//! `HttpEgress` against a tiny raw-HTTP server on 127.0.0.1:0. Loopback only: no other host is
//! ever contacted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracklayer_core::deliver::{HttpRequest, HttpResponse};
use tracklayer_core::ports::{Egress, EgressError};
use tracklayer_egress::{check_url, EgressConfig, EgressPolicy, HttpEgress, MAX_RESPONSE_BODY};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// A loopback server answering by path:
/// `/ok` 200 with a JSON body, `/busy` 503 with `Retry-After: 7`, `/redirect` 302 to `/ok`,
/// `/slow` answers after 2 s, `/stall` sends headers and part of the body then waits 2 s,
/// `/reset` resets the connection, `/big` sends a 1 MiB body.
struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (connections.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (s, port) = (s.clone(), addr.port());
                tokio::spawn(async move {
                    // Errors are the client's doing (it hung up): nothing to report.
                    let _ = serve(stream, s, port).await;
                });
            }
        });
        Self {
            addr,
            connections,
            seen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the seen lock").clone()
    }

    /// Gives a connection the client might have opened time to be accepted, then counts.
    async fn connections_after_a_moment(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.connections()
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    port: u16,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..].to_vec();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    seen.lock()
        .expect("the seen lock")
        .push(Seen { head, body });

    let json = "{\"events_received\":1}";
    let reply = match path.as_str() {
        "/ok" => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        ),
        "/busy" => "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy".to_owned(),
        "/redirect" => format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/ok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        }
        "/stall" => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789")
                .await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok(());
        }
        "/reset" => {
            stream.set_zero_linger()?;
            drop(stream);
            return Ok(());
        }
        "/big" => {
            let size = 1024 * 1024;
            stream
                .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n").as_bytes())
                .await?;
            stream.write_all(&vec![b'x'; size]).await?;
            return stream.shutdown().await;
        }
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

fn egress(allow_private: bool) -> HttpEgress {
    egress_with(allow_private, Duration::from_secs(10))
}

fn egress_with(allow_private: bool, timeout: Duration) -> HttpEgress {
    HttpEgress::new(EgressConfig {
        timeout,
        policy: EgressPolicy { allow_private },
        ..EgressConfig::default()
    })
    .expect("build the client")
}

fn post_to(url: String) -> HttpRequest {
    HttpRequest {
        url,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("authorization".to_owned(), "Bearer test-token".to_owned()),
        ],
        body: b"{\"data\":[]}".to_vec(),
    }
}

async fn post(egress: &HttpEgress, url: String) -> Result<HttpResponse, EgressError> {
    egress.post(&post_to(url)).await
}

// ---------------------------------------------------------------------------------------------
// With private egress allowed: outcomes

#[tokio::test]
async fn sends_the_body_and_headers_and_returns_a_200_with_its_body() {
    let server = TestServer::start().await;

    let response = post(&egress(true), server.url("/ok"))
        .await
        .expect("a response");

    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{\"events_received\":1}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].head.starts_with("POST /ok HTTP/1.1\r\n"),
        "{}",
        seen[0].head
    );
    let head = seen[0].head.to_ascii_lowercase();
    assert!(head.contains("authorization: bearer test-token"), "{head}");
    assert!(head.contains("user-agent: tracklayer/"), "{head}");
    assert_eq!(seen[0].body, b"{\"data\":[]}");
}

#[tokio::test]
async fn returns_a_503_with_its_retry_after_header() {
    let server = TestServer::start().await;

    let response = post(&egress(true), server.url("/busy"))
        .await
        .expect("a response");

    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("7"));
    assert_eq!(response.body, b"busy");
}

#[tokio::test]
async fn returns_a_redirect_as_the_response_without_following_it() {
    let server = TestServer::start().await;

    let response = post(&egress(true), server.url("/redirect"))
        .await
        .expect("a response");

    assert_eq!(response.status, 302);
    let location = format!("http://127.0.0.1:{}/ok", server.addr.port());
    assert_eq!(response.header("location"), Some(location.as_str()));
    assert_eq!(server.seen().len(), 1, "the redirect was followed");
}

#[tokio::test]
async fn times_out_when_the_server_does_not_answer_in_time() {
    let server = TestServer::start().await;
    let timeout = Duration::from_millis(300);

    let result = post(&egress_with(true, timeout), server.url("/slow")).await;

    assert!(
        matches!(result, Err(EgressError::Timeout(d)) if d == timeout),
        "{result:?}"
    );
}

#[tokio::test]
async fn times_out_when_the_body_stalls() {
    let server = TestServer::start().await;
    let timeout = Duration::from_millis(300);

    let result = post(&egress_with(true, timeout), server.url("/stall")).await;

    assert!(
        matches!(result, Err(EgressError::Timeout(d)) if d == timeout),
        "{result:?}"
    );
}

#[tokio::test]
async fn maps_a_reset_connection_to_a_connect_error() {
    let server = TestServer::start().await;

    let result = post(&egress(true), server.url("/reset")).await;

    assert!(matches!(result, Err(EgressError::Connect(_))), "{result:?}");
}

#[tokio::test]
async fn maps_a_refused_connection_to_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("the bound address").port();
    drop(listener);

    let result = post(&egress(true), format!("http://127.0.0.1:{port}/ok")).await;

    assert!(matches!(result, Err(EgressError::Connect(_))), "{result:?}");
}

#[tokio::test]
async fn maps_a_failed_tls_handshake_to_a_connect_error() {
    // A plaintext server behind an https URL: rustls gets garbage instead of a ServerHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("the bound address").port();
    tokio::spawn(async move {
        if let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
    });

    let result = post(&egress(true), format!("https://127.0.0.1:{port}/ok")).await;

    assert!(matches!(result, Err(EgressError::Connect(_))), "{result:?}");
}

#[tokio::test]
async fn keeps_only_the_first_64_kib_of_an_oversized_body() {
    let server = TestServer::start().await;

    let response = post(&egress(true), server.url("/big"))
        .await
        .expect("a response");

    assert_eq!(response.status, 200);
    assert_eq!(MAX_RESPONSE_BODY, 64 * 1024);
    assert_eq!(response.body.len(), MAX_RESPONSE_BODY);
    assert!(response.body.iter().all(|b| *b == b'x'));
}

#[tokio::test]
async fn reaches_localhost_by_name_when_private_egress_is_allowed() {
    let server = TestServer::start().await;
    let url = format!("http://localhost:{}/ok", server.addr.port());

    let response = post(&egress(true), url).await.expect("a response");

    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn error_messages_never_carry_the_query_string() {
    let server = TestServer::start().await;
    let secret = "access_token=EAAB-SECRET-TOKEN";
    let short = egress_with(true, Duration::from_millis(300));
    let strict = egress(false);

    let results = [
        post(&short, server.url(&format!("/reset?{secret}"))).await,
        post(&short, server.url(&format!("/slow?{secret}"))).await,
        post(&strict, server.url(&format!("/ok?{secret}"))).await,
        post(
            &strict,
            format!("https://localhost:{}/ok?{secret}", server.addr.port()),
        )
        .await,
    ];

    for result in results {
        let err = result.expect_err("every request fails");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET"), "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Without private egress: refused, and the server never sees a connection

#[tokio::test]
async fn refuses_a_loopback_literal_before_connecting() {
    let server = TestServer::start().await;
    let url = format!("https://127.0.0.1:{}/ok", server.addr.port());

    let result = post(&egress(false), url).await;

    assert!(matches!(result, Err(EgressError::Refused(_))), "{result:?}");
    assert_eq!(server.connections_after_a_moment().await, 0);
}

#[tokio::test]
async fn refuses_plain_http_before_connecting() {
    let server = TestServer::start().await;

    let result = post(&egress(false), server.url("/ok")).await;

    assert!(matches!(result, Err(EgressError::Refused(_))), "{result:?}");
    assert_eq!(server.connections_after_a_moment().await, 0);
}

#[tokio::test]
async fn refuses_loopback_in_v4_mapped_and_odd_spellings_before_connecting() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    let strict = egress(false);
    let lax = egress(true);

    for url in [
        format!("https://[::ffff:127.0.0.1]:{port}/ok"),
        format!("https://[::1]:{port}/ok"),
        format!("https://2130706433:{port}/ok"),
        format!("https://0x7f.1:{port}/ok"),
        format!("https://127.1:{port}/ok"),
    ] {
        let result = post(&strict, url.clone()).await;
        assert!(
            matches!(result, Err(EgressError::Refused(_))),
            "{url}: {result:?}"
        );
    }
    // Odd spellings are refused even when private egress is allowed.
    for url in [
        format!("http://2130706433:{port}/ok"),
        format!("http://0x7f.1:{port}/ok"),
    ] {
        let result = post(&lax, url.clone()).await;
        assert!(
            matches!(result, Err(EgressError::Refused(_))),
            "{url}: {result:?}"
        );
    }
    assert_eq!(server.connections_after_a_moment().await, 0);
}

#[tokio::test]
async fn refuses_a_hostname_that_resolves_to_loopback() {
    let server = TestServer::start().await;
    // https and a plain name pass the send-time checks: only the resolver can refuse this.
    let url = format!("https://localhost:{}/ok", server.addr.port());

    let result = post(&egress(false), url).await;

    let Err(EgressError::Refused(msg)) = result else {
        panic!("expected a refusal, got {result:?}");
    };
    assert!(
        msg.contains("localhost resolves only to forbidden addresses"),
        "{msg}"
    );
    assert_eq!(server.connections_after_a_moment().await, 0);
}

#[tokio::test]
async fn refuses_credentials_in_the_url_before_connecting() {
    let server = TestServer::start().await;
    let url = format!("http://user:pass@127.0.0.1:{}/ok", server.addr.port()); // pragma: allowlist secret

    let result = post(&egress(true), url).await;

    assert!(matches!(result, Err(EgressError::Refused(_))), "{result:?}");
    assert_eq!(server.connections_after_a_moment().await, 0);
}

// ---------------------------------------------------------------------------------------------
// Configure-time checks

#[tokio::test]
async fn check_url_refuses_a_name_that_resolves_to_loopback() {
    let strict = EgressPolicy::default();

    let result = check_url("https://localhost/events?access_token=SECRET", &strict).await;

    let Err(EgressError::Refused(msg)) = result else {
        panic!("expected a refusal, got {result:?}");
    };
    assert!(msg.contains("localhost resolves to"), "{msg}");
    assert!(msg.contains("loopback"), "{msg}");
    assert!(!msg.contains("SECRET"), "{msg}");
}

#[tokio::test]
async fn check_url_accepts_local_urls_when_private_egress_is_allowed() {
    let lax = EgressPolicy {
        allow_private: true,
    };

    for url in [
        "http://localhost:8080/hook",
        "http://127.0.0.1:9/x",
        "http://[::1]/",
    ] {
        assert!(check_url(url, &lax).await.is_ok(), "{url}");
    }
}

#[tokio::test]
async fn check_url_refuses_internal_literals_without_resolving() {
    let strict = EgressPolicy::default();

    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/",
        "https://100.64.0.1/",
        "http://example.com/",
    ] {
        let result = check_url(url, &strict).await;
        assert!(
            matches!(result, Err(EgressError::Refused(_))),
            "{url}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// With private egress allowed: still never link-local or cloud metadata, never plain http to a
// public host

/// Link-local and cloud metadata addresses, in every spelling the guard reads.
const METADATA_URLS: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.0.1/",
    "https://169.254.255.254/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "https://[fd00:ec2::254]/",
    "http://[fe80::1]/",
    "https://[febf:ffff::1]/",
    "http://[::ffff:169.254.169.254]/",
    "https://[64:ff9b::a9fe:a9fe]/",
];

#[tokio::test]
async fn private_egress_never_allows_link_local_or_cloud_metadata_addresses() {
    let lax = EgressPolicy {
        allow_private: true,
    };

    for url in METADATA_URLS {
        let configured = check_url(url, &lax).await;
        assert!(
            matches!(configured, Err(EgressError::Refused(_))),
            "{url} configured: {configured:?}"
        );
        let sent = post(&egress(true), (*url).to_owned()).await;
        assert!(
            matches!(sent, Err(EgressError::Refused(_))),
            "{url} sent: {sent:?}"
        );
    }
}

#[tokio::test]
async fn private_egress_allows_plain_http_only_to_private_and_loopback_addresses() {
    let lax = EgressPolicy {
        allow_private: true,
    };

    for url in [
        "http://8.8.8.8/hook",
        "http://1.1.1.1:8080/hook",
        "http://[2001:4860:4860::8888]/hook",
        "http://[::ffff:8.8.8.8]/hook",
    ] {
        let configured = check_url(url, &lax).await;
        match &configured {
            Err(EgressError::Refused(msg)) => assert!(msg.contains("http"), "{url}: {msg}"),
            other => panic!("{url} configured: {other:?}"),
        }
        let sent = post(&egress(true), url.to_owned()).await;
        assert!(
            matches!(sent, Err(EgressError::Refused(_))),
            "{url} sent: {sent:?}"
        );
    }
    // A name must resolve, and only to private or loopback addresses.
    assert!(check_url("http://localhost:8080/hook", &lax).await.is_ok());
    assert!(check_url("http://does-not-resolve.invalid/hook", &lax)
        .await
        .is_err());

    for url in [
        "http://10.0.0.8/hook",
        "http://192.168.1.20:8080/hook",
        "http://[fd12:3456::1]/hook",
        "https://8.8.8.8/hook",
        "https://hooks.example.com/hook",
    ] {
        assert!(check_url(url, &lax).await.is_ok(), "{url}");
    }
}

#[tokio::test]
async fn private_egress_still_reaches_a_loopback_server_over_plain_http() {
    let server = TestServer::start().await;

    let response = post(&egress(true), server.url("/ok"))
        .await
        .expect("a response");

    assert_eq!(response.status, 200);
}
