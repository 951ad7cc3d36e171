//! A TCP proxy for fault tests: it listens on a free loopback port and
//! forwards each connection to an upstream address (SeaweedFS's S3 port),
//! passing bytes through untouched, cutting connections, stalling them, or
//! refusing new ones, as its current [`Mode`] says. The mode can change while
//! connections are open; every decision comes from a seeded xorshift
//! generator, so a seed replays the same plan for the same order of
//! connections.
//!
//! Plain std threads: one accepting (non-blocking, polled), two per
//! connection. Dropping the proxy shuts every socket down and joins every
//! thread, so nothing outlives it.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to connections.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Forward every byte.
    Pass,
    /// Listen on nothing: connecting to the port is refused.
    Refuse,
    /// Forward, with faults drawn per connection.
    Faulty(Faults),
}

/// Faults drawn for each new connection from a generator seeded with `seed`.
/// Offsets count the bytes of a connection in both directions together.
#[derive(Debug, Clone)]
pub struct Faults {
    pub seed: u64,
    /// Chance that a connection is closed at a random offset below `within`.
    pub drop_p: f64,
    /// Every connection is closed after this many bytes.
    pub drop_after: Option<u64>,
    /// Chance that a connection stalls once, at a random offset below
    /// `within`, for `stall`.
    pub stall_p: f64,
    pub stall: Duration,
    /// Offsets are drawn below this.
    pub within: u64,
    /// Bytes per second each connection passes in each direction, if limited.
    pub rate: Option<u64>,
}

impl Faults {
    /// Random drops (and stalls) of connections.
    pub fn random(seed: u64, drop_p: f64, stall_p: f64, within: u64) -> Faults {
        Faults {
            seed,
            drop_p,
            drop_after: None,
            stall_p,
            stall: Duration::from_millis(1500),
            within,
            rate: None,
        }
    }

    /// No faults; `rate` bytes per second.
    pub fn slow(rate: u64) -> Faults {
        Faults {
            rate: Some(rate),
            ..Faults::random(0, 0.0, 0.0, 1)
        }
    }

    /// Every connection closed after `n` bytes.
    pub fn drop_after(n: u64) -> Faults {
        Faults {
            drop_after: Some(n),
            ..Faults::random(0, 0.0, 0.0, 1)
        }
    }
}

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    /// Bytes passed, both directions.
    pub bytes: u64,
    pub drops: u64,
    pub stalls: u64,
}

/// xorshift64: a few lines, seeded, reproducible.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed: nearby seeds start far apart, never at zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// The faults one connection gets.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    drop_at: Option<u64>,
    stall_at: Option<u64>,
    stall: Duration,
    rate: Option<u64>,
}

struct Shared {
    upstream: SocketAddr,
    port: u16,
    mode: Mutex<(Mode, XorShift)>,
    stop: AtomicBool,
    next_id: AtomicU64,
    /// Open connections' sockets (client, upstream), to shut down on demand.
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: AtomicU64,
    bytes: AtomicU64,
    drops: AtomicU64,
    stalls: AtomicU64,
}

pub struct Proxy {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// A proxy to `upstream` (e.g. `http://127.0.0.1:8333` or
    /// `127.0.0.1:8333`), passing everything through.
    pub fn start(upstream: &str) -> Proxy {
        let hostport = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream: SocketAddr = hostport.parse().expect("upstream as IP:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            port,
            mode: Mutex::new((Mode::Pass, XorShift::new(0))),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(s, listener))
            .unwrap();
        Proxy {
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.port)
    }

