//! The SQLite backend: one file, `DIR/watch-together.db`, written by the writer's thread.
//!
//! - **WAL, `synchronous=NORMAL`.** A commit appends to the write-ahead log without an
//!   fsync (the log is synced at checkpoints). A crash of the process loses nothing committed;
//!   a power loss or kernel crash may roll back the last commits, never corrupt the file.
//!   `FULL` would fsync every commit; group commit would make that affordable, but the rooms
//!   would wait that long for every chat's ack.
//! - **Schema** (`PRAGMA user_version` = [`SCHEMA_VERSION`]): `rooms(room, record,
//!   expires_at_ms)` and `chat(room, id, message)`, both keyed by the room's id as text (the
//!   file stays readable with the `sqlite3` shell). Created on first open, migrated from an
//!   older version at open; a file from a newer build is refused rather than misread.
//! - **Expiry.** Rooms past `expires_at_ms` are neither loaded nor listed, and open deletes
//!   them, with chat left without a room record (a room that appended chat and never stored a
//!   record cannot be loaded anyway).
//! - **Reads** run on the writer's thread between commits, on the same connection: a read
//!   sees every write committed before it was asked.
//! - **Checkpoints** (copying the log into the file, with its fsyncs) run on a thread of
//!   their own every [`CHECKPOINT_EVERY`], never inside a commit: SQLite's automatic
//!   checkpoint ran in the commit that filled the log past 1,000 pages, and that commit's
//!   chat waited for it (chat-storm's chat p99 was 7–8 ms with it, 2.2–2.4 ms without). Only
//!   the tail of a log grown past a limit is copied by the writer, between two commits, so
//!   that the log starts over (`Checkpointer`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::plan::{Plan, Step};
use super::writer::{Backend, Read};
use super::{BackendError, StoreError, StoreOptions, StoredRoom};
use crate::clock;
use crate::ids::RoomId;

/// The backend's name.
pub const KIND: &str = "sqlite";

/// The file's name within the store's directory.
pub const FILE_NAME: &str = "watch-together.db";

/// The schema this build writes, kept in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i32 = 2;

/// Version 2, created in a new file.
///
/// - `rooms` is an ordinary (rowid) table: its records are 1–2 KB of JSON for a room of ten,
///   more than a `WITHOUT ROWID` b-tree keeps in its cells (about 1 KB on 4 KB pages), so in
///   version 1 every record spilled onto an overflow page, and every write of one read and
///   wrote two pages. A rowid table keeps records up to about 4 KB in the cell; the room's
///   id is then a small unique index beside it.
/// - No index on `expires_at_ms`: every write of a record moves its expiry, so that index
///   cost a second b-tree update per write, for the sweep at open and `list`, which scan a
///   table of one row per room just as well.
/// - `chat` stays `WITHOUT ROWID`: messages are small and always read and trimmed by their
///   key, `(room, id)`.
const SCHEMA_V2: &str = "
    CREATE TABLE rooms (
        room TEXT PRIMARY KEY,
        record BLOB NOT NULL,
        expires_at_ms INTEGER NOT NULL
    );
    CREATE TABLE chat (
        room TEXT NOT NULL,
        id INTEGER NOT NULL,
        message BLOB NOT NULL,
        PRIMARY KEY (room, id)
    ) WITHOUT ROWID;
";

/// From version 1 (`rooms` was `WITHOUT ROWID`, with an index on the expiry) to 2: the rooms
/// are copied into the new table, which then takes the old one's name.
const MIGRATE_V1_TO_V2: &str = "
    CREATE TABLE rooms_v2 (
        room TEXT PRIMARY KEY,
        record BLOB NOT NULL,
        expires_at_ms INTEGER NOT NULL
    );
    INSERT INTO rooms_v2 (room, record, expires_at_ms)
        SELECT room, record, expires_at_ms FROM rooms;
    DROP TABLE rooms;
    ALTER TABLE rooms_v2 RENAME TO rooms;
";

