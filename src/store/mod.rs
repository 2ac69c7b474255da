//! Durable storage for rooms: a handle that queues writes to a background writer and answers
//! reads asynchronously, so a room actor never waits on a disk or a network.
//!
//! Three backends sit behind one [`Store`]:
//! - [`Store::memory`]: no persistence (what the server did before the store existed);
//! - [`Store::sqlite`]: one SQLite file in WAL mode, written by one thread ([`sqlite`]);
//! - [`Store::redis`]: a Redis server reached through a reconnecting connection manager
//!   ([`redis`]).
//!
//! The room layer owns what a room's record and a chat message contain: the store sees opaque
//! bytes. What it guarantees (`store::writer` has the details, docs/storage.md the whole design):
//!
//! - **Order per room.** Writes for one room are applied in the order [`Store::write`] was
//!   called.
//! - **Group commit.** The writer takes everything queued (for at most
//!   [`StoreOptions::batch_window`]) and commits it as one transaction (SQLite) or one
//!   `MULTI`/`EXEC` (Redis); a record replaced within the batch is not written (`store::plan`).
//! - **Acks mean committed.** A write's ack is completed with `Ok` once its batch is
//!   committed, or with the error if that failed.
//! - **Failure degrades, never stops.** A failed batch is kept and retried with exponential
//!   backoff while [`Store::health`] says `Degraded`; the queue is bounded (`store::queue`).

mod metrics;
pub(crate) mod plan;
pub(crate) mod queue;
pub mod redis;
pub mod sqlite;
pub(crate) mod writer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::ids::RoomId;

pub use metrics::StoreMetrics;
use writer::{Cmd, Read, WriterHandle};

/// Completed once a write is committed, or with the reason it is not (yet).
pub type Ack = oneshot::Sender<Result<(), StoreError>>;

/// One change to the stored state of a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// The room's durable state, replacing the previous one.
    PutRoom {
        /// The room.
        room: RoomId,
        /// The serialized record (JSON bytes; the room layer owns its shape).
        record: Vec<u8>,
        /// Epoch milliseconds after which the room may be deleted if never rewritten: SQLite
        /// stores it (expired rooms are neither loaded nor listed, and are swept at open),
        /// Redis sets it as the keys' expiry.
        expires_at_ms: u64,
    },
    /// One chat message; the room keeps only the last `keep`.
    AppendChat {
        /// The room.
        room: RoomId,
        /// The message's id within the room, one more than the room's previous message's:
        /// chat is returned in id order, a second append with the same id replaces the first,
        /// and a trim drops the ids up to the newest minus `keep` (a gap, say from a dropped
        /// write, only means fewer than `keep` are kept).
        id: u64,
        /// The serialized message (JSON bytes).
        message: Vec<u8>,
        /// How many of the room's newest messages to keep. After a batch a room holds at most
        /// the `keep` of its latest append (the room layer passes one constant).
        keep: usize,
    },
    /// The room is gone for good: its record and chat are deleted.
    DeleteRoom {
        /// The room.
        room: RoomId,
    },
}

impl WriteOp {
    /// The room this write is about.
    pub fn room(&self) -> RoomId {
        match self {
            WriteOp::PutRoom { room, .. }
            | WriteOp::AppendChat { room, .. }
            | WriteOp::DeleteRoom { room } => *room,
        }
    }

    /// Roughly the memory the write holds while queued, for the queue's byte bound.
    pub fn size(&self) -> usize {
        let payload = match self {
            WriteOp::PutRoom { record, .. } => record.len(),
            WriteOp::AppendChat { message, .. } => message.len(),
            WriteOp::DeleteRoom { .. } => 0,
        };
        payload + std::mem::size_of::<WriteOp>()
    }
}

/// The ownership epoch a write was made under, when several nodes share one Redis
/// (`crate::cluster`). The Redis backend applies a fenced write only while the room's epoch
/// in Redis is still this one, so a node that lost a room without noticing yet cannot
/// overwrite what the new owner stored. SQLite has one writer and ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fence(pub u64);

/// Everything stored about one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRoom {
    /// The last record written with [`WriteOp::PutRoom`].
    pub record: Vec<u8>,
    /// The kept chat messages, oldest first (by id).
    pub chat: Vec<Vec<u8>>,
}

/// Whether the store is keeping up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHealth {
    /// Writes are being committed.
    Ok,
    /// The last commit failed and is being retried, or the backend is unreachable.
    Degraded {
        /// The last error, for `/api/health` and the logs.
        reason: String,
    },
}

/// Why the backend failed: the library's own error, kept whole for logs and `source()`.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// SQLite refused (locked, disk full, read-only, corrupt...).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Redis refused or could not be reached.
    #[error(transparent)]
    Redis(#[from] ::redis::RedisError),
    /// The file system refused (creating the directory, starting the writer thread).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// What the backend holds is not what this build wrote.
    #[error("{0}")]
    Data(String),
}

