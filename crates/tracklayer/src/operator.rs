//! `tracklayer keys …` and `tracklayer users …`: the admin API's key and user use cases for the
//! operator on a data directory, as `cli:operator` (an admin of the workspace) in the audit log.

use anyhow::anyhow;
use secrecy::ExposeSecret;
use serde_json::json;
use time::{OffsetDateTime, UtcOffset};
use tracklayer_core::admin::{
    AdminError, AdminService, CreatedKey, KeyRequest, KeyView, Principal,
};
use tracklayer_core::keys::{KeyKind, Role};
use tracklayer_core::workspace::User;
use tracklayer_local::DataDir;

use crate::cli::{KeyKindArg, KeysCommand, OperatorArgs, RoleArg, UsersCommand, WorkspaceArgs};
use crate::stack::LocalStack;

/// The control plane of one workspace, acting as the operator.
struct Operator {
    admin: AdminService,
    principal: Principal,
}

impl Operator {
    async fn open(args: &WorkspaceArgs) -> anyhow::Result<Self> {
        let stack = LocalStack::open(DataDir::new(args.dir.data_dir.clone()))?;
        let ws = stack.workspace(args.workspace.as_deref()).await?;
        Ok(Self {
            admin: stack.admin_service(ws.region, false),
            principal: Principal::operator(&ws.id),
        })
    }
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Create(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let req = KeyRequest {
                kind: match args.kind {
                    KeyKindArg::Ingest => KeyKind::Ingest,
                    KeyKindArg::Svc => KeyKind::Svc,
                },
                role: args.role.map(role),
                name: args.name,
                expires_in_days: args.expires_in_days,
            };
            let created = op
                .admin
                .create_key(&op.principal, req)
                .await
                .map_err(|e| explain("cannot create the key", e))?;
            print_created(&created, None, args.out.json)?;
        }
        KeysCommand::List(out) => {
            let op = Operator::open(&out.ws).await?;
            let keys = op
                .admin
                .keys(&op.principal)
                .await
                .map_err(|e| explain("cannot list keys", e))?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_keys(&keys);
            }
        }
        KeysCommand::Rotate(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let created = op
                .admin
                .rotate_key(&op.principal, &args.id, args.overlap_days)
                .await
                .map_err(|e| explain(&format!("cannot rotate key {}", args.id), e))?;
            let old = op
                .admin
                .keys(&op.principal)
                .await
                .map_err(|e| explain("cannot list keys", e))?
                .into_iter()
                .find(|k| k.id.as_str() == args.id);
            print_created(&created, old.as_ref(), args.out.json)?;
        }
        KeysCommand::Revoke(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let key = op
                .admin
                .revoke_key(&op.principal, &args.id)
                .await
                .map_err(|e| explain(&format!("cannot revoke key {}", args.id), e))?;
            if args.out.json {
                println!("{}", serde_json::to_string_pretty(&key)?);
            } else {
                println!(
                    "Revoked {} key {} ({}). Running servers refuse it within 5 s.",
                    key.kind.as_str(),
                    key.id,
                    key.prefix
                );
            }
        }
    }
    Ok(())
}

pub async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Invite(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let user = op
                .admin
                .invite_user(&op.principal, &args.email, role(args.role))
                .await
                .map_err(|e| explain("cannot invite the user", e))?;
            print_user(&user, &args.out, "Invited")?;
        }
        UsersCommand::List(out) => {
            let op = Operator::open(&out.ws).await?;
            let users = op
                .admin
                .users(&op.principal)
                .await
                .map_err(|e| explain("cannot list users", e))?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                print_table(
                    &["ID", "EMAIL", "ROLE", "CREATED"],
                    users
                        .iter()
                        .map(|u| {
                            vec![
                                u.id.clone(),
                                u.email.as_str().to_owned(),
                                role_name(u.role).to_owned(),
                                when(u.created_at),
                            ]
                        })
                        .collect(),
                );
            }
        }
        UsersCommand::SetRole(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let user = op
                .admin
                .set_role(&op.principal, &args.id, role(args.role))
                .await
                .map_err(|e| explain(&format!("cannot change the role of {}", args.id), e))?;
            print_user(&user, &args.out, "Updated")?;
        }
        UsersCommand::Remove(args) => {
            let op = Operator::open(&args.out.ws).await?;
            op.admin
                .remove_user(&op.principal, &args.id)
                .await
                .map_err(|e| explain(&format!("cannot remove user {}", args.id), e))?;
            if args.out.json {
                println!("{}", json!({ "removed": args.id }));
            } else {
                println!(
                    "Removed user {}; their personal tokens are revoked.",
                    args.id
                );
            }
        }
    }
    Ok(())
}

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Admin => Role::Admin,
        RoleArg::Editor => Role::Editor,
        RoleArg::Viewer => Role::Viewer,
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Editor => "editor",
        Role::Viewer => "viewer",
    }
}

/// An [`AdminError`] as one sentence for the operator, naming the flag at fault.
fn explain(doing: &str, e: AdminError) -> anyhow::Error {
    let why = match e {
        AdminError::Invalid { field, detail } if field.is_empty() => detail,
        AdminError::Invalid { field, detail } if field == "email" => format!("EMAIL: {detail}"),
        AdminError::Invalid { field, detail } => {
            format!("--{}: {detail}", field.replace('_', "-"))
        }
        AdminError::NotFound(what) => {
            format!(
                "no such {} in this workspace",
                what.replace("api key", "API key")
            )
        }
        other => other.to_string(),
    };
    anyhow!("{doing}: {why}")
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

fn print_user(user: &User, out: &OperatorArgs, verb: &str) -> anyhow::Result<()> {
    if out.json {
        println!("{}", serde_json::to_string_pretty(user)?);
    } else {
        println!(
            "{verb} user {} ({}) with role {}.",
            user.id,
            user.email.as_str(),
            role_name(user.role)
        );
    }
    Ok(())
}

/// A time to the minute, in UTC.
fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Columns padded to their widest cell, two spaces apart.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
