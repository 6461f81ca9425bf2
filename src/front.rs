//! The network front (DESIGN section 0): the agent's own accept loop on the public socket,
//! a cap on concurrent connections, TLS with a handshake deadline, request deadlines, and a
//! plaintext hand-off of each connection to the internal HTTP server over a Unix socket in a
//! private directory. The front names each connection with a random token, added as a header to
//! every request it forwards; the peer table maps tokens to the real peer address and
//! certificate subject, so a request that did not come through the front finds no peer.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use crate::api::Peer;
use crate::error::error_body;
use crate::framing::{Framer, Reject};
use crate::logs;

/// Largest request head the front accepts.
const MAX_HEAD: usize = 32 * 1024;
/// How long the front waits for a handler's answer before giving up on it.
const MAX_HANDLER: Duration = Duration::from_secs(300);
/// How often blocked loops look at the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// Connections over the cap that still get a polite 503; the rest are just closed.
const MAX_REJECTING: usize = 16;
/// Time a closing connection gets to take its last answer.
const CLOSING: Duration = Duration::from_secs(2);

/// Connection token -> the real client.
#[derive(Default)]
pub struct PeerTable(Mutex<HashMap<String, Peer>>);

impl PeerTable {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, token: &str) -> Option<Peer> {
        self.map().get(token).cloned()
    }
}

/// 128 random bits, hex: unguessable, so only the front can name a connection.
fn random_token() -> io::Result<String> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most b.len() bytes into the valid, exclusively borrowed buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Removes a registration when the connection ends.
struct Registration<'a>(&'a PeerTable, String);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.0.map().remove(&self.1);
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub max_body: u64,
}

struct Shared {
    tls: Option<Arc<ServerConfig>>,
    internal: PathBuf,
    peers: Arc<PeerTable>,
    limits: Limits,
    active: AtomicUsize,
    rejecting: AtomicUsize,
    stopping: AtomicBool,
}

pub struct Front {
    /// Dropped when the accept loop ends, so a stopping agent refuses new connections at once.
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
}

