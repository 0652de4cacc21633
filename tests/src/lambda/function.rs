//! A function binary running as Lambda runs it: a fresh process with only the Lambda
//! environment, polling the emulated Runtime API for events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::Value;

use super::events::{http_api_event, HttpRequest, HttpResponse, ACCOUNT};
use super::runtime::{ColdStart, InvokeError, Outcome, RuntimeApi};

/// The memory size of every function (`template.yaml`, `Globals.Function.MemorySize`).
pub const MEMORY_MB: u32 = 256;

/// Where the function binary `name` is: in `TRACKLAYER_LAMBDA_BIN_DIR`, else in the target
/// directory of this build; `None` if it was not built.
pub fn find_function_bin(name: &str) -> Option<PathBuf> {
    function_bin_candidates(name)
        .into_iter()
        .find(|b| b.is_file())
}

fn function_bin_candidates(name: &str) -> Vec<PathBuf> {
    match std::env::var_os("TRACKLAYER_LAMBDA_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(d) => vec![PathBuf::from(d).join(name)],
        // target/<profile>/deps/e2e-<hash> or target/<profile>/measure-aws
        None => std::env::current_exe()
            .expect("test binary path")
            .ancestors()
            .skip(1)
            .take(2)
            .map(|d| d.join(name))
            .collect(),
    }
}

/// The function binary `name` (`make test` builds them first); panics saying how to build
/// it if it is missing.
pub fn function_bin(name: &str) -> PathBuf {
    find_function_bin(name).unwrap_or_else(|| {
        panic!(
            "the `{name}` function binary is missing (looked at {:?}): build it with \
             `cargo build -p tracklayer-{name}` (make test does), or point \
             TRACKLAYER_LAMBDA_BIN_DIR at a directory holding it",
            function_bin_candidates(name)
        )
    })
}

/// One function process and its Runtime API.
pub struct LambdaProcess {
    pub name: String,
    pub region: String,
    api: RuntimeApi,
    child: Mutex<Option<Child>>,
    /// Its stdout and stderr (what CloudWatch Logs would get).
    pub log: PathBuf,
    /// One invocation at a time, as in one Lambda execution environment.
    busy: tokio::sync::Mutex<()>,
    request_seq: AtomicU64,
}

tracklayer_core::debug_fields!(LambdaProcess: name, log);

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl LambdaProcess {
    /// Starts `bin` as the function `name` of `region`, with `env` (the template's variables
    /// and the AWS endpoint/credentials) on top of what Lambda itself sets. Logs go to
    /// `<log_dir>/<name>.log`.
    pub async fn start(
        bin: &Path,
        name: &str,
        region: &str,
        env: &BTreeMap<String, String>,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let arn = format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}");
        let api = RuntimeApi::start(&arn).await?;
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        // Only what a Lambda execution environment has, plus the function's variables.
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_string())
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/tracklayer/test/{name}"),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/29/[$LATEST]0123456789abcdef",
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region)
            .env("_HANDLER", "bootstrap")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("LAMBDA_RUNTIME_DIR", "/var/runtime")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        api.mark_spawn();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Self {
            name: name.to_owned(),
            region: region.to_owned(),
            api,
            child: Mutex::new(Some(child)),
            log,
            busy: tokio::sync::Mutex::new(()),
            request_seq: AtomicU64::new(1),
        })
    }

    /// Cold-start marks of this process.
    pub fn cold_start(&self) -> ColdStart {
        self.api.cold_start()
    }

    /// Handler durations of the answered invocations (hand-out to answer).
    pub fn durations(&self) -> Vec<Duration> {
        self.api.durations()
    }

    /// The function's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the runtime polls for its first event (init done), or fails.
    pub async fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.cold_start().to_first_next.is_none() {
            self.check_alive()?;
            if let Some(e) = self.api_init_error() {
                bail!("{} failed to initialize: {e}\n{}", self.name, self.output());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not poll for an event within {limit:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    fn api_init_error(&self) -> Option<String> {
        self.api.init_error()
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        let mut guard = self.child.lock().unwrap();
        let Some(child) = guard.as_mut() else {
            bail!("{} was stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.output());
        }
        Ok(())
    }

    /// Invokes the function with `event` and returns what it answered; fails if the process
    /// exits, reports an init error, or takes longer than `timeout`.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> anyhow::Result<Outcome> {
        let _one_at_a_time = self.busy.lock().await;
        let invocation = self.api.invoke(event, timeout);
        tokio::pin!(invocation);
        loop {
            tokio::select! {
                outcome = &mut invocation => {
                    return match outcome {
                        Ok(o) => Ok(o),
                        Err(e @ InvokeError::InitFailed(_)) => {
                            bail!("{}: {e}\n{}", self.name, self.output())
                        }
                        Err(e) => bail!("{}: {e}\n{}", self.name, self.output()),
                    };
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => self.check_alive()?,
            }
        }
    }

    /// Sends `req` through the HTTP API integration (payload format 2.0).
    pub async fn http(&self, req: HttpRequest) -> anyhow::Result<HttpResponse> {
        let seq = self.request_seq.fetch_add(1, Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        let event = http_api_event(&req, &self.region, &format!("apigw-{seq}"), now_ms);
        let doc = self
            .invoke(&event, Duration::from_secs(30))
            .await?
            .into_response()?;
        HttpResponse::from_lambda(&doc)
    }

    /// Stops the process (Lambda's shutdown is a SIGKILL after the extensions' grace time).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
