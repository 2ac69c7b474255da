//! The machine's floor: what one frame out and one frame in cost with plain sockets and no
//! framework, measured in the same run as the server so both figures share the machine's
//! conditions (kernel, CPU model, neighbours, steal).
//!
//! N loopback connections are opened with both ends in this process. One thread writes
//! frames to them in turn, one `write` per frame, like a server fanning out; another drains
//! the other ends with epoll, one `read` per ready socket, like a server reading its clients.
//! Each thread's own CPU time (user and kernel apart, from `getrusage(RUSAGE_THREAD)`)
//! divided by the frames is the least this machine lets a frame cost. On loopback the
//! writer's kernel time also holds the receiving side's TCP work, as the server's does in the
//! real run.
//!
//! The cost depends on how often the reader sleeps: a write that finds the reader asleep in
//! `epoll_wait` pays for waking it, and the reader pays for sleeping and waking. Other
//! processes on the two cores change that (a reader kept from its core finds several
//! frames waiting and nobody has to wake it), so the floor runs a few rounds, reports each
//! round's conditions and how often the reader slept, and takes the median of the rounds
//! that had the cores to themselves.

use std::time::Duration;

use super::progress::QUIET_OTHERS_PCT;
use super::server::{machine_cpu, open_file_limit, sample, MachineCpu, ProcSample};

/// Open files kept free besides the floor's sockets (the listener, epoll, whatever the
/// process still holds from the run).
const SPARE_FILES: u64 = 32;
/// The reader gives up when nothing arrives for this long: the writer must have failed.
const STALL: Duration = Duration::from_secs(10);

/// What the floor should do.
#[derive(Clone, Copy, Debug)]
pub struct FloorPlan {
    /// Connections wanted: the run's session count.
    pub sockets: usize,
    /// Payload bytes of one frame: the run's average server → client frame.
    pub payload: usize,
    /// Frames each round writes (and reads).
    pub frames: u64,
    /// Rounds over the same connections; the median round is the floor.
    pub rounds: usize,
}

/// CPU time of one thread, split as the kernel accounts it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadCpu {
    /// Time in user space, seconds.
    pub user_s: f64,
    /// Time in the kernel, seconds.
    pub kernel_s: f64,
}

impl ThreadCpu {
    /// User plus kernel.
    pub fn total_s(self) -> f64 {
        self.user_s + self.kernel_s
    }
}

/// One round: every frame written once and read once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Round {
    /// The writer thread's CPU.
    pub writer: ThreadCpu,
    /// The reader thread's CPU.
    pub reader: ThreadCpu,
    /// `read` calls that returned data: frames per read shows how far the reader batched.
    pub reads: u64,
    /// `epoll_wait` calls.
    pub waits: u64,
    /// Times the reader went to sleep (voluntary context switches): each one also cost a
    /// write the wake-up.
    pub sleeps: u64,
    /// Seconds from the go until the last byte was read.
    pub wall_s: f64,
    /// What else used the machine meanwhile, when /proc could tell.
    pub conditions: Option<Conditions>,
}

impl Round {
    /// Writer plus reader CPU: what orders the rounds.
    fn cost(&self) -> f64 {
        self.writer.total_s() + self.reader.total_s()
    }

    /// Quiet, or not known to be otherwise.
    fn quiet(&self) -> bool {
        self.conditions.is_none_or(|c| c.quiet())
    }
}

/// What the floor measured.
#[derive(Clone, Debug)]
pub struct Floor {
    /// Connections wanted (the run's sessions).
    pub sockets_wanted: usize,
    /// Connections used: fewer than wanted when both ends would not fit the open-file limit.
    pub sockets: usize,
    /// The open-file limit that capped `sockets`, when it did.
    pub capped_by_limit: Option<u64>,
    /// Payload bytes per frame.
    pub payload: usize,
    /// Bytes per frame on the wire: payload plus an unmasked WebSocket header.
    pub frame_bytes: usize,
    /// Frames per round.
    pub frames: u64,
    /// Every round, in the order run.
    pub rounds: Vec<Round>,
    /// Index in `rounds` of the median round (by writer + reader CPU) among the quiet ones,
    /// or among all when none was quiet: the floor.
    pub median: usize,
    /// How many rounds were quiet.
    pub quiet_rounds: usize,
}

impl Floor {
    /// The round that stands for the floor.
    pub fn round(&self) -> &Round {
        &self.rounds[self.median]
    }
}