    /// Changes what happens from now on: new connections follow the new
    /// mode, and a new `Faulty` mode restarts the generator from its seed.
    /// `Refuse` also cuts the connections that are open.
    pub fn set_mode(&self, mode: Mode) {
        let seed = match &mode {
            Mode::Faulty(f) => f.seed,
            _ => 0,
        };
        let refuse = matches!(mode, Mode::Refuse);
        *lock(&self.shared.mode) = (mode, XorShift::new(seed));
        if refuse {
            self.shared.cut_all();
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.shared.connections.load(Ordering::SeqCst),
            bytes: self.shared.bytes.load(Ordering::SeqCst),
            drops: self.shared.drops.load(Ordering::SeqCst),
            stalls: self.shared.stalls.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cut_all();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        // The acceptor is gone: no thread is added any more.
        self.shared.cut_all();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn cut_all(&self) {
        for (c, u) in lock(&self.open).values() {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
    }

    /// The plan for a new connection, or None to close it at once.
    fn plan(&self) -> Option<Plan> {
        let mut guard = lock(&self.mode);
        let (mode, rng) = &mut *guard;
        match mode {
            Mode::Pass => Some(Plan::default()),
            Mode::Refuse => None,
            Mode::Faulty(f) => {
                let mut plan = Plan {
                    stall: f.stall,
                    rate: f.rate,
                    ..Plan::default()
                };
                // Draw all numbers every time, so each connection uses the
                // same count of them whatever the probabilities.
                let (drop, drop_at) = (rng.chance(f.drop_p), rng.below(f.within));
                let (stall, stall_at) = (rng.chance(f.stall_p), rng.below(f.within));
                if drop {
                    plan.drop_at = Some(drop_at);
                }
                if let Some(n) = f.drop_after {
                    plan.drop_at = Some(plan.drop_at.map_or(n, |d| d.min(n)));
                }
                if stall {
                    plan.stall_at = Some(stall_at);
                }
                Some(plan)
            }
        }
    }

    fn sleep(&self, d: Duration) {
        let until = std::time::Instant::now() + d;
        while !self.stopped() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    listener.set_nonblocking(true).unwrap();
    let mut listener = Some(listener);
    while !shared.stopped() {
        let refusing = matches!(lock(&shared.mode).0, Mode::Refuse);
        if refusing {
            // Closing the listening socket makes connects fail with
            // "connection refused", as a store that is down would.
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(("127.0.0.1", shared.port)) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let Some(l) = &listener else { continue };
        match l.accept() {
            Ok((client, _)) => {
                let Some(plan) = shared.plan() else {
                    drop(client);
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let s = shared.clone();
                let t = std::thread::Builder::new()
                    .name("fault-proxy-conn".into())
                    .spawn(move || serve(s, client, plan))
                    .unwrap();
                let mut threads = lock(&shared.threads);
                // Join the finished ones as we go.
                let (done, running): (Vec<_>, Vec<_>) =
                    threads.drain(..).partition(|t| t.is_finished());
                *threads = running;
                threads.push(t);
                drop(threads);
                for t in done {
                    let _ = t.join();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One connection's shared state.
struct Conn {
    id: u64,
    plan: Plan,
    /// Bytes passed so far, both directions.
    passed: AtomicU64,
    stalled: AtomicBool,
    cut: AtomicBool,
}

fn serve(shared: Arc<Shared>, client: TcpStream, plan: Plan) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let conn = Arc::new(Conn {
        id: shared.next_id.fetch_add(1, Ordering::SeqCst),
        plan,
        passed: AtomicU64::new(0),
        stalled: AtomicBool::new(false),
        cut: AtomicBool::new(false),
    });
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    lock(&shared.open).insert(conn.id, (c2, u2));
    if shared.stopped() {
        // Drop may have cut the open sockets before these were listed.
        shared.cut_all();
    }
    let up = {
        let (s, conn) = (shared.clone(), conn.clone());
        std::thread::Builder::new()
            .name("fault-proxy-up".into())
            .spawn(move || pump(&s, &conn, c3, u3))
    };
    pump(&shared, &conn, upstream, client);
    if let Ok(t) = up {
        let _ = t.join();
    }
    lock(&shared.open).remove(&conn.id);
}

/// Copies `from` to `to` until either side closes or the plan cuts the
/// connection; then shuts both sockets down, so the other direction ends too.
fn pump(shared: &Shared, conn: &Conn, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.stopped() || conn.cut.load(Ordering::SeqCst) {
            break;
        }
        let start = conn.passed.fetch_add(n as u64, Ordering::SeqCst);
        let end = start + n as u64;
        if let Some(at) = conn.plan.stall_at {
            if at < end && !conn.stalled.swap(true, Ordering::SeqCst) {
                shared.stalls.fetch_add(1, Ordering::SeqCst);
                shared.sleep(conn.plan.stall);
            }
        }
        if let Some(at) = conn.plan.drop_at {
            if at < end {
                let keep = at.saturating_sub(start) as usize;
                let _ = to.write_all(&buf[..keep]);
                if !conn.cut.swap(true, Ordering::SeqCst) {
                    shared.drops.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        shared.bytes.fetch_add(n as u64, Ordering::SeqCst);
        if let Some(rate) = conn.plan.rate {
            shared.sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
