//! Workspace numbers: the event tables key their rows by a small integer per workspace, not
//! by its 38-character id (`ws_us_` and 32 hex characters), which every row and every index
//! entry repeated. The `workspace_numbers` table maps one to the other; a number is assigned
//! on a workspace's first stored event and never reused (`AUTOINCREMENT`).
//!
//! Writes read the number through an in-memory cache ([`WorkspaceNumbers`]); reads and
//! deletions find it in the table ([`workspace_number_of_1`] in their SQL, or [`number`]), so
//! a workspace with no number (nothing stored) matches no row and only a write assigns one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracklayer_core::error::StoreError;
use tracklayer_core::workspace::WorkspaceId;

use crate::db::{sql, Db};

/// SQL (a literal, for `concat!`): the number of the workspace whose id is `?1`; `NULL`, which
/// equals nothing, when it has none.
macro_rules! workspace_number_of_1 {
    () => {
        "(SELECT number FROM workspace_numbers WHERE workspace_id = ?1)"
    };
}
pub(crate) use workspace_number_of_1;

/// The numbers of the workspaces this process has written events for.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkspaceNumbers {
    known: Arc<Mutex<HashMap<WorkspaceId, i64>>>,
}

impl WorkspaceNumbers {
    /// The number of `ws`, assigned if it has none. Assigned in a transaction of its own,
    /// outside the group commit of the write that needs it, and cached only once committed:
    /// a write rolled back never leaves a number in memory that the database does not hold
    /// (and could give to another workspace).
    pub(crate) async fn assigned(&self, db: &Db, ws: &WorkspaceId) -> Result<i64, StoreError> {
        const CONTEXT: &str = "workspace_number";
        if let Some(n) = self.cached(ws) {
            return Ok(n);
        }
        let id = ws.as_str().to_owned();
        let n = db
            .call(CONTEXT, move |c| {
                // Committed by itself, or not cached: never inside another's transaction.
                if !c.is_autocommit() {
                    return Err(StoreError::transient(
                        CONTEXT,
                        "the connection is inside a transaction",
                    ));
                }
                c.prepare_cached(
                    "INSERT INTO workspace_numbers (workspace_id) VALUES (?1)
                     ON CONFLICT (workspace_id) DO NOTHING",
                )
                .and_then(|mut s| s.execute([&id]))
                .map_err(|e| sql(CONTEXT, e))?;
                number(c, &id)?.ok_or_else(|| {
                    StoreError::permanent(CONTEXT, "a workspace number was not kept")
                })
            })
            .await?;
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ws.clone(), n);
        Ok(n)
    }

    fn cached(&self, ws: &WorkspaceId) -> Option<i64> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(ws).copied()
    }
}

/// The number of the workspace `id`, if it has one.
pub(crate) fn number(c: &rusqlite::Connection, id: &str) -> Result<Option<i64>, StoreError> {
    const CONTEXT: &str = "workspace_number";
    c.prepare_cached(concat!("SELECT ", workspace_number_of_1!()))
        .and_then(|mut s| s.query_row([id], |r| r.get(0)))
        .map_err(|e| sql(CONTEXT, e))
}
