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
//! commit, so an acknowledged write is on disk as far as `synchronous` makes it. No window is
//! waited for: a group is what queued up while the previous one committed, so a lone request
//! pays no latency for it.
//!
//! A database file's groups are made durable off the writer ([`WalSync`]): the writer commits
//! a group with `synchronous = NORMAL` (the WAL is written, not synced) and hands it to a
//! thread of its own that fdatasyncs the WAL and only then answers its callers. Meanwhile
//! the writer begins the next transaction and runs each write as it arrives, and commits
//! when that sync is done: the core builds the next transaction while the disk flushes the
//! last one (under `make measure-ingest` the commit's fdatasync had left the core idle a
//! tenth of the time), and a group is still everything that arrived during one sync, so
//! commits are as few and as full as before (committing each arrival at once instead wrote a
//! third more bytes per event and cost 6 % more CPU per event). The WAL is append-only
//! between checkpoints, so one sync that began after a group's commit covers it and every
//! group before it: a caller hears success only once its write is on disk, as with
//! `synchronous = FULL`. Every other write on the connection ([`crate::Db::call`]) still
//! commits with FULL. Readers may see a group between its commit and its sync (a delivery may
//! start; after a power loss in that window the event is gone but its sender, never
//! answered, sends it again: delivery is at least once, with the event id for the
//! destination to deduplicate by). A failed sync is
//! fatal to durability (Linux may drop the unwritten pages and report the next sync clean),
//! so from then on every write is answered with that failure: `serve` must be restarted, and
//! SQLite's recovery then reads the WAL as it is on disk.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
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
    jobs: Arc<Jobs>,
}

/// The writer's inbox; when the last [`GroupCommit`] goes, it tells the writer to stop (the
/// sync thread holds a sender too, so the channel alone would never close).
struct Jobs(mpsc::Sender<Msg>);

impl Drop for Jobs {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::Stop);
    }
}

/// What the writer thread hears.
enum Msg {
    /// A write to run.
    Job(Box<dyn Job>),
    /// The sync thread made this many handed-over groups durable.
    Synced(usize),
    /// Every [`GroupCommit`] is gone.
    Stop,
}

impl GroupCommit {
    /// Starts the writer thread on `conn` (shared with the readers through the mutex), and,
    /// with a `sync`, the thread that makes each committed group durable before answering it.
    /// Without one (a database in memory), a group is answered at its commit.
    pub(crate) fn start(conn: Arc<Mutex<Connection>>, wal: Option<Wal>) -> Self {
        let (jobs, rx) = mpsc::channel::<Msg>();
        let long = wal.as_ref().map(|wal| wal.long.clone());
        let synced = wal.map(|Wal { sync, .. }| {
            let (committed, rx) = mpsc::channel::<Committed>();
            let done = jobs.clone();
            std::thread::Builder::new()
                .name("sqlite-wal-sync".into())
                .spawn(move || syncer(sync, &rx, &done))
                .expect("spawn the SQLite WAL sync thread");
            committed
        });
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || writer(&conn, &rx, synced.as_ref(), long.as_deref()))
            .expect("spawn the SQLite writer thread");
        Self {
            jobs: Arc::new(Jobs(jobs)),
        }
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
        let sent = self.jobs.0.send(Msg::Job(job));
        async move {
            sent.map_err(|_| StoreError::transient(context, "the SQLite writer thread stopped"))?;
            rx.await
                .map_err(|_| StoreError::transient(context, "the write was not committed"))?
        }
    }
}

/// Makes what the WAL holds durable: fdatasync of the WAL file (a closure, so that tests can
/// hold or fail it).
pub(crate) type WalSync = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// A database file's WAL, as group commit needs it.
pub(crate) struct Wal {
    pub(crate) sync: WalSync,
    /// Set by the checkpoint thread when the WAL has grown past its limit
    /// ([`crate::checkpoint`]): the writer then checkpoints it itself between two groups.
    /// Under steady load the checkpoint thread never finds the WAL quiet (a commit lands
    /// while it copies), so the WAL never starts over from its beginning and grows without
    /// end (1.3 GB in 10 s of `make measure-ingest`), each frame written to a new page of the
    /// file; a checkpoint between groups, when nothing else writes, copies the little left
    /// and lets the next group start the WAL over.
    pub(crate) long: Arc<AtomicBool>,
}

