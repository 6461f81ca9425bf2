//! One client connection's requests, relayed in order to tiny_http over pooled internal
//! connections, and their answers back. The client's output is buffered here (up to
//! `max_body + 1 MiB`) and written without blocking, so a client that does not read never
//! blocks a worker: it is cut off once it stops taking bytes for the request timeout, or once
//! its unread answers pass the cap. Pipelined requests wait, unread, until the answer before
//! them is in.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::answer::{Answer, Fault};
use super::client::{Client, Outbox};
use super::pool::Conn;
use super::{front_response, log_front, poll, Shared, CLOSING, TICK};
use crate::framing::{Framer, Reject};
use crate::http::Peer;
use crate::logs;
use crate::metrics::AGENT;

/// Largest request head the front accepts.
const MAX_HEAD: usize = 32 * 1024;
/// How long the front waits for a handler's answer while its client is there.
const MAX_HANDLER: Duration = Duration::from_secs(300);
/// How long a client may take none of an answer past the cap before it is cut off.
const STALLED: Duration = Duration::from_secs(1);

/// Where the connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request, since then.
    Idle(Instant),
    /// A request is coming in (its head held back, or its body forwarded), since then.
    Receiving(Instant),
    /// The request is in and its answer owed, since then.
    Awaiting(Instant),
    /// Nothing more is read or owed: deliver what is queued, then close.
    Closing,
}

/// One request's internal connection and the answer coming back on it.
struct Trip<'a> {
    conn: Conn<'a>,
    answer: Answer,
    /// The request went over whole, so the connection can serve the next one.
    reusable: bool,
}

/// Serves one accepted connection: handshake, registration, then the relay.
pub(super) fn serve(shared: &Shared, stream: TcpStream, addr: SocketAddr) -> io::Result<()> {
    let timeout = shared.limits.request_timeout;
    let client = match Client::accept(shared.tls.as_ref(), stream, Instant::now() + timeout) {
        Ok(c) => c,
        Err(e) => {
            logs::failure(addr.ip(), "TLS handshake failed", &e.to_string());
            AGENT.tls_failure();
            return Err(e);
        }
    };
    let peer = Peer {
        addr,
        cert_subject: client.cert_subject(),
    };
    let registration = shared.peers.register(peer)?;
    let mut relay = Relay {
        shared,
        client,
        addr,
        framer: Framer::new(MAX_HEAD, shared.limits.max_body, registration.token()),
        phase: Phase::Idle(Instant::now()),
        held: Vec::new(),
        out: Outbox::new(),
        trip: None,
        close_after: false,
        client_gone: None,
        buffered: true,
    };
    relay.client.sock().set_nonblocking(true)?;
    let result = relay.run();
    if relay.phase == Phase::Closing && relay.client_gone.is_none() {
        relay.client.linger_close(Instant::now() + CLOSING);
    } else {
        relay.client.close();
    }
    result
}

struct Relay<'a> {
    shared: &'a Shared,
    client: Client,
    addr: SocketAddr,
    framer: Framer,
    phase: Phase,
    /// Client bytes read and not yet forwarded.
    held: Vec<u8>,
    out: Outbox,
    trip: Option<Trip<'a>>,
    /// The current request's answer ends the connection.
    close_after: bool,
    /// When the client finished sending.
    client_gone: Option<Instant>,
    /// TLS may hold plaintext (e.g. sent with the handshake) the socket will not signal.
    buffered: bool,
}

impl<'a> Relay<'a> {
    fn run(&mut self) -> io::Result<()> {
        let timeout = self.shared.limits.request_timeout;
        loop {
            let pending = self.out.pending(&self.client);
            if self.finished(pending) {
                return Ok(());
            }
            let now = Instant::now();
            let deadline = self.deadline(pending, timeout);
            if now >= deadline {
                self.time_out(pending);
                return Ok(());
            }
            let (internal_ready, client_ready) = if self.buffered {
                (false, true)
            } else {
                self.wait(pending, (deadline - now).min(TICK))
            };
            if internal_ready {
                self.read_answer()?;
            }
            if self.over_cap() && self.out.progress_at.elapsed() > STALLED {
                logs::info("client cut off: too much of its answer left unread");
                return Ok(());
            }
            self.out.flush(&mut self.client)?;
            if client_ready {
                self.read_client(timeout)?;
            }
            self.forward(timeout)?;
        }
    }

    /// Answers are read as they come, so a slow reader does not hold a worker, up to a
    /// config's size. Past that (a large scrape), the relay reads on only as the client takes
    /// it: a client that reads keeps a worker until it has all, one that stopped is cut off.
    fn over_cap(&self) -> bool {
        self.out.len() > self.shared.limits.max_body as usize + (1 << 20)
    }

