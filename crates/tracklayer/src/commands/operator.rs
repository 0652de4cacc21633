//! `tracklayer keys …` and `tracklayer users …`: the admin API's key and user use cases for the
//! operator on a data directory, as `cli:operator` (an admin of the workspace) in the audit log.

use anyhow::anyhow;
use time::{OffsetDateTime, UtcOffset};
use tracklayer_core::admin::{AdminError, AdminService, Principal};
use tracklayer_core::keys::Role;
use tracklayer_local::DataDir;

use crate::cli::{RoleArg, WorkspaceArgs};
use crate::stack::LocalStack;

/// The control plane of one workspace, acting as the operator.
pub(super) struct Operator {
    pub(super) admin: AdminService,
    pub(super) principal: Principal,
}

impl Operator {
    pub(super) async fn open(args: &WorkspaceArgs) -> anyhow::Result<Self> {
        let stack = LocalStack::open(DataDir::new(args.dir.data_dir.clone()))?;
        let ws = stack.workspace(args.workspace.as_deref()).await?;
        Ok(Self {
            admin: stack.admin_service(ws.region, false),
            principal: Principal::operator(&ws.id),
        })
    }
}

pub(super) fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Admin => Role::Admin,
        RoleArg::Editor => Role::Editor,
        RoleArg::Viewer => Role::Viewer,
    }
}

pub(super) fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Editor => "editor",
        Role::Viewer => "viewer",
    }
}

/// Awaits a use case; its error is explained as what the operator was `doing` ([`explain`]).
pub(super) async fn explained<T>(
    doing: &str,
    call: impl std::future::Future<Output = Result<T, AdminError>>,
) -> anyhow::Result<T> {
    call.await.map_err(|e| explain(doing, e))
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

/// A time to the minute, in UTC.
pub(super) fn when(t: OffsetDateTime) -> String {
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
pub(super) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
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

/// Prints `value` as pretty JSON with `--json`, else as `human` tells it.
pub(super) fn print_out<T: serde::Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}
