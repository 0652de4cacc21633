//! The SQLite connection, its schema, and the bridge from async ports to blocking SQLite.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::types::Value;
use rusqlite::Connection;
use tracklayer_core::error::StoreError;

use crate::checkpoint::Checkpointer;
use crate::commit::{GroupCommit, Wal};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database at {path}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot prepare the database schema")]
    Schema(#[source] rusqlite::Error),
    #[error("cannot start the checkpoint thread of {path}")]
    Checkpointer {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make {path} readable by its owner only")]
    Permissions {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    expires_at INTEGER
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_by_workspace ON api_keys (workspace_id);
CREATE TABLE IF NOT EXISTS destinations (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    body BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    dead_at INTEGER,
    dead_reason TEXT
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue (kind, dead_at, visible_at, id);
CREATE TABLE IF NOT EXISTS users (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, email)
);
CREATE TABLE IF NOT EXISTS audit_log (
    workspace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, seq)
) WITHOUT ROWID;
-- The audit chain's anchor, outside audit_log: latest seq and MAC, genesis seq, the wrapped
-- audit key and the retention checkpoint (an `AuditHead` as JSON in doc).
CREATE TABLE IF NOT EXISTS audit_head (
    workspace_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dsr_requests (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    open INTEGER NOT NULL,
    doc TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (workspace_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dsr_requests_open ON dsr_requests (open, submitted_at);
CREATE TABLE IF NOT EXISTS dsr_suppressions (
    workspace_id TEXT NOT NULL,
    token TEXT NOT NULL,
    at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (workspace_id, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dsr_exports (
    workspace_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, request_id, part)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dsr_exports_by_expiry ON dsr_exports (expires_at);
"#;

/// A shared SQLite connection. All access goes through [`Db::call`] on the blocking pool.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    writes: GroupCommit,
    /// A database file's checkpoints (none in memory, which has no WAL).
    checkpoints: Option<Arc<Checkpointer>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating if needed) the database and applies the schema. The database file and
    /// its `-wal` and `-shm` files are readable by the owner only (0600), whatever the umask:
    /// SQLite creates the latter two with the database file's mode, and files of an older
    /// version are restricted here.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let restricted = |file: &Path, create| {
            restrict(file, create).map_err(|source| DbError::Permissions {
                path: file.display().to_string(),
                source,
            })
        };
        restricted(path, true)?;
        let conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(DbError::Schema)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        // Opened for each sync: whatever SQLite has made of the file since (truncated it,
        // or, were every connection closed, deleted and made it again), this is the WAL.
        let sync_wal = move || std::fs::File::open(&wal)?.sync_data();
        let long = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wal = Wal {
            sync: Box::new(sync_wal),
            long: long.clone(),
        };
        let mut db = Self::setup(conn, Some(wal))?;
        let checkpointer =
            Checkpointer::start(path, long).map_err(|source| DbError::Checkpointer {
                path: path.display().to_string(),
                source,
            })?;
        db.checkpoints = Some(Arc::new(checkpointer));
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            restricted(Path::new(&companion), false)?;
        }
        Ok(db)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self, DbError> {
        let conn = Connection::open_in_memory().map_err(|source| DbError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::setup(conn, None)
    }

    fn setup(conn: Connection, wal: Option<Wal>) -> Result<Self, DbError> {
        // WAL for concurrent readers; synchronous FULL so that a committed transaction (and so an
        // acknowledged event) survives a power loss, not only a crash of this process: the WAL is
        // synced at each commit (`fdatasync`: .cargo/config.toml), which group commit
        // ([`GroupCommit`]) pays once for all the requests of a group, off the writer thread
        // (a group commits at NORMAL and is answered after its own sync); secure_delete so erased rows
        // are overwritten on disk, not left in free pages; a busy timeout instead of immediate
        // SQLITE_BUSY; an 8 MiB page cache (SQLite's default is 2 MiB): the subject index and the
        // dedup markers take inserts at random keys, and with the default cache each of those read
        // its page back from the file under load (`make measure-ingest`, README); with compact keys
        // 8 MiB is as fast as 16 was (17,862 vs 16,588 events/s, 6 MiB less RSS); temporary files
        // in memory: when a write of a group fails, group commit runs the group again with each
        // write in a savepoint, whose sub-journal (copies of the pages earlier requests of the
        // group changed) SQLite otherwise spills to a temporary file past 64 KiB, a write system
        // call per page (7 % of `serve`'s CPU under load, by `perf`). A database file is
        // checkpointed by a thread of its own ([`Checkpointer`]), not by the commit that fills the
        // WAL. 8 KiB pages for a new database (one made with 4 KiB keeps them: SQLite changes a WAL
        // database's page size only by a rebuild): under `make measure-ingest`, 5 % fewer bytes per
        // stored event (3,210 → 3,050) at the same rate; 16 KiB saved 1 % more but cost 8 % of the
        // rate (each commit writes whole pages). A WAL that a burst grew past 64 MiB is cut back
        // to that when it starts over (`journal_size_limit`; it starts over at about 32 MiB:
        // [`crate::commit::Wal::long`]).
        conn.execute_batch("PRAGMA page_size = 8192;")
            .map_err(DbError::Schema)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -8192;
             PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA secure_delete = ON;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(DbError::Schema)?;
        // Room for every statement the store prepares (rusqlite keeps 16): a hot one evicted
        // by a read would be parsed again on its next use.
        conn.set_prepared_statement_cache_capacity(256);
        conn.execute_batch(SCHEMA).map_err(DbError::Schema)?;
        crate::delivery_log::migrate(&conn).map_err(DbError::Schema)?;
        conn.execute_batch(crate::delivery_log::SCHEMA)
            .map_err(DbError::Schema)?;
        conn.execute_batch(crate::event_tables::SCHEMA)
            .map_err(DbError::Schema)?;
        conn.execute_batch(crate::stats::SCHEMA)
            .map_err(DbError::Schema)?;
        conn.execute_batch(crate::sessions::SCHEMA)
            .map_err(DbError::Schema)?;
        conn.execute_batch(crate::saml::SCHEMA)
            .map_err(DbError::Schema)?;
        conn.execute_batch(crate::scim::SCHEMA)
            .map_err(DbError::Schema)?;
        migrate(&conn).map_err(DbError::Schema)?;
        let conn = Arc::new(Mutex::new(conn));
        Ok(Self {
            writes: GroupCommit::start(conn.clone(), wal),
            conn,
            checkpoints: None,
        })
    }

    /// Runs `f` with the connection on the blocking thread pool.
    pub async fn call<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::transient(context, e))?
    }

    /// Runs `f` in the next group commit ([`GroupCommit`]): with the other writes waiting,
    /// in one transaction; answers once that transaction is committed. `f` may run twice
    /// (when another write of its group fails): its first run's effects are rolled back.
    pub(crate) async fn write<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writes.write(context, f).await
    }

    /// The group commit itself, for a write queued without waiting for it
    /// ([`GroupCommit::queue`]).
    pub(crate) fn group_commit(&self) -> &GroupCommit {
        &self.writes
    }

    /// Runs one statement on the blocking pool, with its parameters as values.
    pub(crate) async fn execute(
        &self,
        context: &'static str,
        statement: &'static str,
        params: Vec<Value>,
    ) -> Result<(), StoreError> {
        self.changes(context, statement, params).await.map(drop)
    }

    /// [`Self::execute`], answering how many rows the statement changed.
    pub(crate) async fn changes(
        &self,
        context: &'static str,
        statement: &'static str,
        params: Vec<Value>,
    ) -> Result<u64, StoreError> {
        self.call(context, move |c| {
            c.execute(statement, rusqlite::params_from_iter(params))
                .map(|n| n as u64)
                .map_err(|e| sql(context, e))
        })
        .await
    }

    /// [`Self::execute`] for a statement on one existing row: when it changes none, the row
    /// is missing and the answer is [`StoreError::NotFound`] naming `what`.
    pub(crate) async fn change_existing(
        &self,
        context: &'static str,
        what: &'static str,
        statement: &'static str,
        params: Vec<Value>,
    ) -> Result<(), StoreError> {
        match self.changes(context, statement, params).await? {
            0 => Err(StoreError::NotFound(what)),
            _ => Ok(()),
        }
    }

    /// [`doc_row`] on the blocking pool, with `query`'s parameters as values.
    pub(crate) async fn doc<T>(
        &self,
        context: &'static str,
        query: &'static str,
        params: Vec<Value>,
    ) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.call(context, move |c| {
            doc_row(c, context, query, rusqlite::params_from_iter(params))
        })
        .await
    }

    /// [`doc_rows`] on the blocking pool, with `query`'s parameters as values.
    pub(crate) async fn docs<T>(
        &self,
        context: &'static str,
        query: &'static str,
        params: Vec<Value>,
    ) -> Result<Vec<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.call(context, move |c| {
            doc_rows(c, context, query, rusqlite::params_from_iter(params))
        })
        .await
    }

    /// A sweep: runs the `DELETE` `statements`, each with `?1` = `now` (Unix milliseconds),
    /// in one transaction; returns how many rows went.
    pub(crate) async fn sweep(
        &self,
        context: &'static str,
        statements: &'static [&'static str],
        now: time::OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let now = tracklayer_core::clock::unix_millis(now);
        self.transaction(context, move |tx| {
            let mut deleted = 0u64;
            for statement in statements {
                deleted += tx.execute(statement, [now])? as u64;
            }
            Ok(deleted)
        })
        .await
    }

    /// Runs `f` in one transaction on the blocking thread pool and commits what it did; an
    /// SQL error rolls all of it back.
    pub(crate) async fn transaction<T, F>(
        &self,
        context: &'static str,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.call(context, move |c| {
            let tx = c.transaction().map_err(|e| sql(context, e))?;
            let out = f(&tx).map_err(|e| sql(context, e))?;
            tx.commit().map_err(|e| sql(context, e))?;
            Ok(out)
        })
        .await
    }

    /// Rebuilds the database file from its live rows and truncates the WAL. After an
    /// erasure: `secure_delete` zeroes deleted cells and free pages, but copies of deleted
    /// keys can stay behind as dividers in b-tree interior pages, and old page images stay in
    /// the WAL until a checkpoint; VACUUM rewrites every page from live rows only.
    pub async fn compact(&self) -> Result<(), StoreError> {
        let checkpoints = self.checkpoints.clone();
        self.call("compact", move |c| {
            let _quiet = checkpoints.as_deref().map(Checkpointer::hold);
            c.execute_batch("VACUUM").map_err(|e| sql("compact", e))?;
            truncate_wal(c, "compact")
        })
        .await
    }

    /// Copies the WAL into the main database file and truncates it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let checkpoints = self.checkpoints.clone();
        self.call("checkpoint", move |c| {
            let _quiet = checkpoints.as_deref().map(Checkpointer::hold);
            truncate_wal(c, "checkpoint")
        })
        .await
    }
}