/// A group whose transaction ended, waiting for the WAL sync before its callers hear.
struct Committed {
    group: Vec<Box<dyn Job>>,
    /// Why the transaction did not commit, if it did not.
    why: Option<String>,
}

impl Committed {
    fn finish(self, why: Option<&str>) {
        let why = self.why.as_deref().or(why);
        for job in self.group {
            job.finish(why);
        }
    }
}

/// The writer's own count of groups handed to the sync thread and not yet synced.
struct Writer<'a> {
    rx: &'a mpsc::Receiver<Msg>,
    synced: Option<&'a mpsc::Sender<Committed>>,
    unsynced: usize,
    stopping: bool,
}

impl Writer<'_> {
    /// Notes a message; the job in it, if any.
    fn take(&mut self, msg: Msg) -> Option<Box<dyn Job>> {
        match msg {
            Msg::Job(job) => return Some(job),
            Msg::Synced(n) => self.unsynced = self.unsynced.saturating_sub(n),
            Msg::Stop => self.stopping = true,
        }
        None
    }

    /// Adds the writes waiting now to `group`, up to [`MAX_GROUP`].
    fn gather(&mut self, group: &mut Vec<Box<dyn Job>>) {
        while group.len() < MAX_GROUP {
            match self.rx.try_recv() {
                Ok(msg) => group.extend(self.take(msg)),
                Err(_) => return,
            }
        }
    }
}

fn writer(
    conn: &Mutex<Connection>,
    rx: &mpsc::Receiver<Msg>,
    synced: Option<&mpsc::Sender<Committed>>,
    long: Option<&AtomicBool>,
) {
    let mut w = Writer {
        rx,
        synced,
        unsynced: 0,
        stopping: false,
    };
    while !w.stopping {
        let Ok(msg) = rx.recv() else { return };
        let Some(first) = w.take(msg) else { continue };
        let mut group = vec![first];
        let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
        let why = run_group(&mut c, &mut group, &mut w).err();
        drop(c);
        let committed = Committed { group, why };
        match synced {
            Some(synced) if committed.why.is_none() => match synced.send(committed) {
                Ok(()) => w.unsynced += 1,
                Err(mpsc::SendError(committed)) => {
                    committed.finish(Some("the SQLite WAL sync thread stopped"));
                }
            },
            _ => committed.finish(None),
        }
        if long.is_some_and(|long| long.swap(false, Ordering::AcqRel)) {
            let c = conn.lock().unwrap_or_else(|e| e.into_inner());
            checkpoint_between_groups(&c);
        }
    }
}

/// A passive checkpoint on the writer's connection, with no transaction open: nothing else
/// writes meanwhile, so it copies every frame (unless a reader of another connection holds
/// an older snapshot), and the next group starts the WAL over. It runs while the sync thread
/// syncs the last group. Not done (another checkpoint running, or a reader), it is asked
/// for again by the checkpoint thread's next pass.
fn checkpoint_between_groups(c: &Connection) {
    let done = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match done {
        Ok((0, log, copied)) if copied == log => {}
        Ok((busy, log, copied)) => {
            tracing::debug!(
                busy,
                log,
                copied,
                "the WAL could not be checkpointed whole between groups"
            );
        }
        Err(e) => tracing::warn!(error = %e, "checkpointing the WAL between groups failed"),
    }
}

