//! What each subcommand does: one module per subcommand.

mod destinations;
mod init;
mod keys;
mod operator;
mod serve;
mod users;

use anyhow::bail;
use serde_json::json;

use crate::cli::{Backend, Cli, Command};

/// Bad input that only a command can see (the argument parser took it as text): the CLI
/// exits with 2, as for the parser's own usage errors, and says what it expected.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.backend == Backend::Aws {
        return match cli.command {
            Command::Init(args) => {
                let target = crate::aws::Target::resolve(cli.aws_region, cli.stack, args.region)?;
                let boot = crate::aws::init(&target, &args.name, args.email).await?;
                let place = json!({ "stack": target.stack, "aws_region": target.aws_region });
                let in_words = format!("stack {} ({})", target.stack, target.aws_region);
                init::print_bootstrap(&boot, place, &in_words, args.json);
                Ok(())
            }
            _ => bail!(
                "--backend aws supports `init` only; manage a deployed stack through its admin API"
            ),
        };
    }
    if cli.aws_region.is_some() || cli.stack.is_some() {
        bail!("--region and --stack before the command name a deployed stack: add --backend aws");
    }
    match cli.command {
        Command::Init(args) => init::init(args).await,
        Command::Serve(args) => serve::serve(args).await,
        Command::Destinations(cmd) => destinations::destinations(cmd).await,
        Command::Keys(cmd) => keys::keys(cmd).await,
        Command::Users(cmd) => users::users(cmd).await,
    }
}
