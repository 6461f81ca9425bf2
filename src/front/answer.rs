//! Answers as tiny_http writes them on an internal connection: where each one ends (the
//! connection outlives it), and the head the client gets: its own connection wishes, no
//! Content-Length on 204, the agent's name. An answer tiny_http wrote by itself (it refused a
//! request the front let through) is not passed on; the relay answers in its place.

use crate::framing::Head;

/// The `Server` header of every answer.
pub const SERVER: &str = concat!("lbagent/", env!("CARGO_PKG_VERSION"));

/// Longest answer head read from tiny_http.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// tiny_http answered by itself, with this status.
    Foreign(u16),
    /// Not an answer the front can frame.
    Malformed(&'static str),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Done,
}

#[derive(Debug)]
pub struct Answer {
    request: Head,
    /// The client's connection ends after this answer.
    close: bool,
    state: State,
    head: Vec<u8>,
    status: Option<u16>,
}

impl Answer {
    pub fn new(request: Head, close: bool) -> Self {
        Answer {
            request,
            close,
            state: State::Head,
            head: Vec::new(),
            status: None,
        }
    }

    /// The client's connection is to end after this answer (only before its head is out).
    pub fn close_after(&mut self) {
        self.close = true;
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// The final answer's status, once its head has been read.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Reads answer bytes; appends what the client gets to `out`. Returns how many bytes it
    /// consumed: it stops where the answer ends.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Fault> {
        let mut used = 0;
        while used < input.len() && self.state != State::Done {
            let rest = &input[used..];
            match self.state {
                State::Head => {
                    let b = rest[0];
                    used += 1;
                    self.head.push(b);
                    if self.head.len() > MAX_HEAD {
                        return Err(Fault::Malformed("answer head too large"));
                    }
                    if b == b'\n' && self.head.ends_with(b"\r\n\r\n") {
                        let head = std::mem::take(&mut self.head);
                        self.state = self.end_of_head(&head, out)?;
                    }
                }
                State::Body(left) => {
                    let n = left.min(rest.len() as u64) as usize;
                    out.extend_from_slice(&rest[..n]);
                    used += n;
                    self.state = if left == n as u64 {
                        State::Done
                    } else {
                        State::Body(left - n as u64)
                    };
                }
                State::Done => {}
            }
        }
        Ok(used)
    }

