//! `tracklayer keys …`: the admin API's key use cases for the operator on a data directory.

use secrecy::ExposeSecret;
use serde_json::json;
use tracklayer_core::admin::{CreatedKey, KeyRequest, KeyView};
use tracklayer_core::keys::KeyKind;

use super::operator::{explained, print_out, print_table, role, role_name, when, Operator};
use crate::cli::{KeyKindArg, KeysCommand};

pub(super) async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let req = KeyRequest {
                kind: match args.kind {
                    KeyKindArg::Ingest => KeyKind::Ingest,
                    KeyKindArg::Svc => KeyKind::Svc,
                    KeyKindArg::Scim => KeyKind::Scim,
                },
                role: args.role.map(role),
                name: args.name,
                expires_in_days: args.expires_in_days,
                // Browser-facing keys are made through the admin API (`"browser": true`).
                browser: false,
            };
            let created = explained(
                "cannot create the key",
                op.admin.create_key(&op.principal, req),
            )
            .await?;
            print_created(&created, None, args.out.json)?;
        }
        KeysCommand::List(out) => {
            let op = Operator::open(&out.ws).await?;
            let keys = explained("cannot list keys", op.admin.keys(&op.principal)).await?;
            print_out(out.json, &keys, |keys| print_keys(keys))?;
        }
        KeysCommand::Rotate(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let created = explained(
                &format!("cannot rotate key {}", args.id),
                op.admin
                    .rotate_key(&op.principal, &args.id, args.overlap_days),
            )
            .await?;
            let old = explained("cannot list keys", op.admin.keys(&op.principal))
                .await?
                .into_iter()
                .find(|k| k.id.as_str() == args.id);
            print_created(&created, old.as_ref(), args.out.json)?;
        }
        KeysCommand::Revoke(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let key = explained(
                &format!("cannot revoke key {}", args.id),
                op.admin.revoke_key(&op.principal, &args.id),
            )
            .await?;
            print_out(args.out.json, &key, |key| {
                println!(
                    "Revoked {} key {} ({}). Running servers refuse it within 5 s.",
                    key.kind.as_str(),
                    key.id,
                    key.prefix
                );
            })?;
        }
    }
    Ok(())
}

/// A new key and its secret, printed once; `replaced` is the key it succeeds, if rotated.
fn print_created(
    created: &CreatedKey,
    replaced: Option<&KeyView>,
    as_json: bool,
) -> anyhow::Result<()> {
    let key = &created.key;
    if as_json {
        let mut out = json!({"key": key, "secret": created.secret.expose_secret()});
        if let Some(old) = replaced {
            out["replaces"] = serde_json::to_value(old)?;
        }
        println!("{out}");
        return Ok(());
    }
    let what = match key.role {
        Some(r) => format!(
            "{} key {} (role {})",
            key.kind.as_str(),
            key.id,
            role_name(r)
        ),
        None => format!("{} key {}", key.kind.as_str(), key.id),
    };
    println!("Created {what}, expires {}.", when(key.expires_at));
    if let Some(old) = replaced {
        println!(
            "The old key {} keeps working until {}.",
            old.id,
            when(old.expires_at)
        );
    }
    println!("This secret is shown once; store it now:");
    println!("  {}", created.secret.expose_secret());
    Ok(())
}

fn print_keys(keys: &[KeyView]) {
    let never = || "-".to_owned();
    print_table(
        &[
            "ID",
            "PREFIX",
            "KIND",
            "ROLE",
            "NAME",
            "CREATED",
            "LAST USED",
            "EXPIRES",
            "REVOKED",
        ],
        keys.iter()
            .map(|k| {
                vec![
                    k.id.to_string(),
                    k.prefix.clone(),
                    k.kind.as_str().to_owned(),
                    k.role.map_or_else(never, |r| role_name(r).to_owned()),
                    k.name.clone(),
                    when(k.created_at),
                    k.last_used_at.map_or_else(never, when),
                    when(k.expires_at),
                    k.revoked_at.map_or_else(never, when),
                ]
            })
            .collect(),
    );
}