/// Makes `path` readable and writable by its owner only, creating it empty (already 0600) if
/// `create` and it does not exist; a missing file is left missing otherwise.
fn restrict(path: &Path, create: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => Ok(()),
            other => other,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, create);
        Ok(())
    }
}

/// Columns added to a table after its first release, as `(table, column, type)`: a database
/// made before gets them when it is opened. `expires_at` of account data (and of the
/// data-subject requests and suppression entries that end with it) is Unix milliseconds,
/// `NULL` for never.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("workspaces", "expires_at", "INTEGER"),
    ("users", "expires_at", "INTEGER"),
    ("users", "user_name", "TEXT"),
    ("api_keys", "expires_at", "INTEGER"),
    ("dsr_requests", "expires_at", "INTEGER"),
    ("dsr_suppressions", "expires_at", "INTEGER"),
    // The shared sealed fields of a message's items by reference (queue.rs).
    ("queue", "shared", "INTEGER"),
];

/// Indexes on added columns: made after the columns exist.
const ADDED_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS dsr_requests_by_expiry ON dsr_requests (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS dsr_suppressions_by_expiry ON dsr_suppressions (expires_at)
    WHERE expires_at IS NOT NULL;
";

fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    for (table, column, kind) in ADDED_COLUMNS {
        let present = conn
            .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
            .exists([table, column])?;
        if !present {
            // nosemgrep: tl-sql-format — SQLite binds no identifiers; these are the constants above
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    conn.execute_batch(ADDED_INDEXES)?;
    conn.execute_batch(crate::queue::SHARED_SCHEMA)?;
    crate::event_tables::migrate(conn)?;
    crate::scim::migrate_user_names(conn)?;
    crate::control::stamp_unstamped_keys(conn)
}

/// Classifies a SQLite error: busy/locked is transient, the rest is permanent.
pub(crate) fn sql(context: &'static str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::transient(context, e)
        }
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(context),
        _ => StoreError::permanent(context, e),
    }
}

