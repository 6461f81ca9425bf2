//! The running agent: loads the config and its TLS files, then serves until told to stop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, Problem};
use crate::{
    api, devices, firewall, front, haproxy, heartbeat, keepalived, listeners, logs, netns, netplug,
    promproxy, server, signals, store, system, tls, topology, vrrp_check,
};

/// How long a stopping agent waits for in-flight requests, beyond the request timeout.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How often listeners' HAProxies are checked.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);
/// Timeout of each command on the main HAProxy's admin socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

pub type Tls = Option<(Arc<rustls::ServerConfig>, tls::ServerCert)>;

/// Loads and checks everything the config names (also the TLS files), collecting every problem.
pub fn load(path: &Path) -> Result<(Config, Tls), Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            "(file)",
            path.display().to_string(),
            format!("cannot read: {e}"),
        )]
    })?;
    let cfg = config::parse_file(&text, path)?;
    let tls = match &cfg.tls {
        Some(files) => Some(tls::server_config(files)?),
        None => None,
    };
    Ok((cfg, tls))
}

/// Every route of every API family (`lbagent --routes`), for operators and for the auth audit test.
pub fn routes() -> Vec<String> {
    api::routes(&config::Api::ALL)
        .iter()
        .map(|r| format!("{} {}", r.method, r.pattern))
        .collect()
}

/// Serves until SIGTERM/SIGINT; an error is also logged.
pub fn serve(cfg: Config, tls: Tls) -> Result<ExitCode, String> {
    run(cfg, tls).inspect_err(|e| logs::error(e))
}

