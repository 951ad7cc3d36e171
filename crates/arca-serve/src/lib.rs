//! `arca serve`: the daemon. It runs the plans of one TOML file on their
//! schedules, and backups, restores, checks and retention on request, as
//! jobs ([`jobs`]) over the same `arca_ops` calls as the CLI; it answers an
//! HTTP API ([`api`]) and Prometheus' scrapes ([`metrics`]).
//!
//! The daemon's reactor never runs a library call: jobs run on blocking
//! threads, and the catalog's short queries do too
//! (`docs/design/concurrency.md`).

pub mod api;
pub mod catalog;
pub mod config;
pub mod console;
pub mod edit;
pub mod jobs;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod scan;
pub mod scheduler;
pub mod sql;
pub mod work;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use catalog::Catalog;
use config::Config;
use jobs::Jobs;

/// A time as the catalog stores it: UTC, microseconds, fixed width, so
/// text order is time order.
pub fn stamp(t: jiff::Timestamp) -> String {
    format!("{t:.6}")
}

/// The daemon's clock. Tests start the daemon with a clock of their own
/// (`--test-clock`) that moves only when told, through the API.
#[derive(Clone)]
pub enum Clock {
    Real,
    Test(Arc<Mutex<jiff::Timestamp>>),
}

impl Clock {
    pub fn now(&self) -> jiff::Timestamp {
        match self {
            Clock::Real => jiff::Timestamp::now(),
            Clock::Test(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// What every handler and task shares.
pub struct State {
    config: RwLock<Arc<Config>>,
    pub catalog: Catalog,
    pub jobs: Jobs,
    pub clock: Clock,
    /// Wakes the scheduler (a reload, a moved test clock).
    pub wake: tokio::sync::Notify,
    /// Continuous log archiving of the plans that ask for it.
    pub archivers: logs::Archivers,
    /// Signed-in sessions of the web console.
    pub sessions: console::session::Sessions,
    /// The clock reading the scheduler last acted on (tests wait for it).
    pub ticked: tokio::sync::watch::Sender<jiff::Timestamp>,
}

impl State {
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_config(&self, c: Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
    }

    /// Records an event, off the reactor's hot path (a short insert).
    pub fn event(&self, kind: &str, source: Option<&str>, job: Option<&str>, message: &str) {
        let now = stamp(jiff::Timestamp::now());
        tracing::info!(kind, source, job, "{message}");
        if let Err(e) = self.catalog.event(&now, kind, source, job, message) {
            tracing::error!("cannot record an event in the catalog: {e}");
        }
    }
}

/// How `arca serve` was started.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: PathBuf,
    pub listen: Option<String>,
    /// Start the schedule clock here and move it only through the API.
    pub test_clock: Option<jiff::Timestamp>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(config::Problems),
    #[error("{0}")]
    Start(String),
}

/// Reads and checks the configuration, then whether its repositories and
/// sources answer: what `arca serve --check-config` prints.
pub fn check_config(path: &std::path::Path, listen: Option<&str>) -> Result<Config, Error> {
    let cfg = Config::load(path, listen).map_err(Error::Config)?;
    let problems = probe::probe(&cfg);
    if !problems.is_empty() {
        return Err(Error::Config(config::Problems(problems)));
    }
    Ok(cfg)
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(opts: ServeOptions) -> Result<(), Error> {
    let cfg = check_config(&opts.config, opts.listen.as_deref())?;
    let catalog = Catalog::open(&cfg.catalog).map_err(|e| {
        Error::Start(format!(
            "catalog {}: {e}: set catalog = \"PATH\" in the configuration to a writable file",
            cfg.catalog.display()
        ))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("arca-serve")
        .enable_all()
        .build()
        .map_err(|e| Error::Start(format!("cannot start the runtime: {e}")))?;
    rt.block_on(serve(cfg, catalog, opts))
}

async fn serve(cfg: Config, catalog: Catalog, opts: ServeOptions) -> Result<(), Error> {
    let now = stamp(jiff::Timestamp::now());
    let interrupted = catalog.mark_interrupted(&now).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| {
            Error::Start(format!(
                "cannot listen on {}: {e}: choose another with --listen or listen = \"HOST:PORT\"",
                cfg.listen
            ))
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Start(e.to_string()))?;
    let clock = match opts.test_clock {
        Some(t) => Clock::Test(Arc::new(Mutex::new(t))),
        None => Clock::Real,
    };
    let state = Arc::new_cyclic(|weak: &std::sync::Weak<State>| {
        let weak = weak.clone();
        let on_finish: jobs::OnFinish = Arc::new(move |row| {
            if let Some(s) = weak.upgrade() {
                scan::job_finished(&s, row);
            }
        });
        State {
            jobs: Jobs::new(catalog.clone(), cfg.max_jobs, on_finish),
            config: RwLock::new(Arc::new(cfg)),
            catalog,
            clock,
            wake: tokio::sync::Notify::new(),
            ticked: tokio::sync::watch::channel(jiff::Timestamp::UNIX_EPOCH).0,
            archivers: logs::Archivers::default(),
            sessions: Default::default(),
        }
    });
    if interrupted > 0 {
        state.event(
            "jobs_interrupted",
            None,
            None,
            &format!(
                "{interrupted} job(s) were running when the daemon stopped: marked interrupted"
            ),
        );
    }
    {
        let s = state.clone();
        let _ = tokio::task::spawn_blocking(move || scan::scan_all(&s)).await;
    }
    state.archivers.sync(&state);
    state.event(
        "daemon_started",
        None,
        None,
        &format!("arca {} listening on {addr}", env!("CARGO_PKG_VERSION")),
    );
    // The address on stdout, for whoever started the daemon (tests: port 0).
    println!("listening on {addr}");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sched = tokio::spawn(scheduler::run(state.clone(), stop_rx.clone()));
    let rescan = tokio::spawn(scan::periodic(state.clone(), stop_rx.clone()));
    let reload = tokio::spawn(reload_on_hup(
        state.clone(),
        opts.config.clone(),
        stop_rx.clone(),
    ));
    let app = api::router(state.clone(), opts.test_clock.is_some());
    let tls = state.config().tls.clone();
    let server = match tls {
        None => {
            let mut stop_wait = stop_rx.clone();
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop_wait.wait_for(|s| *s).await;
            });
            tokio::spawn(async move {
                let _ = server.await;
            })
        }
        Some(t) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert, &t.key)
                .await
                .map_err(|e| {
                    Error::Start(format!(
                        "tls: cannot use {} and {}: {e}: give a PEM certificate chain and its private key",
                        t.cert.display(),
                        t.key.display()
                    ))
                })?;
            let std_listener = listener
                .into_std()
                .map_err(|e| Error::Start(e.to_string()))?;
            let handle = axum_server::Handle::new();
            let mut stop_wait = stop_rx.clone();
            let h = handle.clone();
            tokio::spawn(async move {
                let _ = stop_wait.wait_for(|s| *s).await;
                h.graceful_shutdown(Some(Duration::from_secs(1)));
            });
            let server = axum_server::from_tcp_rustls(std_listener, tls)
                .map_err(|e| Error::Start(e.to_string()))?
                .handle(handle)
                .serve(app.into_make_service());
            tokio::spawn(async move {
                let _ = server.await;
            })
        }
    };

    wait_for_signal().await;
    state.event(
        "daemon_stopping",
        None,
        None,
        "stopping: cancelling running jobs",
    );
    let _ = stop_tx.send(true);
    let s = state.clone();
    let logs = tokio::task::spawn_blocking(move || s.archivers.stop_all(Duration::from_secs(8)));
    state.jobs.shutdown(Duration::from_secs(8)).await;
    let _ = logs.await;
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    sched.abort();
    rescan.abort();
    reload.abort();
    state.event("daemon_stopped", None, None, "stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// SIGHUP reads the file again; a bad file keeps the configuration running.
async fn reload_on_hup(
    state: Arc<State>,
    path: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            _ = stop.changed() => return,
        }
        let listen = state.config().listen.to_string();
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || check_config(&p, Some(&listen))).await;
        match loaded {
            Ok(Ok(cfg)) => {
                state.set_config(cfg);
                state.archivers.sync(&state);
                state.event("config_reloaded", None, None, "configuration reloaded");
                state.wake.notify_one();
            }
            Ok(Err(e)) => state.event(
                "config_rejected",
                None,
                None,
                &format!(
                    "the new configuration was refused, the old one stays: {}",
                    e.to_string().replace('\n', "; ")
                ),
            ),
            Err(e) => tracing::error!("reload failed: {e}"),
        }
    }
}
