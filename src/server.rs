//! The internal HTTP side: tiny_http on a Unix socket in a private (0700) directory that only
//! the front connects to, worker threads, and per-request dispatch (peer lookup by the front's
//! connection token, auth, routing, body, handler, access log).

use std::fs::DirBuilder;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::api::{self, Ctx, Endpoint};
use crate::config::Api;
use crate::error::ApiError;
use crate::framing::CONN_HEADER;
use crate::front::{Caller, PeerTable, SERVER};
use crate::http::{Match, Method, Peer, Reply, Request, Router};
use crate::logs::{self, escape};
use crate::metrics::{agent::RouteLabel, agent::NO_ROUTE, AGENT};
use crate::timefmt::Utc;

pub struct App {
    pub ctx: Ctx,
    pub router: Router<Endpoint>,
    pub peers: Arc<PeerTable>,
}

pub struct Internal {
    http: Arc<tiny_http::Server>,
    dir: PathBuf,
    pub socket: PathBuf,
}

impl Internal {
    /// Binds the hand-off socket in a new directory under `parent` that only the agent's user
    /// may enter.
    pub fn bind(parent: &std::path::Path) -> std::io::Result<Self> {
        sweep_stale(parent);
        let dir = parent.join(format!("lbagent-{}", std::process::id()));
        // A stale directory from an earlier agent with the same pid holds nothing of value.
        let _ = std::fs::remove_dir_all(&dir);
        DirBuilder::new().mode(0o700).create(&dir)?;
        let socket = dir.join("http.sock");
        let http = tiny_http::Server::http_unix(&socket)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Internal {
            http: Arc::new(http),
            dir,
            socket,
        })
    }

    /// Starts `n` workers; they run until `stop` is set. If tiny_http's own accept thread
    /// dies, `failed` is set so the agent can exit and be restarted by its supervisor.
    pub fn start_workers(
        &self,
        n: usize,
        app: Arc<App>,
        stop: Arc<AtomicBool>,
        failed: Arc<AtomicBool>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        (0..n)
            .map(|i| {
                let (http, app, stop, failed) =
                    (self.http.clone(), app.clone(), stop.clone(), failed.clone());
                thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::SeqCst) {
                            match http.recv_timeout(Duration::from_millis(250)) {
                                Ok(Some(rq)) => {
                                    // The whole request, response and drop included: a panic
                                    // costs one request, never a worker.
                                    if catch_unwind(AssertUnwindSafe(|| handle(&app, rq))).is_err()
                                    {
                                        logs::error("a request panicked outside its handler");
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    logs::error(&format!("internal HTTP server failed: {e}"));
                                    failed.store(true, Ordering::SeqCst);
                                    return;
                                }
                            }
                        }
                    })
            })
            .collect()
    }
}

fn server_header() -> tiny_http::Header {
    // Both parts are constant ASCII, so this cannot fail; the fallback keeps it panic-free.
    tiny_http::Header::from_bytes("Server", SERVER)
        .or_else(|_| tiny_http::Header::from_bytes("Server", "lbagent"))
        .unwrap_or_else(|_| unreachable!("constant ASCII header"))
}

fn header(rq: &tiny_http::Request, name: &'static str) -> Option<String> {
    rq.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}

