//! Group commit: the ingest hot path's writes (events, queue messages) from concurrent
//! requests share one SQLite transaction, and so one WAL append and one fsync.
//!
//! One writer thread takes the first waiting write, every other write waiting behind it (up
//! to [`MAX_GROUP`]), and runs them in one `BEGIN IMMEDIATE … COMMIT`, each inside its own
//! savepoint: a write that fails is rolled back alone. A caller hears its result only after
//! the commit, so an acknowledged write is on disk as far as `synchronous` makes it (FULL:
//! the WAL is fsynced at each commit). No window is waited for: a group is what queued up
//! while the previous one committed, so a lone request pays no latency for it.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tracklayer_core::error::StoreError;

/// Writes in one transaction at most.
const MAX_GROUP: usize = 512;

/// What a write reports once its group's commit is known (`Some` when it failed).
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;
/// A write: runs inside the group's transaction; true when it succeeded (its savepoint is
/// released), false when it failed (rolled back).
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, Finish) + Send>;

/// The sending side of the writer thread.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer thread on `conn` (shared with the readers through the mutex).
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || writer(&conn, &rx))
            .expect("spawn the SQLite writer thread");
        Self { jobs }
    }

    /// Runs `f` in the next group transaction; answers after that transaction committed.
    pub(crate) async fn write<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |c| {
            let result = match std::panic::catch_unwind(AssertUnwindSafe(|| f(c))) {
                Ok(r) => r,
                Err(_) => Err(StoreError::permanent(context, "a write panicked")),
            };
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |commit_failed| {
                let answer = match (result, commit_failed) {
                    (Ok(_), Some(why)) => Err(StoreError::transient(context, why.to_owned())),
                    (r, _) => r,
                };
                let _ = tx.send(answer);
            });
            (ok, finish)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::transient(context, "the SQLite writer thread stopped"))?;
        rx.await
            .map_err(|_| StoreError::transient(context, "the write was not committed"))?
    }
}

fn writer(conn: &Mutex<Connection>, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        let Some(finishes) = run_group(&mut c, group) else {
            continue;
        };
        let committed = c.execute_batch("COMMIT").map_err(|e| e.to_string());
        if committed.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        drop(c);
        let why = committed.err();
        for finish in finishes {
            finish(why.as_deref());
        }
    }
}

/// Runs each job of `group` in its own savepoint inside one transaction; `None` when the
/// transaction could not begin (the jobs are dropped: their callers hear an error).
fn run_group(c: &mut Connection, group: Vec<Job>) -> Option<Vec<Finish>> {
    c.execute_batch("BEGIN IMMEDIATE").ok()?;
    Some(
        group
            .into_iter()
            .map(|job| {
                // Cached statements: `execute_batch` would parse them again for every write.
                let step = |c: &Connection, sql: &str| {
                    let _ = c.prepare_cached(sql).and_then(|mut s| s.execute([]));
                };
                step(c, "SAVEPOINT w");
                let (ok, finish) = job(c);
                if !ok {
                    step(c, "ROLLBACK TO w");
                }
                step(c, "RELEASE w");
                finish
            })
            .collect(),
    )
}