/// Counts a thread in a counter for as long as it lives.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Front {
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        internal: PathBuf,
        peers: Arc<PeerTable>,
        limits: Limits,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Front {
            listener: Some(listener),
            shared: Arc::new(Shared {
                tls,
                internal,
                peers,
                limits,
                active: AtomicUsize::new(0),
                rejecting: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
            }),
        })
    }

    /// Accepts until `stop()` says so; `stop` is called between accepts (and handles signals).
    /// Accept errors are logged and retried, never fatal.
    pub fn run(&mut self, mut stop: impl FnMut() -> bool) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        while !stop() {
            if !poll_one(listener.as_raw_fd(), libc::POLLIN, TICK) {
                continue;
            }
            match listener.accept() {
                Ok((stream, addr)) => self.dispatch(stream, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    logs::error(&format!("accept failed: {e}"));
                    // EMFILE and friends: give the system a moment instead of spinning.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn dispatch(&self, stream: TcpStream, addr: SocketAddr) {
        let s = &self.shared;
        // Accepted sockets may inherit non-blocking mode on some systems; the workers block.
        if stream.set_nonblocking(false).is_err() {
            return;
        }
        if s.active.fetch_add(1, Ordering::SeqCst) >= s.limits.max_connections {
            s.active.fetch_sub(1, Ordering::SeqCst);
            if s.rejecting.fetch_add(1, Ordering::SeqCst) >= MAX_REJECTING {
                s.rejecting.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            logs::warn(&format!("{addr}: over max_connections, refused with 503"));
            let shared = self.shared.clone();
            let spawned = thread::Builder::new().name("reject".into()).spawn(move || {
                let _c = Counted(&shared.rejecting);
                reject_busy(&shared, stream, addr);
            });
            if spawned.is_err() {
                s.rejecting.fetch_sub(1, Ordering::SeqCst);
            }
            return;
        }
        let shared = self.shared.clone();
        let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
            let _c = Counted(&shared.active);
            if let Err(e) = serve(&shared, stream, addr) {
                logs::debug(&format!("{addr}: connection ended: {e}"));
            }
        });
        if let Err(e) = spawned {
            s.active.fetch_sub(1, Ordering::SeqCst);
            logs::error(&format!("cannot start a connection thread: {e}"));
        }
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

/// A response the front writes itself; always closes the connection.
fn front_response(status: u16, message: &str) -> Vec<u8> {
    let body = error_body(status, message, None);
    format!(
        "HTTP/1.1 {status} {message}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The client side of a connection: plain TCP or TLS over it.
enum Client {
    Plain(TcpStream),
    Tls(Box<ServerConnection>, TcpStream),
}

impl Client {
    fn sock(&self) -> &TcpStream {
        match self {
            Client::Plain(s) | Client::Tls(_, s) => s,
        }
    }

    /// Reads what the socket has (poll said readable; with `from_socket` false, only what TLS
    /// already buffered). Returns plaintext and whether the client has finished sending.
    fn read_available(
        &mut self,
        out: &mut Vec<u8>,
        from_socket: bool,
        deadline: Instant,
    ) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        match self {
            Client::Plain(s) if from_socket => {
                let n = s.read(&mut buf)?;
                out.extend_from_slice(&buf[..n]);
                Ok(n == 0)
            }
            Client::Plain(_) => Ok(false),
            Client::Tls(conn, s) => {
                let mut eof = from_socket && conn.read_tls(s)? == 0;
                if let Err(e) = conn.process_new_packets() {
                    // Let the client see the alert before the close.
                    let _ = conn.write_tls(s);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            eof = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                flush_tls(conn, s, deadline)?;
                Ok(eof)
            }
        }
    }

    /// Writes everything by `deadline`: a per-call socket timeout alone would let a client
    /// that reads a byte at a time hold its connection forever.
    fn write_all(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        match self {
            Client::Plain(s) => {
                let mut rest = data;
                while !rest.is_empty() {
                    set_deadline(s, deadline)?;
                    match s.write(rest) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Client::Tls(conn, s) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let n = conn.writer().write(rest)?;
                    rest = &rest[n..];
                    flush_tls(conn, s, deadline)?;
                }
                Ok(())
            }
        }
    }

    /// Ends the connection cleanly (TLS close_notify) as far as the client lets us.
    fn close(&mut self) {
        if let Client::Tls(conn, s) = self {
            conn.send_close_notify();
            let _ = flush_tls(conn, s, Instant::now() + CLOSING);
        }
        let _ = self.sock().shutdown(Shutdown::Write);
    }
}

fn set_deadline(s: &TcpStream, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client too slow to read",
        ));
    }
    s.set_write_timeout(Some(left))
}

fn flush_tls(conn: &mut ServerConnection, s: &mut TcpStream, deadline: Instant) -> io::Result<()> {
    while conn.wants_write() {
        set_deadline(s, deadline)?;
        conn.write_tls(s)?;
    }
    Ok(())
}

/// An access log line for an answer the front gave itself (no request reached a handler).
fn log_front(addr: SocketAddr, status: u16, message: &str) {
    logs::access(&format!(
        "{} - - [{}] \"-\" {status} 0 \"-\" \"-\" 0.000 \"front: {message}\"",
        addr.ip(),
        crate::timefmt::Utc::now().clf()
    ));
}

/// Drives the handshake by hand so the deadline covers all of it: `complete_io` would give each
/// read the full timeout, and a client dripping a byte at a time could hold a slot forever.
fn handshake(cfg: &Arc<ServerConfig>, mut s: TcpStream, deadline: Instant) -> io::Result<Client> {
    let mut conn = ServerConnection::new(cfg.clone()).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        flush_tls(&mut conn, &mut s, deadline)?;
        if !conn.is_handshaking() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !poll_one(s.as_raw_fd(), libc::POLLIN, left) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ));
        }
        if conn.read_tls(&mut s)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during handshake",
            ));
        }
        if let Err(e) = conn.process_new_packets() {
            let _ = conn.write_tls(&mut s);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    flush_tls(&mut conn, &mut s, deadline)?;
    Ok(Client::Tls(Box::new(conn), s))
}

fn accept_client(shared: &Shared, stream: TcpStream, deadline: Instant) -> io::Result<Client> {
    let _ = stream.set_nodelay(true);
    match &shared.tls {
        Some(cfg) => handshake(cfg, stream, deadline),
        None => Ok(Client::Plain(stream)),
    }
}

/// Over the cap: answer 503 (after the TLS handshake, if any, so the client can read it).
fn reject_busy(shared: &Shared, stream: TcpStream, addr: SocketAddr) {
    let deadline = Instant::now() + CLOSING;
    if let Ok(mut client) = accept_client(shared, stream, deadline) {
        let _ = client.write_all(&front_response(503, "Service Unavailable"), deadline);
        log_front(addr, 503, "over max_connections");
        linger_close(&mut client, deadline);
    }
}

/// Closes after letting the client read what was sent: unread input at close would make the
/// kernel reset the connection and lose the response.
fn linger_close(client: &mut Client, deadline: Instant) {
    client.close();
    let mut sink = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if !poll_one(client.sock().as_raw_fd(), libc::POLLIN, left) {
            break;
        }
        sink.clear();
        match client.read_available(&mut sink, true, deadline) {
            Ok(false) => {}
            _ => break,
        }
    }
}

