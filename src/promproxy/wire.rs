//! The little HTTP the proxy speaks: the scraper's request line, the answers it gives, and the
//! exporter's response read back into its body. Pure: bytes in, bytes out.

use std::fmt;

/// Why the exporter's answer gave no metrics (the scraper then gets a 502).
#[derive(Debug, PartialEq, Eq)]
pub enum Upstream {
    Io(String),
    TooLarge,
    NoHead,
    Status(String),
    BadLength,
    Truncated,
    BadChunk,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Io(e) => write!(f, "{e}"),
            Upstream::TooLarge => f.write_str("the answer is too large"),
            Upstream::NoHead => f.write_str("no HTTP response head"),
            Upstream::Status(line) => write!(f, "answered {line:?}"),
            Upstream::BadLength => f.write_str("a Content-Length that is not a number"),
            Upstream::Truncated => f.write_str("the answer ended early"),
            Upstream::BadChunk => f.write_str("a malformed chunk"),
        }
    }
}

/// What the proxy asks HAProxy's exporter.
pub const EXPORTER_REQUEST: &[u8] =
    b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9101\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";

/// Where a request's (or response's) head ends: the index just past its blank line.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The method of a request whose head is in `buf`.
pub fn method(buf: &[u8]) -> Option<&str> {
    let line = buf.split(|b| *b == b'\r').next()?;
    let method = line.split(|b| *b == b' ').next()?;
    std::str::from_utf8(method).ok().filter(|m| !m.is_empty())
}

/// The 200 answer with the metrics.
pub fn ok(body: &str) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
cache-control: no-cache\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body.as_bytes()].concat()
}

/// The exporter did not answer.
pub const BAD_GATEWAY: &[u8] =
    b"HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Anything but GET.
pub const NOT_ALLOWED: &[u8] =
    b"HTTP/1.1 405 Method Not Allowed\r\nallow: GET\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// The body of the exporter's whole response (read until it closed): a 200's, by chunks,
/// Content-Length or the end of the connection.
pub fn exporter_body(response: &[u8]) -> Result<Vec<u8>, Upstream> {
    let end = head_end(response).ok_or(Upstream::NoHead)?;
    let head = String::from_utf8_lossy(&response[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        return Err(Upstream::Status(status.to_string()));
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| Upstream::BadLength)?);
        }
    }
    let body = &response[end..];
    match (chunked, length) {
        (true, _) => dechunk(body),
        (false, Some(n)) => body.get(..n).map(<[u8]>::to_vec).ok_or(Upstream::Truncated),
        (false, None) => Ok(body.to_vec()),
    }
}

/// A chunked body's data, up to its last (empty) chunk.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, Upstream> {
    let mut data = Vec::with_capacity(body.len());
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(Upstream::Truncated)?;
        let line = std::str::from_utf8(&body[..line_end]).map_err(|_| Upstream::BadChunk)?;
        // Chunk extensions (after ';') say nothing the proxy needs.
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| Upstream::BadChunk)?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(data);
        }
        let chunk = body.get(..size).ok_or(Upstream::Truncated)?;
        data.extend_from_slice(chunk);
        body = body
            .get(size..)
            .and_then(|rest| rest.strip_prefix(b"\r\n"))
            .ok_or(Upstream::Truncated)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_method() {
        assert_eq!(
            method(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("GET")
        );
        assert_eq!(method(b"POST / HTTP/1.0\r\n\r\n"), Some("POST"));
        assert_eq!(method(b"\r\n\r\n"), None);
        assert_eq!(method(b"\xff\xfe / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn answers_carry_octavias_headers() {
        let answer = String::from_utf8(ok("m 1\n")).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
        for header in [
            "content-type: text/plain; version=0.0.4\r\n",
            "cache-control: no-cache\r\n",
            "connection: close\r\n",
            "content-length: 4\r\n",
        ] {
            assert!(answer.contains(header), "{header}");
        }
        assert!(answer.ends_with("\r\n\r\nm 1\n"));
        assert!(BAD_GATEWAY.starts_with(b"HTTP/1.1 502 "));
    }

    #[test]
    fn haproxys_chunked_answer() {
        // As HAProxy 2.6's exporter sends it.
        let r = b"HTTP/1.1 200 OK\r\ncache-control: no-cache\r\n\
content-type: text/plain; version=0.0.4\r\ntransfer-encoding: chunked\r\n\r\n\
6\r\na 1\nb \r\n3;x=y\r\n2\nc\r\n0\r\n\r\n";
        assert_eq!(exporter_body(r).unwrap(), b"a 1\nb 2\nc");
    }

    #[test]
    fn length_or_close_delimited_answers() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\na 1\nextra";
        assert_eq!(exporter_body(r).unwrap(), b"a 1\n");
        let r = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\na 1\n";
        assert_eq!(exporter_body(r).unwrap(), b"a 1\n");
    }

    #[test]
    fn what_is_no_answer() {
        let cases: [(&[u8], Upstream); 7] = [
            (b"", Upstream::NoHead),
            (b"HTTP/1.1 200 OK\r\n", Upstream::NoHead),
            (
                b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
                Upstream::Status("HTTP/1.1 503 Service Unavailable".into()),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                Upstream::BadLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                Upstream::Truncated,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                Upstream::Truncated,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                Upstream::BadChunk,
            ),
        ];
        for (response, want) in cases {
            assert_eq!(
                exporter_body(response),
                Err(want),
                "{}",
                String::from_utf8_lossy(response)
            );
        }
        let no_end = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n";
        assert_eq!(exporter_body(no_end), Err(Upstream::Truncated));
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n";
        assert_eq!(exporter_body(huge), Err(Upstream::BadChunk));
    }
}
