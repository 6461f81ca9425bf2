//! Sessions kept open on an admin socket in HAProxy's interactive mode (`prompt`), for the
//! queries a long-lived client asks again and again (HApi's status on every request). A
//! connection per query costs HAProxy an accept and a session, and the agent a connect and a
//! close: about half of a `show info` round trip.
//!
//! In interactive mode HAProxy ends every answer with the prompt `\n> `. Only `show info` and
//! `show stat` go through kept sessions: no line of theirs begins with `> `, so an answer that
//! ends with the prompt is whole. A kept session HAProxy has ended (`shutdown session`, a
//! restart in place) is replaced once, which is safe for queries that change nothing.
//!
//! A session keeps the HAProxy it was opened on alive and answering after a reload, when a new
//! process has bound a new socket at the same path: a session is used only while the path is
//! still the socket it was opened on, and `close_idle` (every second, by the supervisor) closes
//! those not used lately, so an old process is not held past its own draining.

use std::io::{self, Read, Write};
use std::os::linux::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What ends every answer in interactive mode.
const PROMPT: &[u8] = b"\n> ";

/// At most this many idle sessions: each holds one of the socket's connections (HAProxy's
/// `stats maxconn`, 10 by default), which an operator's own tools need too.
const MAX_IDLE: usize = 2;

/// The most an answer may hold, so that a confused peer cannot exhaust memory.
const MAX_ANSWER: usize = 64 << 20;

/// Which socket a path names: a reloaded HAProxy binds a new one there.
fn socket_id(path: &Path) -> io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.st_dev(), m.st_ino()))
}

#[derive(Debug)]
struct Session {
    stream: UnixStream,
    socket: (u64, u64),
    used: Instant,
}

/// Idle interactive sessions on one socket, shared by the clones of a runtime.
#[derive(Debug, Clone, Default)]
pub struct Kept(Arc<Mutex<Vec<Session>>>);

impl Kept {
    /// `line` asked on a kept session (or a new one), its answer without the prompt in `out`.
    pub fn ask(
        &self,
        path: &Path,
        timeout: Duration,
        line: &str,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        // Taken before connecting: if the path changes after, the session is dropped next time.
        let socket = socket_id(path)?;
        let kept = self.take(socket);
        let fresh = kept.is_none();
        let mut s = match kept {
            Some(s) => s,
            None => open(path, timeout)?,
        };
        let mut answer = converse(&mut s, line, out);
        if answer.is_err() && !fresh {
            // Ended by HAProxy while idle: once more, on a new session.
            s = open(path, timeout)?;
            answer = converse(&mut s, line, out);
        }
        answer?;
        self.put(Session {
            stream: s,
            socket,
            used: Instant::now(),
        });
        Ok(())
    }

    /// Closes the sessions not used for `idle` or longer.
    pub fn close_idle(&self, idle: Duration) {
        self.lock().retain(|s| s.used.elapsed() < idle);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session on `socket`; those on another (an old process's) are closed.
    fn take(&self, socket: (u64, u64)) -> Option<UnixStream> {
        let mut idle = self.lock();
        idle.retain(|s| s.socket == socket);
        idle.pop().map(|s| s.stream)
    }

    fn put(&self, s: Session) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(s);
        }
    }
}

/// A new session switched to interactive mode.
fn open(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let mut s = super::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut greeting = Vec::new();
    converse(&mut s, "prompt", &mut greeting)?;
    if greeting.iter().any(|b| !b.is_ascii_whitespace()) {
        // Not HAProxy's stats socket as we know it: say so rather than misread it later.
        return Err(io::Error::other(format!(
            "unexpected answer to prompt: {}",
            String::from_utf8_lossy(&greeting).trim()
        )));
    }
    Ok(s)
}

/// Sends `line` and reads up to the prompt; the answer, less the prompt's `> `, in `out`
/// (cleared first), so that it reads as a one-shot connection's answer would.
fn converse(s: &mut UnixStream, line: &str, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut chunk = [0u8; 16 << 10];
    while !out.ends_with(PROMPT) {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if out.len() + n > MAX_ANSWER {
            return Err(io::Error::other("answer too long"));
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out.truncate(out.len() - 2);
    Ok(())
}
