//! The writer: one thread per store, running a single-threaded tokio runtime, that owns the
//! backend and the queue of uncommitted writes.
//!
//! Callers talk to it through an unbounded channel ([`Cmd`]), so [`Store::write`] never
//! waits; the channel keeps the order of writes made from one thread, which is what "order
//! per room" needs (a room lives on one thread). The loop:
//!
//! 1. **Idle**: wait for a command (a Redis writer also pings Redis every
//!    [`StoreOptions::redis_probe_every`] while idle, so health notices an outage).
//! 2. **Gather**: having a write, take whatever else is already queued, until
//!    [`StoreOptions::batch_window`] has passed or [`StoreOptions::max_batch`] writes are in
//!    hand. When nothing more is queued, a batch someone waits for (a chat message's ack, a
//!    flush) goes at once; one nobody waits for (write-behind records) waits out the window for
//!    company, so a steady trickle of records costs one transaction per window, not one per
//!    record. While it waits out the window it listens only for commands someone waits for
//!    ([`Shared::urgent`]), so a trickle of records does not wake it once per record. While a
//!    commit runs, new writes pile up in the channel and the next batch takes them all: that
//!    is the group commit.
//! 3. **Commit** the oldest writes as one [`Plan`]. On success: complete their acks with
//!    `Ok`, health `Ok`, then let the backend do its housekeeping ([`Backend::after_commit`]:
//!    SQLite's log tail) with no ack waiting. On failure: log, count, health `Degraded`,
//!    complete their acks with the error, keep the writes, and wait the backoff (serving
//!    reads, flushes and new writes meanwhile) before retrying.
//!
//! Reads go through the same channel. SQLite answers them on this thread between commits;
//! Redis answers each in a task of its own on this runtime, so a slow commit does not hold
//! them up. When every [`Store`] handle is gone the channel closes: the writer commits what
//! it holds (one more attempt if the last failed) and stops.
//!
//! [`Store`]: super::Store
//! [`Store::write`]: super::Store::write

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::plan::Plan;
use super::queue::{Backoff, Evicted, Limits, Queue};
use super::{
    Ack, BackendError, Fence, StoreError, StoreHealth, StoreMetrics, StoreOptions, StoredRoom,
    WriteOp,
};
use crate::ids::RoomId;

/// Where a read's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A read, answered by the backend.
pub(crate) enum Read {
    /// [`Store::load`](super::Store::load).
    Load {
        /// The room.
        room: RoomId,
        /// The answer.
        reply: Reply<Option<StoredRoom>>,
    },
    /// [`Store::list`](super::Store::list).
    List {
        /// The answer.
        reply: Reply<Vec<RoomId>>,
    },
}

/// What callers send the writer.
pub(crate) enum Cmd {
    /// Queue a write.
    Write {
        /// The write.
        op: WriteOp,
        /// The ownership epoch it was made under, if any.
        fence: Option<Fence>,
        /// Completed when it commits or fails; `None` if nobody waits, or the caller already
        /// answered it (store degraded).
        ack: Option<Ack>,
    },
    /// Answer a read.
    Read(Read),
    /// Answer once every write queued before this is committed.
    Flush(oneshot::Sender<()>),
}

/// What a backend does for the writer.
pub(crate) trait Backend {
    /// `"sqlite"` or `"redis"`, for logs and errors.
    const KIND: &'static str;
    /// Whether the idle writer should call [`Backend::probe`].
    const PROBES: bool;

    /// Applies `plan` in one transaction: all of it or none, except that the steps of a
    /// room whose fence no longer holds are left out. Returns those rooms.
    fn commit(
        &mut self,
        plan: &Plan<'_>,
    ) -> impl Future<Output = Result<Vec<RoomId>, BackendError>>;

    /// Housekeeping after a successful commit whose acks are out (SQLite: the log's tail
    /// checkpoint), so no ack waits for it.
    fn after_commit(&mut self) {}

    /// Answers `read`, now or from a task of its own.
    fn read(&mut self, read: Read);

    /// Checks the backend answers.
    fn probe(&mut self) -> impl Future<Output = Result<(), BackendError>>;
}

/// State shared by the writer and every handle.
pub(crate) struct Shared {
    /// Writes sent and not yet committed or dropped (the channel and the queue together).
    pub pending: AtomicUsize,
    /// Whether the store is degraded: read on every write, so an atomic.
    pub degraded: AtomicBool,
    /// Why, while `degraded`.
    pub reason: Mutex<Option<String>>,
    /// The metrics.
    pub metrics: Arc<StoreMetrics>,
    /// Rings when a command arrives that someone waits for (a write with an ack, a read, a
    /// flush). A batch of write-behind records sleeps out its window listening only to this:
    /// other writes then queue in the channel without waking the writer one by one (each
    /// wake was a syscall on the room's worker thread, about 2 % of the workers' time in
    /// many-rooms).
    pub urgent: Notify,
}

