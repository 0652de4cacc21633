//! Emulated AWS: one moto server per process, and on it the resources of a TrackLayer stack
//! (`us` in us-east-1, `eu` in eu-central-1), created as `template.yaml` defines them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::Credentials;
use tracklayer_aws::config::kind_suffix;
use tracklayer_aws::provision::{self, Options};
use tracklayer_aws::{AwsClients, QueueUrls, TableNames};
use tracklayer_core::destination::DestinationKind;
use tracklayer_core::workspace::Region;

use crate::repo_root;

/// A moto server on a loopback port, stopped when the process exits: it runs under a small
/// Python watchdog that ends it when its stdin closes.
pub struct Moto {
    pub endpoint: String,
    child: Mutex<Child>,
    _stdin: ChildStdin,
}

tracklayer_core::debug_fields!(Moto: endpoint);

impl Drop for Moto {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

const WATCHDOG: &str = r#"
import subprocess, sys
server = subprocess.Popen(sys.argv[1:])
try:
    sys.stdin.read()
finally:
    server.terminate()
    try:
        server.wait(5)
    except Exception:
        server.kill()
"#;

/// moto's server with its DynamoDB writes serialized, as DynamoDB's own are: moto checks a
/// condition and writes in separate steps on the request's thread, and a failed transaction
/// puts back a copy of the whole table taken before it, undoing a write another thread made
/// meanwhile. Without the lock two racing conditional writes (two creates of one userName, two
/// admins demoting each other) could both succeed on moto, which DynamoDB never lets happen.
/// The request handlers of those writes hold the lock too: `update_item` copies the item
/// before its write and renders the written item after it, both outside the backend's call,
/// so ten racing `ADD count 1` answered `UPDATED_NEW` 10 twice and 9 never (one failure of
/// `sessions::concurrent_failures_are_all_counted` under the whole parallel suite).
const SERIALIZED_MOTO: &str = r#"
import functools, sys, threading
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import main
lock = threading.RLock()
def serialized(write):
    @functools.wraps(write)
    def run(*args, **kwargs):
        with lock:
            return write(*args, **kwargs)
    return run
for name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))
    setattr(DynamoHandler, name, serialized(getattr(DynamoHandler, name)))
sys.exit(main(sys.argv[1:]))
"#;

fn venv() -> PathBuf {
    std::env::var_os("TRACKLAYER_TEST_PYTHON")
        .map(PathBuf::from)
        .and_then(|py| py.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| repo_root().join(".venv"))
}

impl Moto {
    /// Starts a moto server from the repository's venv (`make test` creates it).
    ///
    /// The port is one the system had free a moment before, so another process (the suites
    /// run three at a time) can take it first: moto then exits ("Address already in use")
    /// while the other program answers on the port. So the server counts as up only once its
    /// own log says it is running on the port (and it answers), and a server that lost the
    /// port is started again on another (a whole e2e run once talked to another suite's fake
    /// and got 400 for every `CreateTable`).
    pub fn start() -> anyhow::Result<Self> {
        let venv = venv();
        let server = venv.join("bin/moto_server");
        let python = venv.join("bin/python");
        anyhow::ensure!(
            server.exists() && python.exists(),
            "moto server not found at {}: run `make test` (it creates .venv with moto[server])",
            server.display()
        );
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            if let Some(moto) = Self::start_on_a_free_port(&python)? {
                return Ok(moto);
            }
        }
        anyhow::bail!("moto server lost its port to another program {ATTEMPTS} times")
    }

    /// One try of [`Moto::start`]: `None` if another program took the port first.
    fn start_on_a_free_port(python: &Path) -> anyhow::Result<Option<Self>> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::env::temp_dir().join(format!("tracklayer-lambda-moto-{port}.log"));
        let mut child = Command::new(python)
            .arg("-c")
            .arg(WATCHDOG)
            .args([python.as_os_str(), "-c".as_ref(), SERIALIZED_MOTO.as_ref()])
            .args(["-p", &port.to_string(), "-H", "127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start moto server")?;
        let stdin = child.stdin.take().context("watchdog stdin")?;
        let running = format!("Running on http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The watchdog outlives a server that exits: its log says what happened.
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if said.contains("in use") {
                drop(stdin);
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("moto server exited ({status}); see {}", log.display());
            }
            if said.contains(&running) && answers(port) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "moto server did not answer on port {port} within 60 s; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Some(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Mutex::new(child),
            _stdin: stdin,
        }))
    }

    /// The moto server of this process, started on first use.
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| Moto::start().expect("start moto"))
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 12];
    s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"HTTP/"))
}

/// The access key the functions use; the event source mapping uses [`ESM_ACCESS_KEY`], so
/// that a request meter can tell the two apart.
pub const FUNCTION_ACCESS_KEY: &str = "AKIDFUNCTIONS0000000";
pub const ESM_ACCESS_KEY: &str = "AKIDEVENTSOURCEMAPPNG";
/// The public API base URL of each residency, which 421 answers name.
pub const PUBLIC_URL_US: &str = "https://us.api.tracklayer.test";
pub const PUBLIC_URL_EU: &str = "https://eu.api.tracklayer.test";
/// The SES sender of the test stacks.
pub const SES_SENDER: &str = "privacy@example.com";

/// SDK clients for `endpoint` in `region`, signing with `access_key`.
pub async fn clients(endpoint: &str, region: &str, access_key: &str) -> AwsClients {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key,
            "testing-secret",
            None,
            None,
            "tests",
        ))
        .http_client(tracklayer_aws::https_client())
        .load()
        .await;
    AwsClients::from_sdk_config(&sdk)
}

