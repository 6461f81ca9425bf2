//! Request framing for the network front: finds where each request's head and body end, and
//! checks the head against what HTTP/1.1 and tiny_http agree on, without interpreting more of
//! HTTP than that. The front uses it to hold a head until it is complete (so oversized heads
//! and bodies, and anything tiny_http would not answer, are refused before a handler sees
//! them), to learn how each request wants its connection treated, and to know when a client
//! is part-way through a request (its `request_timeout` deadline runs).

const MAX_LINE: usize = 4096;

/// The header the front adds to every request it forwards, naming its connection (see
/// `front`). A client may not send it.
pub const CONN_HEADER: &str = "X-Lbagent-Conn";

/// Added to every forwarded request: the internal connection is the front's and outlives the
/// client's (HTTP/1.0 included), whatever the client asked of its own.
const KEEP_ALIVE_HEADER: &[u8] = b"Connection: keep-alive\r\n";

/// Hop-by-hop headers that concern the client's connection only; never forwarded. Without
/// `TE`, tiny_http frames every answer with a Content-Length.
const HOP_BY_HOP: [&str; 3] = ["connection", "keep-alive", "te"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    HeadTooLarge,
    BodyTooLarge,
    BadFraming,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1.
    Version,
    /// An `Expect` other than `100-continue`.
    Expectation,
}

impl Reject {
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Reject::HeadTooLarge => (431, "Request Header Fields Too Large"),
            Reject::BodyTooLarge => (413, "Payload Too Large"),
            Reject::BadFraming => (400, "Bad Request"),
            Reject::Version => (505, "HTTP Version Not Supported"),
            Reject::Expectation => (417, "Expectation Failed"),
        }
    }
}

/// What the front needs to know of a request it forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// HTTP/1.0 (else 1.1).
    pub http10: bool,
    /// `HEAD`: the answer has no body whatever its Content-Length says.
    pub head_method: bool,
    /// The connection ends after this request's answer (RFC 9112 9.3, 9.6).
    pub close: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Between requests.
    Idle,
    /// Collecting a head (held back, not forwarded yet).
    Head,
    Body(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkEnd(Vec<u8>),
    Trailer(Vec<u8>),
}

#[derive(Debug)]
pub struct Framer {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    max_body: u64,
    /// Chunked body bytes so far in this request.
    body_seen: u64,
    completed: u64,
    /// `CONN_HEADER: <token>\r\n`, added to every forwarded head.
    inject: Vec<u8>,
    /// The last head forwarded, until the front takes it.
    forwarded: Option<Head>,
}

impl Framer {
    pub fn new(max_head: usize, max_body: u64, conn_token: &str) -> Self {
        Framer {
            state: State::Idle,
            head: Vec::new(),
            max_head,
            max_body,
            body_seen: 0,
            completed: 0,
            inject: format!("{CONN_HEADER}: {conn_token}\r\n").into_bytes(),
            forwarded: None,
        }
    }

    /// True while a request has started but not been fully received.
    pub fn in_request(&self) -> bool {
        self.state != State::Idle
    }

    /// How many requests have been fully received.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// The head forwarded since the last call, if any.
    pub fn take_head(&mut self) -> Option<Head> {
        self.forwarded.take()
    }