/// Removes the socket directories of agents that died without cleaning up (kill -9): ours by
/// name and owner, and their pid no longer runs.
fn sweep_stale(parent: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("lbagent-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let ours =
            std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && pid != std::process::id() && !crate::process::alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for Internal {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client a request came from; None (and the request dealt with) for the front's own
/// probe and for anything that did not come through the front.
fn client_of(app: &App, rq: tiny_http::Request) -> Option<(Peer, tiny_http::Request)> {
    match header(&rq, CONN_HEADER).and_then(|t| app.peers.get(&t)) {
        Some(Caller::Client(p)) => Some((p, rq)),
        Some(Caller::Probe) => {
            let probe = tiny_http::Response::empty(204).with_header(server_header());
            if let Err(e) = rq.respond(probe) {
                logs::debug(&format!("probe not answered: {e}"));
            }
            None
        }
        None => {
            // Not from the front (or from a connection that has ended): no service at all,
            // not even an error response.
            logs::warn(
                "request on the internal socket that did not come through the front; dropped",
            );
            drop(rq.into_writer());
            None
        }
    }
}

fn handle(app: &App, rq: tiny_http::Request) {
    let started = Instant::now();
    let Some((peer, mut rq)) = client_of(app, rq) else {
        return;
    };
    let url = rq.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url.clone(), None),
    };
    let mut req = Request {
        method: Method::parse(rq.method().as_str()),
        path,
        query,
        headers: rq
            .headers()
            .iter()
            .filter(|h| !h.field.equiv(CONN_HEADER))
            .map(|h| {
                (
                    h.field.as_str().as_str().to_string(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body: Vec::new(),
        peer,
        user: None,
    };
    let mut route = NO_ROUTE;
    let reply = match catch_unwind(AssertUnwindSafe(|| {
        dispatch(app, &mut req, &mut rq, &mut route)
    })) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Reply::from(e),
        Err(_) => {
            logs::error(&format!("handler panicked: {} {}", req.method, req.path));
            Reply::from(ApiError::internal(
                "the handler failed unexpectedly; see the agent log",
            ))
        }
    };
    let (status, size) = (reply.status, reply.body.len());
    // A length on every answer (no chunking): the front frames answers by it.
    let mut resp = tiny_http::Response::from_data(reply.body)
        .with_status_code(status)
        .with_chunked_threshold(usize::MAX)
        .with_header(server_header());
    let ct = ("Content-Type", reply.content_type.to_string());
    for (name, value) in std::iter::once(ct).chain(reply.headers) {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp.add_header(h);
        }
    }
    let version = rq.http_version().clone();
    let (referer, agent) = (header(&rq, "Referer"), header(&rq, "User-Agent"));
    if let Err(e) = rq.respond(resp) {
        logs::debug(&format!("response not delivered: {e}"));
    }
    AGENT.request(route, req.method.as_str(), status, started.elapsed());
    logs::access(&access_line(
        &req,
        &format!("HTTP/{}.{}", version.0, version.1),
        status,
        size,
        referer.as_deref(),
        agent.as_deref(),
        started.elapsed(),
    ));
}

/// Auth, then routing, then the body, then the handler: unauthenticated callers learn nothing,
/// not even which paths exist. `matched` gets the route's pattern once one matches.
fn dispatch(
    app: &App,
    req: &mut Request,
    rq: &mut tiny_http::Request,
    matched: &mut RouteLabel,
) -> Result<Reply, ApiError> {
    let cfg = &app.ctx.config;
    req.user = crate::auth::check(cfg.basic_auth.as_ref(), req.header("Authorization"))
        .inspect_err(|e| {
            let why = e.details.as_deref().unwrap_or_default();
            logs::failure(req.peer.addr.ip(), "login refused", why);
            AGENT.login_failure();
        })?;
    let (route, params) = match app.router.find(&req.method, &req.path) {
        Match::Found(r, p) => {
            *matched = r.pattern;
            (r, p)
        }
        // The legacy API's own rule: any unknown method or URL on its paths is 403.
        Match::WrongMethod(_) | Match::NotFound
            if cfg.apis.contains(&Api::Appliance) && crate::api::legacy::owns(&req.path) =>
        {
            return Err(ApiError::plain(403, "Invalid Request"))
        }
        Match::WrongMethod(allowed) => {
            return Err(ApiError::new(405, "Method Not Allowed")
                .with_details(format!("{} is not allowed on {}", req.method, req.path))
                .with_header("Allow", allowed.join(", ")))
        }
        Match::NotFound => return Err(ApiError::not_found(format!("No such path: {}", req.path))),
    };
    // While the topology changes, the routes that change what it changes wait; reads go on.
    // Checked again after the body, which may take long enough for a transition to begin.
    let held = || route.held && app.ctx.topology.in_transition();
    if held() {
        return Err(ApiError::new(503, "Topology transition in progress"));
    }
    req.body = read_body(rq, cfg.max_body)?;
    if held() {
        return Err(ApiError::new(503, "Topology transition in progress"));
    }
    api::handle(&app.ctx, route.target, req, &params)
}

fn read_body(rq: &mut tiny_http::Request, max: u64) -> Result<Vec<u8>, ApiError> {
    let too_large =
        || ApiError::new(413, "Payload Too Large").with_details(format!("max_body is {max} bytes"));
    if rq.body_length().is_some_and(|n| n as u64 > max) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(max + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
    if body.len() as u64 > max {
        return Err(too_large());
    }
    Ok(body)
}

/// Combined log format, then the duration in seconds and the authenticated client (basic-auth
/// user and/or certificate subject). Never headers' secrets or bodies.
fn access_line(
    req: &Request,
    version: &str,
    status: u16,
    size: usize,
    referer: Option<&str>,
    agent: Option<&str>,
    took: Duration,
) -> String {
    // Every client-supplied string is escaped the same way: none can end a field or a line.
    let q = |s: Option<&str>| s.map_or("-".to_string(), escape);
    let target = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.clone(),
    };
    let client = match (&req.user, &req.peer.cert_subject) {
        (Some(u), Some(s)) => format!("user={u}; cert={s}"),
        (Some(u), None) => format!("user={u}"),
        (None, Some(s)) => format!("cert={s}"),
        (None, None) => "-".into(),
    };
    format!(
        "{} - {} [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {:.3} \"{}\"",
        req.peer.addr.ip(),
        q(req.user.as_deref()),
        Utc::now().clf(),
        escape(req.method.as_str()),
        escape(&target),
        version,
        status,
        size,
        q(referer),
        q(agent),
        took.as_secs_f64(),
        escape(&client),
    )
}