/// A store operation that did not succeed. Cloneable: one failed commit answers every ack of
/// its batch.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be opened or connected to.
    #[error("cannot open the {backend} store: {source}")]
    Open {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        #[source]
        source: Arc<BackendError>,
    },
    /// The batch this write was in failed to commit; it stays queued and is retried.
    #[error("{backend} commit failed (the write is kept and retried): {source}")]
    Commit {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        #[source]
        source: Arc<BackendError>,
    },
    /// The store was already retrying earlier writes: this one is queued behind them.
    #[error("the store is degraded (the write is kept and retried): {reason}")]
    Degraded {
        /// The error the store is retrying after.
        reason: String,
    },
    /// The queue of uncommitted writes was full: this write was thrown away.
    #[error("the store's queue of uncommitted writes was full: the write was dropped")]
    Dropped,
    /// A read failed.
    #[error("{backend} read failed: {source}")]
    Read {
        /// Which backend.
        backend: &'static str,
        /// What went wrong.
        #[source]
        source: Arc<BackendError>,
    },
    /// The write was refused: another node took the room over since this one's fence.
    #[error("room {room} is owned by another node now: its write was refused")]
    Fenced {
        /// The room.
        room: RoomId,
    },
    /// The writer thread is gone (it only stops when every handle is dropped, or on a bug).
    #[error("the store's writer has stopped")]
    Stopped,
}

impl StoreError {
    /// Makes a backend's failed read into the error its caller sees.
    pub(crate) fn read(backend: &'static str) -> impl Fn(BackendError) -> StoreError {
        move |e| StoreError::Read {
            backend,
            source: Arc::new(e),
        }
    }
}

/// Tunables of the writer. The defaults are what the server uses; tests shorten the waits.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The longest a batch keeps collecting queued writes after taking its first one. The
    /// batch ends sooner when nothing more is queued, so a lone write is committed at once.
    pub batch_window: Duration,
    /// The most writes in one transaction.
    pub max_batch: usize,
    /// The most uncommitted writes the writer keeps. Beyond it, superseded writes are dropped
    /// first, then the oldest chat, then the oldest writes (see `store::queue`). Calls to
    /// [`Store::write`] are refused at twice this, should the writer itself be stuck.
    pub max_pending: usize,
    /// The most bytes of uncommitted writes the writer keeps, dropped by the same rule.
    pub max_pending_bytes: usize,
    /// The first wait before retrying a failed commit; it doubles with each failure.
    pub retry_min: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// How long SQLite waits for a lock held by another connection before the commit fails.
    pub sqlite_busy_timeout: Duration,
    /// How often SQLite's checkpointer copies the log into the file (`store::sqlite`).
    pub sqlite_checkpoint_every: Duration,
    /// Pages in SQLite's log past which the writer makes sure the log starts over, by
    /// checkpointing what the checkpointer's last pass left between two commits (see
    /// `store::sqlite`). Below it the log starts over by itself whenever commits pause.
    pub sqlite_log_restart_pages: u32,
    /// How long a Redis connection attempt or command may take before it counts as failed.
    pub redis_timeout: Duration,
    /// How often an idle Redis writer checks that Redis still answers, so health turns
    /// `Degraded` without waiting for a write.
    pub redis_probe_every: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            batch_window: Duration::from_millis(5),
            max_batch: 10_000,
            max_pending: 100_000,
            max_pending_bytes: 64 << 20,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(1),
            sqlite_checkpoint_every: sqlite::CHECKPOINT_EVERY,
            sqlite_log_restart_pages: 4096,
            redis_timeout: Duration::from_secs(2),
            redis_probe_every: Duration::from_secs(1),
        }
    }
}

/// The handle rooms write through: cheap to clone, `Send + Sync`, never blocks.
#[derive(Clone)]
pub struct Store {
    /// The backend, shared by every clone: the writer stops when the last clone is dropped.
    inner: Arc<Inner>,
}

/// What a [`Store`] wraps.
enum Inner {
    /// No persistence.
    Memory,
    /// A writer thread with its backend.
    Writer(WriterHandle),
}

impl Store {
    /// No persistence at all: every write is acknowledged at once, loads find nothing.
    pub fn memory() -> Store {
        Store {
            inner: Arc::new(Inner::Memory),
        }
    }

    /// SQLite file `dir/watch-together.db` (`dir` created if missing), WAL with
    /// `synchronous=NORMAL`, written by one thread, with the default options.
    pub fn sqlite(dir: &Path, metrics: Arc<StoreMetrics>) -> Result<Store, StoreError> {
        Self::sqlite_with(dir, metrics, StoreOptions::default())
    }

    /// [`Store::sqlite`] with chosen options. Opens the file and creates the schema on the
    /// calling thread (start-up work), then hands the connection to the writer thread.
    pub fn sqlite_with(
        dir: &Path,
        metrics: Arc<StoreMetrics>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let backend = sqlite::Sqlite::open(dir, &options).map_err(|e| StoreError::Open {
            backend: sqlite::KIND,
            source: Arc::new(e),
        })?;
        let (handle, _ready) = writer::spawn(sqlite::KIND, metrics, options, move || async move {
            Ok(backend)
        })?;
        Ok(Store {
            inner: Arc::new(Inner::Writer(handle)),
        })
    }