/// How often the checkpointer copies the log into the database file, by default
/// ([`StoreOptions::sqlite_checkpoint_every`]). A checkpoint with nothing to copy only reads
/// the log's index; at chat-storm's rate the log grows by a few MB between two.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Past this size, the log file is truncated when it starts over (after a checkpoint copied
/// it all), so a burst does not leave it large for good.
const LOG_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The writer's connection.
pub(crate) struct Sqlite {
    /// The connection that writes (and reads), used only on the writer's thread.
    conn: Connection,
    /// Checkpoints the log beside it; stopped when the backend is dropped.
    _checkpointer: Checkpointer,
    /// Set by the checkpointer when it found the log past
    /// [`StoreOptions::sqlite_log_restart_pages`]: the writer then checkpoints the log's tail
    /// itself, between two commits, so the log starts over (see [`Checkpointer`]).
    tail_due: Arc<AtomicBool>,
}

/// A thread with its own connection to the file, running passive checkpoints (which never
/// block the writer) every [`StoreOptions::sqlite_checkpoint_every`] until dropped.
///
/// The log starts over only when a commit finds every frame of it copied. Under a steady
/// stream of commits (chat-storm commits about every 0.8 ms) a passive checkpoint never gets
/// there: commits land while it copies, so the log grew by about 17 MB a second for as long
/// as the stream lasted (775 MB at the end of a 45 s chat-storm hold), and a crash then left
/// that much log to read back at the next open. So when a checkpoint finds the log past
/// [`StoreOptions::sqlite_log_restart_pages`], it raises `tail_due`, and the writer copies
/// the tail (what was committed meanwhile) itself after its next commit: with no commit
/// running beside it that checkpoint completes, and the next commit starts the log over.
/// Only then, because the commits queued behind that checkpoint wait for it (1–3 ms with its
/// two fsyncs): doing it after every pass raised chat-storm's chat p99 from 4.9–5.0 to
/// 5.7–8.6 ms.
struct Checkpointer {
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    /// Joined on drop, so the file is left with no thread of ours on it.
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(
        file: &Path,
        every: Duration,
        restart_pages: u32,
        tail_due: Arc<AtomicBool>,
    ) -> Result<Checkpointer, BackendError> {
        let conn = Connection::open(file)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                // Said once per run of failures, not four times a second.
                let mut failing = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    match checkpoint(&conn) {
                        Ok(frames) => {
                            if frames >= i64::from(restart_pages) {
                                tail_due.store(true, Ordering::Release);
                            }
                            if std::mem::take(&mut failing) {
                                tracing::info!("SQLite checkpoints work again");
                            }
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
                            }
                        }
                    }
                }
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs a passive checkpoint on `conn`; returns how many frames (pages) the log held when it
/// began (it copies those it may; commits made while it runs are left for the next).
fn checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// Milliseconds as SQLite's signed integer; later than year 292 million is "never".
fn ms(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// Server time now, in the epoch milliseconds `expires_at_ms` uses.
fn now_ms() -> i64 {
    clock::now_ms() as i64
}

impl Sqlite {
    /// Opens (creating if needed) the store in `dir`: WAL, `synchronous=NORMAL`, the schema,
    /// and a sweep of expired rooms.
    pub(crate) fn open(dir: &Path, options: &StoreOptions) -> Result<Sqlite, BackendError> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join(FILE_NAME);
        let mut conn = Connection::open(&file)?;
        conn.busy_timeout(options.sqlite_busy_timeout)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BackendError::Data(format!(
                "SQLite refused WAL mode (kept {mode:?}): the store needs it so a crash \
                 loses nothing committed"
            )));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The checkpointer's thread does it (module doc).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", LOG_SIZE_LIMIT)?;
        migrate(&mut conn)?;
        sweep(&mut conn)?;
        let tail_due = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer::start(
            &file,
            options.sqlite_checkpoint_every,
            options.sqlite_log_restart_pages,
            tail_due.clone(),
        )?;
        Ok(Sqlite {
            conn,
            _checkpointer: checkpointer,
            tail_due,
        })
    }

    /// Applies `plan` in one `IMMEDIATE` transaction (the write lock taken up front, so a
    /// lock held elsewhere fails at `BEGIN`, not halfway), rolled back if a step fails.
    ///
    /// Every statement, `BEGIN` and `COMMIT` included, is compiled once and kept by the
    /// connection: rusqlite's `Transaction` parses its `BEGIN` and `COMMIT` anew each time,
    /// and with a chat message committed on its own that parsing was a seventh of this
    /// thread's time.
    fn apply(&mut self, plan: &Plan<'_>) -> Result<(), BackendError> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let applied = self.steps(plan).and_then(|()| {
            self.conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        });
        if applied.is_err() && !self.conn.is_autocommit() {
            // The error being reported is the step's; a failed rollback leaves the
            // transaction open, and the next `BEGIN` fails and is retried like any commit.
            if let Err(e) = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]))
            {
                tracing::warn!(error = %e, "SQLite rollback failed");
            }
        }
        applied
    }

    /// The statements of `plan`, inside the transaction [`Sqlite::apply`] opened.
    fn steps(&self, plan: &Plan<'_>) -> Result<(), BackendError> {
        let conn = &self.conn;
        let mut put = conn.prepare_cached(
            "INSERT INTO rooms (room, record, expires_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (room) DO UPDATE
             SET record = excluded.record, expires_at_ms = excluded.expires_at_ms",
        )?;
        let mut append = conn.prepare_cached(
            "INSERT OR REPLACE INTO chat (room, id, message) VALUES (?1, ?2, ?3)",
        )?;
        // A trim deletes a range of the key, known from the newest id (`Step::Trim`): no
        // counting, no subquery. Counting the newest `keep` rows to find where to cut was
        // a third of this thread's time in chat-storm; a subquery in the DELETE made SQLite
        // build a temporary b-tree for every trim.
        let mut trim = conn.prepare_cached("DELETE FROM chat WHERE room = ?1 AND id <= ?2")?;
        let mut delete_room = conn.prepare_cached("DELETE FROM rooms WHERE room = ?1")?;
        let mut delete_chat = conn.prepare_cached("DELETE FROM chat WHERE room = ?1")?;
        for step in &plan.steps {
            match *step {
                Step::Put {
                    room,
                    record,
                    expires_at_ms,
                } => {
                    put.execute(params![room.to_string(), record, ms(expires_at_ms)])?;
                }
                Step::Append { room, id, message } => {
                    append.execute(params![room.to_string(), ms(id), message])?;
                }
                Step::Trim { room, keep, newest } => {
                    let keep = u64::try_from(keep).unwrap_or(u64::MAX);
                    if let Some(cutoff) = newest.checked_sub(keep).filter(|&c| c > 0) {
                        trim.execute(params![room.to_string(), ms(cutoff)])?;
                    }
                }
                Step::Delete { room } => {
                    let room = room.to_string();
                    delete_room.execute([&room])?;
                    delete_chat.execute([&room])?;
                }
            }
        }
        Ok(())
    }

    /// The room's record and chat, unless absent or expired.
    fn load(&self, room: RoomId) -> Result<Option<StoredRoom>, BackendError> {
        let room = room.to_string();
        let found: Option<(Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT record, expires_at_ms FROM rooms WHERE room = ?1",
                [&room],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((record, expires_at_ms)) = found else {
            return Ok(None);
        };
        if expires_at_ms <= now_ms() {
            return Ok(None);
        }
        let mut select = self
            .conn
            .prepare("SELECT message FROM chat WHERE room = ?1 ORDER BY id")?;
        let chat = select
            .query_map([&room], |row| row.get(0))?
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok(Some(StoredRoom { record, chat }))
    }

    /// Every room not expired. An id that does not parse is skipped with a warning: the
    /// store writes only ids it was given, so that is somebody else's row.
    fn list(&self) -> Result<Vec<RoomId>, BackendError> {
        let mut select = self
            .conn
            .prepare("SELECT room FROM rooms WHERE expires_at_ms > ?1 ORDER BY room")?;
        let ids = select
            .query_map([now_ms()], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids
            .into_iter()
            .filter_map(|id| match id.parse() {
                Ok(room) => Some(room),
                Err(_) => {
                    tracing::warn!(id, "store: skipping a room row whose id is not a room id");
                    None
                }
            })
            .collect())
    }
}