/// Bytes of the header of an unmasked server frame carrying `payload` bytes (RFC 6455 5.2).
fn header_bytes(payload: usize) -> usize {
    match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// One frame as the server would put it on the wire: FIN + text opcode, the length, then
/// the payload (its contents do not matter to the kernel).
fn frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(header_bytes(payload) + payload);
    f.push(0x81);
    match payload {
        0..=125 => f.push(payload as u8),
        126..=65535 => {
            f.push(126);
            f.extend_from_slice(&(payload as u16).to_be_bytes());
        }
        _ => {
            f.push(127);
            f.extend_from_slice(&(payload as u64).to_be_bytes());
        }
    }
    f.resize(f.len() + payload, b'x');
    f
}

/// Connections that fit the open-file limit with both ends in this process.
fn sockets_that_fit(wanted: usize) -> (usize, Option<u64>) {
    let Some(limit) = open_file_limit("self") else {
        return (wanted, None);
    };
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let fit = (limit.saturating_sub(open + SPARE_FILES) / 2) as usize;
    if wanted > fit {
        (fit, Some(limit))
    } else {
        (wanted, None)
    }
}

/// Runs the floor; call it with nothing else of the bench running (the server stopped).
pub fn measure(plan: FloorPlan) -> Result<Floor, String> {
    let (sockets, capped_by_limit) = sockets_that_fit(plan.sockets);
    if sockets == 0 || plan.frames == 0 || plan.rounds == 0 {
        return Err("the floor needs at least one socket, frame and round".into());
    }
    let frame = frame(plan.payload);
    let rounds = imp::run(sockets, &frame, plan.frames, plan.rounds)?;
    if rounds.is_empty() {
        return Err("the floor ran no round".into());
    }
    let quiet: Vec<usize> = (0..rounds.len()).filter(|&i| rounds[i].quiet()).collect();
    let quiet_rounds = quiet.len();
    let mut order = if quiet.is_empty() {
        (0..rounds.len()).collect()
    } else {
        quiet
    };
    order.sort_by(|&a, &b| rounds[a].cost().total_cmp(&rounds[b].cost()));
    Ok(Floor {
        sockets_wanted: plan.sockets,
        sockets,
        capped_by_limit,
        payload: plan.payload,
        frame_bytes: frame.len(),
        frames: plan.frames,
        median: order[order.len() / 2],
        quiet_rounds,
        rounds,
    })
}

/// The machine's and this process's CPU at one moment, to tell what else ran meanwhile.
struct Probe(
    /// The whole machine.
    Option<MachineCpu>,
    /// This process.
    Option<ProcSample>,
);

impl Probe {
    fn now() -> Probe {
        Probe(machine_cpu(), sample("self"))
    }

    /// What else the machine did from `self` to `end`, `secs` apart.
    fn until(&self, end: &Probe, secs: f64) -> Option<Conditions> {
        let (Probe(Some(m0), Some(o0)), Probe(Some(m1), Some(o1))) = (self, end) else {
            return None;
        };
        let secs = secs.max(1e-9);
        let steal_s = m1.steal_s - m0.steal_s;
        let others = (m1.busy_s - m0.busy_s - (o1.cpu_s - o0.cpu_s)) / secs;
        Some(Conditions {
            steal_pct: steal_s / (m1.total_s - m0.total_s).max(1e-9) * 100.0,
            steal_cores: steal_s / secs,
            others_cores: others.max(0.0),
        })
    }
}

/// What else used the machine while a round ran.
#[derive(Clone, Copy, Debug)]
pub struct Conditions {
    /// Share of all CPU time the hypervisor took, percent (as the hold's "steal").
    pub steal_pct: f64,
    /// The same in cores.
    pub steal_cores: f64,
    /// Cores other processes used.
    pub others_cores: f64,
}

impl Conditions {
    /// Whether the round had the cores to itself, by the bench's rule for quiet seconds. A
    /// round that shared them reads low: the reader, kept from its core, finds frames
    /// waiting, and no write has to wake it.
    pub fn quiet(&self) -> bool {
        (self.others_cores + self.steal_cores) * 100.0 < QUIET_OTHERS_PCT
    }
}

