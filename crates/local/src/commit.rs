//! Group commit: the ingest hot path's writes (events, queue messages, counters) from
//! concurrent requests share one SQLite transaction, and so one WAL append and one fsync.
//!
//! One writer thread takes the first waiting write, every other write waiting behind it (up
//! to [`MAX_GROUP`]), and runs them in one `BEGIN IMMEDIATE … COMMIT`. A write that fails is
//! undone alone: the group runs first without savepoints (they were 3.75 % of `serve`'s core
//! under `make measure-ingest`, by `perf`: each one's release walks the pager's savepoint
//! state); if a write fails, the transaction is rolled back and the group runs again with
//! each write in its own savepoint, rolling back only the writes that fail. A write is
//! therefore a closure that may run twice (`FnMut`; the first run's effects are rolled back,
//! and only the last run's result is answered). A caller hears its result only after the
//! commit, so an acknowledged write is on disk as far as `synchronous` makes it (FULL: the
//! WAL is fsynced at each commit). No window is waited for: a group is what queued up while
//! the previous one committed, so a lone request pays no latency for it.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tracklayer_core::error::StoreError;

/// Writes in one transaction at most.
const MAX_GROUP: usize = 512;

/// A write waiting for its group: run (maybe twice), then answered once.
trait Job: Send {
    /// Runs the write in the group's transaction and keeps its result; true when it succeeded.
    fn run(&mut self, c: &mut Connection) -> bool;
    /// Answers the caller with the kept result; `commit_failed` when the commit did not happen.
    fn finish(self: Box<Self>, commit_failed: Option<&str>);
}

/// A caller's write and where its answer goes.
struct Pending<T, F> {
    context: &'static str,
    f: F,
    result: Option<Result<T, StoreError>>,
    answer: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnMut(&mut Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, c: &mut Connection) -> bool {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| (self.f)(c)))
            .unwrap_or_else(|_| Err(StoreError::permanent(self.context, "a write panicked")));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit_failed: Option<&str>) {
        let answer = match (self.result, commit_failed) {
            // Not run: the transaction could not begin, and `why` says why.
            (None, why) => Err(StoreError::transient(
                self.context,
                why.unwrap_or("the write did not run").to_owned(),
            )),
            (Some(Ok(_)), Some(why)) => Err(StoreError::transient(self.context, why.to_owned())),
            (Some(r), _) => r,
        };
        let _ = self.answer.send(answer);
    }
}

/// The sending side of the writer thread.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl GroupCommit {
    /// Starts the writer thread on `conn` (shared with the readers through the mutex).
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> Self {
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || writer(&conn, &rx))
            .expect("spawn the SQLite writer thread");
        Self { jobs }
    }

    /// Runs `f` in the next group transaction; answers after that transaction committed.
    /// `f` may run twice (see the module docs): only the last run's effects and result stay.
    pub(crate) async fn write<T, F>(&self, context: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(context, f).await
    }

    /// [`Self::write`], queued at once, when called: the returned future only waits for the
    /// answer. Writes are run in the order they were queued, so a write queued after this
    /// one (from any caller) sees its effects.
    pub(crate) fn queue<T, F>(
        &self,
        context: &'static str,
        f: F,
    ) -> impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static
    where
        T: Send + 'static,
        F: FnMut(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(Pending {
            context,
            f,
            result: None,
            answer,
        });
        let sent = self.jobs.send(job);
        async move {
            sent.map_err(|_| StoreError::transient(context, "the SQLite writer thread stopped"))?;
            rx.await
                .map_err(|_| StoreError::transient(context, "the write was not committed"))?
        }
    }
}

fn writer(conn: &Mutex<Connection>, rx: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        let why = run_group(&mut c, &mut group).err();
        drop(c);
        for job in group {
            job.finish(why.as_deref());
        }
    }
}