fn serve(shared: &Shared, stream: TcpStream, addr: SocketAddr) -> io::Result<()> {
    let timeout = shared.limits.request_timeout;
    let mut client = accept_client(shared, stream, Instant::now() + timeout)?;
    let cert_subject = match &client {
        Client::Tls(conn, _) => conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| crate::tls::subject(c)),
        Client::Plain(_) => None,
    };
    client.sock().set_read_timeout(Some(timeout))?;
    let token = random_token()?;
    shared
        .peers
        .map()
        .insert(token.clone(), Peer { addr, cert_subject });
    let _registration = Registration(&shared.peers, token.clone());
    let result = pump(shared, &mut client, &token, addr);
    client.close();
    result
}

/// One request's way through tiny_http: a connection of its own (the framer marks each
/// request `Connection: close`), which tiny_http closes once the answer is written. Short
/// connections keep tiny_http's per-connection threads short-lived: its pool can queue a new
/// connection behind busy ones, and a keep-alive connection would keep it waiting for as long
/// as another client stays connected.
struct Trip {
    sock: UnixStream,
    /// The whole request has been sent; the next one waits for this answer.
    sent: bool,
}

/// Relays requests to tiny_http, one trip each and in order, and answers back, until the
/// client is done or a deadline passes. Output to the client is buffered here (up to
/// `out_cap`), so a client that does not read never blocks the worker writing its answer: it
/// is cut off once it stops taking bytes for the request timeout, or once its unread answers
/// pass the cap. Pipelined requests wait, unread, until the answer before them is in.
fn pump(shared: &Shared, client: &mut Client, token: &str, addr: SocketAddr) -> io::Result<()> {
    let timeout = shared.limits.request_timeout;
    let out_cap = shared.limits.max_body as usize + (1 << 20);
    let mut framer = Framer::new(MAX_HEAD, shared.limits.max_body, token);
    let mut request_started: Option<Instant> = None;
    // Set while a received request has had no answer yet.
    let mut owed_since: Option<Instant> = None;
    // Set when the answer to the request being received started early (e.g. a 401 before the
    // body was read): nothing more is owed when that request ends.
    let mut answered_early = false;
    // Set while the rest of a request tiny_http no longer reads (it answered) is dropped.
    let mut discard = false;
    let mut last_activity = Instant::now();
    let mut client_done = false;
    let mut trip: Option<Trip> = None;
    // Client bytes not yet forwarded.
    let mut held: Vec<u8> = Vec::new();
    let mut to_internal = Vec::new();
    let mut out = Outbox::new();
    let mut buf = vec![0u8; 16 * 1024];
    // TLS may hold plaintext that arrived with the handshake; the socket won't signal it.
    let mut buffered = matches!(client, Client::Tls(..));
    client.sock().set_nonblocking(true)?;

    let result = loop {
        let now = Instant::now();
        let pending = out.pending(client);
        let idle = request_started.is_none() && trip.is_none() && held.is_empty();
        if shared.stopping.load(Ordering::SeqCst) && idle {
            // No new requests; what is owed is delivered below before ending.
            client_done = true;
        }
        if client_done && (idle || request_started.is_some() && trip.is_none()) && !pending {
            break Ok(());
        }
        let deadline = match (request_started, owed_since) {
            _ if pending => out.progress_at + timeout,
            (Some(t), _) => t + timeout,
            (None, Some(t)) => t + MAX_HANDLER,
            (None, None) => last_activity + timeout,
        };
        if now >= deadline {
            if pending {
                logs::info("client cut off: it stopped reading its answer");
            } else if request_started.is_some() && owed_since.is_none() {
                let _ = client.sock().set_nonblocking(false);
                let _ = client.write_all(
                    &front_response(408, "Request Timeout"),
                    Instant::now() + CLOSING,
                );
                log_front(addr, 408, "request not received within request_timeout");
                linger_close(client, Instant::now() + CLOSING);
            }
            break Ok(());
        }
        let mut fds = [
            libc::pollfd {
                fd: trip.as_ref().map_or(-1, |t| t.sock.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: client.sock().as_raw_fd(),
                // Not read while earlier bytes wait: a pipelining client is held back.
                events: (if client_done || !held.is_empty() {
                    0
                } else {
                    libc::POLLIN
                }) | (if pending { libc::POLLOUT } else { 0 }),
                revents: 0,
            },
        ];
        if !buffered && poll(&mut fds, (deadline - now).min(TICK)) <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            if let Some(t) = trip.as_mut() {
                match t.sock.read(&mut buf) {
                    Ok(0) => {
                        // The answer is complete. A request it did not wait for is dropped.
                        discard = !t.sent;
                        trip = None;
                    }
                    Ok(n) => {
                        out.push(&buf[..n]);
                        owed_since = None;
                        answered_early = request_started.is_some();
                        last_activity = Instant::now();
                        if out.len() > out_cap {
                            logs::info("client cut off: too much of its answer left unread");
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            }
        }
        if let Err(e) = out.flush(client) {
            break Err(e);
        }
        let readable = fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        if (readable && !client_done && held.is_empty()) || buffered {
            match client.read_available(&mut held, !buffered, Instant::now() + timeout) {
                Ok(done) => client_done = done,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => break Err(e),
            }
            buffered = false;
            last_activity = Instant::now();
        }
        // Forward what may go now: up to the end of one request, then its answer first.
        let mut refused = None;
        while !held.is_empty() && !trip.as_ref().is_some_and(|t| t.sent) {
            let before = framer.completed();
            to_internal.clear();
            let n = match framer.feed_one(&held, &mut to_internal) {
                Ok(n) => n,
                Err(reject) => {
                    refused = Some(reject);
                    break;
                }
            };
            held.drain(..n);
            if !to_internal.is_empty() && !discard {
                if trip.is_none() {
                    let sock = UnixStream::connect(&shared.internal)?;
                    sock.set_write_timeout(Some(timeout))?;
                    trip = Some(Trip { sock, sent: false });
                }
                if let Some(t) = trip.as_mut() {
                    match t.sock.write_all(&to_internal) {
                        Ok(()) => {}
                        // tiny_http answered without reading it all.
                        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => discard = true,
                        Err(e) => return Err(e),
                    }
                }
            }
            let now = Instant::now();
            if framer.completed() > before {
                if let Some(t) = trip.as_mut() {
                    t.sent = true;
                }
                discard = false;
                if !answered_early {
                    owed_since = Some(now);
                }
                answered_early = false;
            }
            request_started = match (framer.in_request(), request_started) {
                (true, None) => Some(now),
                (true, started) if framer.completed() == before => started,
                (true, _) => Some(now),
                (false, _) => None,
            };
        }
        if let Some(reject) = refused {
            let _ = client.sock().set_nonblocking(false);
            break refuse(
                client,
                reject,
                owed_since.is_some() || pending || trip.is_some(),
                addr,
            );
        }
        if client_done && request_started.is_some() {
            // The request will not be completed: tiny_http need not wait for the rest.
            if let Some(t) = &trip {
                let _ = t.sock.shutdown(Shutdown::Write);
            }
        }
    };
    let _ = client.sock().set_nonblocking(false);
    result
}

/// Answer bytes not yet taken by the client.
struct Outbox {
    data: Vec<u8>,
    sent: usize,
    /// When the client last took bytes (or the box last went from empty to full).
    progress_at: Instant,
}

impl Outbox {
    fn new() -> Self {
        Outbox {
            data: Vec::new(),
            sent: 0,
            progress_at: Instant::now(),
        }
    }

    fn len(&self) -> usize {
        self.data.len() - self.sent
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.len() == 0 {
            self.data.clear();
            self.sent = 0;
            self.progress_at = Instant::now();
        }
        self.data.extend_from_slice(bytes);
    }

    /// Bytes left here or inside TLS.
    fn pending(&self, client: &Client) -> bool {
        self.len() > 0 || matches!(client, Client::Tls(conn, _) if conn.wants_write())
    }

    /// Writes what the (non-blocking) socket takes now.
    fn flush(&mut self, client: &mut Client) -> io::Result<()> {
        loop {
            let before = self.sent;
            let wrote = match client {
                Client::Plain(s) => match s.write(&self.data[self.sent..]) {
                    Ok(n) => {
                        self.sent += n;
                        n > 0
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                    Err(e) => return Err(e),
                },
                Client::Tls(conn, s) => {
                    if self.len() > 0 {
                        self.sent += conn.writer().write(&self.data[self.sent..])?;
                    }
                    let mut wrote = false;
                    while conn.wants_write() {
                        match conn.write_tls(s) {
                            Ok(n) => wrote |= n > 0,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    wrote
                }
            };
            if self.sent > before || wrote {
                self.progress_at = Instant::now();
            }
            if !wrote && self.sent == before
                || self.len() == 0 && !matches!(client, Client::Tls(c, _) if c.wants_write())
            {
                return Ok(());
            }
        }
    }
}

/// Answers a request the framer refused, unless an earlier answer is still being produced
/// (then the connection just closes, as two answers would interleave).
fn refuse(
    client: &mut Client,
    reject: Reject,
    answer_pending: bool,
    addr: SocketAddr,
) -> io::Result<()> {
    let (status, message) = reject.status();
    log_front(addr, status, message);
    if !answer_pending {
        let deadline = Instant::now() + CLOSING;
        client.write_all(&front_response(status, message), deadline)?;
        linger_close(client, deadline);
    }
    Ok(())
}
