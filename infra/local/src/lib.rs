//! Embedded adapters for the local stack (`wa dev`): queues, blobs and state in one SQLite file,
//! so that a restart loses nothing. The same ports as the AWS adapters, the same rules: queues
//! with visibility timeouts, receive counts, dead-letter queues and FIFO message groups; state
//! with the conditional updates the DynamoDB table makes.

mod commits;
mod limits;
mod queue;
mod state;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rusqlite::Connection;
use wa_core::ports::StoreError;

pub use queue::{DLQ_RETENTION_MS, LocalQueue, QueueInfo, RETENTION_MS, Received};
pub use state::{LocalBlobs, LocalSecrets, LocalState};

/// A queue's receive reads an index range bounded by what it returns plus what it must skip (the
/// messages in flight ahead, and on FIFO queues those of groups held by one in flight), never the
/// backlog behind: receiving with a million messages waiting costs what it costs with ten
/// (`queue::tests::receive_cost_does_not_grow_with_the_backlog`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL, grp TEXT,
    dedup TEXT, visible_at INTEGER NOT NULL, receives INTEGER NOT NULL DEFAULT 0, receipt TEXT,
    sent_at INTEGER NOT NULL);
DROP INDEX IF EXISTS messages_by_queue;
CREATE INDEX IF NOT EXISTS messages_in_order ON messages(queue, id, visible_at);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages(queue, grp, id, visible_at) WHERE grp IS NOT NULL;
DROP INDEX IF EXISTS messages_by_receipt;
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_receipt_set ON messages(receipt) WHERE receipt IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedups(queue TEXT, dedup TEXT, sent_at INTEGER NOT NULL, PRIMARY KEY(queue, dedup));
CREATE INDEX IF NOT EXISTS dedups_by_age ON dedups(sent_at);
CREATE TABLE IF NOT EXISTS blobs(key TEXT PRIMARY KEY, body BLOB NOT NULL, put_at INTEGER);
CREATE TABLE IF NOT EXISTS sends(key TEXT PRIMARY KEY, state TEXT NOT NULL, in_progress_until INTEGER,
    outcome TEXT, wamid TEXT, published INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sends_by_wamid ON sends(wamid);
CREATE INDEX IF NOT EXISTS sends_by_expiry ON sends(expires_at);
CREATE TABLE IF NOT EXISTS rates(phone TEXT PRIMARY KEY, tat_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns(campaign TEXT NOT NULL, variant TEXT NOT NULL, queued INTEGER NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(campaign, variant));
CREATE TABLE IF NOT EXISTS pairs(phone TEXT, recipient TEXT, last_ms INTEGER NOT NULL, hits INTEGER NOT NULL,
    PRIMARY KEY(phone, recipient));
CREATE TABLE IF NOT EXISTS conversations(phone TEXT, user TEXT, last_inbound_at INTEGER, window_closed_at INTEGER,
    free_entry_point_until INTEGER, profile_name TEXT, marketing_opt_out INTEGER NOT NULL DEFAULT 0,
    consent_at INTEGER, PRIMARY KEY(phone, user));
CREATE TABLE IF NOT EXISTS statuses(wamid TEXT PRIMARY KEY, status TEXT, rank INTEGER, status_at INTEGER,
    recipient TEXT, callback_data TEXT, pricing_category TEXT, pricing_type TEXT, billable INTEGER,
    costed INTEGER NOT NULL DEFAULT 0, expires_at INTEGER);
CREATE TABLE IF NOT EXISTS counters(kind TEXT, phone TEXT, month TEXT, name TEXT, n INTEGER NOT NULL,
    PRIMARY KEY(kind, phone, month, name));
CREATE TABLE IF NOT EXISTS templates(name TEXT, language TEXT, category TEXT NOT NULL, PRIMARY KEY(name, language));
CREATE TABLE IF NOT EXISTS links(phone TEXT, a TEXT, b TEXT, PRIMARY KEY(phone, a, b));
CREATE TABLE IF NOT EXISTS template_registry(name TEXT, language TEXT, status TEXT, category TEXT, quality TEXT,
    parameter_format TEXT, body_params INTEGER, header_params INTEGER, PRIMARY KEY(name, language));
CREATE TABLE IF NOT EXISTS media_ids(phone TEXT, digest TEXT, media_id TEXT, upload_until INTEGER,
    expires_at INTEGER, PRIMARY KEY(phone, digest));
CREATE TABLE IF NOT EXISTS holds(phone TEXT PRIMARY KEY, code INTEGER NOT NULL, since_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL, strikes INTEGER NOT NULL, probe_until INTEGER);
CREATE TABLE IF NOT EXISTS limit_tiers(portfolio TEXT PRIMARY KEY, tier INTEGER NOT NULL, tier_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS limit_buckets(portfolio TEXT, hour INTEGER, n INTEGER NOT NULL, PRIMARY KEY(portfolio, hour));
CREATE TABLE IF NOT EXISTS reached(portfolio TEXT, user TEXT, at INTEGER NOT NULL, PRIMARY KEY(portfolio, user));
CREATE TABLE IF NOT EXISTS displays(display TEXT PRIMARY KEY, phone TEXT, rate INTEGER);
CREATE TABLE IF NOT EXISTS number_rates(phone TEXT PRIMARY KEY, rate INTEGER NOT NULL);
";

/// One SQLite database shared by every embedded adapter of a process.
#[derive(Clone)]
pub struct LocalDb {
    conn: Arc<Mutex<Connection>>,
    commits: commits::Committer,
}

impl std::fmt::Debug for LocalDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalDb")
    }
}

pub(crate) fn db_error(error: &rusqlite::Error) -> StoreError {
    StoreError(format!("local database: {error}"))
}

impl LocalDb {
    /// Opens (creating when missing) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| db_error(&e))?;
        Self::init(conn)
    }

    /// `false`: commits reach the operating system but are not flushed to the disk one by one
    /// (SQLite's `synchronous=NORMAL` in WAL mode): nothing is lost when the process crashes, the
    /// last commits may be lost in a power cut, and every commit costs no flush (a send's five
    /// state writes were the local stack's limit: `BENCHMARKS.md`). `true` (the default): each
    /// commit is flushed.
    pub fn flush_every_commit(&self, on: bool) -> Result<(), StoreError> {
        self.lock().pragma_update(None, "synchronous", if on { "FULL" } else { "NORMAL" }).map_err(|e| db_error(&e))
    }

    /// A database in memory (tests).
    pub fn memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(|e| db_error(&e))?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).map_err(|e| db_error(&e))?;
        // Every commit reaches the disk before it returns: a webhook is answered 200, and a send
        // claimed before its Graph call, only once that survives a power cut too (NORMAL would
        // survive a crash of the process only). Group commit shares the flush between webhooks.
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| db_error(&e))?;
        // `wa send` and `wa dlq` open the same file while `wa dev` runs.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| db_error(&e))?;
        conn.execute_batch(SCHEMA).map_err(|e| db_error(&e))?;
        migrate(&mut conn).map_err(|e| db_error(&e))?;
        conn.set_prepared_statement_cache_capacity(64);
        let conn = Arc::new(Mutex::new(conn));
        let commits = commits::Committer::start(conn.clone())
            .map_err(|e| StoreError(format!("cannot start the local queue writer: {e}")))?;
        Ok(Self { conn, commits })
    }

    /// The connection. When another holds it (the group commit, a sweep, another poller), the
    /// wait happens in `block_in_place` on a multi-thread runtime: the worker's other tasks (a
    /// send waiting for its slot, an HTTP answer) move to another thread instead of waiting
    /// behind the database.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        match self.conn.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
        blocking(|| self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Runs `delete(connection, chunk)`, a DELETE of at most `chunk` rows, one commit at a time
    /// until it deletes fewer (so that no other writer waits long behind an expiry sweep); returns
    /// how many rows went.
    pub(crate) fn delete_in_chunks(
        &self,
        delete: impl Fn(&Connection, i64) -> rusqlite::Result<usize>,
    ) -> Result<usize, StoreError> {
        const CHUNK: usize = 500;
        let mut deleted = 0;
        loop {
            let n = delete(&self.lock(), i64::try_from(CHUNK).unwrap_or(i64::MAX)).map_err(|e| db_error(&e))?;
            deleted += n;
            if n < CHUNK {
                return Ok(deleted);
            }
        }
    }
}

