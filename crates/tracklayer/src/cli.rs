//! Command-line arguments: one typed struct, parsed once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tracklayer_core::email::Email;
use tracklayer_core::workspace::Region;

#[derive(Debug, Parser)]
#[command(
    name = "tracklayer",
    version,
    about = "Server-side tracking and event delivery"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TRACKLAYER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log output (debug level).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Where commands act: `local` (a data directory) or `aws` (a deployed stack, through the
    /// operator's own AWS credentials; `init` only).
    #[arg(long, value_enum, default_value_t = Backend::Local, env = "TRACKLAYER_BACKEND")]
    pub backend: Backend,
    /// AWS region of the stack (`--backend aws`); default `AWS_REGION`.
    #[arg(long = "region", id = "aws_region", value_name = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// Name of the deployed stack (`--backend aws`); default `tracklayer-us` or `tracklayer-eu`
    /// after the region's residency, as samconfig.toml deploys them.
    #[arg(long, env = "TRACKLAYER_STACK")]
    pub stack: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where commands act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// A data directory (embedded SQLite), as `tracklayer serve` uses.
    Local,
    /// A stack deployed with `sam deploy` (DynamoDB, KMS).
    Aws,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// Where TrackLayer keeps its embedded database, master key and outbox.
    #[arg(long, default_value = "./.tracklayer", env = "TRACKLAYER_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the first workspace, an admin token and a write key: in a new data directory,
    /// or (`--backend aws`) in a deployed stack.
    Init(InitArgs),
    /// Serve the tracking API and run the background workers, on embedded storage.
    Serve(ServeArgs),
    /// Manage destinations on a data directory.
    #[command(subcommand)]
    Destinations(DestinationsCommand),
    /// Manage API keys (ingest write keys, service tokens) on a data directory.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage admin API users on a data directory.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Residency region of the workspace (fixed for its life); default `us`. With
    /// `--backend aws` it is the stack's residency and may be left out.
    #[arg(long, value_parser = parse_region)]
    pub region: Option<Region>,
    /// Workspace name.
    #[arg(long, default_value = "Default workspace")]
    pub name: String,
    /// The owner's email address (DSR and key-expiry mail go there); default
    /// `owner@<workspace id>.invalid`, changed later with `PATCH /admin/v1/users/usr_owner`.
    #[arg(long, value_parser = parse_email)]
    pub email: Option<Email>,
    /// Print exactly one JSON object: workspace_id, region, admin_token, write_key, and
    /// data_dir and console_sign_in_link (local) or stack and aws_region (aws).
    #[arg(long)]
    pub json: bool,
    /// Where `tracklayer serve` will be reached: the printed one-time console sign-in link
    /// starts with it.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_parser = parse_public_url, env = "TRACKLAYER_PUBLIC_URL")]
    pub public_url: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TRACKLAYER_LISTEN")]
    pub listen: SocketAddr,
    /// Where the console is reached, e.g. behind a proxy (mailed invitation and reset links
    /// start with it); default `http(s)://<the address listened on>`.
    #[arg(long, value_parser = parse_public_url, env = "TRACKLAYER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Region of the workspace created when the data directory is empty.
    #[arg(long, value_parser = parse_region, default_value = "us")]
    pub region: Region,
    /// Let destinations reach loopback and private addresses (local development and tests only).
    #[arg(long)]
    pub allow_private_egress: bool,
    /// Requests per second allowed per write key.
    #[arg(long, default_value_t = 1000, env = "TRACKLAYER_RATE_LIMIT")]
    pub rate_limit: u32,
    /// Requests per second allowed per client address (IPv6: per /64) on the tracking API,
    /// whatever the write key, checked before the body is read. Behind a proxy, set
    /// --trusted-proxies, or every client shares the proxy's address.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..), env = "TRACKLAYER_RATE_LIMIT_PER_IP")]
    pub rate_limit_per_ip: u32,
    /// Decompressed bytes allowed per compressed byte of a gzip/deflate request body; past it,
    /// 413 (the decompressed body is also capped at the request limit).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub gzip_max_ratio: u64,
    /// Header fields allowed in one request; past it, 431.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_headers: u64,
    /// Bytes allowed in a request line and its header fields; past it, 431.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1024..=1_048_576))]
    pub max_header_bytes: u64,
    /// Request-body bytes held at once across all connections; a body beyond it is answered
    /// 503 with Retry-After.
    #[arg(long, default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1_048_576..=4_294_967_295))]
    pub max_body_bytes_in_flight: u64,
    /// Tracking requests between their preparation and their stored, queued events at once
    /// (each holds its prepared batch until storage takes it); the next wait, and past 1,024
    /// waiting are answered 503 with Retry-After. More use more memory under load.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=1024), env = "TRACKLAYER_MAX_BATCHES_IN_FLIGHT")]
    pub max_batches_in_flight: u32,
    /// Failed authentications allowed per minute from one address, and for one key id,
    /// before both APIs answer 429 with Retry-After.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..), env = "TRACKLAYER_AUTH_FAILURE_LIMIT")]
    pub auth_failure_limit: u32,
    /// How often expired rows are deleted, in seconds.
    #[arg(long, default_value_t = 60)]
    pub sweep_interval_secs: u64,
    /// How often API keys are checked for expiry warnings (14 and 3 days ahead), in seconds.
    #[arg(long, default_value_t = 3600)]
    pub key_expiry_check_secs: u64,
    /// Take the client IP from X-Forwarded-For (only behind a proxy you trust): the entry
    /// the outermost of --trusted-proxies proxies appended (default 1).
    #[arg(long)]
    pub trust_forwarded_for: bool,
    /// How many trusted proxies append to X-Forwarded-For in front of the server; the client
    /// is the N-th entry from the right. Implies --trust-forwarded-for.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub trusted_proxies: Option<u8>,
    /// Seconds from a request's first byte to the end of its head; a slower client is
    /// disconnected.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds from a request's head to the end of its body; a slower body is answered 408.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Connections open at once; the next waits in the listen backlog until one closes.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_connections: u64,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key. TLS 1.3
    /// only, and every response carries Strict-Transport-Security.
    #[arg(long, requires = "tls_key", env = "TRACKLAYER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "TRACKLAYER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Also accept TLS 1.2, with ECDHE key exchange and AES-GCM or ChaCha20-Poly1305 only.
    #[arg(long, requires = "tls_cert")]
    pub tls_allow_1_2: bool,
    /// How often open data-subject requests are processed, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    pub dsr_interval_ms: u64,
    /// How long after suppressing an erased subject deleting starts, in milliseconds (at
    /// least ingest's 5-second settings cache, so no event of the subject slips in).
    #[arg(long, default_value_t = 10_000)]
    pub dsr_propagation_ms: u64,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// How destinations are called.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Backoff base in milliseconds: attempt n waits up to base·2^(n−1), full jitter.
    #[arg(long, default_value_t = 30_000)]
    pub retry_base_ms: u64,
    /// Longest backoff in milliseconds.
    #[arg(long, default_value_t = 3_600_000)]
    pub retry_cap_ms: u64,
    /// Attempts before a message goes to the dead-letter queue.
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
    /// Timeout of one request to a destination, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub egress_timeout_ms: u64,
    /// Cooldown of a destination's circuit after repeated failures, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub breaker_cooldown_ms: u64,
    /// How often a paused destination's messages are looked at again, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    pub paused_recheck_ms: u64,
    /// How long to wait to fill a batch of queue messages, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub batch_window_ms: u64,
    /// How long a received message stays hidden while it is delivered, in milliseconds: the
    /// messages a crashed process had received come back this long after their receive.
    #[arg(long, default_value_t = 120_000)]
    pub visibility_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Add a destination from a JSON definition (see the README).
    Add(AddDestinationArgs),
    /// List destinations as a table (id, name, kind, status, paused); `--json` prints each
    /// destination in full (secrets are never shown).
    List(OperatorArgs),
    /// Pause a destination: its messages wait in its queue.
    Pause(DestinationArgs),
    /// Resume a paused destination.
    Resume(DestinationArgs),
    /// Move a destination's dead letters back to its queue.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Workspace id (needed only when the data directory holds several).
    #[arg(long)]
    pub workspace: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddDestinationArgs {
    #[command(flatten)]
    pub ws: WorkspaceArgs,
    /// Allow an endpoint on loopback or a private network (local development and tests only).
    #[arg(long)]
    pub allow_private_egress: bool,
    /// The definition as JSON: {"name","kind","config","secrets",...}; `-` reads stdin.
    #[arg(long)]
    pub json: String,
}

#[derive(Debug, Args)]
pub struct DestinationArgs {
    #[command(flatten)]
    pub ws: WorkspaceArgs,
    /// Destination id (dst_...).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub ws: WorkspaceArgs,
    /// Destination id (dst_...).
    pub id: String,
    /// Only dead letters that died at or after this time: RFC 3339, or a date YYYY-MM-DD
    /// (the start of that day, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Only dead letters that died at or before this time: RFC 3339, or a date YYYY-MM-DD
    /// (the start of that day, UTC).
    #[arg(long)]
    pub until: Option<String>,
}

impl ServeArgs {
    /// The HTTP server's timeouts and connection cap.
    pub fn server_limits(&self) -> tracklayer_http::server::ServerLimits {
        tracklayer_http::server::ServerLimits {
            header_read_timeout: Duration::from_secs(self.header_timeout_secs),
            body_read_timeout: Duration::from_secs(self.body_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            head: tracklayer_http::limits::HeadLimits {
                max_headers: usize::try_from(self.max_headers).unwrap_or(usize::MAX),
                max_header_bytes: usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX),
            },
            max_body_bytes_in_flight: usize::try_from(self.max_body_bytes_in_flight)
                .unwrap_or(usize::MAX),
        }
    }

    /// The TLS configuration of --tls-cert/--tls-key, or none for plain HTTP.
    pub fn tls(&self) -> anyhow::Result<Option<tracklayer_http::tls::Tls>> {
        use tracklayer_http::tls::{Tls, TlsVersions};
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let versions = if self.tls_allow_1_2 {
            TlsVersions::Tls13AndTls12
        } else {
            TlsVersions::Tls13
        };
        Ok(Some(Tls::from_pem_files(cert, key, versions)?))
    }

    /// How many proxies append to X-Forwarded-For (0: the header is ignored).
    pub fn trusted_proxies(&self) -> usize {
        match (self.trusted_proxies, self.trust_forwarded_for) {
            (Some(n), _) => usize::from(n),
            (None, true) => 1,
            (None, false) => 0,
        }
    }
}

/// An http(s) base URL, without a trailing slash.
fn parse_public_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(
            "must be an http(s) URL with a host, e.g. https://tracklayer.example.com".into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn parse_email(s: &str) -> Result<Email, String> {
    Email::parse(s).map_err(|e| e.to_string())
}

fn parse_region(s: &str) -> Result<Region, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// The workspace an operator command acts on, and how it prints.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub ws: WorkspaceArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an ingest write key or a service token; its secret is printed once.
    Create(CreateKeyArgs),
    /// List keys: prefix, kind, role, dates (never a secret).
    List(OperatorArgs),
    /// Issue a successor key; the old one keeps working for the overlap.
    Rotate(RotateKeyArgs),
    /// Revoke a key (running servers refuse it within 5 s).
    Revoke(KeyIdArgs),
}

/// What a new key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKindArg {
    /// An ingest write key (tracking API).
    Ingest,
    /// A service token for the admin API, with a role.
    Svc,
    /// An identity provider's SCIM provisioning token (`/scim/v2` only).
    Scim,
}