// libc is a dependency only on linux-gnu (Cargo.toml).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use super::{Probe, Round, ThreadCpu, STALL};

    /// How long one `epoll_wait` may sleep before the reader checks for a stall.
    const IDLE_WAIT_MS: i32 = 100;
    /// Events taken per `epoll_wait`.
    const EVENTS: usize = 1024;
    /// The reader's buffer: far more than one frame, so a socket that queued several is
    /// drained in one call, as a server's read would.
    const READ_BUF: usize = 64 * 1024;

    /// A thread's CPU so far, and its voluntary context switches (times it slept).
    fn thread_usage() -> Result<(ThreadCpu, u64), String> {
        // SAFETY: rusage is plain data; all-zero is a valid value for getrusage to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD with a pointer to a live, writable rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
            return Err(format!(
                "floor: getrusage(RUSAGE_THREAD): {}",
                std::io::Error::last_os_error()
            ));
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let cpu = ThreadCpu {
            user_s: secs(ru.ru_utime),
            kernel_s: secs(ru.ru_stime),
        };
        Ok((cpu, ru.ru_nvcsw as u64))
    }

    /// CPU and sleeps since `before`.
    fn usage_since(before: (ThreadCpu, u64)) -> Result<(ThreadCpu, u64), String> {
        let (now, sleeps) = thread_usage()?;
        let cpu = ThreadCpu {
            user_s: now.user_s - before.0.user_s,
            kernel_s: now.kernel_s - before.0.kernel_s,
        };
        Ok((cpu, sleeps - before.1))
    }

    /// What the reader reports for one round: CPU, reads with data, epoll waits, sleeps,
    /// seconds.
    type ReadRound = (ThreadCpu, u64, u64, u64, f64);

    /// Sets up `sockets` connections, then runs `rounds` rounds in which one thread writes
    /// `frames` copies of `frame` across them while another reads them all back.
    pub(super) fn run(
        sockets: usize,
        frame: &[u8],
        frames: u64,
        rounds: usize,
    ) -> Result<Vec<Round>, String> {
        let (conns, clients) = connect(sockets)?;
        let epoll = epoll_over(&clients)?;
        let want = frames * frame.len() as u64;
        // Each thread waits for a go per round and answers with its figures; a channel that
        // closes (the other side failed) ends it instead of leaving it waiting.
        let (go_writer, writer_go) = channel::<()>();
        let (go_reader, reader_go) = channel::<()>();
        let (writer_tx, from_writer) = channel::<ThreadCpu>();
        let (reader_tx, from_reader) = channel::<ReadRound>();
        let frame = frame.to_vec();
        let writer = std::thread::Builder::new()
            .name("floor-writer".into())
            .spawn(move || write_rounds(conns, &frame, frames, &writer_go, &writer_tx))
            .map_err(|e| format!("floor: writer thread: {e}"))?;
        let reader = std::thread::Builder::new()
            .name("floor-reader".into())
            .spawn(move || read_rounds(epoll, clients, want, &reader_go, &reader_tx));
        let mut done = Vec::with_capacity(rounds);
        if reader.is_ok() {
            for _ in 0..rounds {
                let began = Instant::now();
                let before = Probe::now();
                if go_writer.send(()).is_err() || go_reader.send(()).is_err() {
                    break;
                }
                let (Ok(writer), Ok((reader, reads, waits, sleeps, wall_s))) =
                    (from_writer.recv(), from_reader.recv())
                else {
                    break;
                };
                let conditions = before.until(&Probe::now(), began.elapsed().as_secs_f64());
                done.push(Round {
                    writer,
                    reader,
                    reads,
                    waits,
                    sleeps,
                    wall_s,
                    conditions,
                });
            }
        }
        // No more rounds: both threads end at their next wait for a go.
        drop((go_writer, go_reader));
        let reader = reader.map_err(|e| format!("floor: reader thread: {e}"))?;
        let reader = join(reader, "reader");
        // The writer hands its connections back rather than closing them, so the reader
        // never sees the end of a connection it still reads.
        let writer = join(writer, "writer");
        reader?;
        writer?;
        Ok(done)
    }

    /// A thread's outcome, a panic included.
    fn join<T>(thread: JoinHandle<Result<T, String>>, name: &str) -> Result<T, String> {
        thread
            .join()
            .map_err(|_| format!("floor: the {name} panicked"))?
    }

    /// `sockets` loopback connections: (the accepted ends, the connecting ends).
    fn connect(sockets: usize) -> Result<(Vec<TcpStream>, Vec<TcpStream>), String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("floor: bind: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("floor: local address: {e}"))?;
        let mut conns = Vec::with_capacity(sockets);
        let mut clients = Vec::with_capacity(sockets);
        for _ in 0..sockets {
            // On loopback the kernel completes the handshake before accept: no second thread
            // is needed to keep the backlog moving.
            let client = TcpStream::connect(addr).map_err(|e| format!("floor: connect: {e}"))?;
            let (conn, _) = listener
                .accept()
                .map_err(|e| format!("floor: accept: {e}"))?;
            // Both ends like the run's: the server (src/app.rs) and the bench send at once.
            for s in [&client, &conn] {
                s.set_nodelay(true)
                    .map_err(|e| format!("floor: nodelay: {e}"))?;
            }
            client
                .set_nonblocking(true)
                .map_err(|e| format!("floor: nonblocking: {e}"))?;
            conns.push(conn);
            clients.push(client);
        }
        Ok((conns, clients))
    }

    /// An epoll instance watching every client end for data (level-triggered: a socket
    /// with more than one read's worth is simply reported again).
    fn epoll_over(clients: &[TcpStream]) -> Result<OwnedFd, String> {
        // SAFETY: plain syscall; the result is checked before use.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(format!(
                "floor: epoll_create1: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: epfd is a fresh descriptor nobody else owns; OwnedFd closes it.
        let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
        for (i, c) in clients.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: both descriptors are open; ev lives across the call.
            let rc = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    c.as_raw_fd(),
                    &mut ev,
                )
            };
            if rc != 0 {
                return Err(format!(
                    "floor: epoll_ctl: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(epoll)
    }

    /// The writer: per round, one `write` per frame, cycling over the connections.
    fn write_rounds(
        mut conns: Vec<TcpStream>,
        frame: &[u8],
        frames: u64,
        go: &Receiver<()>,
        done: &Sender<ThreadCpu>,
    ) -> Result<Vec<TcpStream>, String> {
        while go.recv().is_ok() {
            let before = thread_usage()?;
            let mut i = 0;
            for _ in 0..frames {
                // One call per frame; a blocking socket takes it whole unless its buffer is
                // full, and then the wait costs no CPU.
                conns[i]
                    .write_all(frame)
                    .map_err(|e| format!("floor: write: {e}"))?;
                i += 1;
                if i == conns.len() {
                    i = 0;
                }
            }
            let (cpu, _) = usage_since(before)?;
            if done.send(cpu).is_err() {
                break;
            }
        }
        Ok(conns)
    }

    /// The reader: per round, epoll over every client end and one `read` per ready socket,
    /// until `want` bytes arrived.
    fn read_rounds(
        epoll: OwnedFd,
        mut clients: Vec<TcpStream>,
        want: u64,
        go: &Receiver<()>,
        done: &Sender<ReadRound>,
    ) -> Result<(), String> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let mut buf = vec![0u8; READ_BUF];
        while go.recv().is_ok() {
            let began = Instant::now();
            let before = thread_usage()?;
            let (mut got, mut reads, mut waits) = (0u64, 0u64, 0u64);
            // Counted in whole empty waits, so the loop reads no clock per frame.
            let mut idle_waits = 0u32;
            while got < want {
                // SAFETY: events has EVENTS writable slots; epoll is open.
                let n = unsafe {
                    libc::epoll_wait(
                        epoll.as_raw_fd(),
                        events.as_mut_ptr(),
                        EVENTS as i32,
                        IDLE_WAIT_MS,
                    )
                };
                waits += 1;
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(format!("floor: epoll_wait: {e}"));
                }
                if n == 0 {
                    idle_waits += 1;
                    if Duration::from_millis(IDLE_WAIT_MS as u64) * idle_waits > STALL {
                        return Err(format!(
                            "floor: nothing arrived for {STALL:?} with {got} of {want} bytes read"
                        ));
                    }
                    continue;
                }
                idle_waits = 0;
                for ev in &events[..n as usize] {
                    // A copy: a field of the packed epoll_event cannot be borrowed.
                    let i = { ev.u64 } as usize;
                    match clients[i].read(&mut buf) {
                        Ok(0) => return Err("floor: a connection closed early".into()),
                        Ok(k) => {
                            got += k as u64;
                            reads += 1;
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(format!("floor: read: {e}")),
                    }
                }
            }
            let (cpu, sleeps) = usage_since(before)?;
            let wall_s = began.elapsed().as_secs_f64();
            if done.send((cpu, reads, waits, sleeps, wall_s)).is_err() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use super::Round;

    pub(super) fn run(
        _sockets: usize,
        _frame: &[u8],
        _frames: u64,
        _rounds: usize,
    ) -> Result<Vec<Round>, String> {
        Err("the floor needs Linux with glibc (epoll, RUSAGE_THREAD through libc)".into())
    }
}
