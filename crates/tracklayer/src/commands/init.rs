//! `tracklayer init`: a new data directory with its first workspace.

use secrecy::ExposeSecret;
use serde_json::json;
use tracklayer_core::control_plane::Bootstrapped;
use tracklayer_core::email::Email;
use tracklayer_core::workspace::Region;
use tracklayer_local::DataDir;

use crate::cli::InitArgs;
use crate::stack::LocalStack;

pub(super) async fn bootstrap(
    dir: DataDir,
    region: Region,
    name: &str,
    owner_email: Option<Email>,
) -> anyhow::Result<(LocalStack, Bootstrapped)> {
    let stack = LocalStack::create(dir)?;
    let boot = stack
        .control()
        .bootstrap_owned_by(region, name, owner_email)
        .await?;
    Ok((stack, boot))
}

pub(super) fn print_bootstrap(boot: &Bootstrapped, dir: &DataDir, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({
                "workspace_id": boot.workspace.id,
                "region": boot.workspace.region,
                "admin_token": boot.admin_token.expose_secret(),
                "write_key": boot.write_key.expose_secret(),
                "data_dir": dir.root().display().to_string(),
            })
        );
    } else {
        println!(
            "Created workspace {} (region {}) in {}",
            boot.workspace.id,
            boot.workspace.region,
            dir.root().display()
        );
        println!("These secrets are shown once; store them now:");
        println!("  admin token: {}", boot.admin_token.expose_secret());
        println!("  write key:   {}", boot.write_key.expose_secret());
    }
}

pub(super) async fn init(args: InitArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(args.dir.data_dir);
    let region = args.region.unwrap_or(Region::Us);
    let (_, boot) = bootstrap(dir.clone(), region, &args.name, args.email).await?;
    print_bootstrap(&boot, &dir, args.json);
    Ok(())
}