/// Runs `group`, and the writes that arrive meanwhile, in one transaction and commits it.
/// Without a sync thread the group is what was waiting; with one, the transaction stays open
/// and takes every write that arrives while the last group's sync runs, and commits (at
/// `synchronous = NORMAL`, the connection's FULL restored after) when that sync is done.
/// Err when the transaction could not begin or commit.
fn run_group(
    c: &mut Connection,
    group: &mut Vec<Box<dyn Job>>,
    w: &mut Writer<'_>,
) -> Result<(), String> {
    let synchronous = |c: &Connection, level: &str| {
        c.pragma_update(None, "synchronous", level)
            .map_err(|e| format!("setting synchronous = {level}: {e}"))
    };
    if w.synced.is_none() {
        return run_open(c, group, w);
    }
    synchronous(c, "NORMAL")?;
    let ran = run_open(c, group, w);
    match synchronous(c, "FULL") {
        Ok(()) => ran,
        // The group committed (or not) as `ran` says, but the connection's other writes must
        // not go on unsynced: answer this group with the failure (a retry is harmless, by
        // message id), and the next group sets both levels again.
        Err(why) => {
            tracing::error!(%why, "the shared SQLite connection may be left at synchronous = NORMAL");
            ran.and(Err(why))
        }
    }
}

/// [`run_group`]'s transaction. A write that fails is undone alone: the writes run without
/// savepoints until one fails; then the transaction is rolled back and begun again, and every
/// write of the group so far, and each one after, runs in its own savepoint.
fn run_open(
    c: &mut Connection,
    group: &mut Vec<Box<dyn Job>>,
    w: &mut Writer<'_>,
) -> Result<(), String> {
    let begin = |c: &Connection| {
        c.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string())
    };
    let abandon = |c: &Connection, why: String| {
        let _ = c.execute_batch("ROLLBACK");
        Err(why)
    };
    begin(c)?;
    let mut ran = 0;
    let mut savepoints = false;
    loop {
        w.gather(group);
        while ran < group.len() {
            let job = &mut group[ran];
            if savepoints {
                // Cached statements: `execute_batch` would parse them again for every write.
                let step = |c: &Connection, sql: &str| {
                    let _ = c.prepare_cached(sql).and_then(|mut s| s.execute([]));
                };
                step(c, "SAVEPOINT w");
                if !job.run(c) {
                    step(c, "ROLLBACK TO w");
                }
                step(c, "RELEASE w");
            } else if !job.run(c) {
                c.execute_batch("ROLLBACK").map_err(|e| e.to_string())?;
                begin(c)?;
                savepoints = true;
                ran = 0;
                continue;
            }
            ran += 1;
        }
        if w.unsynced == 0 || w.stopping || group.len() >= MAX_GROUP {
            break;
        }
        // The disk is still syncing the last group: wait for that, or for more writes.
        match w.rx.recv() {
            Ok(msg) => group.extend(w.take(msg)),
            Err(_) => w.stopping = true,
        }
    }
    match c.execute_batch("COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => abandon(c, e.to_string()),
    }
}