/// Creates the schema in a new file, or brings an older one up to [`SCHEMA_VERSION`] in one
/// transaction; a file from a newer build is refused.
fn migrate(conn: &mut Connection) -> Result<(), BackendError> {
    let version: i32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let script = match version {
        0 => SCHEMA_V2,
        1 => {
            tracing::info!("store: migrating the SQLite schema from version 1 to 2");
            MIGRATE_V1_TO_V2
        }
        SCHEMA_VERSION => return Ok(()),
        other => {
            return Err(BackendError::Data(format!(
                "the store's schema is version {other}; this build knows versions up to \
                 {SCHEMA_VERSION}"
            )))
        }
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(script)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Deletes expired rooms and chat without a room record.
fn sweep(conn: &mut Connection) -> Result<(), BackendError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rooms = tx.execute("DELETE FROM rooms WHERE expires_at_ms <= ?1", [now_ms()])?;
    let messages = tx.execute(
        "DELETE FROM chat WHERE room NOT IN (SELECT room FROM rooms)",
        [],
    )?;
    tx.commit()?;
    if rooms + messages > 0 {
        tracing::info!(rooms, messages, "store: swept expired rooms at open");
    }
    Ok(())
}

impl Backend for Sqlite {
    const KIND: &'static str = KIND;
    const PROBES: bool = false;

    async fn commit(&mut self, plan: &Plan<'_>) -> Result<Vec<RoomId>, BackendError> {
        // Blocks this thread, which is the writer's own: nothing else waits on it. One
        // process owns the file, so there is nobody to be fenced by.
        self.apply(plan).map(|()| Vec::new())
    }

    fn after_commit(&mut self) {
        if self.tail_due.swap(false, Ordering::AcqRel) {
            // A failure is the checkpointer's to report; it raises the flag again.
            if let Err(e) = checkpoint(&self.conn) {
                tracing::debug!(error = %e, "SQLite checkpoint of the log's tail failed");
            }
        }
    }

    fn read(&mut self, read: Read) {
        // Replies whose caller gave up need no answer.
        match read {
            Read::Load { room, reply } => {
                let _ = reply.send(self.load(room).map_err(StoreError::read(KIND)));
            }
            Read::List { reply } => {
                let _ = reply.send(self.list().map_err(StoreError::read(KIND)));
            }
        }
    }

    async fn probe(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of the test's own under the system's temp dir, removed when dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("wt-sqlite-unit-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// How many times the log has started over: the checkpoint sequence number in its
    /// header (bytes 12–15, big-endian), which SQLite counts up at each start-over.
    fn log_restarts(dir: &Path) -> u32 {
        let header = std::fs::read(dir.join(format!("{FILE_NAME}-wal"))).expect("the log");
        u32::from_be_bytes([header[12], header[13], header[14], header[15]])
    }

    /// Commits `n` room records of about a page each, one transaction each.
    fn commit_records(sqlite: &Sqlite, first: usize, n: usize) {
        for i in first..first + n {
            sqlite
                .conn
                .execute(
                    "INSERT INTO rooms (room, record, expires_at_ms) VALUES (?1, ?2, ?3)",
                    params![format!("room-{i}"), vec![7u8; 3000], i64::MAX],
                )
                .expect("commit");
        }
    }

    #[test]
    fn the_writer_copies_the_tail_so_the_next_commit_starts_the_log_over() {
        let scratch = Scratch::new("tail");
        // No pass of the checkpointer during the test: what the writer does is all there is.
        let options = StoreOptions {
            sqlite_checkpoint_every: Duration::from_secs(3600),
            ..StoreOptions::default()
        };
        let mut sqlite = Sqlite::open(&scratch.0, &options).expect("open");
        commit_records(&sqlite, 0, 20);
        let before = log_restarts(&scratch.0);
        // As if the checkpointer's last pass had met commits and found the log too long.
        sqlite.tail_due.store(true, Ordering::Release);
        sqlite.after_commit();
        assert!(
            !sqlite.tail_due.load(Ordering::Acquire),
            "the tail was taken"
        );
        commit_records(&sqlite, 20, 1);
        assert_eq!(log_restarts(&scratch.0), before + 1, "the log started over");
    }

    #[test]
    fn a_pass_over_a_log_past_the_limit_asks_the_writer_for_the_tail() {
        let scratch = Scratch::new("limit");
        let options = StoreOptions {
            sqlite_log_restart_pages: 8,
            ..StoreOptions::default()
        };
        let sqlite = Sqlite::open(&scratch.0, &options).expect("open");
        commit_records(&sqlite, 0, 20);
        // The checkpointer's next pass finds 20 pages or more.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !sqlite.tail_due.load(Ordering::Acquire) {
            assert!(
                std::time::Instant::now() < deadline,
                "no pass raised tail_due"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
