//! What the four Lambda functions (`functions/*`) share, so that each `main.rs` is wiring
//! only: JSON logs for CloudWatch, the configuration check at cold start, the AWS adapters
//! built once per process (as [`Ports`], from which each function builds only the use case it
//! runs), and the client address of an HTTP API request.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use lambda_http::request::RequestContext;
use tracklayer_aws::{
    AwsClients, AwsConfig, DynamoAuditLog, DynamoControlStore, DynamoDeliveryLog, DynamoDsrStore,
    DynamoEventStore, DynamoSessionStore, DynamoStats, KmsKeyring, SesMailer, SqsDeliveryQueue,
    StsRoles,
};
use tracklayer_core::clock::{Clock, SystemClock, SystemIds};
use tracklayer_core::dsr::service::{DsrConfig, DsrService};
use tracklayer_core::ingest::RecordThenEnqueue;
use tracklayer_core::services::{CommonPorts, Ports};

/// Structured JSON logs on stderr (the template's `LoggingConfig.LogFormat: JSON`), filtered
/// by `RUST_LOG` (default `info`). No identifier ever enters a log line.
pub fn init_telemetry() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .try_init();
}

/// Reads the configuration the template sets; on any problem prints every one of them and
/// exits with status 2, so that a misconfigured function fails its cold start visibly.
pub fn config_or_exit(function: &str) -> AwsConfig {
    match AwsConfig::from_env() {
        Ok(config) => {
            if config.allow_private_egress {
                tracing::warn!(
                    "private egress allowed: destinations may reach loopback and private addresses"
                );
            }
            config
        }
        Err(e) => {
            eprintln!("{function}: cannot start, the environment is invalid:");
            for problem in &e.problems {
                eprintln!("  - {problem}");
            }
            tracing::error!(problems = e.problems.len(), "invalid configuration");
            std::process::exit(2);
        }
    }
}

/// Every port of one process on its AWS adapter, built once at cold start over shared SDK
/// clients. Each function builds from [`Ports`] only the use case it runs, so it touches
/// only what its IAM policy allows.
pub struct AwsStack {
    pub config: AwsConfig,
    /// For [`tracklayer_core::services`]: destination URLs are refused by the egress guard
    /// (private ones allowed only if the configuration says so).
    pub ports: Ports,
    /// The delivery queues as SQS: also reads the records of a Lambda SQS event.
    pub queue: Arc<SqsDeliveryQueue>,
    /// STS `AssumeRole` for destinations signed with a customer's role (Firehose).
    pub roles: Arc<StsRoles>,
}

tracklayer_core::debug_fields!(AwsStack: config);

impl AwsStack {
    /// Loads the SDK configuration (credentials from the Lambda role) and builds the adapters.
    pub async fn load(config: AwsConfig) -> Self {
        let clients = AwsClients::load(&config).await;
        Self::new(config, &clients)
    }

    /// The adapters over already built clients (tests: moto).
    pub fn new(config: AwsConfig, clients: &AwsClients) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (db, tables) = (&clients.dynamodb, &config.tables);
        let keyring = Arc::new(KmsKeyring::new(
            clients.kms.clone(),
            &config.kms_key_id,
            config.data_key_cache,
        ));
        let events = Arc::new(DynamoEventStore::new(db.clone(), &tables.events));
        let queue = Arc::new(SqsDeliveryQueue::new(
            clients.sqs.clone(),
            config.queues.clone(),
            clock.clone(),
        ));
        let ports = Ports {
            common: CommonPorts {
                control: Arc::new(DynamoControlStore::new(db.clone(), &tables.control)),
                keyring: keyring.clone(),
                audit: Arc::new(DynamoAuditLog::new(db.clone(), &tables.audit, keyring)),
                delivery_log: Arc::new(DynamoDeliveryLog::new(db.clone(), &tables.delivery_log)),
                queue: queue.clone(),
                // Data-subject requests, the suppression list and access exports.
                dsr: Arc::new(DynamoDsrStore::new(
                    db.clone(),
                    &tables.control,
                    &tables.events,
                )),
                mailer: Arc::new(SesMailer::new(clients.ses.clone(), &config.ses_sender)),
                clock,
                ids: Arc::new(SystemIds),
            },
            ingest_store: Arc::new(RecordThenEnqueue::new(events.clone(), queue.clone())),
            events,
            sessions: Arc::new(DynamoSessionStore::new(db.clone(), &tables.control)),
            url_guard: Arc::new(egress_policy(&config)),
            // The overview's counters, on the delivery-log table.
            stats: Arc::new(DynamoStats::new(db.clone(), &tables.delivery_log)),
            connectors: tracklayer_connectors::connector,
            requirements: tracklayer_connectors::requirements::unmet,
            base_urls: tracklayer_connectors::default_base_url,
        };
        Self {
            ports,
            queue,
            roles: Arc::new(clients.sts.clone()),
            config,
        }
    }

    /// Which addresses destinations may reach: public https only, unless the configuration
    /// allows private egress (tests).
    pub fn egress_policy(&self) -> tracklayer_egress::EgressPolicy {
        egress_policy(&self.config)
    }

    /// The data-subject request use case on this stack (admin submits and reads; dsr runs).
    pub fn dsr_service(&self) -> DsrService {
        self.ports.dsr(DsrConfig::default())
    }
}

fn egress_policy(config: &AwsConfig) -> tracklayer_egress::EgressPolicy {
    tracklayer_egress::EgressPolicy {
        allow_private: config.allow_private_egress,
    }
}

/// Gives every request the client address API Gateway saw (`requestContext.http.sourceIp`)
/// as `ConnectInfo`, as `tracklayer serve` gets it from the socket. `X-Forwarded-For` is not
/// used: its first entry is whatever the client sent.
pub fn with_source_ip(router: Router) -> Router {
    router.layer(axum::middleware::map_request(
        |mut req: Request| async move {
            if let Some(ip) = source_ip(&req) {
                req.extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(ip, 0)));
            }
            req
        },
    ))
}

fn source_ip(req: &Request) -> Option<IpAddr> {
    match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