    fn end_of_head(&mut self, head: &[u8], out: &mut Vec<u8>) -> Result<State, Fault> {
        let text = std::str::from_utf8(head).map_err(|_| Fault::Malformed("answer not ASCII"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or(Fault::Malformed("no status line"))?;
        let mut length = None;
        let mut ours = false;
        let mut kept = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| Fault::Malformed("length"))?,
                );
            } else if is("transfer-encoding") {
                return Err(Fault::Malformed("transfer-coded answer"));
            } else if is("server") {
                ours = value.trim() == SERVER;
            } else if !is("connection") && !is("keep-alive") {
                kept.push(line);
            }
        }
        // tiny_http's own 100 Continue: the status line is all the client needs. Any other
        // answer must be ours.
        if status < 200 {
            out.extend_from_slice(status_line.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            return Ok(State::Head);
        }
        if !ours {
            return Err(Fault::Foreign(status));
        }
        self.status = Some(status);
        let no_body = self.request.head_method || status == 204 || status == 304;
        let body = match length {
            _ if no_body => 0,
            Some(n) => n,
            None => return Err(Fault::Malformed("answer without a length")),
        };
        out.extend_from_slice(status_line.as_bytes());
        out.extend_from_slice(b"\r\n");
        for line in kept {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Server: {SERVER}\r\n").as_bytes());
        // RFC 9110 8.6: no Content-Length in a 204.
        if status != 204 {
            if let Some(n) = length {
                out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
            }
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if self.request.http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        Ok(if body == 0 {
            State::Done
        } else {
            State::Body(body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET11: Head = Head {
        http10: false,
        head_method: false,
        close: false,
    };

    fn answer(request: Head, close: bool, bytes: &[u8]) -> (Result<usize, Fault>, String, bool) {
        let mut a = Answer::new(request, close);
        let mut out = Vec::new();
        let r = a.feed(bytes, &mut out);
        (r, String::from_utf8(out).unwrap(), a.done())
    }

    fn ours(status: &str, extra: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nServer: {SERVER}\r\nDate: x\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn an_answer_ends_where_its_length_says() {
        let wire = ours("200 OK", "", "hello") + "NEXT";
        let (r, out, done) = answer(GET11, false, wire.as_bytes());
        assert_eq!(r, Ok(wire.len() - 4));
        assert!(done);
        assert_eq!(
            out,
            format!(
                "HTTP/1.1 200 OK\r\nDate: x\r\nServer: {SERVER}\r\nContent-Length: 5\r\n\r\nhello"
            )
        );
        // Byte by byte gives the same.
        let mut a = Answer::new(GET11, false);
        let mut bytewise = Vec::new();
        for b in wire.as_bytes() {
            if !a.done() {
                a.feed(&[*b], &mut bytewise).unwrap();
            }
        }
        assert_eq!(String::from_utf8(bytewise).unwrap(), out);
    }

    #[test]
    fn the_clients_connection_wishes_are_answered() {
        let (_, out, _) = answer(
            GET11,
            true,
            ours("200 OK", "Connection: keep-alive\r\n", "").as_bytes(),
        );
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
        assert_eq!(out.matches("Connection").count(), 1);
        let http10 = Head {
            http10: true,
            ..GET11
        };
        let (_, out, _) = answer(http10, false, ours("200 OK", "", "").as_bytes());
        assert!(out.ends_with("Connection: keep-alive\r\n\r\n"), "{out}");
    }

    #[test]
    fn head_and_204_answers_have_no_body() {
        let head = Head {
            head_method: true,
            ..GET11
        };
        let wire = ours("200 OK", "", "");
        let wire = wire.replace("Content-Length: 0", "Content-Length: 42");
        let (r, out, done) = answer(head, false, wire.as_bytes());
        assert_eq!((r, done), (Ok(wire.len()), true));
        assert!(out.contains("Content-Length: 42\r\n"));
        let (_, out, done) = answer(GET11, false, ours("204 No Content", "", "").as_bytes());
        assert!(done);
        assert!(!out.contains("Content-Length"), "{out}");
    }

    #[test]
    fn interim_answers_pass_then_the_final_one() {
        let wire = format!(
            "HTTP/1.1 100 Continue\r\nServer: tiny-http (Rust)\r\nContent-Length: 0\r\n\r\n{}",
            ours("201 Created", "", "{}")
        );
        let (r, out, done) = answer(GET11, false, wire.as_bytes());
        assert_eq!((r, done), (Ok(wire.len()), true));
        assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"));
    }

    #[test]
    fn answers_tiny_http_wrote_itself_are_not_passed_on() {
        let wire =
            "HTTP/1.1 400 Bad Request\r\nServer: tiny-http (Rust)\r\nContent-Length: 0\r\n\r\n";
        let mut a = Answer::new(GET11, false);
        let mut out = Vec::new();
        assert_eq!(a.feed(wire.as_bytes(), &mut out), Err(Fault::Foreign(400)));
        assert!(out.is_empty());
        for bad in [
            ours("200 OK", "Transfer-Encoding: chunked\r\n", ""),
            format!("HTTP/1.1 200 OK\r\nServer: {SERVER}\r\n\r\n"),
            "garbage\r\n\r\n".to_string(),
        ] {
            let (r, _, _) = answer(GET11, false, bad.as_bytes());
            assert!(matches!(r, Err(Fault::Malformed(_))), "{bad}");
        }
    }
}
