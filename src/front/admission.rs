//! Admission: a thread per admitted connection, up to `max_connections`; over the cap, a 503
//! that every client can read. One thread answers all refused connections without blocking:
//! it finishes the TLS handshake if there is one, writes the 503, shuts down its sending side
//! and reads (and drops) what the client still sends until it closes, so the close never
//! resets a connection whose answer is unread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use super::{front_response, log_front, poll, relay, Shared, TICK};
use crate::logs;
use crate::metrics::AGENT;

/// Refused connections answered at once; beyond this they are closed unanswered.
const MAX_REFUSED: usize = 256;
/// How long a refused client gets to send its request and read the 503.
const LINGER: Duration = Duration::from_secs(5);

pub(super) struct Admission {
    shared: Arc<Shared>,
    refused: Sender<(TcpStream, SocketAddr)>,
}

/// Counts a thread in a counter for as long as it lives.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    pub fn start(shared: Arc<Shared>) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let for_refuser = shared.clone();
        thread::Builder::new()
            .name("refuser".into())
            .spawn(move || refuse_all(&for_refuser, &rx))?;
        Ok(Admission {
            shared,
            refused: tx,
        })
    }

    pub fn admit(&self, stream: TcpStream, addr: SocketAddr) {
        let s = &self.shared;
        if s.active.fetch_add(1, Ordering::SeqCst) >= s.limits.max_connections {
            s.active.fetch_sub(1, Ordering::SeqCst);
            logs::failure(addr.ip(), "over max_connections", "refused with 503");
            AGENT.refused();
            let _ = self.refused.send((stream, addr));
            return;
        }
        // Accepted sockets may inherit non-blocking mode on some systems; the relay sets its own.
        if stream.set_nonblocking(false).is_err() {
            s.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let shared = self.shared.clone();
        let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
            let _c = Counted(&shared.active);
            let _open = AGENT.connection();
            if let Err(e) = relay::serve(&shared, stream, addr) {
                logs::debug(&format!("{addr}: connection ended: {e}"));
            }
        });
        if let Err(e) = spawned {
            s.active.fetch_sub(1, Ordering::SeqCst);
            logs::error(&format!("cannot start a connection thread: {e}"));
        }
    }
}

/// A refused connection on its way out.
struct Refused {
    sock: TcpStream,
    tls: Option<Box<ServerConnection>>,
    addr: SocketAddr,
    /// Plain answer bytes not yet written.
    out: Vec<u8>,
    answered: bool,
    shut: bool,
    until: Instant,
}

impl Refused {
    fn new(shared: &Shared, sock: TcpStream, addr: SocketAddr) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        let tls = match &shared.tls {
            Some(cfg) => Some(Box::new(
                ServerConnection::new(cfg.clone()).map_err(io::Error::other)?,
            )),
            None => None,
        };
        Ok(Refused {
            sock,
            tls,
            addr,
            out: Vec::new(),
            answered: false,
            shut: false,
            until: Instant::now() + LINGER,
        })
    }

    fn wants_write(&self) -> bool {
        !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Moves the connection on as far as it goes without blocking; false once it is done.
    fn step(&mut self) -> bool {
        self.step_io().unwrap_or(false)
    }

    fn step_io(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        // Read (and drop) what the client sends; its close ends the linger.
        let eof = match &mut self.tls {
            Some(tls) => match tls.read_tls(&mut self.sock) {
                Ok(0) => true,
                Ok(_) => {
                    if tls.process_new_packets().is_err() {
                        let _ = tls.write_tls(&mut self.sock);
                        return Ok(false);
                    }
                    while matches!(tls.reader().read(&mut buf), Ok(n) if n > 0) {}
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) => return Err(e),
            },
            None => match self.sock.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(e) => return Err(e),
            },
        };
        if eof && self.answered && !self.wants_write() {
            return Ok(false);
        }
        let handshaken = self.tls.as_ref().is_none_or(|t| !t.is_handshaking());
        if handshaken && !self.answered {
            self.answered = true;
            let answer = front_response(503, "Service Unavailable");
            match &mut self.tls {
                Some(tls) => {
                    tls.writer().write_all(&answer)?;
                    tls.send_close_notify();
                }
                None => self.out = answer,
            }
            log_front(self.addr, 503, "over max_connections");
        }
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                match tls.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(n) => drop(self.out.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.answered && !self.wants_write() && !self.shut {
            self.shut = true;
            self.sock.shutdown(Shutdown::Write)?;
        }
        // A client that is gone before its answer is out: nothing more to do.
        Ok(!eof || self.wants_write())
    }
}

/// The refuser thread: every refused connection, each moved on as its socket allows.
fn refuse_all(shared: &Shared, incoming: &Receiver<(TcpStream, SocketAddr)>) {
    let mut open: Vec<Refused> = Vec::new();
    loop {
        let next = if open.is_empty() {
            incoming.recv_timeout(TICK)
        } else {
            incoming.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        };
        match next {
            Ok((sock, addr)) => {
                if open.len() < MAX_REFUSED {
                    if let Ok(mut r) = Refused::new(shared, sock, addr) {
                        if r.step() {
                            open.push(r);
                        }
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if open.is_empty() => continue,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|r| libc::pollfd {
                fd: r.sock.as_raw_fd(),
                events: libc::POLLIN | if r.wants_write() { libc::POLLOUT } else { 0 },
                revents: 0,
            })
            .collect();
        poll(&mut fds, Duration::from_millis(50));
        let now = Instant::now();
        let mut i = 0;
        open.retain_mut(|r| {
            let ready = fds[i].revents != 0;
            i += 1;
            now < r.until && (!ready || r.step())
        });
    }
}
