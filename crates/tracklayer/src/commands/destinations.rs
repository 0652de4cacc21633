//! `tracklayer destinations …`.

use std::io::Read;

use anyhow::{bail, Context};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracklayer_core::admin::Principal;
use tracklayer_core::destination::{Destination, DestinationId, DestinationSpec};
use tracklayer_core::ports::{ControlReader, DeadLetterAdmin, ReplayFilter};
use tracklayer_local::DataDir;

use super::operator::print_table;
use super::UsageError;
use crate::cli::DestinationsCommand;
use crate::stack::LocalStack;

fn show(d: &Destination) -> serde_json::Value {
    json!({
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "config": d.config,
        "secrets": d.secret_hints,
        "consent_purposes": d.consent_purposes,
        "events": d.events,
        "endpoint": d.endpoint,
        "paused": d.paused,
        "created_at": d.created_at.format(&Rfc3339).unwrap_or_default(),
    })
}

/// `--since`/`--until`: an RFC 3339 time, or a date `YYYY-MM-DD` meaning the start of that day
/// in UTC. Anything else is a usage error naming the flag and both formats.
fn parse_time(flag: &str, v: Option<&str>) -> anyhow::Result<Option<OffsetDateTime>> {
    let Some(s) = v else { return Ok(None) };
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(Some(t));
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &day) {
        return Ok(Some(d.midnight().assume_utc()));
    }
    Err(UsageError(format!(
        "invalid value '{s}' for '{flag}': expected an RFC 3339 time (2026-01-05T10:00:00Z) \
         or a date YYYY-MM-DD (the start of that day, UTC)"
    ))
    .into())
}

/// Destinations as a table: id, name, kind, status (`paused`, `egress paused` while the
/// workspace pauses all egress, else `active`) and paused.
fn print_destinations(all: &[Destination], egress_paused: bool) {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    print_table(
        &["ID", "NAME", "KIND", "STATUS", "PAUSED"],
        all.iter()
            .map(|d| {
                let status = match (d.paused, egress_paused) {
                    (true, _) => "paused",
                    (false, true) => "egress paused",
                    (false, false) => "active",
                };
                vec![
                    d.id.to_string(),
                    d.name.clone(),
                    d.kind.as_str().to_owned(),
                    status.to_owned(),
                    yes_no(d.paused),
                ]
            })
            .collect(),
    );
}

pub(super) async fn destinations(cmd: DestinationsCommand) -> anyhow::Result<()> {
    match cmd {
        DestinationsCommand::Add(args) => {
            let stack = LocalStack::open(DataDir::new(args.ws.dir.data_dir))?;
            let ws = stack.workspace(args.ws.workspace.as_deref()).await?;
            let text = if args.json == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                args.json
            };
            let spec: DestinationSpec =
                // nosemgrep: tl-json-unbounded-body — the operator's own stdin, not a network body
                serde_json::from_str(&text).context("the destination definition is not valid")?;
            // Through the control plane: the egress guard checks its URLs, and it is audited.
            let admin = stack.admin_service(ws.region, args.allow_private_egress);
            let d = admin
                .create_destination(&Principal::operator(&ws.id), spec)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add the destination: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        DestinationsCommand::List(out) => {
            let stack = LocalStack::open(DataDir::new(out.ws.dir.data_dir))?;
            let ws = stack.workspace(out.ws.workspace.as_deref()).await?;
            let all = stack.control.destinations(&ws.id).await?;
            if out.json {
                let shown: Vec<_> = all.iter().map(show).collect();
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                print_destinations(&all, ws.security.egress_paused);
            }
        }
        DestinationsCommand::Pause(args) => set_paused(args, true).await?,
        DestinationsCommand::Resume(args) => set_paused(args, false).await?,
        DestinationsCommand::Replay(args) => {
            let stack = LocalStack::open(DataDir::new(args.ws.dir.data_dir))?;
            let ws = stack.workspace(args.ws.workspace.as_deref()).await?;
            let id = DestinationId::parse(&args.id)?;
            let Some(d) = stack.control.destination(&ws.id, &id).await? else {
                bail!("no destination {id} in workspace {}", ws.id);
            };
            let filter = ReplayFilter {
                destination_id: Some(id),
                since: parse_time("--since", args.since.as_deref())?,
                until: parse_time("--until", args.until.as_deref())?,
            };
            let moved = stack.queue.replay(d.kind, &filter).await?;
            println!(
                "{}",
                json!({"destination_id": d.id, "replayed_messages": moved})
            );
        }
    }
    Ok(())
}

async fn set_paused(args: crate::cli::DestinationArgs, paused: bool) -> anyhow::Result<()> {
    let stack = LocalStack::open(DataDir::new(args.ws.dir.data_dir))?;
    let ws = stack.workspace(args.ws.workspace.as_deref()).await?;
    let id = DestinationId::parse(&args.id)?;
    let d = stack.control().set_paused(&ws.id, &id, paused).await?;
    println!("{}", serde_json::to_string_pretty(&show(&d))?);
    Ok(())
}
