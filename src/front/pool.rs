//! Persistent connections to tiny_http, shared by every client connection: a request borrows
//! one and gives it back once its answer is in, so it pays no connect and no accept.
//!
//! At most `size` are open (the worker count: more would only queue inside tiny_http). New
//! ones are opened one at a time and probed before use: tiny_http 0.12's thread pool can leave
//! a connection queued when two arrive together while one of its threads is waking (it counts
//! that thread as idle), and a persistent connection would never free a thread for it.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::answer::Answer;
use super::poll_one;
use crate::framing::{Head, CONN_HEADER};

/// How long a new connection's probe may take before the connection is given up.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Pool {
    path: PathBuf,
    probe: Vec<u8>,
    size: usize,
    state: Mutex<State>,
    freed: Condvar,
    /// Held while a connection is opened and probed.
    opening: Mutex<()>,
}

#[derive(Default)]
struct State {
    idle: Vec<UnixStream>,
    open: usize,
}

/// A borrowed connection: given back with `give_back`, closed if dropped.
pub struct Conn<'a> {
    pool: &'a Pool,
    sock: Option<UnixStream>,
}

impl Conn<'_> {
    pub fn sock(&mut self) -> io::Result<&mut UnixStream> {
        self.sock
            .as_mut()
            .ok_or_else(|| io::Error::other("connection already given back"))
    }

    /// Returns the connection for the next request (its answer has been read in full).
    pub fn give_back(mut self) {
        if let Some(s) = self.sock.take() {
            self.pool.lock().idle.push(s);
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if self.sock.take().is_some() {
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
        }
    }
}

impl Pool {
    pub fn new(path: PathBuf, size: usize, probe_token: &str) -> Self {
        let probe =
            format!("GET / HTTP/1.1\r\nHost: lbagent\r\n{CONN_HEADER}: {probe_token}\r\n\r\n");
        Pool {
            path,
            probe: probe.into_bytes(),
            size: size.max(1),
            state: Mutex::default(),
            freed: Condvar::new(),
            opening: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection ready for a request; None if none is free by `deadline`.
    pub fn take(&self, deadline: Instant) -> io::Result<Option<Conn<'_>>> {
        let mut state = self.lock();
        loop {
            while let Some(s) = state.idle.pop() {
                // Readable while idle means closed (or confused): not to be used.
                if !poll_one(s.as_raw_fd(), libc::POLLIN, Duration::ZERO) {
                    return Ok(Some(Conn {
                        pool: self,
                        sock: Some(s),
                    }));
                }
                state.open -= 1;
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.open() {
                    Ok(s) => Ok(Some(Conn {
                        pool: self,
                        sock: Some(s),
                    })),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Connects and waits for the answer to a probe, one connection at a time.
    fn open(&self) -> io::Result<UnixStream> {
        let _one = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = UnixStream::connect(&self.path)?;
        s.set_read_timeout(Some(PROBE_TIMEOUT))?;
        s.set_write_timeout(Some(PROBE_TIMEOUT))?;
        s.write_all(&self.probe)?;
        let head = Head {
            http10: false,
            head_method: false,
            close: false,
        };
        let mut answer = Answer::new(head, false);
        let mut buf = [0u8; 1024];
        let mut sink = Vec::new();
        while !answer.done() {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::other("internal server closed a new connection"));
            }
            answer
                .feed(&buf[..n], &mut sink)
                .map_err(|f| io::Error::other(format!("internal server: {f:?}")))?;
        }
        s.set_read_timeout(None)?;
        Ok(s)
    }
}
