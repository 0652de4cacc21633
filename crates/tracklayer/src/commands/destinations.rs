//! `tracklayer destinations …`.

use std::io::Read;

use anyhow::{bail, Context};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracklayer_core::admin::Principal;
use tracklayer_core::destination::{Destination, DestinationId, DestinationSpec};
use tracklayer_core::ports::{ControlReader, DeliveryQueue, ReplayFilter};
use tracklayer_local::DataDir;

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

fn parse_time(flag: &str, v: Option<&str>) -> anyhow::Result<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339)
            .with_context(|| format!("{flag} must be an RFC 3339 time"))
    })
    .transpose()
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
                serde_json::from_str(&text).context("the destination definition is not valid")?;
            // Through the control plane: the egress guard checks its URLs, and it is audited.
            let admin = stack.admin_service(ws.region, args.allow_private_egress);
            let d = admin
                .create_destination(&Principal::operator(&ws.id), spec)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add the destination: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        DestinationsCommand::List(args) => {
            let stack = LocalStack::open(DataDir::new(args.dir.data_dir))?;
            let ws = stack.workspace(args.workspace.as_deref()).await?;
            let all: Vec<_> = stack
                .control
                .destinations(&ws.id)
                .await?
                .iter()
                .map(show)
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
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