fn run(cfg: Config, tls: Tls) -> Result<ExitCode, String> {
    tune_malloc();
    crate::metrics::AGENT.mark_start();
    let (tls, server_cert) = match tls {
        Some((c, s)) => (Some(c), Some(s)),
        None => (None, None),
    };
    let cfg = prepare(cfg)?;
    signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let public = TcpListener::bind((cfg.bind, cfg.port))
        .map_err(|e| format!("bind: {}:{}: cannot listen: {e}", cfg.bind, cfg.port))?;
    let local = public.local_addr().map_err(|e| e.to_string())?;
    let internal = server::Internal::bind(&std::env::temp_dir())
        .map_err(|e| format!("internal socket: {e}"))?;
    let cfg = Arc::new(cfg);
    let peers = Arc::new(front::PeerTable::new().map_err(|e| format!("random tokens: {e}"))?);
    let app = Arc::new(server::App {
        ctx: context(cfg.clone(), server_cert)?,
        router: crate::http::Router::new(api::routes(&cfg.apis)),
        peers: peers.clone(),
    });
    // Before any request: an API call must not race the adoption of a running HAProxy.
    app.ctx.listeners.recover();
    let stop_workers = Arc::new(AtomicBool::new(false));
    let heartbeats = start_background(&app, &stop_workers)?;
    let failed = Arc::new(AtomicBool::new(false));
    let workers = internal
        .start_workers(
            cfg.workers,
            app.clone(),
            stop_workers.clone(),
            failed.clone(),
        )
        .map_err(|e| format!("cannot start workers: {e}"))?;
    let limits = front::Limits {
        max_connections: cfg.max_connections,
        request_timeout: cfg.request_timeout,
        max_body: cfg.max_body,
        internal_connections: cfg.workers,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let front = front::Front::new(public, tls, internal.socket.clone(), peers, limits)
        .map_err(|e| format!("listener setup: {e}"))?;
    logs::info(&format!(
        "lbagent {} listening on {scheme}://{local} (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    ));

    front
        .run(|| {
            if signals::take_reopen() {
                logs::reopen();
            }
            signals::stop_requested() || failed.load(Ordering::SeqCst)
        })
        .map_err(|e| format!("cannot start connection threads: {e}"))?;

    logs::info("stopping: draining in-flight requests");
    if !front.drain(cfg.request_timeout + DRAIN_GRACE) {
        logs::warn("some connections were still open when the drain time ran out");
    }
    stop_workers.store(true, Ordering::SeqCst);
    app.ctx.heartbeat.wake();
    for w in workers.into_iter().chain(std::iter::once(heartbeats)) {
        let _ = w.join();
    }
    if failed.load(Ordering::SeqCst) {
        return Err(
            "internal HTTP server failed; exiting so the supervisor restarts the agent".into(),
        );
    }
    logs::info("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The threads beside the requests' (the metrics proxy when on, the supervisor, the heartbeat
/// sender); the heartbeat sender's, to join at the end.
fn start_background(
    app: &Arc<server::App>,
    stop: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    if app.ctx.config.prometheus_proxy {
        // Where HAProxy runs (netns is set by now); it ends with the process.
        promproxy::start(netns::tenant())
            .map_err(|e| format!("cannot start the metrics proxy: {e}"))?;
    }
    start_supervisor(app.clone(), stop.clone())
        .map_err(|e| format!("cannot start the supervisor: {e}"))?;
    heartbeat::start(
        &app.ctx.config.state_dir,
        app.ctx.heartbeat.clone(),
        Arc::new(AmphoraView(app.clone())),
        stop.clone(),
    )
    .map_err(|e| format!("cannot start the heartbeat sender: {e}"))
}

/// `lbagent --vrrp-check <state_dir>`, run by keepalived's check script: exit 0 when every
/// listener meant to run answers, 1 (and why, on stderr) otherwise.
pub fn vrrp_check(state_dir: &Path) -> ExitCode {
    match vrrp_check::probe(state_dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("lbagent --vrrp-check: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Logs, then the state and certificate directories, cleaned of writes a crash cut short.
fn prepare(mut cfg: Config) -> Result<Config, String> {
    logs::init(
        cfg.accesslog.as_deref(),
        cfg.logfile.as_deref(),
        cfg.syslog.as_ref(),
        cfg.debug,
    )?;
    // Absolute and free of symlinks: HAProxy runs in listeners' run directories, and adoption
    // recognises a master by its working directory.
    cfg.state_dir = prepare_dir("state_dir", &cfg.state_dir, 0o750)?;
    cfg.cert_dir = prepare_dir("cert_dir", &cfg.cert_dir, 0o700)?;
    let swept = store::sweep_temps(&cfg.state_dir) + store::sweep_temps(&cfg.cert_dir);
    if swept > 0 {
        logs::info(&format!(
            "removed {swept} temp files of writes a crash cut short"
        ));
    }
    Ok(cfg)
}

/// What every request works on, loaded from the state directory.
fn context(cfg: Arc<Config>, server_cert: Option<tls::ServerCert>) -> Result<api::Ctx, String> {
    let devices = if cfg.apis.contains(&config::Api::Devices) {
        Some(devices::Registry::open(&cfg.state_dir)?)
    } else {
        None
    };
    netns::set(cfg.tenant_namespace.clone());
    netns::ensure()?;
    let topology = topology::TopologyState::open(&cfg.state_dir)?;
    let plugs = netplug::Plugs::open(&cfg.state_dir)?;
    // Interfaces come back down after a reboot: put the recorded plugs back first.
    plugs.reapply();
    let firewall = firewall::Firewall::new(&cfg.state_dir);
    firewall.restore();
    // keepalived logs to syslog as local0-7 only: the agent's facility when it is one of them.
    let local = cfg.syslog.as_ref().and_then(|t| t.facility.checked_sub(16));
    let keepalived = Arc::new(keepalived::Keepalived::new(
        &cfg.state_dir,
        &cfg.keepalived,
        local.filter(|n| *n <= 7),
    ));
    keepalived.recover();
    let sampler = Arc::new(system::Sampler::default());
    start_sampler(sampler.clone()).map_err(|e| format!("cannot start the sampler: {e}"))?;
    Ok(api::Ctx {
        main_haproxy: haproxy::Runtime::long_lived(&cfg.socat, SOCKET_TIMEOUT),
        listeners: listeners::Listeners::new(
            &cfg.state_dir,
            &cfg.cert_dir,
            &cfg.haproxy,
            cfg.amphora_id.as_deref(),
        ),
        devices,
        sampler,
        server_cert,
        keepalived,
        topology,
        plugs,
        firewall,
        heartbeat: Arc::new(heartbeat::Control::new(cfg.mutable.clone())),
        config: cfg,
    })
}

/// Large buffers (a client's unread answers, uploads) go straight to mmap and back to the
/// system when freed: glibc's default raises that threshold after the first large free, and the
/// memory of an attack would then stay resident in per-thread arenas after it ended.
fn tune_malloc() {
    // SAFETY: mallopt only tunes glibc's allocator, and runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands memory that requests freed back to the system, so the agent's RSS falls back after a
/// burst (glibc keeps freed pages of its arenas otherwise).
fn release_free_memory() {
    // SAFETY: malloc_trim is thread-safe and only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Creates `dir` if needed (with `mode`) and returns its canonical path.
fn prepare_dir(key: &str, dir: &std::path::Path, mode: u32) -> Result<PathBuf, String> {
    if !dir.exists() {
        store::ensure_dir(dir, mode).map_err(|e| format!("{key}: {}: {e}", dir.display()))?;
    }
    dir.canonicalize()
        .map_err(|e| format!("{key}: {}: {e}", dir.display()))
}

/// Samples CPU and network counters for the rates the host endpoints report.
fn start_sampler(sampler: Arc<system::Sampler>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || loop {
            sampler.tick();
            std::thread::sleep(system::SAMPLE_EVERY);
        })
}

/// Keeps the listeners that should run running.
/// The amphora as the heartbeat sender sees it.
struct AmphoraView(Arc<server::App>);

impl heartbeat::Amphora for AmphoraView {
    fn id(&self) -> Option<String> {
        self.0.ctx.config.amphora_id.clone()
    }

    fn stats(&self, buf: &mut Vec<u8>, each: &mut dyn FnMut(&[u8])) {
        self.0.ctx.listeners.octavia_stats(buf, each)
    }

    fn vrrp_down(&self) -> bool {
        let ka = &self.0.ctx.keepalived;
        ka.has_config() && !ka.is_running()
    }
}

fn start_supervisor(
    app: Arc<server::App>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(SUPERVISE_EVERY);
                app.ctx.listeners.supervise();
                app.ctx.main_haproxy.close_idle(SUPERVISE_EVERY);
                release_free_memory();
            }
        })
}