    /// Redis at `url` (`redis://HOST:PORT/DB`) through a reconnecting connection manager,
    /// with the default options. Fails if Redis does not answer now: a wrong address is
    /// better reported at start-up than discovered as a degraded store.
    pub async fn redis(url: &str, metrics: Arc<StoreMetrics>) -> Result<Store, StoreError> {
        Self::redis_with(url, metrics, StoreOptions::default()).await
    }

    /// [`Store::redis`] with chosen options. The connection lives on the writer's thread, so
    /// it does not depend on the caller's runtime outliving it.
    pub async fn redis_with(
        url: &str,
        metrics: Arc<StoreMetrics>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let url = url.to_owned();
        let timeout = options.redis_timeout;
        let (handle, ready) = writer::spawn(redis::KIND, metrics, options, move || async move {
            redis::Redis::connect(&url, timeout)
                .await
                .map_err(|e| StoreError::Open {
                    backend: redis::KIND,
                    source: Arc::new(e),
                })
        })?;
        ready.await.map_err(|_| StoreError::Stopped)??;
        Ok(Store {
            inner: Arc::new(Inner::Writer(handle)),
        })
    }

    /// Queues a write and returns at once. `ack`, when given, is completed with `Ok` once the
    /// write is committed, or with the error when its commit failed, when the store was
    /// already degraded (at once, so a caller waiting on it is not held up), or when it was
    /// dropped. Failed writes stay queued and are retried: an `Err` says "not durable yet",
    /// not "lost", except for [`StoreError::Dropped`] and [`StoreError::Stopped`].
    pub fn write(&self, op: WriteOp, ack: Option<Ack>) {
        self.write_fenced(op, None, ack);
    }

    /// [`Store::write`] under `fence`: the Redis backend refuses it, answering the ack with
    /// [`StoreError::Fenced`], once another node has taken the room over.
    pub fn write_fenced(&self, op: WriteOp, fence: Option<Fence>, ack: Option<Ack>) {
        match &*self.inner {
            Inner::Memory => {
                if let Some(ack) = ack {
                    // A caller that stopped waiting does not need the answer.
                    let _ = ack.send(Ok(()));
                }
            }
            Inner::Writer(writer) => writer.write(op, fence, ack),
        }
    }

    /// Everything stored about one room, or `None` (never stored, deleted or expired).
    pub async fn load(&self, room: RoomId) -> Result<Option<StoredRoom>, StoreError> {
        match &*self.inner {
            Inner::Memory => Ok(None),
            Inner::Writer(writer) => writer.read(|reply| Read::Load { room, reply }).await,
        }
    }

    /// Ids of every stored room that has not expired (for loading rooms at start-up).
    pub async fn list(&self) -> Result<Vec<RoomId>, StoreError> {
        match &*self.inner {
            Inner::Memory => Ok(Vec::new()),
            Inner::Writer(writer) => writer.read(|reply| Read::List { reply }).await,
        }
    }

    /// Waits until every write queued before the call is committed, or `timeout` passes (for
    /// shutdown). Returns 0 when they all were, else how many writes were still uncommitted
    /// at the deadline (counting any queued after the call).
    pub async fn flush(&self, timeout: Duration) -> usize {
        match &*self.inner {
            Inner::Memory => 0,
            Inner::Writer(writer) => {
                let (reply, done) = oneshot::channel();
                if writer.send(Cmd::Flush(reply)).is_ok()
                    && matches!(tokio::time::timeout(timeout, done).await, Ok(Ok(())))
                {
                    return 0;
                }
                writer.pending()
            }
        }
    }

    /// `Ok`, or `Degraded` with the reason while writes are failing or the backend is
    /// unreachable.
    pub fn health(&self) -> StoreHealth {
        match &*self.inner {
            Inner::Memory => StoreHealth::Ok,
            Inner::Writer(writer) => writer.health(),
        }
    }

    /// Which backend: `"memory"`, `"sqlite"` or `"redis"`.
    pub fn kind(&self) -> &'static str {
        match &*self.inner {
            Inner::Memory => "memory",
            Inner::Writer(writer) => writer.kind(),
        }
    }

    /// Writes queued and not yet committed or dropped.
    pub fn pending(&self) -> usize {
        match &*self.inner {
            Inner::Memory => 0,
            Inner::Writer(writer) => writer.pending(),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("kind", &self.kind())
            .field("pending", &self.pending())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_cheap_to_share_between_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Store>();
    }

    #[test]
    fn an_error_tells_whether_the_write_is_kept() {
        let kept = StoreError::Degraded {
            reason: "disk full".into(),
        };
        assert!(kept.to_string().contains("kept and retried"));
        assert!(StoreError::Dropped.to_string().contains("dropped"));
    }
}
