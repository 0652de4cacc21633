//! `tracklayer users …`: the admin API's user use cases for the operator on a data directory.

use anyhow::anyhow;
use serde_json::json;
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::User;

use super::operator::{explained, print_out, print_table, role, role_name, when, Operator};
use crate::cli::{OperatorArgs, UsersCommand};

pub(super) async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Invite(args) => {
            let op = Operator::open(&args.out.ws).await?;
            let user = explained(
                "cannot invite the user",
                op.admin
                    .invite_user(&op.principal, &args.email, role(args.role)),
            )
            .await?;
            print_user(&user, &args.out, "Invited")?;
        }
        UsersCommand::List(out) => {
            let op = Operator::open(&out.ws).await?;
            let users = explained("cannot list users", op.admin.users(&op.principal)).await?;
            print_out(out.json, &users, |users| {
                let rows = users.iter().map(|u| {
                    vec![
                        u.id.to_string(),
                        u.email.as_str().to_owned(),
                        role_name(u.role).to_owned(),
                        when(u.created_at),
                    ]
                });
                print_table(&["ID", "EMAIL", "ROLE", "CREATED"], rows.collect());
            })?;
        }
        UsersCommand::SetRole(args) => {
            let id = user_id(&args.id)?;
            let op = Operator::open(&args.out.ws).await?;
            let user = explained(
                &format!("cannot change the role of {}", args.id),
                op.admin.set_role(&op.principal, &id, role(args.role)),
            )
            .await?;
            print_user(&user, &args.out, "Updated")?;
        }
        UsersCommand::Remove(args) => {
            let id = user_id(&args.id)?;
            let op = Operator::open(&args.out.ws).await?;
            explained(
                &format!("cannot remove user {}", args.id),
                op.admin.remove_user(&op.principal, &id),
            )
            .await?;
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

/// The `ID` argument, parsed before anything is opened.
fn user_id(arg: &str) -> anyhow::Result<UserId> {
    UserId::parse(arg).map_err(|e| anyhow!("ID: {e}"))
}

fn print_user(user: &User, out: &OperatorArgs, verb: &str) -> anyhow::Result<()> {
    print_out(out.json, user, |user| {
        println!(
            "{verb} user {} ({}) with role {}.",
            user.id,
            user.email.as_str(),
            role_name(user.role)
        );
    })
}
