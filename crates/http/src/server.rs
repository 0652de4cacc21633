//! The HTTP/1 server of `tracklayer serve`, with the limits `axum::serve` has no setting for:
//! a request head must arrive within `header_read_timeout` of its first byte, a body within
//! `body_read_timeout` of its request (else 408), a kept-alive connection may wait
//! `idle_timeout` for its next request, and at most `max_connections` are open at once (the
//! next waits in the listen backlog until one closes). A head past [`HeadLimits`] is a 431
//! problem, a body the [`BodyBudget`] of `max_body_bytes_in_flight` cannot take a 503 (see
//! [`crate::limits`]). With [`Tls`], each connection first
//! completes a TLS handshake within `header_read_timeout`, and every response carries HSTS.
//!
//! hyper's own `header_read_timeout` also runs while a kept-alive connection waits for its next
//! request, so it cannot tell a slow head from an idle connection: each connection here is
//! watched instead. Bytes arriving on an idle connection start a head; the router taking the
//! request ends it; the response makes the connection idle again.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::body::DeadlineBody;
use crate::limits::{BodyBudget, HeadLimits, DEFAULT_BODY_BYTES_IN_FLIGHT};
use crate::tls::{add_hsts, Tls};

/// Connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From the first byte of a request to the end of its head.
    pub header_read_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection waits for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Header fields and bytes of one request.
    pub head: HeadLimits,
    /// Request-body bytes held at once, across every connection.
    pub max_body_bytes_in_flight: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            head: HeadLimits::default(),
            max_body_bytes_in_flight: DEFAULT_BODY_BYTES_IN_FLIGHT,
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` completes; then
/// stops accepting, lets every request in flight finish, and returns once every connection is
/// closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopped) = watch::channel(false);
    let budget = BodyBudget::new(limits.max_body_bytes_in_flight);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.as_mut() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.as_mut() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = Conn {
                    peer,
                    app: app.clone(),
                    limits,
                    budget: budget.clone(),
                    stopped: stopped.clone(),
                    _slot: permit,
                };
                tokio::spawn(conn.run(stream, tls.clone()));
            }
            // Out of file descriptors and the like: wait a little rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let _ = stop.send(true);
    // Every connection holds a slot until it closes.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// One accepted connection, holding its slot until it closes.
struct Conn {
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    budget: BodyBudget,
    stopped: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

impl Conn {
    async fn run(self, stream: TcpStream, tls: Option<Tls>) {
        match tls {
            None => self.http(stream, false).await,
            Some(tls) => match tls.accept(stream, self.limits.header_read_timeout).await {
                Ok(stream) => self.http(stream, true).await,
                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
            },
        }
    }

    /// HTTP/1 on `stream` until the client or the server closes it; `secure`: over TLS.
    async fn http<S>(self, stream: S, secure: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            peer,
            app,
            limits,
            budget,
            mut stopped,
            _slot,
        } = self;
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let service = {
            let activity = activity.clone();
            hyper::service::service_fn(move |req: Request<Incoming>| {
                activity.enter(Phase::Request);
                let admitted =
                    limits.head.check(&req).and_then(|()| {
                        budget.admit(req.map(|body| {
                            DeadlineBody::new(Body::new(body), limits.body_read_timeout)
                        }))
                    });
                let app = app.clone();
                let activity = activity.clone();
                async move {
                    let mut response = match admitted {
                        Ok((mut req, held)) => {
                            req.extensions_mut().insert(ConnectInfo(peer));
                            let response = app.oneshot(req).await;
                            drop(held);
                            response
                        }
                        Err(problem) => Ok(axum::response::IntoResponse::into_response(problem)),
                    };
                    if let (true, Ok(response)) = (secure, response.as_mut()) {
                        add_hsts(response.headers_mut());
                    }
                    activity.enter(Phase::Idle);
                    response
                }
            })
        };
        let mut builder = http1::Builder::new();
        // The connection is watched below; hyper's header timer would also close idle ones.
        let (max_headers, max_head_bytes) = limits.head.hyper_ceiling();
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(None)
            .max_headers(max_headers)
            .max_header_size(max_head_bytes);
        let mut conn = pin!(builder.serve_connection(io, service));
        let mut draining = false;
        loop {
            let deadline = activity.deadline(&limits);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = activity.changed.notified() => {}
                () = until(deadline) => {
                    if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(phase = ?activity.phase(), "closing a connection past its deadline");
                        return;
                    }
                }
                _ = stopped.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request: `idle_timeout`.
    Idle,
    /// A request's head is arriving: `header_read_timeout`.
    Head,
    /// The router has the request; its body has its own deadline.
    Request,
}

#[derive(Debug)]
struct Activity {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new((Phase::Idle, Instant::now())),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn enter(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = (phase, Instant::now());
        self.changed.notify_one();
    }

    /// Bytes arrived: on an idle connection they begin a request head.
    fn received(&self) {
        let mut state = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        let (phase, since) = *self.phase.lock().unwrap_or_else(|e| e.into_inner());
        match phase {
            Phase::Idle => Some(since + limits.idle_timeout),
            Phase::Head => Some(since + limits.header_read_timeout),
            Phase::Request => None,
        }
    }
}

/// A connection's socket (or its TLS stream), reporting when bytes arrive.
#[derive(Debug)]
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::body::read_body;

    pub(crate) const SHORT: Duration = Duration::from_millis(300);
    const LONG: Duration = Duration::from_secs(60);
    /// How long a test waits for what must happen, before failing.
    pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

    fn app() -> Router {
        Router::new()
            .route("/ping", get(|| async { "pong" }))
            .route(
                "/echo",
                post(|headers: HeaderMap, body: Body| async move {
                    match read_body(&headers, body, 1024).await {
                        Ok(bytes) => bytes.into_response(),
                        Err(problem) => problem.into_response(),
                    }
                }),
            )
    }

    /// A server on 127.0.0.1:0 with these limits; stops when the returned sender drops.
    async fn start(limits: ServerLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        start_with(limits, None).await
    }

    /// A server on 127.0.0.1:0 with these limits, over TLS if given; stops when the returned
    /// sender drops.
    pub(crate) async fn start_with(
        limits: ServerLimits,
        tls: Option<Tls>,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app(), limits, tls, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Every timeout long but the one a test sets (`..patient()`).
    pub(crate) fn patient() -> ServerLimits {
        ServerLimits {
            header_read_timeout: LONG,
            body_read_timeout: LONG,
            idle_timeout: LONG,
            max_connections: 8,
            ..ServerLimits::default()
        }
    }

    /// Every timeout long but the one `timeout` picks, which is short.
    fn short(timeout: fn(&mut ServerLimits) -> &mut Duration) -> ServerLimits {
        let mut limits = patient();
        *timeout(&mut limits) = SHORT;
        limits
    }

    /// Writes these bytes to the server.
    async fn send(stream: &mut TcpStream, bytes: &[u8]) {
        stream.write_all(bytes).await.unwrap();
    }

    /// A server with these limits and one connection to it; stops when the sender drops.
    async fn connect(limits: ServerLimits) -> (TcpStream, tokio::sync::oneshot::Sender<()>) {
        let (addr, stop) = start(limits).await;
        (TcpStream::connect(addr).await.unwrap(), stop)
    }

    /// Reads until the server closes the connection; what it sent.
    pub(crate) async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> String {
        let mut out = Vec::new();
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
            .await
            .expect("the server closes the connection")
            .expect("a clean close");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads one response (head and a Content-Length body).
    async fn response(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
                .await
                .expect("a response")
                .unwrap();
            assert!(n > 0, "closed before a whole response: {text}");
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// What the server sent is a problem+json answer with this status that says `text`
    /// (its type, or the field at fault).
    fn assert_problem(sent: &str, status: u16, text: &str) {
        assert!(sent.starts_with(&format!("HTTP/1.1 {status} ")), "{sent}");
        assert!(
            sent.contains("content-type: application/problem+json"),
            "{sent}"
        );
        assert!(sent.contains(text), "{sent}");
    }

    #[tokio::test]
    async fn a_connection_that_stops_in_the_middle_of_its_head_is_closed_after_the_header_timeout()
    {
        let (mut stream, _stop) = connect(short(|l| &mut l.header_read_timeout)).await;

        send(&mut stream, b"GET /ping HTTP/1.1\r\nHost: te").await;

        let sent = until_closed(&mut stream).await;
        assert!(!sent.contains("pong"), "{sent}");
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_answered_408_problem_json() {
        let (mut stream, _stop) = connect(short(|l| &mut l.body_read_timeout)).await;

        send(
            &mut stream,
            b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{\"a\":",
        )
        .await;

        let sent = response(&mut stream).await;
        assert_problem(&sent, 408, "body-timeout");
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
        let (mut stream, _stop) = connect(short(|l| &mut l.idle_timeout)).await;
        send(&mut stream, b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n").await;
        let first = response(&mut stream).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");

        // Kept alive, then nothing more.
        let rest = until_closed(&mut stream).await;
        assert_eq!(rest, "");
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_waits_until_one_closes() {
        let (addr, _stop) = start(ServerLimits {
            max_connections: 1,
            ..ServerLimits::default()
        })
        .await;
        let ping = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n";
        let mut first = TcpStream::connect(addr).await.unwrap();
        send(&mut first, ping).await;
        assert!(response(&mut first).await.starts_with("HTTP/1.1 200"));

        let mut second = TcpStream::connect(addr).await.unwrap();
        send(&mut second, ping).await;
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(SHORT, second.read(&mut byte)).await;
        assert!(early.is_err(), "answered while the only slot was taken");

        drop(first);
        assert!(response(&mut second).await.starts_with("HTTP/1.1 200"));
    }

    fn head_limits(max_headers: usize) -> ServerLimits {
        ServerLimits {
            head: HeadLimits {
                max_headers,
                max_header_bytes: 2048,
            },
            ..patient()
        }
    }

    #[tokio::test]
    async fn a_head_past_the_header_count_is_a_431_problem_and_the_connection_closes() {
        let (mut stream, _stop) = connect(head_limits(10)).await;
        let mut head = String::from("GET /ping HTTP/1.1\r\nHost: test\r\n");
        for i in 0..10 {
            head.push_str(&format!("X-Pad-{i}: v\r\n"));
        }
        send(&mut stream, format!("{head}\r\n").as_bytes()).await;

        let sent = until_closed(&mut stream).await;
        assert_problem(&sent, 431, "\"field\":\"headers\"");
    }

    #[tokio::test]
    async fn a_head_past_the_header_bytes_is_a_431_problem() {
        let (mut stream, _stop) = connect(head_limits(10)).await;
        let cookie = "c".repeat(3000);
        send(
            &mut stream,
            format!("GET /ping HTTP/1.1\r\nHost: test\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
        )
        .await;

        let sent = until_closed(&mut stream).await;
        assert_problem(&sent, 431, "headers-too-large");
    }

    #[tokio::test]
    async fn headers_dribbled_without_end_are_refused_before_the_server_buffers_much() {
        // Slowloris with many headers: one short header at a time, never a blank line, well
        // within the header timeout. The server answers 431 and closes at hyper's ceiling
        // (4 × 10 headers here), so the client cannot make it hold more.
        let (mut stream, _stop) = connect(head_limits(10)).await;
        send(&mut stream, b"GET /ping HTTP/1.1\r\nHost: test\r\n").await;
        let mut written = 0usize;
        for i in 0..100_000 {
            let line = format!("X-Slow-{i}: v\r\n");
            if stream.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            written += line.len();
            if i % 16 == 0 {
                tokio::task::yield_now().await;
            }
            let mut peek = [0u8; 1];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut peek)).await
            {
                break;
            }
        }
        let sent = until_closed(&mut stream).await;
        assert!(sent.starts_with("HTTP/1.1 431"), "{sent}");
        assert!(
            written < 64 * 1024,
            "the server read {written} bytes of headers"
        );
    }

    fn budget(bytes: usize) -> ServerLimits {
        ServerLimits {
            max_body_bytes_in_flight: bytes,
            ..patient()
        }
    }

    /// A POST /echo whose body has not all arrived: holds its declared length.
    async fn holding(addr: SocketAddr, declared: usize) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        send(
            &mut stream,
            format!("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {declared}\r\n\r\nx")
                .as_bytes(),
        )
        .await;
        stream
    }

    #[tokio::test]
    async fn bodies_past_the_bytes_in_flight_are_a_503_with_retry_after_until_one_is_done() {
        let (addr, _stop) = start(budget(1000)).await;
        let mut first = holding(addr, 600).await;
        tokio::time::sleep(SHORT).await;

        let mut second = holding(addr, 600).await;
        let refused = response(&mut second).await;
        assert_problem(&refused, 503, "body-budget-spent");
        assert!(refused.contains("retry-after: 1"), "{refused}");

        send(&mut first, "y".repeat(599).as_bytes()).await;
        assert!(response(&mut first).await.starts_with("HTTP/1.1 200"));
        let mut third = holding(addr, 600).await;
        send(&mut third, "z".repeat(599).as_bytes()).await;
        assert!(response(&mut third).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_chunked_body_flood_past_the_bytes_in_flight_is_a_503() {
        let (addr, _stop) = start(budget(1000)).await;
        let _first = holding(addr, 900).await;
        tokio::time::sleep(SHORT).await;

        let mut flood = TcpStream::connect(addr).await.unwrap();
        let chunk = "a".repeat(200);
        send(
            &mut flood,
            format!(
                "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nc8\r\n{chunk}\r\n"
            )
            .as_bytes(),
        )
        .await;
        let refused = response(&mut flood).await;
        assert_problem(&refused, 503, "body-budget-spent");
    }

    #[tokio::test]
    async fn a_request_carries_the_peer_address_as_connect_info() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        tokio::spawn(serve(
            listener,
            app,
            ServerLimits::default(),
            None,
            std::future::pending(),
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();

        send(&mut stream, b"GET /peer HTTP/1.1\r\nHost: test\r\n\r\n").await;

        assert!(response(&mut stream).await.ends_with("127.0.0.1"));
    }
}