/// The resources of one stack on moto.
#[derive(Debug, Clone)]
pub struct Stack {
    pub residency: Region,
    pub aws_region: String,
    pub tables: TableNames,
    pub queues: BTreeMap<DestinationKind, QueueUrls>,
    pub kms_key_arn: String,
}

impl Stack {
    /// Creates a stack's tables, queues and platform key on moto at
    /// `endpoint`, named after `prefix` (unique per test).
    pub async fn provision(
        endpoint: &str,
        residency: Region,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let aws_region = residency.aws_region().to_owned();
        let c = clients(endpoint, &aws_region, FUNCTION_ACCESS_KEY).await;
        let tables = TableNames {
            control: format!("{prefix}-control"),
            events: format!("{prefix}-events"),
            delivery_log: format!("{prefix}-delivery-log"),
            audit: format!("{prefix}-audit"),
        };
        let options = Options {
            sse_kms_key: None,
            deletion_protection: false,
            max_receive_count: 8,
        };
        provision::create_tables(&c.dynamodb, &tables, &options).await?;
        let queues = provision::create_queues(&c.sqs, prefix, &options).await?;
        let key = c
            .kms
            .create_key()
            .description(format!("TrackLayer platform key ({prefix})"))
            .send()
            .await
            .context("create the platform key")?;
        let kms_key_arn = key.key_metadata.and_then(|m| m.arn).context("no key ARN")?;
        // A deployment's sender is verified in SES before its functions mail (invitations,
        // sign-in links); SES refuses any other sender.
        c.ses
            .create_email_identity(SES_SENDER)
            .await
            .context("verify the SES sender")?;
        Ok(Self {
            residency,
            aws_region,
            tables,
            queues,
            kms_key_arn,
        })
    }

    /// The variables of `template.yaml` `Globals.Function.Environment`, with this stack's
    /// resources.
    pub fn template_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(k.to_owned(), v.to_owned());
        };
        set("TRACKLAYER_REGION_CODE", self.residency.as_str());
        set("TRACKLAYER_CONTROL_TABLE", &self.tables.control);
        set("TRACKLAYER_EVENTS_TABLE", &self.tables.events);
        set("TRACKLAYER_DELIVERY_LOG_TABLE", &self.tables.delivery_log);
        set("TRACKLAYER_AUDIT_TABLE", &self.tables.audit);
        for (kind, urls) in &self.queues {
            set(&format!("QUEUE_URL_{}", kind_suffix(*kind)), &urls.queue);
            set(&format!("DLQ_URL_{}", kind_suffix(*kind)), &urls.dlq);
        }
        set("TRACKLAYER_KMS_KEY_ARN", &self.kms_key_arn);
        set("TRACKLAYER_SES_SENDER", SES_SENDER);
        set("TRACKLAYER_PUBLIC_URL_US", PUBLIC_URL_US);
        set("TRACKLAYER_PUBLIC_URL_EU", PUBLIC_URL_EU);
        set("RUST_LOG", "info");
        env
    }

    /// What the functions of this stack get: the template's variables, moto (or a meter in
    /// front of it) as every service's endpoint, static credentials.
    pub fn function_env(&self, endpoint: &str) -> BTreeMap<String, String> {
        let mut env = self.template_env();
        env.insert("AWS_ENDPOINT_URL".into(), endpoint.to_owned());
        env.insert("AWS_ACCESS_KEY_ID".into(), FUNCTION_ACCESS_KEY.into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "testing-secret".into());
        env.insert("AWS_SESSION_TOKEN".into(), "testing-session".into());
        env
    }

    /// The ARN of a queue, from its URL (`http://host/<account>/<name>`).
    pub fn queue_arn(&self, url: &str) -> String {
        let mut parts = url.rsplit('/');
        let name = parts.next().unwrap_or_default();
        let account = parts.next().unwrap_or_default();
        format!("arn:aws:sqs:{}:{account}:{name}", self.aws_region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_environment_names_every_variable_the_template_sets() {
        let stack = Stack {
            residency: Region::Eu,
            aws_region: "eu-central-1".into(),
            tables: TableNames {
                control: "c".into(),
                events: "e".into(),
                delivery_log: "d".into(),
                audit: "a".into(),
            },
            queues: DestinationKind::ALL
                .into_iter()
                .map(|k| {
                    (
                        k,
                        QueueUrls {
                            queue: format!("http://127.0.0.1:1/123456789012/q-{}", k.as_str()),
                            dlq: format!("http://127.0.0.1:1/123456789012/d-{}", k.as_str()),
                        },
                    )
                })
                .collect(),
            kms_key_arn: "arn:aws:kms:eu-central-1:123456789012:key/k".into(),
        };
        let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
        let globals = template
            .split("    Environment:\n      Variables:\n")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        let expected: Vec<&str> = globals
            .lines()
            .filter_map(|l| l.trim().split(':').next())
            .filter(|n| !n.is_empty())
            .collect();

        let env = stack.template_env();

        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        let mut sorted = expected.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        // And the process gets an AWS configuration that reaches moto only.
        let f = stack.function_env("http://127.0.0.1:9");
        assert_eq!(f["AWS_ENDPOINT_URL"], "http://127.0.0.1:9");
        assert_eq!(
            stack.queue_arn("http://127.0.0.1:1/123456789012/q-ga4"),
            "arn:aws:sqs:eu-central-1:123456789012:q-ga4"
        );
    }
}
