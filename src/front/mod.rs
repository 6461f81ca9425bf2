//! The network front (DESIGN section 0): the agent's own accept loop on the public socket and
//! everything between a client and the internal HTTP server (tiny_http on a Unix socket in a
//! private directory). By job:
//! - `admission`: the accept loop (on the threads that serve), the connection cap, and the 503
//!   for connections over it;
//! - `client`: plain TCP or TLS with a handshake deadline, deadline-bound output;
//! - `relay`: one connection's requests, framed (`crate::framing`) and relayed in order;
//! - `pool`: persistent internal connections the relays borrow;
//! - `answer`: where tiny_http's answers end, and the head the client gets;
//! - `peers`: the token each forwarded request carries, naming its real client.

mod admission;
mod answer;
mod client;
mod peers;
mod pool;
mod relay;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::ServerConfig;

pub use answer::SERVER;
pub use peers::{Caller, PeerTable};

use crate::error::error_body;
use crate::logs;

/// How often blocked loops look at the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// Time a closing connection gets to take its last answer.
const CLOSING: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub max_body: u64,
    /// Persistent connections to the internal server (its worker count).
    pub internal_connections: usize,
}

struct Shared {
    tls: Option<Arc<ServerConfig>>,
    pool: pool::Pool,
    peers: Arc<PeerTable>,
    limits: Limits,
    active: AtomicUsize,
    stopping: AtomicBool,
}

pub struct Front {
    shared: Arc<Shared>,
    admission: Arc<admission::Admission>,
}

impl Front {
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        internal: PathBuf,
        peers: Arc<PeerTable>,
        limits: Limits,
    ) -> io::Result<Self> {
        let pool = pool::Pool::new(internal, limits.internal_connections, peers.probe_token());
        let shared = Arc::new(Shared {
            tls,
            pool,
            peers,
            limits,
            active: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        Ok(Front {
            admission: admission::Admission::start(shared.clone(), listener)?,
            shared,
        })
    }

    /// Accepts (on the connection threads) until `stop()` says so; `stop` is called every
    /// tick (and handles signals). Then the socket stops listening at once.
    pub fn run(&self, mut stop: impl FnMut() -> bool) -> io::Result<()> {
        if let Err(e) = self.admission.open() {
            self.admission.close();
            return Err(e);
        }
        while !stop() {
            thread::sleep(TICK);
        }
        self.admission.close();
        Ok(())
    }

    /// Stops taking new requests and waits (at most `max`) for in-flight ones to finish.
    /// Returns whether every connection ended in time.
    pub fn drain(&self, max: Duration) -> bool {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let end = Instant::now() + max;
        while Instant::now() < end {
            if self.shared.active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Waits until `fd` is ready for `events` or the timeout passes.
fn poll_one(fd: i32, events: i16, timeout: Duration) -> bool {
    let mut p = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    poll(&mut p, timeout) > 0
}

fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> i32 {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a valid, exclusively borrowed slice of pollfd for the whole call.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) }
}

/// An answer the front gives itself; always closes the connection.
fn front_response(status: u16, message: &str) -> Vec<u8> {
    let body = error_body(status, message, None);
    format!(
        "HTTP/1.1 {status} {message}\r\nServer: {SERVER}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An access log line for an answer the front gave itself (no request reached a handler).
fn log_front(addr: SocketAddr, status: u16, why: &str) {
    logs::access(&format!(
        "{} - - [{}] \"-\" {status} 0 \"-\" \"-\" 0.000 \"front: {why}\"",
        addr.ip(),
        crate::timefmt::Utc::now().clf()
    ));
}