    /// Consumes client bytes, appending to `out` what may be forwarded now.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Reject> {
        while !input.is_empty() {
            let n = self.feed_one(input, out)?;
            self.forwarded = None;
            input = &input[n..];
        }
        Ok(())
    }

    /// Like `feed`, but stops where a head or a request ends: returns how many bytes it
    /// consumed. The front needs an internal connection before a body goes anywhere.
    pub fn feed_one(&mut self, all: &[u8], out: &mut Vec<u8>) -> Result<usize, Reject> {
        let before = self.completed;
        let mut input = all;
        while !input.is_empty() && self.completed == before && self.forwarded.is_none() {
            match &mut self.state {
                State::Idle => {
                    // Stray CRLFs between requests are allowed and dropped.
                    if input[0] == b'\r' || input[0] == b'\n' {
                        input = &input[1..];
                    } else {
                        self.state = State::Head;
                        self.head.clear();
                    }
                }
                State::Head => {
                    let b = input[0];
                    input = &input[1..];
                    self.head_byte(b, out)?;
                }
                State::Body(left) | State::ChunkData(left) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        if matches!(self.state, State::Body(_)) {
                            self.finish();
                        } else {
                            self.state = State::ChunkEnd(Vec::new());
                        }
                    }
                }
                State::ChunkSize(line) | State::ChunkEnd(line) | State::Trailer(line) => {
                    let b = input[0];
                    input = &input[1..];
                    // CR only before LF: chunked_transfer (tiny_http) ends a size line at the
                    // first CR, so a lone CR would make the two disagree on where it ends.
                    if (b == b'\n') != (line.last() == Some(&b'\r')) {
                        return Err(Reject::BadFraming);
                    }
                    out.push(b);
                    line.push(b);
                    if line.len() > MAX_LINE {
                        return Err(Reject::BadFraming);
                    }
                    if b == b'\n' {
                        let text = std::mem::take(line);
                        self.end_of_line(&text)?;
                    }
                }
            }
        }
        Ok(all.len() - input.len())
    }

    /// One byte of a head; once the head is complete and acceptable, it is forwarded.
    fn head_byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), Reject> {
        // tiny_http only knows CRLF line ends; a bare LF would make the two disagree on where
        // the head ends.
        if b == b'\n' && self.head.last() != Some(&b'\r') {
            return Err(Reject::BadFraming);
        }
        self.head.push(b);
        if self.head.len() > self.max_head {
            return Err(Reject::HeadTooLarge);
        }
        if b != b'\n' || !self.head.ends_with(b"\r\n\r\n") {
            return Ok(());
        }
        let parsed = parse_head(&self.head)?;
        // Checked before forwarding: a refused head must never reach tiny_http.
        if let BodyKind::Length(n) = parsed.body {
            if n > self.max_body {
                return Err(Reject::BodyTooLarge);
            }
        }
        let mut lines = self.head.split_inclusive(|&b| b == b'\n');
        out.extend_from_slice(lines.next().unwrap_or_default());
        out.extend_from_slice(KEEP_ALIVE_HEADER);
        for line in lines {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let hop = HOP_BY_HOP
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h.as_bytes()));
            if !hop && line != b"\r\n" {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(&self.inject);
        out.extend_from_slice(b"\r\n");
        self.head.clear();
        self.body_seen = 0;
        self.forwarded = Some(parsed.head);
        match parsed.body {
            BodyKind::None => self.finish(),
            BodyKind::Length(n) => self.state = State::Body(n),
            BodyKind::Chunked => self.state = State::ChunkSize(Vec::new()),
        }
        Ok(())
    }

    fn end_of_line(&mut self, line: &[u8]) -> Result<(), Reject> {
        let line = trim_eol(line);
        match self.state {
            State::ChunkSize(_) => {
                let size = line.split(|&b| b == b';').next().unwrap_or(b"");
                let size = std::str::from_utf8(size).map_err(|_| Reject::BadFraming)?;
                let n = u64::from_str_radix(size.trim(), 16).map_err(|_| Reject::BadFraming)?;
                self.body_seen = self.body_seen.saturating_add(n);
                if self.body_seen > self.max_body {
                    return Err(Reject::BodyTooLarge);
                }
                self.state = if n == 0 {
                    State::Trailer(Vec::new())
                } else {
                    State::ChunkData(n)
                };
            }
            State::ChunkEnd(_) if line.is_empty() => self.state = State::ChunkSize(Vec::new()),
            State::ChunkEnd(_) => return Err(Reject::BadFraming),
            State::Trailer(_) if line.is_empty() => self.finish(),
            // tiny_http's chunked decoder takes no trailers: it would read them as a new request.
            State::Trailer(_) => return Err(Reject::BadFraming),
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.state = State::Idle;
        self.completed += 1;
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r\n").unwrap_or(line)
}

/// RFC 9110 token characters (methods, header names).
fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c))
}

enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

struct Parsed {
    head: Head,
    body: BodyKind,
}

/// `METHOD SP target SP HTTP/x.y`, visible ASCII only. Returns the method and whether the
/// version is 1.0; a well-formed other version is refused with 505.
fn request_line(line: &[u8]) -> Result<(&[u8], bool), Reject> {
    // No raw UTF-8, no control bytes: tiny_http reads heads as ASCII.
    if !line.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(Reject::BadFraming);
    }
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(Reject::BadFraming);
    };
    if !is_token(method) || target.is_empty() {
        return Err(Reject::BadFraming);
    }
    match version {
        b"HTTP/1.1" => Ok((method, false)),
        b"HTTP/1.0" => Ok((method, true)),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(Reject::Version)
        }
        _ => Err(Reject::BadFraming),
    }
}

/// Reads a complete head. Conflicting framing (several lengths, length plus chunked, an unknown
/// transfer coding) is refused, as request smuggling hides there; so are heads that are
/// ambiguous about who is calling (`Host`, `Authorization` twice).
fn parse_head(head: &[u8]) -> Result<Parsed, Reject> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let (mut hosts, mut authorizations) = (0, 0);
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut lines = head.split_inclusive(|&b| b == b'\n').map(trim_eol);
    let (method, http10) = request_line(lines.next().unwrap_or_default())?;
    for line in lines.filter(|l| !l.is_empty()) {
        // A lone CR or another control byte (tab aside) has no place in a header, nor has a
        // byte tiny_http cannot read as ASCII.
        if line.iter().any(|&b| b < 0x20 && b != b'\t' || b >= 0x7f) {
            return Err(Reject::BadFraming);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Reject::BadFraming);
        };
        let name = &line[..colon];
        // A folded (indented) line has no token before its colon: tiny_http would read it
        // differently.
        if !is_token(name) || name.eq_ignore_ascii_case(CONN_HEADER.as_bytes()) {
            return Err(Reject::BadFraming);
        }
        let value = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| Reject::BadFraming)?
            .trim();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Reject::BadFraming);
            }
            let n: u64 = value.parse().map_err(|_| Reject::BadFraming)?;
            if length.is_some_and(|l| l != n) {
                return Err(Reject::BadFraming);
            }
            length = Some(n);
        } else if is("upgrade") {
            // tiny_http hands an upgraded stream to the handler as an endless body; no API
            // here upgrades.
            return Err(Reject::BadFraming);
        } else if is("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("upgrade") {
                    return Err(Reject::BadFraming);
                }
                conn_close |= option.eq_ignore_ascii_case("close");
                conn_keep_alive |= option.eq_ignore_ascii_case("keep-alive");
            }
        } else if is("transfer-encoding") {
            // HTTP/1.0 has no chunked coding: RFC 9112 6.1 says treat it as faulty.
            if http10 || chunked || !value.eq_ignore_ascii_case("chunked") {
                return Err(Reject::BadFraming);
            }
            chunked = true;
        } else if is("host") {
            hosts += 1;
        } else if is("authorization") {
            authorizations += 1;
        } else if is("expect") && !value.eq_ignore_ascii_case("100-continue") {
            return Err(Reject::Expectation);
        }
    }
    // RFC 9112 3.2: HTTP/1.1 needs exactly one Host; none is allowed in 1.0, two never.
    if hosts > 1 || (hosts == 0 && !http10) || authorizations > 1 {
        return Err(Reject::BadFraming);
    }
    let body = match (length, chunked) {
        (Some(_), true) => return Err(Reject::BadFraming),
        (Some(0), false) | (None, false) => BodyKind::None,
        (Some(n), false) => BodyKind::Length(n),
        (None, true) => BodyKind::Chunked,
    };
    let head = Head {
        http10,
        head_method: method == b"HEAD",
        close: conn_close || (http10 && !conn_keep_alive),
    };
    Ok(Parsed { head, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &mut Framer, input: &[u8]) -> Result<Vec<u8>, Reject> {
        let mut out = Vec::new();
        f.feed(input, &mut out).map(|_| out)
    }

    #[test]
    fn holds_head_until_complete() {
        let mut f = Framer::new(1024, 100, "t");
        assert_eq!(run(&mut f, b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(), b"");
        assert!(f.in_request());
        let out = run(&mut f, b"\r\n").unwrap();
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: a\r\nX-Lbagent-Conn: t\r\n\r\n"
        );
        assert!(!f.in_request());
        assert_eq!(f.completed(), 1);
    }

    #[test]
    fn content_length_bodies_and_pipelining() {
        let mut f = Framer::new(1024, 100, "t");
        let two = b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let fwd: &[u8] = b"PUT /x HTTP/1.1\r\nConnection: keep-alive\r\nHost: h\r\nContent-Length: 5\r\nX-Lbagent-Conn: t\r\n\r\nhelloGET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: h\r\nX-Lbagent-Conn: t\r\n\r\n";
        assert_eq!(run(&mut f, two).unwrap(), fwd);
        assert_eq!(f.completed(), 2);
        // Byte by byte gives the same.
        let mut g = Framer::new(1024, 100, "t");
        let mut all = Vec::new();
        for b in two.iter() {
            all.extend(run(&mut g, &[*b]).unwrap());
        }
        assert_eq!(all, fwd);
        assert_eq!(g.completed(), 2);
    }

    #[test]
    fn a_refused_head_is_never_forwarded() {
        let mut f = Framer::new(1024, 100, "t");
        let mut out = Vec::new();
        let r = f.feed(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999\r\n\r\n",
            &mut out,
        );
        assert_eq!(r, Err(Reject::BodyTooLarge));
        assert!(out.is_empty());
    }

    #[test]
    fn limits() {
        let mut f = Framer::new(32, 100, "t");
        assert_eq!(
            run(
                &mut f,
                b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: aaaaaaaaaaaa\r\n\r\n"
            ),
            Err(Reject::HeadTooLarge)
        );
        let mut f = Framer::new(1024, 100, "t");
        assert_eq!(
            run(
                &mut f,
                b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n"
            ),
            Err(Reject::BodyTooLarge)
        );
        let mut f = Framer::new(1024, 10, "t");
        let r = run(
            &mut f,
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n",
        );
        assert_eq!(r, Err(Reject::BodyTooLarge));
    }

    #[test]
    fn chunked() {
        let mut f = Framer::new(1024, 100, "t");
        let req =
            b"PUT / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n";
        assert_eq!(
            run(&mut f, req).unwrap(),
            [
                &req[..16],
                &b"Connection: keep-alive\r\n"[..],
                &req[16..53],
                &b"X-Lbagent-Conn: t\r\n"[..],
                &req[53..]
            ]
            .concat()
        );
        assert_eq!(f.completed(), 1);
        assert!(!f.in_request());
        // A chunked body that never ends keeps the request open.
        let mut f = Framer::new(1024, 1000, "t");
        run(
            &mut f,
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
        )
        .unwrap();
        assert!(f.in_request());
        // A CR that does not end a chunk line.
        let mut f = Framer::new(1024, 1000, "t");
        let r = run(
            &mut f,
            b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n",
        );
        assert_eq!(r, Err(Reject::BadFraming));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for head in [
            &b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
            b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"PUT / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            // Trailers: tiny_http's decoder would read them as a new request.
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
            // Folded and indented header lines.
            b"PUT / HTTP/1.1\r\nHost: a\r\n Content-Length: 99999\r\n\r\n",
            b"PUT / HTTP/1.1\r\n\tTransfer-Encoding: chunked\r\n\r\n",
            b"PUT / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            // Bare LF and lone CR.
            b"GET / HTTP/1.1\r\nX: a\n\n",
            b"GET / HTTP/1.1\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\n\r\n",
            b"GET /a\x00b HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n",
            // Upgrades.
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: keep-alive, upgrade\r\n\r\n",
            // Only the front names connections.
            b"GET / HTTP/1.1\r\nx-lbagent-conn: forged\r\n\r\n",
        ] {
            let mut f = Framer::new(1024, 100, "t");
            assert_eq!(
                run(&mut f, head),
                Err(Reject::BadFraming),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // Equal duplicate lengths are fine.
        let mut f = Framer::new(1024, 100, "t");
        assert!(run(
            &mut f,
            b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx"
        )
        .is_ok());
    }

    #[test]
    fn leading_blank_lines_dropped() {
        let mut f = Framer::new(1024, 100, "t");
        assert_eq!(
            run(&mut f, b"\r\n\r\nGET / HTTP/1.0\r\n\r\n").unwrap(),
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nX-Lbagent-Conn: t\r\n\r\n"
        );
    }

    #[test]
    fn feed_one_stops_where_a_request_ends() {
        let mut f = Framer::new(1024, 100, "t");
        let two = b"PUT /x HTTP/1.0\r\nContent-Length: 5\r\n\r\nhelloHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let mut out = Vec::new();
        // The head first: the front needs an internal connection before the body goes on.
        let n = f.feed_one(two, &mut out).unwrap();
        let first = Head {
            http10: true,
            head_method: false,
            close: true,
        };
        assert_eq!(f.take_head(), Some(first));
        assert_eq!(f.completed(), 0);
        let m = n + f.feed_one(&two[n..], &mut out).unwrap();
        assert_eq!(
            &two[m..],
            b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        );
        assert!(out.ends_with(b"hello"));
        assert_eq!(f.completed(), 1);
        out.clear();
        assert_eq!(f.feed_one(&two[m..], &mut out).unwrap(), two.len() - m);
        assert_eq!(f.completed(), 2);
        let second = Head {
            http10: true,
            head_method: true,
            close: false,
        };
        assert_eq!(f.take_head(), Some(second));
    }
}

#[cfg(test)]
mod semantics {
    use super::*;

    fn verdict(head: &[u8]) -> Result<Option<Head>, Reject> {
        let mut f = Framer::new(1024, 100, "t");
        let mut out = Vec::new();
        f.feed_one(head, &mut out)?;
        Ok(f.take_head())
    }

    #[test]
    fn only_http_1_0_and_1_1_are_answered() {
        for head in [
            &b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\n",
            b"GET / HTTP/0.9\r\n\r\n",
            b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
        ] {
            assert_eq!(verdict(head), Err(Reject::Version), "{head:?}");
        }
        for head in [
            &b"GET / HTTP/1\r\n\r\n"[..],
            b"GET / FOO/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1 x\r\nHost: h\r\n\r\n",
        ] {
            assert_eq!(verdict(head), Err(Reject::BadFraming), "{head:?}");
        }
    }

    #[test]
    fn heads_tiny_http_could_not_read_are_refused() {
        for head in [
            &b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: caf\xc3\xa9\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nX: \x7f\r\n\r\n",
            // Host: none in 1.1, two anywhere; two Authorization headers.
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eDp5\r\nAuthorization: Basic eDp5\r\n\r\n",
            // RFC 9112 6.1: chunked in HTTP/1.0 is faulty.
            b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(verdict(head), Err(Reject::BadFraming), "{head:?}");
        }
        assert_eq!(
            verdict(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"),
            Err(Reject::Expectation)
        );
        assert!(verdict(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n").is_ok());
    }

    #[test]
    fn connection_wishes_are_read_and_not_forwarded() {
        let close = |h: &[u8]| verdict(h).unwrap().unwrap().close;
        assert!(!close(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(close(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n"
        ));
        assert!(close(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n"
        ));
        assert!(close(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!close(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let mut f = Framer::new(1024, 100, "t");
        let mut out = Vec::new();
        f.feed(
            b"GET / HTTP/1.1\r\nConnection: close\r\nHost: a\r\nKeep-Alive: 5\r\nTE: chunked\r\n\r\n",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: a\r\nX-Lbagent-Conn: t\r\n\r\n"
        );
    }
}