    fn finished(&self, pending: bool) -> bool {
        match self.phase {
            Phase::Closing => !pending,
            Phase::Idle(_) => {
                let stopping = self.shared.stopping.load(Ordering::SeqCst);
                !pending && (stopping || self.held.is_empty() && self.client_gone.is_some())
            }
            // The client left part-way through a request: it can never be completed.
            Phase::Receiving(_) => !pending && self.held.is_empty() && self.client_gone.is_some(),
            _ => false,
        }
    }

    fn deadline(&self, pending: bool, timeout: Duration) -> Instant {
        let phase = match self.phase {
            Phase::Idle(t) | Phase::Receiving(t) => t + timeout,
            Phase::Awaiting(t) => {
                let gone = self.client_gone.map(|g| g + timeout);
                gone.map_or(t + MAX_HANDLER, |g| g.min(t + MAX_HANDLER))
            }
            Phase::Closing => self.out.progress_at + timeout,
        };
        if pending {
            phase.max(self.out.progress_at + timeout)
        } else {
            phase
        }
    }

    fn time_out(&mut self, pending: bool) {
        match self.phase {
            _ if pending => logs::info("client cut off: it stopped reading its answer"),
            Phase::Receiving(_) if self.trip.take().is_none_or(|t| t.answer.status().is_none()) => {
                let why = "request not received within request_timeout";
                log_front(self.addr, 408, why);
                let answer = front_response(408, "Request Timeout");
                let _ = self.client.write_all(&answer, Instant::now() + CLOSING);
                self.phase = Phase::Closing;
            }
            Phase::Awaiting(_) if self.client_gone.is_none() => {
                logs::warn(&format!(
                    "{}: no answer within {MAX_HANDLER:?}; connection closed",
                    self.addr
                ));
            }
            _ => {}
        }
    }

    /// Waits for either side. Returns (internal readable, client readable).
    fn wait(&mut self, pending: bool, max: Duration) -> (bool, bool) {
        let want_read =
            self.held.is_empty() && self.client_gone.is_none() && self.phase != Phase::Closing;
        let client_fd = if want_read || pending {
            self.client.sock().as_raw_fd()
        } else {
            -1
        };
        // Past the cap, the rest of an answer waits in the internal socket for the client.
        let room = !self.over_cap();
        let internal_fd = match &mut self.trip {
            Some(t) if room => t.conn.sock().map_or(-1, |s| s.as_raw_fd()),
            _ => -1,
        };
        let events =
            if want_read { libc::POLLIN } else { 0 } | if pending { libc::POLLOUT } else { 0 };
        let mut fds = [
            libc::pollfd {
                fd: internal_fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: client_fd,
                events,
                revents: 0,
            },
        ];
        if poll(&mut fds, max) <= 0 {
            return (false, false);
        }
        let client_ready =
            want_read && fds[1].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
        (fds[0].revents != 0, client_ready)
    }