/// An admin API role (whitepaper §04).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Editor,
    Viewer,
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    #[command(flatten)]
    pub out: OperatorArgs,
    /// `ingest` (write key) or `svc` (service token; needs --role).
    #[arg(long, value_enum)]
    pub kind: KeyKindArg,
    /// Role of a service token.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// A name to recognize the key by.
    #[arg(long)]
    pub name: Option<String>,
    /// Days until the key expires (1 to 90; default 90).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=tracklayer_core::keys::MAX_KEY_LIFETIME_DAYS))]
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub out: OperatorArgs,
    /// Key id (as `keys list` shows it).
    pub id: String,
    /// Days the old key keeps working (0 to 7; default 7).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=tracklayer_core::admin::MAX_ROTATION_OVERLAP_DAYS))]
    pub overlap_days: Option<i64>,
}

#[derive(Debug, Args)]
pub struct KeyIdArgs {
    #[command(flatten)]
    pub out: OperatorArgs,
    /// Key id (as `keys list` shows it).
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user with a role.
    Invite(InviteArgs),
    /// List users and their roles.
    List(OperatorArgs),
    /// Change a user's role (the last admin cannot be demoted).
    SetRole(SetRoleArgs),
    /// Remove a user and revoke their tokens (the last admin cannot be removed).
    Remove(UserIdArgs),
}

// nosemgrep: tl-debug-derive-pii — the operator's own command line, never logged
#[derive(Debug, Args)]
pub struct InviteArgs {
    #[command(flatten)]
    pub out: OperatorArgs,
    /// The user's email address.
    pub email: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
}

#[derive(Debug, Args)]
pub struct SetRoleArgs {
    #[command(flatten)]
    pub out: OperatorArgs,
    /// User id (usr_...).
    pub id: String,
    #[arg(value_enum)]
    pub role: RoleArg,
}

#[derive(Debug, Args)]
pub struct UserIdArgs {
    #[command(flatten)]
    pub out: OperatorArgs,
    /// User id (usr_...).
    pub id: String,
}