/// Runs `f`, which may block, in `block_in_place` when on a multi-thread runtime's worker, else
/// as it is (a current-thread runtime, a plain thread).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Brings a database written by an earlier version up to `SCHEMA`: statuses gained `expires_at`
/// (90 days, as their DynamoDB items) and `pricing_model`, conversations `retired_at`, and blobs `put_at` (for their lifecycle); the rows already
/// there get them from now. In one write transaction, so that two processes opening an old file at
/// once do not both alter it.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        tx.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            rusqlite::params![table, column],
            |row| row.get(0),
        )
    };
    if !has_column("statuses", "expires_at")? {
        tx.execute_batch("ALTER TABLE statuses ADD COLUMN expires_at INTEGER")?;
    }
    if !has_column("blobs", "put_at")? {
        tx.execute_batch("ALTER TABLE blobs ADD COLUMN put_at INTEGER")?;
    }
    if !has_column("blobs", "owner")? {
        tx.execute_batch("ALTER TABLE blobs ADD COLUMN owner TEXT")?;
    }
    if !has_column("conversations", "username")? {
        tx.execute_batch("ALTER TABLE conversations ADD COLUMN username TEXT")?;
    }
    if !has_column("conversations", "retired_at")? {
        tx.execute_batch("ALTER TABLE conversations ADD COLUMN retired_at INTEGER")?;
    }
    if !has_column("statuses", "pricing_model")? {
        tx.execute_batch("ALTER TABLE statuses ADD COLUMN pricing_model TEXT")?;
    }
    if !has_column("sends", "request")? {
        tx.execute_batch("ALTER TABLE sends ADD COLUMN request TEXT")?;
    }
    let now_s = now_ms() / 1000;
    tx.execute("UPDATE statuses SET expires_at = ?1 WHERE expires_at IS NULL", [now_s + state::STATUS_TTL_S])?;
    tx.execute("UPDATE blobs SET put_at = ?1 WHERE put_at IS NULL", [now_s])?;
    tx.execute_batch(
        "CREATE INDEX IF NOT EXISTS statuses_by_expiry ON statuses(expires_at);
         CREATE INDEX IF NOT EXISTS blobs_by_age ON blobs(put_at);",
    )?;
    tx.commit()
}

