//! Checkpoints off the commit path: a thread with a connection of its own copies the WAL
//! into the database file (`PRAGMA wal_checkpoint(PASSIVE)`) every [`INTERVAL`], and the
//! shared connection does not checkpoint on commit (`wal_autocheckpoint = 0`).
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: that
//! commit's callers (a group of ingest requests) wait for every page to be copied and the
//! database file fsynced, which under load was the tail of ingest's latency. A passive
//! checkpoint never blocks the writer nor waits for it. The WAL starts over from its
//! beginning only at a write that follows a checkpoint that copied everything, which under
//! steady load this thread never manages (a commit lands while it copies): past
//! [`LONG_WAL_FRAMES`] it asks group commit's writer to checkpoint between two groups
//! ([`crate::commit::Wal::long`]), so the WAL stays about that long. Durability is
//! unchanged: a commit is durable once the WAL is synced (by the commit itself, or for group
//! commit by its sync thread before any caller hears), whether or not a checkpoint has copied
//! it yet.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(250);

/// Frames (of 8 KiB pages: 32 MiB) past which the WAL is long: the checkpoint thread asks
/// group commit's writer to checkpoint it between two groups, so that it starts over
/// ([`crate::commit::Wal::long`]).
pub(crate) const LONG_WAL_FRAMES: i64 = 4096;

/// Keeps the checkpoint thread running; it stops when the last [`crate::Db`] clone is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    _running: mpsc::Sender<()>,
    /// Held by the thread while it checkpoints, and by whoever needs the WAL truncated
    /// ([`Checkpointer::hold`]): SQLite refuses a second checkpoint while one runs, so an
    /// erasure's truncation would otherwise fail whenever it met a passive checkpoint.
    turn: Arc<Mutex<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (in WAL mode) on a connection of its own.
    pub(crate) fn start(path: &Path, long: Arc<AtomicBool>) -> std::io::Result<Self> {
        let conn = Connection::open(path).map_err(std::io::Error::other)?;
        let (running, stopped) = mpsc::channel::<()>();
        let turn = Arc::new(Mutex::new(()));
        let ours = turn.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let _turn = ours.lock().unwrap_or_else(|e| e.into_inner());
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        r.get::<_, i64>(1)
                    }) {
                        Ok(frames) if frames >= LONG_WAL_FRAMES => {
                            long.store(true, Ordering::Release);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed; retried next interval");
                        }
                    }
                }
            })?;
        Ok(Self {
            _running: running,
            turn,
        })
    }

    /// Keeps the thread from checkpointing until the guard drops.
    pub(crate) fn hold(&self) -> MutexGuard<'_, ()> {
        self.turn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::Db;

    /// Writes a workspace row of `id` and `doc` through group commit.
    async fn write_workspace(db: &Db, id: String, doc: String) {
        db.write("test", move |c| {
            c.execute(
                "INSERT INTO workspaces (id, created_at, doc) VALUES (?1, 0, ?2)",
                rusqlite::params![id, doc],
            )
            .map(|_| ())
            .map_err(|e| tracklayer_core::error::StoreError::permanent("test", e))
        })
        .await
        .unwrap();
    }

    /// Bytes of the database file itself (not its WAL).
    fn main_file_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    #[tokio::test]
    async fn committed_writes_reach_the_database_file_without_a_commit_checkpointing_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        let before = main_file_len(&path);
        // Four 1 MiB rows: far past a page or two, and under SQLite's automatic threshold
        // (1,000 pages), which is off on the shared connection anyway.
        for n in 0..4 {
            write_workspace(&db, format!("ws-{n}"), "x".repeat(1 << 20)).await;
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while main_file_len(&path) < before + (4 << 20) {
            assert!(
                Instant::now() < deadline,
                "the WAL was not checkpointed: the database file holds {} bytes",
                main_file_len(&path)
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        drop(db);
    }

    /// Under steady writes the checkpoint thread never finds the WAL quiet; the WAL still
    /// starts over instead of growing with every write (it grew 1.3 GB in 10 s of `make
    /// measure-ingest` before the writer checkpointed between groups).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        let wal = dir.path().join("t.db-wal");
        // Eight writers, each with its next write queued before its last is answered:
        // 320 MiB of rows, ten times the WAL's limit.
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let db = db.clone();
                tokio::spawn(async move {
                    for n in 0..160 {
                        write_workspace(&db, format!("ws-{w}-{n}"), "x".repeat(256 << 10)).await;
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        // Past the limit, the WAL grows by what is written until the checkpoint thread's
        // next pass (every 250 ms) sees it: 82–90 MiB at most here at ~230 MB/s (a bound of
        // 80 MiB after 160 MiB failed now and then on a faster disk). Without the writer's
        // checkpoint it would hold all 320 MiB.
        let len = std::fs::metadata(&wal).unwrap().len();
        assert!(
            len <= 128 << 20,
            "the WAL is {} MiB after 320 MiB of writes",
            len >> 20
        );
        drop(db);
    }

    #[tokio::test]
    async fn a_truncation_a_reader_keeps_busy_is_an_error_not_a_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        write_workspace(&db, "ws".into(), "erased".into()).await;
        // Another connection reads a snapshot that holds WAL frames: the WAL cannot be
        // truncated until it is done.
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let n: i64 = reader
            .query_row("SELECT COUNT(*) FROM workspaces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        db.call("test", |c| {
            c.busy_timeout(std::time::Duration::from_millis(1))
                .map_err(|e| tracklayer_core::error::StoreError::permanent("test", e))
        })
        .await
        .unwrap();

        let refused = db.checkpoint().await;
        assert!(
            matches!(&refused, Err(e @ tracklayer_core::error::StoreError::Transient { .. })
                if format!("{e:?}").contains("could not be checkpointed")),
            "{refused:?}"
        );

        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        db.checkpoint().await.unwrap();
        let wal = std::fs::metadata(dir.path().join("t.db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the WAL is truncated once the reader is done");
    }
}