impl Shared {
    /// The reason the store is degraded, if it is. The flag is read first so the healthy
    /// path of every write costs one atomic load.
    pub fn degraded_reason(&self) -> Option<String> {
        if !self.degraded.load(Ordering::Acquire) {
            return None;
        }
        self.reason.lock().clone()
    }

    /// Marks the store degraded for `reason`.
    fn set_degraded(&self, reason: String) {
        *self.reason.lock() = Some(reason);
        self.degraded.store(true, Ordering::Release);
        self.metrics.degraded.set(1);
    }

    /// Marks the store healthy; returns whether it was degraded.
    fn set_ok(&self) -> bool {
        let was = self.degraded.swap(false, Ordering::AcqRel);
        if was {
            *self.reason.lock() = None;
            self.metrics.degraded.set(0);
        }
        was
    }

    /// `n` writes left the pipeline (committed or dropped).
    fn release(&self, n: usize) {
        self.pending.fetch_sub(n, Ordering::AcqRel);
        self.metrics.pending_writes.sub(n as i64);
    }
}

/// The callers' side of a running writer.
pub(crate) struct WriterHandle {
    /// Commands to the writer.
    tx: UnboundedSender<Cmd>,
    /// State shared with the writer.
    shared: Arc<Shared>,
    /// The backend's name.
    kind: &'static str,
    /// Writes refused outright past this many pending: only reached if the writer is stuck
    /// (a commit that never returns), when its own bound cannot act.
    hard_cap: usize,
}

impl WriterHandle {
    /// Queues a write (see [`Store::write`](super::Store::write)).
    pub fn write(&self, op: WriteOp, fence: Option<Fence>, ack: Option<Ack>) {
        let shared = &self.shared;
        if shared.pending.load(Ordering::Acquire) >= self.hard_cap {
            shared.metrics.dropped_writes.inc();
            answer(ack, Err(StoreError::Dropped));
            return;
        }
        let ack = match (ack, shared.degraded_reason()) {
            (Some(ack), Some(reason)) => {
                answer(Some(ack), Err(StoreError::Degraded { reason }));
                None
            }
            (ack, _) => ack,
        };
        shared.pending.fetch_add(1, Ordering::AcqRel);
        shared.metrics.pending_writes.inc();
        let urgent = ack.is_some();
        if let Err(mpsc::error::SendError(cmd)) = self.tx.send(Cmd::Write { op, fence, ack }) {
            shared.release(1);
            shared.metrics.dropped_writes.inc();
            if let Cmd::Write { ack, .. } = cmd {
                answer(ack, Err(StoreError::Stopped));
            }
        }
        if urgent {
            shared.urgent.notify_one();
        }
    }

    /// Sends a read made by `make` and waits for its answer.
    pub async fn read<T>(&self, make: impl FnOnce(Reply<T>) -> Read) -> Result<T, StoreError> {
        self.shared.metrics.loads.inc();
        let (reply, answer) = oneshot::channel();
        self.send(Cmd::Read(make(reply)))
            .map_err(|_| StoreError::Stopped)?;
        let result = answer.await.map_err(|_| StoreError::Stopped)?;
        if result.is_err() {
            self.shared.metrics.read_errors.inc();
        }
        result
    }

    /// Sends a command someone waits for (a read, a flush) to the writer; `Err` if it has
    /// stopped.
    pub fn send(&self, cmd: Cmd) -> Result<(), ()> {
        self.tx.send(cmd).map_err(|_| ())?;
        self.shared.urgent.notify_one();
        Ok(())
    }

    /// Writes not yet committed or dropped.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// The store's health.
    pub fn health(&self) -> StoreHealth {
        if self.tx.is_closed() {
            return StoreHealth::Degraded {
                reason: StoreError::Stopped.to_string(),
            };
        }
        match self.shared.degraded_reason() {
            Some(reason) => StoreHealth::Degraded { reason },
            None => StoreHealth::Ok,
        }
    }

