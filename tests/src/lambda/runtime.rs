//! A Lambda Runtime API emulator: the four endpoints a custom runtime (here `lambda_runtime`)
//! talks to, on a loopback port.
//!
//! - `GET  /2018-06-01/runtime/invocation/next` long-polls for the next event;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` answers it;
//! - `POST /2018-06-01/runtime/invocation/{id}/error` fails it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed cold start.
//!
//! [`RuntimeApi::invoke`] queues an event and waits for its answer, as the Lambda service
//! does for a synchronous invocation. The emulator also notes when the runtime first asked
//! for work and first answered, which is how cold starts are measured.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

const PREFIX: &str = "/2018-06-01/runtime";

/// What became of one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler's response document.
    Response(Value),
    /// The handler failed (`/invocation/{id}/error`): the runtime's error document.
    Error { error_type: String, body: Value },
}

/// Why an invocation has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function failed to initialize: {0}")]
    InitFailed(String),
    #[error("the function did not answer within {0:?}")]
    TimedOut(Duration),
}

/// Times of the runtime's first calls, counted from when the emulator was told the process
/// was spawned ([`RuntimeApi::mark_spawn`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ColdStart {
    /// Process start to the first `GET /invocation/next`: the function's init phase.
    pub to_first_next: Option<Duration>,
    /// Process start to the first `/response` or `/error`.
    pub to_first_answer: Option<Duration>,
}

struct Invocation {
    id: String,
    event: Bytes,
    deadline_ms: u128,
}

#[derive(Default)]
struct Marks {
    spawned: Option<Instant>,
    first_next: Option<Instant>,
    first_answer: Option<Instant>,
    /// When each invocation in flight was handed to the runtime.
    handed_out: HashMap<String, Instant>,
    /// How long each answered invocation took, handed out to answered.
    durations: Vec<Duration>,
}

struct Shared {
    function_arn: String,
    queue: Mutex<VecDeque<Invocation>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
    init_failed: Notify,
    marks: Mutex<Marks>,
    next_id: AtomicU64,
}

/// The emulator: a server task on `127.0.0.1:<free port>`, stopped on drop.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: super::LocalServer,
}

tracklayer_core::debug_fields!(RuntimeApi: addr);

