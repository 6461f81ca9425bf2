//! The client side of a connection: plain TCP or TLS over it, the handshake under one
//! deadline, deadline-bound writes, buffered non-blocking output, and a lingering close.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use rustls::{ServerConfig, ServerConnection};

use super::{poll_one, CLOSING};

pub enum Client {
    Plain(TcpStream),
    Tls(Box<ServerConnection>, TcpStream),
}

impl Client {
    /// Plain, or TLS once the handshake is done by `deadline`.
    pub fn accept(
        tls: Option<&Arc<ServerConfig>>,
        stream: TcpStream,
        deadline: Instant,
    ) -> io::Result<Client> {
        let _ = stream.set_nodelay(true);
        match tls {
            Some(cfg) => handshake(cfg, stream, deadline),
            None => Ok(Client::Plain(stream)),
        }
    }

    pub fn sock(&self) -> &TcpStream {
        match self {
            Client::Plain(s) | Client::Tls(_, s) => s,
        }
    }

    /// Subject of the verified client certificate.
    pub fn cert_subject(&self) -> Option<String> {
        match self {
            Client::Tls(conn, _) => conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::tls::subject(c)),
            Client::Plain(_) => None,
        }
    }

    /// Reads what the socket has (poll said readable; with `from_socket` false, only what TLS
    /// already buffered). Returns plaintext and whether the client has finished sending.
    pub fn read_available(
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

    /// Writes everything by `deadline` (the socket blocking): a per-call socket timeout alone
    /// would let a client that reads a byte at a time hold its connection forever.
    pub fn write_all(&mut self, data: &[u8], deadline: Instant) -> io::Result<()> {
        self.sock().set_nonblocking(false)?;
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

    /// Ends the sending side cleanly (TLS close_notify) as far as the client lets us.
    pub fn close(&mut self) {
        let _ = self.sock().set_nonblocking(false);
        if let Client::Tls(conn, s) = self {
            conn.send_close_notify();
            let _ = flush_tls(conn, s, Instant::now() + CLOSING);
        }
        let _ = self.sock().shutdown(Shutdown::Write);
    }

    /// Closes after letting the client read what was sent: unread input at close would make
    /// the kernel reset the connection and lose the answer. Reads until the client closes or
    /// `deadline`.
    pub fn linger_close(&mut self, deadline: Instant) {
        self.close();
        let mut sink = Vec::new();
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if !poll_one(self.sock().as_raw_fd(), libc::POLLIN, left) {
                break;
            }
            sink.clear();
            match self.read_available(&mut sink, true, deadline) {
                Ok(false) => {}
                _ => break,
            }
        }
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

/// Answer bytes not yet taken by the client; written as the (non-blocking) socket takes them.
pub struct Outbox {
    data: Vec<u8>,
    sent: usize,
    /// When the client last took bytes (or the box last went from empty to full).
    pub progress_at: Instant,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox {
            data: Vec::new(),
            sent: 0,
            progress_at: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len() - self.sent
    }

    /// Appends through a closure writing into the box's buffer.
    pub fn push_with<R>(&mut self, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        if self.len() == 0 {
            self.data.clear();
            self.sent = 0;
            self.progress_at = Instant::now();
        }
        fill(&mut self.data)
    }

    /// Bytes left here or inside TLS.
    pub fn pending(&self, client: &Client) -> bool {
        self.len() > 0 || matches!(client, Client::Tls(conn, _) if conn.wants_write())
    }

    /// Writes what the non-blocking socket takes now.
    pub fn flush(&mut self, client: &mut Client) -> io::Result<()> {
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
            if !wrote && self.sent == before || !self.pending(client) {
                return Ok(());
            }
        }
    }
}