/// Statements through SQLite's prepared-statement cache: the local stack runs the same few dozen
/// statements over and over, and compiling each one every time cost more than running it.
pub(crate) trait Cached {
    /// `execute` with a cached statement.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `query_row` with a cached statement.
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(wa_infra::telemetry::now_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;

    #[test]
    fn a_file_database_flushes_every_commit() {
        let dir = std::env::temp_dir().join(format!("wa-local-sync-{}", std::process::id()));
        let db = LocalDb::open(&dir.join("state.sqlite3")).unwrap();
        let (mode, sync): (String, i64) = {
            let conn = db.lock();
            (
                conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap(),
                conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap(),
            )
        };
        assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL, synchronous=FULL");
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_worker_waiting_for_the_database_lets_its_other_tasks_run() {
        let db = LocalDb::memory().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let held = db.clone();
        let (locked, wait_locked) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _guard = held.lock();
            locked.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2000));
        });
        wait_locked.recv().unwrap();
        let late_ms = runtime.block_on(async move {
            // The only worker waits for the database; a timer on the same runtime still fires.
            let waiter = tokio::spawn(async move { drop(db.lock()) });
            let started = std::time::Instant::now();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                started.elapsed().as_millis()
            });
            let fired = timer.await.unwrap();
            waiter.await.unwrap();
            fired
        });
        holder.join().unwrap();
        // Behind the wait it would fire after 2 s; a loaded machine may delay it, not that much.
        assert!(late_ms < 1500, "the timer fired after {late_ms} ms, behind the database wait");
    }

    #[test]
    fn the_log_stays_bounded_under_a_steady_stream_of_commits() {
        // SQLite's own checkpoint runs in the commit that crosses its threshold, with the
        // connection held: it always completes, and the log starts over. A checkpoint beside the
        // writers (tried on 2026-12-07) never caught up with them and the log grew to gigabytes.
        let dir = std::env::temp_dir().join(format!("wa-local-wal-{}", std::process::id()));
        let path = dir.join("state.sqlite3");
        let db = LocalDb::open(&path).unwrap();
        db.flush_every_commit(false).unwrap();
        let body = vec![7_u8; 4096];
        for n in 0..5000 {
            db.lock()
                .execute("INSERT INTO blobs(key, body, put_at) VALUES (?1, ?2, 0)", params![format!("k{n}"), body])
                .unwrap();
        }
        let wal = std::fs::metadata(dir.join("state.sqlite3-wal")).map_or(0, |m| m.len());
        assert!(wal < 8 * 1024 * 1024, "20 MB committed, the log holds {wal} bytes");
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn statuses_written_before_their_expiry_column_get_one() {
        let dir = std::env::temp_dir().join(format!("wa-local-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite3");
        {
            // The statuses table as earlier versions made it, with one message in it.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE statuses(wamid TEXT PRIMARY KEY, status TEXT, rank INTEGER, status_at INTEGER,
                    recipient TEXT, callback_data TEXT, pricing_category TEXT, pricing_type TEXT, billable INTEGER,
                    costed INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO statuses(wamid, status) VALUES ('wamid.old', 'read');",
            )
            .unwrap();
        }
        for _ in 0..2 {
            // Opened twice: the second time finds nothing to migrate.
            let db = LocalDb::open(&path).unwrap();
            let expires_at: i64 = db
                .lock()
                .query_row("SELECT expires_at FROM statuses WHERE wamid = 'wamid.old'", [], |r| r.get(0))
                .unwrap();
            let expected = now_ms() / 1000 + state::STATUS_TTL_S;
            assert!((expected - 60..=expected).contains(&expires_at), "{expires_at} vs {expected}");
            let state = LocalState::new(&db);
            assert_eq!(state.expire(u64::try_from(expires_at + 1).unwrap()).unwrap(), 1);
            db.lock()
                .execute(
                    "INSERT INTO statuses(wamid, status, expires_at) VALUES ('wamid.old', 'read', ?1)",
                    [expires_at],
                )
                .unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn blobs_expire_by_prefix_and_age_and_old_ones_get_an_age() {
        use wa_core::ports::BlobStore;
        let dir = std::env::temp_dir().join(format!("wa-local-blobs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.sqlite3");
        {
            // The blobs table as earlier versions made it, with one claim-checked event in it.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE blobs(key TEXT PRIMARY KEY, body BLOB NOT NULL);
                 INSERT INTO blobs(key, body) VALUES ('claim-check/old.json', x'7b7d');",
            )
            .unwrap();
        }
        let db = LocalDb::open(&path).unwrap();
        let blobs = LocalBlobs::new(&db);
        blobs.put("claim-check/new.json", b"{}".to_vec(), "application/json").await.unwrap();
        blobs.put("quarantine/parked.json", b"x".to_vec(), "application/json").await.unwrap();
        blobs.put("other/kept.json", b"y".to_vec(), "application/json").await.unwrap();
        let day = 86_400;
        let now = u64::try_from(now_ms() / 1000).unwrap();
        // The old blob was given its age when the file was opened: now.
        let rules = [("claim-check/", 15), ("quarantine/", 365)];
        assert_eq!(blobs.expire(now + 14 * day, &rules).unwrap(), 0, "none is 15 days old yet");
        assert_eq!(blobs.expire(now + 16 * day, &rules).unwrap(), 2, "both claim-checks");
        assert!(blobs.get("claim-check/old.json").await.is_err());
        assert_eq!(blobs.get("quarantine/parked.json").await.unwrap(), b"x");
        assert_eq!(blobs.expire(now + 366 * day, &rules).unwrap(), 1, "the parked body after a year");
        assert_eq!(blobs.get("other/kept.json").await.unwrap(), b"y", "no rule, kept");
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn renewing_a_blob_restarts_its_age() {
        use wa_core::ports::{BlobError, BlobStore};
        let db = LocalDb::memory().unwrap();
        let blobs = LocalBlobs::new(&db);
        blobs.put("claim-check/a.json", b"{}".to_vec(), "application/json").await.unwrap();
        let day = 86_400;
        db.lock().execute("UPDATE blobs SET put_at = put_at - ?1", [14 * day]).unwrap();
        let now = u64::try_from(now_ms() / 1000).unwrap();
        let rules = [("claim-check/", 15)];
        blobs.renew("claim-check/a.json").await.unwrap();
        assert_eq!(blobs.expire(now + 2 * day, &rules).unwrap(), 0, "15 days from the renewal, not the put");
        assert_eq!(blobs.expire(now + 16 * day, &rules).unwrap(), 1);
        assert!(matches!(blobs.renew("claim-check/a.json").await, Err(BlobError::NotFound(_))));
    }
}