/// Answers committed groups once the WAL is synced: one sync for every group that committed
/// while the last sync ran, then tells the writer (`done`). After a failed sync, every group
/// is answered with that failure, without syncing again.
fn syncer(mut sync: WalSync, rx: &mpsc::Receiver<Committed>, done: &mpsc::Sender<Msg>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        if failed.is_none() {
            let synced = std::panic::catch_unwind(AssertUnwindSafe(&mut sync))
                .unwrap_or_else(|_| Err(std::io::Error::other("the sync panicked")));
            if let Err(e) = synced {
                tracing::error!(
                    error = %e,
                    "syncing the SQLite WAL failed: no write is acknowledged from now on; restart serve"
                );
                failed = Some(format!(
                    "syncing the WAL failed ({e}); writes are refused until serve restarts"
                ));
            }
        }
        let n = batch.len();
        for committed in batch {
            committed.finish(failed.as_deref());
        }
        let _ = done.send(Msg::Synced(n));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

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
        gc.jobs.0.send(Msg::Job(job)).unwrap();
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
        let gc = GroupCommit::start(conn.clone(), None);
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

    fn synced_writer(sync: WalSync) -> (GroupCommit, Arc<Mutex<Connection>>) {
        let long = Arc::new(AtomicBool::new(false));
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .unwrap();
        let conn = Arc::new(Mutex::new(conn));
        (
            GroupCommit::start(conn.clone(), Some(Wal { sync, long })),
            conn,
        )
    }

    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// A write is answered only after a WAL sync that began after its commit. While that sync
    /// runs, the writes that arrive run in the next transaction, which commits, as one group,
    /// once the sync is done; the shared connection is back at synchronous FULL after.
    #[tokio::test]
    async fn writes_run_while_the_last_group_syncs_and_commit_as_one_group_after_it() {
        let (started_tx, started) = mpsc::channel::<()>();
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let (gc, conn) = synced_writer(Box::new(move || {
            started_tx.send(()).unwrap();
            held.lock().unwrap().recv().unwrap();
            Ok(())
        }));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut first = queue(&gc, insert(1, &runs));
        started.recv().unwrap();
        // The first group committed and its sync is held: the next writes run meanwhile.
        let mut second = queue(&gc, insert(2, &runs));
        let mut third = queue(&gc, insert(3, &runs));
        eventually("the next writes run while the first group syncs", || {
            runs.load(Ordering::SeqCst) == 3
        });
        assert!(first.try_recv().is_err(), "answered before its sync");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        // One commit and one sync for both: a sync of their own, begun after their commit.
        started.recv().unwrap();
        assert!(second.try_recv().is_err(), "answered before its sync");
        assert!(third.try_recv().is_err(), "answered before its sync");
        release.send(()).unwrap();
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(third.await.unwrap().unwrap(), 3);
        assert_eq!(rows(&conn), [1, 2, 3]);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let level: i64 = conn
            .lock()
            .unwrap()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(level, 2, "the shared connection is left at FULL");
    }

    /// A write that fails in a transaction left open for the last group's sync is undone
    /// alone: the writes before it run again in savepoints, and those after it commit.
    #[tokio::test]
    async fn a_write_failing_while_the_last_group_syncs_is_undone_alone() {
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let (gc, conn) = synced_writer(Box::new(move || {
            held.lock().unwrap().recv().unwrap();
            Ok(())
        }));
        let runs = Arc::new(AtomicUsize::new(0));
        let first = queue(&gc, insert(1, &runs));
        eventually("the first write runs", || runs.load(Ordering::SeqCst) == 1);
        let second = queue(&gc, insert(2, &runs));
        let duplicate = queue(&gc, insert(2, &runs));
        let third = queue(&gc, insert(3, &runs));
        // 2, the duplicate (which fails); then 2, the duplicate and 3 in savepoints.
        eventually("the next writes run while the first group syncs", || {
            runs.load(Ordering::SeqCst) == 6
        });
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert!(matches!(
            duplicate.await.unwrap(),
            Err(StoreError::Permanent { .. })
        ));
        assert_eq!(third.await.unwrap().unwrap(), 3);
        assert_eq!(rows(&conn), [1, 2, 3]);
    }

    /// A failed sync fails the writes it was to make durable and every write after it,
    /// without syncing again: Linux may report the next sync clean with the pages lost.
    #[tokio::test]
    async fn a_failed_sync_fails_its_writes_and_every_later_one() {
        let syncs = Arc::new(AtomicUsize::new(0));
        let counted = syncs.clone();
        let (gc, conn) = synced_writer(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(std::io::Error::other("the disk is gone"))
        }));
        let runs = Arc::new(AtomicUsize::new(0));
        for n in 1..=2 {
            let failed = queue(&gc, insert(n, &runs)).await.unwrap().unwrap_err();
            assert!(failed.is_retryable(), "{failed:?}");
            let why = std::error::Error::source(&failed).map(ToString::to_string);
            assert!(
                why.as_deref()
                    .is_some_and(|w| w.contains("the disk is gone")
                        && w.contains("refused until serve restarts")),
                "{why:?}"
            );
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        // Committed, but never acknowledged: a retry is deduplicated by its message ids.
        assert_eq!(rows(&conn), [1, 2]);
    }
}
