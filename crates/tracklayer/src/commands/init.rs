//! `tracklayer init`: a new data directory with its first workspace.

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tracklayer_core::admin::{AdminService, Principal, SignInLink};
use tracklayer_core::control_plane::Bootstrapped;
use tracklayer_core::email::Email;
use tracklayer_core::workspace::{Region, WorkspaceId};
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

/// The owner's one-time console sign-in link (valid 1 hour), printed after the secrets:
/// a newcomer reaches the console in one step.
pub(super) async fn print_sign_in_link(
    admin: &AdminService,
    ws: &WorkspaceId,
    as_json: bool,
) -> anyhow::Result<SignInLink> {
    let link = admin.owner_sign_in_link(&Principal::operator(ws)).await?;
    if !as_json {
        say_sign_in_link(&link);
    }
    Ok(link)
}

fn say_sign_in_link(link: &SignInLink) {
    println!(
        "Sign in to the console (the link works once, until {}):\n  {}",
        link.expires_at, link.url
    );
}

/// A new data directory with its first workspace, and the owner's console sign-in link.
pub(super) async fn init_local(args: InitArgs) -> anyhow::Result<(Bootstrapped, SignInLink)> {
    let dir = DataDir::new(args.dir.data_dir);
    let region = args.region.unwrap_or(Region::Us);
    let (stack, boot) = bootstrap(dir.clone(), region, &args.name, args.email).await?;
    let admin = stack
        .admin_service(region, false)
        .with_public_url(args.public_url);
    let link = admin
        .owner_sign_in_link(&Principal::operator(&boot.workspace.id))
        .await?;
    let root = dir.root().display().to_string();
    let place = json!({ "data_dir": root, "console_sign_in_link": link.url });
    print_bootstrap(&boot, place, &root, args.json);
    if !args.json {
        say_sign_in_link(&link);
    }
    Ok((boot, link))
}

pub(super) async fn init(args: InitArgs) -> anyhow::Result<()> {
    init_local(args).await.map(drop)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::stack::LocalStack;

    fn init_args(dir: &std::path::Path, extra: &[&str]) -> InitArgs {
        let mut argv = vec![
            "tracklayer",
            "init",
            "--data-dir",
            dir.to_str().unwrap(),
            "--json",
        ];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Command::Init(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn init_makes_a_one_time_owner_sign_in_link_under_the_public_url() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let args = init_args(&dir, &["--public-url", "https://console.example.com/"]);
        let (boot, link) = init_local(args).await.unwrap();
        let prefix = "https://console.example.com/sign-in/link/";
        assert!(link.url.starts_with(prefix), "{}", link.url);
        let token = &link.url[prefix.len()..];
        let stack = LocalStack::open(DataDir::new(&dir)).unwrap();
        let admin = stack.admin_service(boot.workspace.region, false);
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let signed = admin.redeem_sign_in_link(token, ip).await.unwrap();
        let owner = admin.console_session(&signed.token).await.unwrap();
        assert_eq!(owner.principal.actor, "user:usr_owner");
        assert!(
            admin.redeem_sign_in_link(token, ip).await.is_err(),
            "one use only"
        );
    }

    #[test]
    fn the_public_url_must_be_http_with_a_host() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["ftp://x.example", "not a url", "https://x.example/?q=1"] {
            let argv = [
                "tracklayer",
                "init",
                "--data-dir",
                tmp.path().to_str().unwrap(),
                "--public-url",
                bad,
            ];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad}");
        }
    }
}
