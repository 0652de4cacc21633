//! TrackLayer's Lambda functions end to end on emulated AWS: the built function binaries run
//! under a Lambda Runtime API emulator ([`runtime`]), get the events API Gateway and the SQS
//! event source mapping would give them ([`events`]), and reach moto for every AWS service
//! ([`stack`]), optionally through a request meter ([`meter`]); [`gateway`] puts an HTTP
//! listener in front of them for clients that speak HTTP only.

pub mod events;
pub mod function;
pub mod gateway;
pub mod meter;
pub mod runtime;
pub mod stack;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use secrecy::ExposeSecret;
use serde_json::Value;
use tracklayer_aws::{AwsClients, DynamoControlStore, KmsKeyring};
use tracklayer_core::clock::{SystemClock, SystemIds};
use tracklayer_core::control_plane::Control;
use tracklayer_core::destination::DestinationKind;

use events::{batch_item_failures, sqs_event, HttpRequest, HttpResponse, SqsRecord};
use function::{function_bin, LambdaProcess};
use stack::{clients, Stack, ESM_ACCESS_KEY};

/// An axum app served on `127.0.0.1:<free port>` by a task that stops when this drops.
struct LocalServer {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LocalServer {
    async fn start(app: axum::Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The functions of a stack, running, and the event source mapping that feeds deliver.
pub struct Deployment {
    pub stack: Stack,
    /// The AWS endpoint the functions use (moto, or a meter in front of it).
    pub endpoint: String,
    functions: BTreeMap<String, LambdaProcess>,
    esm: AwsClients,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("stack", &self.stack.residency)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What the seeded workspace's operator got, once.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub workspace_id: String,
    pub write_key: String,
    pub admin_token: String,
}

/// What one drain of a queue did.
#[derive(Debug, Clone, Default)]
pub struct Drained {
    pub invocations: usize,
    pub messages: usize,
    pub failed: usize,
}

impl Deployment {
    /// Starts `names` (of ingest, deliver, admin, dsr) for `stack`, reaching AWS at
    /// `endpoint`, with `extra_env` on top of the template's variables.
    pub async fn start(
        stack: Stack,
        endpoint: &str,
        names: &[&str],
        extra_env: &BTreeMap<String, String>,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut env = stack.function_env(endpoint);
        env.extend(extra_env.clone());
        let mut functions = BTreeMap::new();
        for name in names {
            let p =
                LambdaProcess::start(&function_bin(name), name, &stack.aws_region, &env, log_dir)
                    .await?;
            functions.insert((*name).to_owned(), p);
        }
        for p in functions.values() {
            p.wait_ready(Duration::from_secs(20)).await?;
        }
        let esm = clients(endpoint, &stack.aws_region, ESM_ACCESS_KEY).await;
        Ok(Self {
            stack,
            endpoint: endpoint.to_owned(),
            functions,
            esm,
        })
    }

    /// The running function `name`.
    pub fn function(&self, name: &str) -> &LambdaProcess {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not started"))
    }

    pub fn functions(&self) -> impl Iterator<Item = &LambdaProcess> {
        self.functions.values()
    }

    /// Creates a workspace of this stack's residency with its first admin token and write
    /// key, directly in the stack's tables (the AWS bootstrap an operator runs once).
    pub async fn seed_workspace(&self, moto: &str, name: &str) -> anyhow::Result<Seeded> {
        let c = clients(moto, &self.stack.aws_region, "AKIDOPERATOR00000000").await;
        let store = DynamoControlStore::new(c.dynamodb.clone(), &self.stack.tables.control);
        let keyring = KmsKeyring::new(
            c.kms.clone(),
            &self.stack.kms_key_arn,
            Duration::from_secs(60),
        );
        let control = Control {
            store: &store,
            keyring: &keyring,
            clock: &SystemClock,
            ids: &SystemIds,
        };
        let boot = control
            .bootstrap(self.stack.residency, name)
            .await
            .context("bootstrap a workspace on moto")?;
        Ok(Seeded {
            workspace_id: boot.workspace.id.as_str().to_owned(),
            write_key: boot.write_key.expose_secret().to_owned(),
            admin_token: boot.admin_token.expose_secret().to_owned(),
        })
    }

    /// Sends `req` to the function the HTTP API routes it to (`/v1/...` and `/healthz` →
    /// ingest, else admin: the admin API and the console).
    pub async fn http(&self, req: HttpRequest) -> anyhow::Result<HttpResponse> {
        let name = if req.path.starts_with("/v1/") || req.path == "/healthz" {
            "ingest"
        } else {
            "admin"
        };
        self.function(name).http(req).await
    }

    /// Adds a destination through the admin API; returns its id.
    pub async fn add_destination(&self, admin_token: &str, spec: &Value) -> anyhow::Result<String> {
        let resp = self
            .http(
                HttpRequest::new("POST", "/admin/v1/destinations")
                    .bearer(admin_token)
                    .json(spec),
            )
            .await?;
        anyhow::ensure!(
            resp.status == 201 || resp.status == 200,
            "adding a destination answered {}: {}",
            resp.status,
            String::from_utf8_lossy(&resp.body)
        );
        resp.json()["id"]
            .as_str()
            .map(str::to_owned)
            .context("the created destination has no id")
    }

    /// Does what the event source mapping of `kind`'s queue does until the queue is empty:
    /// receives up to 10 messages (the template's `BatchSize`), invokes deliver with them
    /// as an SQS event, and deletes those not reported in `batchItemFailures` (none if the
    /// invocation failed).
    pub async fn drain(&self, kind: DestinationKind) -> anyhow::Result<Drained> {
        let url = &self.stack.queues[&kind].queue;
        let arn = self.stack.queue_arn(url);
        let deliver = self.function("deliver");
        let mut drained = Drained::default();
        loop {
            let got = self
                .esm
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .context("receive from a delivery queue")?;
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(drained);
            }
            let records: Vec<SqsRecord> = messages
                .iter()
                .map(|m| SqsRecord {
                    message_id: m.message_id.clone().unwrap_or_default(),
                    receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
                    body: m.body.clone().unwrap_or_default(),
                    md5_of_body: m.md5_of_body.clone().unwrap_or_default(),
                    attributes: m
                        .attributes
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect(),
                    message_attributes: m
                        .message_attributes
                        .iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?)))
                        .collect(),
                })
                .collect();
            let event = sqs_event(&records, &arn, &self.stack.aws_region);
            let outcome = deliver.invoke(&event, Duration::from_secs(60)).await?;
            drained.invocations += 1;
            drained.messages += records.len();
            let failed = match outcome.into_response() {
                Ok(resp) => batch_item_failures(&resp),
                Err(_) => records.iter().map(|r| r.message_id.clone()).collect(),
            };
            drained.failed += failed.len();
            let entries: Vec<DeleteMessageBatchRequestEntry> = records
                .iter()
                .enumerate()
                .filter(|(_, r)| !failed.contains(&r.message_id))
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.receipt_handle)
                        .build()
                        .expect("id and receipt handle are set")
                })
                .collect();
            if !entries.is_empty() {
                self.esm
                    .sqs
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .context("delete delivered messages")?;
            }
            if !failed.is_empty() && failed.len() == records.len() {
                // Everything came back: the rest waits for its visibility timeout.
                return Ok(drained);
            }
        }
    }

    /// Stops every function.
    pub fn stop(&self) {
        for p in self.functions.values() {
            p.stop();
        }
    }
}