/// Runs `group` in one transaction and commits it: every write at once, or, when one fails,
/// again each in its own savepoint. Err when the transaction could not begin or commit.
fn run_group(c: &mut Connection, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    let begin = |c: &Connection| {
        c.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string())
    };
    begin(c)?;
    if !group.iter_mut().all(|job| job.run(c)) {
        c.execute_batch("ROLLBACK").map_err(|e| e.to_string())?;
        begin(c)?;
        for job in group.iter_mut() {
            // Cached statements: `execute_batch` would parse them again for every write.
            let step = |c: &Connection, sql: &str| {
                let _ = c.prepare_cached(sql).and_then(|mut s| s.execute([]));
            };
            step(c, "SAVEPOINT w");
            if !job.run(c) {
                step(c, "ROLLBACK TO w");
            }
            step(c, "RELEASE w");
        }
    }
    let committed = c.execute_batch("COMMIT").map_err(|e| e.to_string());
    if committed.is_err() {
        let _ = c.execute_batch("ROLLBACK");
    }
    committed
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    type Answer = tokio::sync::oneshot::Receiver<Result<i64, StoreError>>;

    /// Queues a write without awaiting it, so that the test decides what a group holds.
    fn queue<F>(gc: &GroupCommit, f: F) -> Answer
    where
        F: FnMut(&mut Connection) -> Result<i64, StoreError> + Send + 'static,
    {
        let (answer, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(Pending {
            context: "test",
            f,
            result: None,
            answer,
        });
        gc.jobs.send(job).unwrap();
        rx
    }

    /// A writer whose first group is one write held until the returned sender speaks: what
    /// the test queues meanwhile is the next group, whole.
    fn held_writer() -> (
        GroupCommit,
        Arc<Mutex<Connection>>,
        mpsc::Sender<()>,
        Answer,
    ) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .unwrap();
        let conn = Arc::new(Mutex::new(conn));
        let gc = GroupCommit::start(conn.clone());
        let (release, held) = mpsc::channel::<()>();
        let (running, started) = mpsc::channel::<()>();
        let gate = queue(&gc, move |_| {
            let _ = running.send(());
            let _ = held.recv();
            Ok(0)
        });
        // Running: its group is made, so the writes queued from now on are the next one.
        started.recv().unwrap();
        (gc, conn, release, gate)
    }

    fn insert(
        n: i64,
        runs: &Arc<AtomicUsize>,
    ) -> impl FnMut(&mut Connection) -> Result<i64, StoreError> {
        let runs = runs.clone();
        move |c| {
            runs.fetch_add(1, Ordering::SeqCst);
            c.execute("INSERT INTO t (n) VALUES (?1)", [n])
                .map_err(|e| StoreError::permanent("test", e.to_string()))?;
            Ok(n)
        }
    }

    fn rows(conn: &Mutex<Connection>) -> Vec<i64> {
        let c = conn.lock().unwrap();
        let mut s = c.prepare("SELECT n FROM t ORDER BY n").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[tokio::test]
    async fn a_group_that_succeeds_runs_each_write_once_and_commits_them_all() {
        let (gc, conn, release, gate) = held_writer();
        let runs = Arc::new(AtomicUsize::new(0));
        let answers: Vec<Answer> = (1..=3).map(|n| queue(&gc, insert(n, &runs))).collect();
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();
        for (n, answer) in (1..=3).zip(answers) {
            assert_eq!(answer.await.unwrap().unwrap(), n);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(rows(&conn), [1, 2, 3]);
    }

    /// A group whose transaction cannot begin answers each write with SQLite's reason.
    #[tokio::test]
    async fn a_transaction_that_cannot_begin_is_a_retryable_error_with_its_reason() {
        let (gc, conn, release, gate) = held_writer();
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();
        // Left open on the shared connection: the writer's next BEGIN IMMEDIATE fails.
        conn.lock().unwrap().execute_batch("BEGIN").unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let write = queue(&gc, insert(1, &runs));
        let failed = write.await.unwrap().unwrap_err();
        assert!(failed.is_retryable(), "{failed:?}");
        let why = std::error::Error::source(&failed).map(ToString::to_string);
        assert!(
            why.is_some_and(|w| w.contains("within a transaction")),
            "{failed:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }

    /// One write fails and one panics in a group of five: the group runs again with a
    /// savepoint each, the good writes' first runs are rolled back (their rows are there
    /// once, although each ran twice), and only the bad ones fail.
    #[tokio::test]
    async fn a_failing_or_panicking_write_is_undone_alone_and_the_others_commit_once() {
        let (gc, conn, release, gate) = held_writer();
        let runs = Arc::new(AtomicUsize::new(0));
        let first = queue(&gc, insert(1, &runs));
        let duplicate = queue(&gc, insert(1, &runs));
        let second = queue(&gc, insert(2, &runs));
        let panics = queue(&gc, |_| panic!("a bug in a write"));
        let third = queue(&gc, insert(3, &runs));
        release.send(()).unwrap();
        gate.await.unwrap().unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert!(matches!(
            duplicate.await.unwrap(),
            Err(StoreError::Permanent { .. })
        ));
        assert_eq!(second.await.unwrap().unwrap(), 2);
        let panicked = panics.await.unwrap().unwrap_err();
        let why = std::error::Error::source(&panicked).map(ToString::to_string);
        assert_eq!(why.as_deref(), Some("a write panicked"), "{panicked}");
        assert_eq!(third.await.unwrap().unwrap(), 3);
        assert_eq!(rows(&conn), [1, 2, 3]);
        // Without savepoints: 1 and the duplicate (which stops the run); then all four again.
        assert_eq!(runs.load(Ordering::SeqCst), 2 + 4);
    }
}