impl RuntimeApi {
    /// Starts the emulator for the function `function_arn` names.
    pub async fn start(function_arn: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            function_arn: function_arn.to_owned(),
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            init_failed: Notify::new(),
            marks: Mutex::new(Marks::default()),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(respond),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(shared.clone());
        let server = super::LocalServer::start(app).await?;
        Ok(Self {
            addr: server.addr,
            shared,
            _server: server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`: `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Notes that the function process starts now (the origin of [`ColdStart`]).
    pub fn mark_spawn(&self) {
        let mut marks = self.shared.marks.lock().unwrap();
        *marks = Marks {
            spawned: Some(Instant::now()),
            ..Marks::default()
        };
    }

    pub fn cold_start(&self) -> ColdStart {
        let marks = self.shared.marks.lock().unwrap();
        let since = |t: Option<Instant>| Some(t?.duration_since(marks.spawned?));
        ColdStart {
            to_first_next: since(marks.first_next),
            to_first_answer: since(marks.first_answer),
        }
    }

    /// How long each answered invocation took, from hand-out to answer, in order.
    pub fn durations(&self) -> Vec<Duration> {
        self.shared.marks.lock().unwrap().durations.clone()
    }

    /// The error the runtime reported on `/init/error`, if any.
    pub fn init_error(&self) -> Option<String> {
        self.shared.init_error.lock().unwrap().clone()
    }

    /// Queues `event` and waits up to `timeout` for the runtime's answer.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Outcome, InvokeError> {
        if let Some(e) = self.init_error() {
            return Err(InvokeError::InitFailed(e));
        }
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{n:08x}-0000-4000-8000-{:012x}", now_ms());
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap().insert(id.clone(), tx);
        let deadline_ms = now_ms() + timeout.as_millis();
        self.shared.queue.lock().unwrap().push_back(Invocation {
            id: id.clone(),
            event: Bytes::from(serde_json::to_vec(event).expect("a JSON value serializes")),
            deadline_ms,
        });
        self.shared.queued.notify_one();
        let result = tokio::select! {
            answer = rx => match answer {
                Ok(outcome) => Ok(outcome),
                Err(_) => Err(InvokeError::TimedOut(timeout)),
            },
            _ = self.shared.init_failed.notified() => {
                Err(InvokeError::InitFailed(self.init_error().unwrap_or_default()))
            }
            _ = tokio::time::sleep(timeout) => Err(InvokeError::TimedOut(timeout)),
        };
        if result.is_err() {
            self.shared.waiting.lock().unwrap().remove(&id);
            self.shared.queue.lock().unwrap().retain(|inv| inv.id != id);
        }
        result
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    {
        let mut marks = s.marks.lock().unwrap();
        if marks.first_next.is_none() {
            marks.first_next = Some(Instant::now());
        }
    }
    let inv = loop {
        // Register interest before looking, so a push between the two is not missed.
        let notified = s.queued.notified();
        if let Some(inv) = s.queue.lock().unwrap().pop_front() {
            break inv;
        }
        notified.await;
    };
    s.marks
        .lock()
        .unwrap()
        .handed_out
        .insert(inv.id.clone(), Instant::now());
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(
            name,
            HeaderValue::from_str(&value).expect("header values are ASCII"),
        );
    };
    set("lambda-runtime-aws-request-id", inv.id.clone());
    set("lambda-runtime-deadline-ms", inv.deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        s.function_arn.clone(),
    );
    set(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{:08x}-{:0>24};Parent={:0>16};Sampled=0",
            inv.deadline_ms / 1000 % 0x1_0000_0000,
            &inv.id[..8],
            &inv.id[..8]
        ),
    );
    set("content-type", "application/json".into());
    (StatusCode::OK, headers, inv.event).into_response()
}

fn answered(s: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    {
        let mut marks = s.marks.lock().unwrap();
        let now = Instant::now();
        if marks.first_answer.is_none() {
            marks.first_answer = Some(now);
        }
        if let Some(t) = marks.handed_out.remove(id) {
            marks.durations.push(now.duration_since(t));
        }
    }
    match s.waiting.lock().unwrap().remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        // The real service answers 400 for an unknown or already answered request id.
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn respond(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answered(&s, &id, Outcome::Response(json_or_text(&body)))
}

/// What a runtime reports to `/invocation/{id}/error` and `/init/error`: its error document
/// (JSON, else the text), and the error's type from the `Lambda-Runtime-Function-Error-Type`
/// header, else the document's `errorType`, else `Unhandled`.
struct ErrorReport {
    error_type: String,
    body: Value,
}

impl<S: Send + Sync> FromRequest<S> for ErrorReport {
    type Rejection = BytesRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let header = req
            .headers()
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = json_or_text(&Bytes::from_request(req, state).await?);
        let error_type = header
            .or_else(|| body["errorType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "Unhandled".into());
        Ok(Self { error_type, body })
    }
}

async fn fail(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    ErrorReport { error_type, body }: ErrorReport,
) -> StatusCode {
    answered(&s, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(s): State<Arc<Shared>>, report: ErrorReport) -> StatusCode {
    let shown = format!("{}: {}", report.error_type, report.body);
    *s.init_error.lock().unwrap() = Some(shown);
    s.init_failed.notify_waiters();
    StatusCode::ACCEPTED
}

impl Outcome {
    /// The response document, or an error naming what the function reported.
    pub fn into_response(self) -> anyhow::Result<Value> {
        match self {
            Outcome::Response(v) => Ok(v),
            Outcome::Error { error_type, body } => {
                anyhow::bail!("the function failed: {error_type}: {body}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:echo";

    /// A runtime client driving the protocol by hand: what `lambda_runtime` does, in a loop.
    /// Answers `{"echo": event}`, fails events with `"fail": true`.
    async fn hand_driven_runtime(api: String, invocations: usize) {
        let client = reqwest::Client::new();
        let base = format!("http://{api}{PREFIX}");
        for _ in 0..invocations {
            let resp = client
                .get(format!("{base}/invocation/next"))
                .send()
                .await
                .unwrap();
            let id = resp.headers()["lambda-runtime-aws-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let deadline: u128 = resp.headers()["lambda-runtime-deadline-ms"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(deadline > now_ms());
            assert_eq!(resp.headers()["lambda-runtime-invoked-function-arn"], ARN);
            assert!(resp.headers().contains_key("lambda-runtime-trace-id"));
            let event: Value = resp.json().await.unwrap();
            let answer = if event["fail"] == true {
                client
                    .post(format!("{base}/invocation/{id}/error"))
                    .header("lambda-runtime-function-error-type", "Handler.Boom")
                    .json(&json!({"errorType": "Handler.Boom", "errorMessage": "boom"}))
                    .send()
                    .await
                    .unwrap()
            } else {
                client
                    .post(format!("{base}/invocation/{id}/response"))
                    .json(&json!({ "echo": event }))
                    .send()
                    .await
                    .unwrap()
            };
            assert_eq!(answer.status(), 202);
            // A second answer for the same request is refused, as by the real service.
            let again = client
                .post(format!("{base}/invocation/{id}/response"))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(again.status(), 400);
        }
    }

    #[tokio::test]
    async fn an_invocation_is_handed_to_the_runtime_and_its_response_returned() {
        let api = RuntimeApi::start(ARN).await.unwrap();
        api.mark_spawn();
        let runtime = tokio::spawn(hand_driven_runtime(api.address(), 2));

        let first = api
            .invoke(&json!({"n": 1}), Duration::from_secs(5))
            .await
            .unwrap();
        let second = api
            .invoke(&json!({"n": 2}), Duration::from_secs(5))
            .await
            .unwrap();

        assert_eq!(first, Outcome::Response(json!({"echo": {"n": 1}})));
        assert_eq!(second, Outcome::Response(json!({"echo": {"n": 2}})));
        runtime.await.unwrap();
        let cold = api.cold_start();
        assert!(cold.to_first_next.unwrap() <= cold.to_first_answer.unwrap());
        assert_eq!(api.durations().len(), 2);
    }

    #[tokio::test]
    async fn a_handler_error_is_reported_with_its_type() {
        let api = RuntimeApi::start(ARN).await.unwrap();
        let runtime = tokio::spawn(hand_driven_runtime(api.address(), 1));

        let outcome = api
            .invoke(&json!({"fail": true}), Duration::from_secs(5))
            .await
            .unwrap();

        runtime.await.unwrap();
        let Outcome::Error { error_type, body } = outcome.clone() else {
            panic!("expected an error, got {outcome:?}");
        };
        assert_eq!(error_type, "Handler.Boom");
        assert_eq!(body["errorMessage"], "boom");
        assert!(outcome.into_response().is_err());
    }

    #[tokio::test]
    async fn an_init_error_fails_the_waiting_invocation() {
        let api = RuntimeApi::start(ARN).await.unwrap();
        let address = api.address();
        let reporter = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            reqwest::Client::new()
                .post(format!("http://{address}{PREFIX}/init/error"))
                .header("lambda-runtime-function-error-type", "Runtime.ConfigError")
                .json(&json!({"errorType": "Runtime.ConfigError",
                              "errorMessage": "TRACKLAYER_EVENTS_TABLE is not set"}))
                .send()
                .await
                .unwrap()
                .status()
        });

        let err = api
            .invoke(&json!({}), Duration::from_secs(5))
            .await
            .unwrap_err();

        assert_eq!(reporter.await.unwrap(), 202);
        let shown = err.to_string();
        assert!(shown.contains("Runtime.ConfigError"), "{shown}");
        assert!(shown.contains("TRACKLAYER_EVENTS_TABLE"), "{shown}");
    }

    #[tokio::test]
    async fn an_unanswered_invocation_times_out_and_is_withdrawn() {
        let api = RuntimeApi::start(ARN).await.unwrap();

        let err = api
            .invoke(&json!({"n": 1}), Duration::from_millis(100))
            .await
            .unwrap_err();

        assert!(matches!(err, InvokeError::TimedOut(_)), "{err}");
        // A runtime that shows up later gets the next event, not the withdrawn one.
        let runtime = tokio::spawn(hand_driven_runtime(api.address(), 1));
        let outcome = api
            .invoke(&json!({"n": 2}), Duration::from_secs(5))
            .await
            .unwrap();
        runtime.await.unwrap();
        assert_eq!(outcome, Outcome::Response(json!({"echo": {"n": 2}})));
    }
}