pub(crate) fn json<T: serde::Serialize>(
    context: &'static str,
    v: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::permanent(context, e))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    context: &'static str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt(context, e))
}

/// The document (JSON, the first column) of the one row `query` selects, if there is one.
pub(crate) fn doc_row<T: serde::de::DeserializeOwned>(
    c: &Connection,
    context: &'static str,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    use rusqlite::OptionalExtension;
    let doc: Option<String> = c
        .query_row(query, params, |r| r.get(0))
        .optional()
        .map_err(|e| sql(context, e))?;
    doc.map(|d| from_json(context, &d)).transpose()
}

/// The documents (JSON, the first column) of the rows `query` selects, in its order.
pub(crate) fn doc_rows<T: serde::de::DeserializeOwned>(
    c: &Connection,
    context: &'static str,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    decoded_rows(c, context, query, params, |doc| match doc {
        rusqlite::types::ValueRef::Text(d) => {
            serde_json::from_slice(d).map_err(|e| StoreError::corrupt(context, e))
        }
        _ => Err(StoreError::corrupt(context, "a document that is not text")),
    })
}

/// The first column of the rows `query` selects, each read by `decode`, in its order.
pub(crate) fn decoded_rows<T>(
    c: &Connection,
    context: &'static str,
    query: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(rusqlite::types::ValueRef<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(query).map_err(|e| sql(context, e))?;
    let rows = stmt
        .query_map(params, |r| Ok(decode(r.get_ref(0)?)))
        .map_err(|e| sql(context, e))?;
    rows.map(|r| r.map_err(|e| sql(context, e))?).collect()
}

/// Rows one `INSERT` writes at most.
const ROWS_PER_INSERT: usize = 32;

/// Inserts the rows whose values `values` holds, `width` per row, with `head` (`INSERT INTO
/// t (a, b) VALUES `) followed by a placeholder tuple per row and `tail` (an `ON CONFLICT`
/// clause, or nothing): one statement for up to
/// [`ROWS_PER_INSERT`] rows, and the rest in statements of 16, 8, 4, 2 and 1 rows (so at most
/// six cached statements per table). A statement's fixed cost (opening write cursors on the
/// table and each of its indexes, halting, resetting) is then shared by its rows: measured
/// under `make measure-ingest`, README § Performance. The statement text holds placeholders
/// only; every value is bound.
pub(crate) fn insert_many(
    tx: &rusqlite::Connection,
    context: &'static str,
    head: &str,
    width: usize,
    tail: &str,
    values: &[&dyn rusqlite::ToSql],
) -> Result<(), StoreError> {
    debug_assert_eq!(values.len() % width, 0, "whole rows");
    let mut rest = values;
    while !rest.is_empty() {
        let rows = rest.len() / width;
        let n = if rows >= ROWS_PER_INSERT {
            ROWS_PER_INSERT
        } else {
            1 << rows.ilog2()
        };
        let (chunk, later) = rest.split_at(n * width);
        tx.prepare_cached(&with_placeholders(head, width, n, tail))
            .and_then(|mut stmt| stmt.execute(chunk))
            .map_err(|e| sql(context, e))?;
        rest = later;
    }
    Ok(())
}

/// `head`, `rows` tuples of `width` placeholders (`(?,?),(?,?)`) and `tail`.
fn with_placeholders(head: &str, width: usize, rows: usize, tail: &str) -> String {
    let mut text = String::with_capacity(head.len() + rows * (2 * width + 2) + tail.len());
    text.push_str(head);
    for row in 0..rows {
        if row > 0 {
            text.push(',');
        }
        text.push('(');
        for column in 0..width {
            if column > 0 {
                text.push(',');
            }
            text.push('?');
        }
        text.push(')');
    }
    text.push_str(tail);
    text
}

/// Copies every WAL frame into the database file and truncates the WAL to zero bytes, or
/// says why not. SQLite answers a checkpoint it could not complete (another connection held
/// the checkpoint lock, or a reader an old snapshot) with `busy = 1` rather than an error: an
/// erasure must not take that for done, since the WAL still holds the erased rows' old
/// pages. Retried for up to 5 s.
fn truncate_wal(c: &Connection, context: &'static str) -> Result<(), StoreError> {
    for _ in 0..250 {
        let busy: i64 = c
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|e| sql(context, e))?;
        if busy == 0 {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(StoreError::transient(
        context,
        "the WAL could not be checkpointed and truncated: another connection kept it busy",
    ))
}
