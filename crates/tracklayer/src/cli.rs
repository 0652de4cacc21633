//! Command-line arguments: one typed struct, parsed once.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
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
    #[command(subcommand)]
    pub command: Command,
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
    /// Create a data directory with a workspace, an admin token and a write key.
    Init(InitArgs),
    /// Serve the tracking API and run the background workers, on embedded storage.
    Serve(ServeArgs),
    /// Manage destinations on a data directory.
    #[command(subcommand)]
    Destinations(DestinationsCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Residency region of the workspace (fixed for its life).
    #[arg(long, value_parser = parse_region, default_value = "us")]
    pub region: Region,
    /// Workspace name.
    #[arg(long, default_value = "Default workspace")]
    pub name: String,
    /// Print exactly one JSON object: workspace_id, region, admin_token, write_key, data_dir.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TRACKLAYER_LISTEN")]
    pub listen: SocketAddr,
    /// Region of the workspace created when the data directory is empty.
    #[arg(long, value_parser = parse_region, default_value = "us")]
    pub region: Region,
    /// Let destinations reach loopback and private addresses (local development and tests only).
    #[arg(long)]
    pub allow_private_egress: bool,
    /// Requests per second allowed per write key.
    #[arg(long, default_value_t = 1000, env = "TRACKLAYER_RATE_LIMIT")]
    pub rate_limit: u32,
    /// How often expired rows are deleted, in seconds.
    #[arg(long, default_value_t = 60)]
    pub sweep_interval_secs: u64,
    /// Take the client IP from X-Forwarded-For (only behind a proxy you trust).
    #[arg(long)]
    pub trust_forwarded_for: bool,
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
}

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Add a destination from a JSON definition (see the README).
    Add(AddDestinationArgs),
    /// List destinations (secrets are never shown).
    List(WorkspaceArgs),
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
    /// Only dead letters that died at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only dead letters that died at or before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
}

fn parse_region(s: &str) -> Result<Region, String> {
    s.parse().map_err(|e| format!("{e}"))
}
