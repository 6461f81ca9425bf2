//! Admission: the accept loop, the connection cap, and the 503 for connections over it.
//!
//! Connections are accepted by the threads that serve them, one at a time in turn (leader and
//! followers): the thread that accepts a connection serves it itself, and the next waiting
//! thread takes over accepting. A new connection so starts on a thread that is already
//! running, rather than paying for a thread to be started and woken (some 0.1 ms of a 1 ms
//! TLS connection on a small VM). A few threads wait between connections; more are started
//! as connections keep them busy, up to the cap.
//!
//! Over the cap, one thread answers all refused connections without blocking: it finishes the
//! TLS handshake if there is one, writes the 503, shuts down its sending side and reads (and
//! drops) what the client still sends until it closes, so the close never resets a
//! connection whose answer is unread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use super::{front_response, log_front, poll, poll_one, relay, Shared, TICK};
use crate::logs;
use crate::metrics::AGENT;

/// Refused connections answered at once; beyond this they are closed unanswered.
const MAX_REFUSED: usize = 256;
/// How long a refused client gets to send its request and read the 503.
const LINGER: Duration = Duration::from_secs(5);
/// Threads kept waiting for connections, the accepting one included: enough that the next
/// connection finds a thread ready, few enough to keep an idle agent small.
const SPARE: usize = 2;

pub(super) struct Admission {
    shared: Arc<Shared>,
    listener: TcpListener,
    refused: Sender<(TcpStream, SocketAddr)>,
    /// Held by the one thread that accepts; the other waiting threads queue here.
    turn: Mutex<()>,
    /// Threads not serving a connection: accepting, or waiting for their turn.
    waiting: AtomicUsize,
    accepting: AtomicBool,
}

/// Counts a connection in a counter for as long as it is served.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    pub fn start(shared: Arc<Shared>, listener: TcpListener) -> io::Result<Arc<Self>> {
        listener.set_nonblocking(true)?;
        let (tx, rx) = mpsc::channel();
        let for_refuser = shared.clone();
        thread::Builder::new()
            .name("refuser".into())
            .spawn(move || refuse_all(&for_refuser, &rx))?;
        Ok(Arc::new(Admission {
            shared,
            listener,
            refused: tx,
            turn: Mutex::new(()),
            waiting: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
        }))
    }

    /// Starts the threads that accept and serve.
    pub fn open(self: &Arc<Self>) -> io::Result<()> {
        for _ in 0..SPARE {
            self.spawn()?;
        }
        Ok(())
    }

    /// Stops accepting: the socket stops listening at once (new clients are refused by the
    /// kernel), and every connection accepted so far is counted in `active` on return.
    pub fn close(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        // SAFETY: shutdown on a descriptor this struct owns; it stays open until drop.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        drop(self.turn.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn spawn(self: &Arc<Self>) -> io::Result<()> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        let spawned = thread::Builder::new()
            .name("conn".into())
            .spawn(move || me.serve_in_turn());
        if spawned.is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        spawned.map(drop)
    }

    /// One thread's life: accepts when its turn comes and serves what it accepted, until the
    /// agent stops or enough other threads wait.
    fn serve_in_turn(self: Arc<Self>) {
        while let Some((stream, addr, admitted)) = self.next() {
            // The next connection needs a thread to accept it.
            if self.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
                if let Err(e) = self.spawn() {
                    logs::error(&format!("cannot start a connection thread: {e}"));
                }
            }
            if admitted {
                self.serve(stream, addr);
            } else {
                self.refuse(stream, addr);
            }
            if self.waiting.load(Ordering::SeqCst) >= SPARE {
                return;
            }
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// The next connection, once this thread's turn has come, and whether it is within the
    /// cap (counted in `active` if so); None once the agent stops accepting. Accept errors
    /// are logged and retried, never fatal.
    fn next(&self) -> Option<(TcpStream, SocketAddr, bool)> {
        let _turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.shared;
        while self.accepting.load(Ordering::SeqCst) {
            if !poll_one(self.listener.as_raw_fd(), libc::POLLIN, TICK) {
                continue;
            }
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    let admitted =
                        s.active.fetch_add(1, Ordering::SeqCst) < s.limits.max_connections;
                    if !admitted {
                        s.active.fetch_sub(1, Ordering::SeqCst);
                    }
                    return Some((stream, addr, admitted));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) if !self.accepting.load(Ordering::SeqCst) => break,
                Err(e) => {
                    logs::error(&format!("accept failed: {e}"));
                    // EMFILE and friends: give the system a moment instead of spinning.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        None
    }

    /// A connection within the cap, counted in `active` until it ends.
    fn serve(&self, stream: TcpStream, addr: SocketAddr) {
        let _c = Counted(&self.shared.active);
        let _open = AGENT.connection();
        // Accepted sockets may inherit non-blocking mode on some systems; the relay sets its own.
        if stream.set_nonblocking(false).is_err() {
            return;
        }
        if let Err(e) = relay::serve(&self.shared, stream, addr) {
            logs::debug(&format!("{addr}: connection ended: {e}"));
        }
    }

    fn refuse(&self, stream: TcpStream, addr: SocketAddr) {
        logs::failure(addr.ip(), "over max_connections", "refused with 503");
        AGENT.refused();
        let _ = self.refused.send((stream, addr));
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
