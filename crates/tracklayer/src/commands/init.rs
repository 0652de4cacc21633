//! `tracklayer init`: a new data directory with its first workspace.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
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

/// Prints the new workspace and its secrets (shown once): as JSON, `place`'s fields after the
/// workspace's, or as text saying it was created `in <place_in_words>`.
pub(super) fn print_bootstrap(
    boot: &Bootstrapped,
    place: Value,
    place_in_words: &str,
    as_json: bool,
) {
    if as_json {
        let mut out = json!({
            "workspace_id": boot.workspace.id,
            "region": boot.workspace.region,
            "admin_token": boot.admin_token.expose_secret(),
            "write_key": boot.write_key.expose_secret(),
        });
        if let (Some(out), Value::Object(place)) = (out.as_object_mut(), place) {
            out.extend(place);
        }
        println!("{out}");
    } else {
        println!(
            "Created workspace {} (region {}) in {place_in_words}",
            boot.workspace.id, boot.workspace.region
        );
        println!("These secrets are shown once; store them now:");
        println!("  admin token: {}", boot.admin_token.expose_secret());
        println!("  write key:   {}", boot.write_key.expose_secret());
    }
}

/// [`print_bootstrap`] for a data directory.
pub(super) fn print_local_bootstrap(boot: &Bootstrapped, dir: &DataDir, as_json: bool) {
    let root = dir.root().display().to_string();
    print_bootstrap(boot, json!({ "data_dir": root }), &root, as_json);
}

pub(super) async fn init(args: InitArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(args.dir.data_dir);
    let region = args.region.unwrap_or(Region::Us);
    let (_, boot) = bootstrap(dir.clone(), region, &args.name, args.email).await?;
    print_local_bootstrap(&boot, &dir, args.json);
    Ok(())
}