    fn read_client(&mut self, timeout: Duration) -> io::Result<()> {
        let from_socket = !std::mem::take(&mut self.buffered);
        match self
            .client
            .read_available(&mut self.held, from_socket, Instant::now() + timeout)
        {
            Ok(true) => self.client_gone = Some(Instant::now()),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Feeds held client bytes to the framer and on to tiny_http: up to the end of one request,
    /// then its answer first.
    fn forward(&mut self, timeout: Duration) -> io::Result<()> {
        let mut to_internal = Vec::new();
        while !self.held.is_empty() {
            let now = Instant::now();
            match self.phase {
                Phase::Idle(_) if self.shared.stopping.load(Ordering::SeqCst) => return Ok(()),
                Phase::Idle(_) | Phase::Receiving(_) => {}
                Phase::Awaiting(_) | Phase::Closing => return Ok(()),
            }
            let completed = self.framer.completed();
            to_internal.clear();
            let n = match self.framer.feed_one(&self.held, &mut to_internal) {
                Ok(n) => n,
                Err(reject) => {
                    self.refuse(reject);
                    return Ok(());
                }
            };
            self.held.drain(..n);
            if let Some(head) = self.framer.take_head() {
                self.close_after = head.close;
                let Some(conn) = self.borrow(now + timeout) else {
                    return Ok(());
                };
                self.trip = Some(Trip {
                    conn,
                    answer: Answer::new(head, head.close),
                    reusable: true,
                });
            }
            if !to_internal.is_empty() {
                self.send(&to_internal, timeout);
            }
            if self.phase == Phase::Closing {
                return Ok(());
            }
            if self.framer.completed() > completed {
                self.phase = if self.trip.is_some() {
                    Phase::Awaiting(now)
                } else {
                    Phase::Closing
                };
            } else if self.framer.in_request() && matches!(self.phase, Phase::Idle(_)) {
                self.phase = Phase::Receiving(now);
            }
        }
        Ok(())
    }

    /// An internal connection for a new request, or the client told why there is none.
    fn borrow(&mut self, deadline: Instant) -> Option<Conn<'a>> {
        let shared: &'a Shared = self.shared;
        match shared.pool.take(deadline) {
            Ok(Some(conn)) => Some(conn),
            Ok(None) => {
                logs::warn("every internal connection stayed busy; request refused with 503");
                self.answer_and_close(503, "Service Unavailable", "the agent is busy");
                None
            }
            Err(e) => {
                logs::error(&format!("cannot reach the internal server: {e}"));
                self.answer_and_close(500, "Internal Server Error", "internal server unreachable");
                None
            }
        }
    }

    /// Forwards request bytes. Once an answer has begun, the rest of the request is dropped:
    /// the connection closes after that answer.
    fn send(&mut self, bytes: &[u8], timeout: Duration) {
        let Some(trip) = self.trip.as_mut() else {
            return;
        };
        if trip.answer.status().is_some() {
            return;
        }
        let sent = trip.conn.sock().and_then(|s| {
            s.set_write_timeout(Some(timeout))?;
            s.write_all(bytes)
        });
        if let Err(e) = sent {
            // An answer may already be on its way; read_answer sees it or the close.
            logs::debug(&format!("request not fully forwarded: {e}"));
            self.close_after = true;
            trip.reusable = false;
            trip.answer.close_after();
        }
    }

    fn read_answer(&mut self) -> io::Result<()> {
        let Some(trip) = self.trip.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 16 * 1024];
        let n = match trip.conn.sock()?.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                return Ok(())
            }
            Err(e) => {
                self.internal_failed(&format!("internal connection failed: {e}"));
                return Ok(());
            }
        };
        if n == 0 {
            self.internal_failed("the request handler gave no answer");
            return Ok(());
        }
        // An answer that comes before its request is in ends the connection.
        if matches!(self.phase, Phase::Receiving(_)) {
            self.close_after = true;
            trip.answer.close_after();
        }
        let fed = self.out.push_with(|out| trip.answer.feed(&buf[..n], out));
        match fed {
            Ok(used) if trip.answer.done() => {
                let trip = self.trip.take();
                if let (true, Phase::Awaiting(_), Some(t)) = (used == n, self.phase, trip) {
                    if t.reusable {
                        t.conn.give_back();
                    }
                }
                self.phase = match self.phase {
                    Phase::Awaiting(_) if !self.close_after => Phase::Idle(Instant::now()),
                    _ => Phase::Closing,
                };
            }
            Ok(_) => {}
            Err(Fault::Foreign(status)) => {
                self.trip = None;
                logs::error(&format!(
                    "the internal server refused a request with {status}"
                ));
                let (status, message) = match status {
                    400 => (400, "Bad Request"),
                    408 => (408, "Request Timeout"),
                    417 => (417, "Expectation Failed"),
                    505 => (505, "HTTP Version Not Supported"),
                    _ => (500, "Internal Server Error"),
                };
                self.answer_and_close(status, message, "refused by the internal server");
            }
            Err(Fault::Malformed(why)) => self.internal_failed(why),
        }
        Ok(())
    }

    /// The internal side failed: the client gets a 500 unless part of an answer is out.
    fn internal_failed(&mut self, why: &str) {
        let started = self
            .trip
            .take()
            .is_some_and(|t| t.answer.status().is_some());
        logs::error(&format!("{}: {why}", self.addr));
        if started {
            self.phase = Phase::Closing;
        } else {
            self.answer_and_close(500, "Internal Server Error", why);
        }
    }

    /// Answers a request the framer refused, unless part of an answer is already out (then
    /// the connection just closes, as two answers would interleave).
    fn refuse(&mut self, reject: Reject) {
        let (status, message) = reject.status();
        if self
            .trip
            .take()
            .is_some_and(|t| t.answer.status().is_some())
        {
            log_front(self.addr, status, message);
            self.phase = Phase::Closing;
        } else {
            self.answer_and_close(status, message, message);
        }
    }

    /// Queues the front's own answer and ends the connection after it.
    fn answer_and_close(&mut self, status: u16, message: &str, why: &str) {
        log_front(self.addr, status, why);
        self.out
            .push_with(|o| o.extend_from_slice(&front_response(status, message)));
        self.phase = Phase::Closing;
    }
}