    /// The backend's name.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// Completes `ack`, if any, with `result`.
fn answer(ack: Option<Ack>, result: Result<(), StoreError>) {
    if let Some(ack) = ack {
        // A caller that stopped waiting does not need the answer.
        let _ = ack.send(result);
    }
}

/// Starts a writer thread whose backend `open` makes (on that thread, inside its runtime).
/// Returns the handle and a receiver that says whether `open` succeeded; until it has, writes
/// wait in the channel.
pub(crate) fn spawn<B, F, Fut>(
    kind: &'static str,
    metrics: Arc<StoreMetrics>,
    options: StoreOptions,
    open: F,
) -> Result<(WriterHandle, oneshot::Receiver<Result<(), StoreError>>), StoreError>
where
    B: Backend + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<B, StoreError>>,
{
    let startup = |e: std::io::Error| StoreError::Open {
        backend: kind,
        source: Arc::new(BackendError::Io(e)),
    };
    // Built here so a failure is reported to the caller, not lost on the thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(startup)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let shared = Arc::new(Shared {
        pending: AtomicUsize::new(0),
        degraded: AtomicBool::new(false),
        reason: Mutex::new(None),
        metrics,
        urgent: Notify::new(),
    });
    let hard_cap = options.max_pending.saturating_mul(2);
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("store-{kind}"))
        .spawn(move || {
            runtime.block_on(async move {
                match open().await {
                    Ok(backend) => {
                        // Nobody waiting for readiness is fine (SQLite opens before spawning).
                        let _ = ready_tx.send(Ok(()));
                        Writer::new(backend, rx, thread_shared, options).run().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(startup)?;
    Ok((
        WriterHandle {
            tx,
            shared,
            kind,
            hard_cap,
        },
        ready_rx,
    ))
}

/// The writer's state (module doc).
struct Writer<B> {
    /// The backend.
    backend: B,
    /// Commands from the handles.
    rx: UnboundedReceiver<Cmd>,
    /// Whether the channel is still open (some handle exists).
    open: bool,
    /// Writes not yet committed.
    queue: Queue<Ack>,
    /// Flushes waiting, with the `seq` of the newest write queued before each.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// The wait before the next retry.
    backoff: Backoff,
    /// When to retry the failed batch, while waiting to.
    retry_at: Option<Instant>,
    /// Commits failed in a row, for the log line of the recovery.
    failures: u32,
    /// Whether someone waits for the queued writes (a write's ack or a flush): the batch
    /// then goes as soon as nothing more is queued.
    awaited: bool,
    /// State shared with the handles.
    shared: Arc<Shared>,
    /// The tunables.
    options: StoreOptions,
}

impl<B: Backend> Writer<B> {
    fn new(
        backend: B,
        rx: UnboundedReceiver<Cmd>,
        shared: Arc<Shared>,
        options: StoreOptions,
    ) -> Self {
        Writer {
            backend,
            rx,
            open: true,
            queue: Queue::new(Limits {
                max_ops: options.max_pending,
                max_bytes: options.max_pending_bytes,
            }),
            flushes: Vec::new(),
            backoff: Backoff::new(options.retry_min, options.retry_max),
            retry_at: None,
            failures: 0,
            awaited: false,
            shared,
            options,
        }
    }

    /// Runs until every handle is gone and the queue is committed (or given up).
    async fn run(mut self) {
        loop {
            if self.queue.is_empty() {
                if !self.open {
                    return;
                }
                self.idle().await;
                continue;
            }
            if let Some(at) = self.retry_at {
                if self.open {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => self.retry_at = None,
                        cmd = self.rx.recv() => self.received(cmd),
                    }
                    continue;
                }
                // Closing: one last attempt now rather than after the backoff.
                self.retry_at = None;
            }
            self.gather().await;
            if !self.commit().await && !self.open {
                let lost = self.queue.clear();
                self.shared.release(lost);
                tracing::error!(
                    backend = B::KIND,
                    lost,
                    "store closed while its writes were failing: they are lost"
                );
                return;
            }
        }
    }

    /// Waits for one command; a probing backend is checked when none comes for a while.
    async fn idle(&mut self) {
        if !B::PROBES {
            let cmd = self.rx.recv().await;
            self.received(cmd);
            return;
        }
        match tokio::time::timeout(self.options.redis_probe_every, self.rx.recv()).await {
            Ok(cmd) => self.received(cmd),
            Err(_) => self.probe().await,
        }
    }

    /// Handles what `recv` gave: a command, or the channel's end.
    fn received(&mut self, cmd: Option<Cmd>) {
        match cmd {
            Some(cmd) => self.handle(cmd),
            None => self.open = false,
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Write { op, fence, ack } => {
                // Raced with a commit that failed after the caller looked: answer now anyway.
                let ack = match (ack, self.shared.degraded_reason()) {
                    (Some(ack), Some(reason)) => {
                        answer(Some(ack), Err(StoreError::Degraded { reason }));
                        None
                    }
                    (ack, _) => ack,
                };
                self.awaited |= ack.is_some();
                let evicted = self.queue.push(op, fence, ack);
                self.evicted(evicted);
            }
            Cmd::Read(read) => self.backend.read(read),
            Cmd::Flush(reply) => match self.queue.last_seq() {
                Some(seq) => {
                    self.awaited = true;
                    self.flushes.push((seq, reply));
                }
                None => {
                    // A flush whose caller gave up needs no answer.
                    let _ = reply.send(());
                }
            },
        }
    }

    /// Accounts for what the queue gave up to stay within its bound.
    fn evicted(&mut self, evicted: Evicted<Ack>) {
        let Evicted {
            coalesced,
            dropped,
            dropped_acks,
        } = evicted;
        if coalesced + dropped == 0 {
            return;
        }
        self.shared.release(coalesced + dropped);
        if dropped > 0 {
            self.shared.metrics.dropped_writes.inc_by(dropped as u64);
            tracing::warn!(
                backend = B::KIND,
                dropped,
                coalesced,
                queued = self.queue.len(),
                "store queue full: dropped the oldest uncommitted writes"
            );
        }
        for ack in dropped_acks {
            answer(Some(ack), Err(StoreError::Dropped));
        }
        self.answer_flushes();
    }

    /// Takes what is queued, within the batch's window and size; waits out the window for
    /// more only while nobody waits for this batch (module doc).
    async fn gather(&mut self) {
        let deadline = Instant::now() + self.options.batch_window;
        loop {
            while self.open && self.queue.len() < self.options.max_batch {
                match self.rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => self.open = false,
                }
            }
            let full = self.queue.len() >= self.options.max_batch;
            if !self.open || full || self.awaited || Instant::now() >= deadline {
                return;
            }
            // Not `rx.recv()`, which every write would wake (`Shared::urgent`): what arrives
            // meanwhile is taken by `try_recv` above once the wait ends.
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = self.shared.urgent.notified() => {}
            }
        }
    }

    /// Commits the oldest writes; returns whether it worked.
    async fn commit(&mut self) -> bool {
        let n = self.queue.len().min(self.options.max_batch);
        let metrics = self.shared.metrics.clone();
        if self.failures > 0 {
            metrics.retries.inc();
        }
        let started = std::time::Instant::now();
        let result = {
            let plan = self.queue.plan(n);
            self.backend.commit(&plan).await
        };
        match result {
            Ok(fenced) => {
                metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.batch_writes.observe(n as f64);
                if !fenced.is_empty() {
                    // Counted before the acks go out, so whoever they wake sees the count.
                    metrics.fenced.inc_by(fenced.len() as u64);
                    tracing::warn!(
                        backend = B::KIND,
                        rooms = ?fenced,
                        "store refused the writes of rooms another node owns now"
                    );
                }
                self.awaited = false;
                for (room, ack) in self.queue.pop_front(n) {
                    let result = if fenced.contains(&room) {
                        Err(StoreError::Fenced { room })
                    } else {
                        Ok(())
                    };
                    answer(Some(ack), result);
                }
                self.shared.release(n);
                if self.shared.set_ok() || self.failures > 0 {
                    tracing::info!(
                        backend = B::KIND,
                        failures = self.failures,
                        "store commits succeed again"
                    );
                }
                self.failures = 0;
                self.backoff.reset();
                self.answer_flushes();
                self.backend.after_commit();
                true
            }
            Err(e) => {
                let error = StoreError::Commit {
                    backend: B::KIND,
                    source: Arc::new(e),
                };
                metrics.commit_errors.inc();
                self.failures += 1;
                let delay = self.backoff.next_delay();
                tracing::warn!(
                    backend = B::KIND,
                    %error,
                    batch = n,
                    queued = self.queue.len(),
                    failures = self.failures,
                    retry_in_ms = delay.as_millis() as u64,
                    "store commit failed: keeping the writes to retry"
                );
                self.shared.set_degraded(error.to_string());
                for ack in self.queue.take_acks(n) {
                    answer(Some(ack), Err(error.clone()));
                }
                self.retry_at = Some(Instant::now() + delay);
                false
            }
        }
    }

    /// Checks an idle backend still answers, and sets health by it.
    async fn probe(&mut self) {
        match self.backend.probe().await {
            Ok(()) => {
                if self.shared.set_ok() {
                    tracing::info!(backend = B::KIND, "store reachable again");
                }
            }
            Err(e) => {
                self.shared.metrics.probe_errors.inc();
                let reason = format!("{} unreachable: {e}", B::KIND);
                if self.shared.degraded_reason().is_none() {
                    tracing::warn!(backend = B::KIND, %reason, "store unreachable");
                }
                self.shared.set_degraded(reason);
            }
        }
    }

    /// Answers the flushes whose writes have all left the queue.
    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let front = self.queue.front_seq();
        let (done, waiting) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(seq, _)| front.is_none_or(|front| front > *seq));
        self.flushes = waiting;
        for (_, reply) in done {
            // A flush whose caller gave up needs no answer.
            let _ = reply.send(());
        }
    }
}
