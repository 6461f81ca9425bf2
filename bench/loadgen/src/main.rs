//! loadgen: a small, blocking load generator for `bench/run`. One thread per connection, bounded
//! by a request count and/or a duration; prints one JSON line of results.
//!
//! HTTP(S):  loadgen --url https://127.0.0.1:6000/path [--cacert CA] [--cert C --key K]
//!                   [--basic user:pass] [--conns N] [--requests N] [--duration S] [--new-conn]
//!                   [--expect TEXT] [--raw]
//! Unix:     loadgen --unix /path/haproxy.stat --send 'show info\n' [same bounds]
//! Floor:    loadgen floor-server --cert F --key F [--client-ca F] [--port N]
//!
//! Every target is measured with this same client, so differences are the servers'.
//! Output: requests (sent), completed (answered, any status), errors (IO errors, non-2xx, answers
//! lacking --expect), rps (completed per second), latency percentiles in ms, and connections
//! made (more than --conns when the server closes after each answer); with --raw, also every
//! latency in µs (`latencies_us`), for pooling runs. Requests over a second are reported on
//! stderr.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};

const USAGE: &str =
    "usage: loadgen (--url URL | --unix PATH --send TEXT) [--cacert F] [--cert F --key F]
       [--basic USER:PASS] [--conns N] [--requests N] [--duration SECS] [--new-conn] [--expect TEXT]
       [--raw]
       loadgen floor-server --cert F --key F [--client-ca F] [--port N]";
/// No single request may hang a run.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests slower than this are reported on stderr.
const SLOW_US: u64 = 1_000_000;
/// Responses larger than this are a broken server, not a benchmark.
const MAX_RESPONSE: usize = 16 << 20;

struct Args {
    url: Option<String>,
    unix: Option<PathBuf>,
    send: String,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    basic: Option<String>,
    conns: usize,
    requests: Option<usize>,
    duration: Option<f64>,
    new_conn: bool,
    expect: Option<String>,
    raw: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: None,
        unix: None,
        send: "show info\n".into(),
        cacert: None,
        cert: None,
        key: None,
        basic: None,
        conns: 1,
        requests: None,
        duration: None,
        new_conn: false,
        expect: None,
        raw: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--new-conn" => {
                a.new_conn = true;
                continue;
            }
            "--raw" => {
                a.raw = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--url" => a.url = Some(v),
            "--unix" => a.unix = Some(v.into()),
            // Shell-friendly: a literal backslash-n is a newline.
            "--send" => a.send = v.replace("\\n", "\n"),
            "--cacert" => a.cacert = Some(v.into()),
            "--cert" => a.cert = Some(v.into()),
            "--key" => a.key = Some(v.into()),
            "--basic" => a.basic = Some(v),
            "--conns" => a.conns = num(&v)?.max(1),
            "--requests" => a.requests = Some(num(&v)?),
            "--duration" => {
                a.duration = Some(
                    v.parse()
                        .map_err(|_| format!("--duration: not a number: {v}"))?,
                )
            }
            "--expect" => a.expect = Some(v),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if a.url.is_some() == a.unix.is_some() {
        return Err("give exactly one of --url and --unix".into());
    }
    if a.requests.is_none() && a.duration.is_none() {
        return Err("give --requests and/or --duration: a run must be bounded".into());
    }
    Ok(a)
}

/// Where requests go.
enum Target {
    Http {
        host: String,
        port: u16,
        tls: Option<Arc<ClientConfig>>,
        request: Vec<u8>,
    },
    Unix {
        path: PathBuf,
        send: Vec<u8>,
    },
}

fn target(a: &Args) -> Result<Target, String> {
    if let Some(path) = &a.unix {
        return Ok(Target::Unix {
            path: path.clone(),
            send: a.send.clone().into_bytes(),
        });
    }
    let url = a.url.as_deref().unwrap_or_default();
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("--url must be http:// or https://, got {url}"));
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("--url needs an explicit port: {url}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in {url}"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: lbagent-loadgen\r\nAccept: */*\r\n"
    );
    if let Some(b) = &a.basic {
        req += &format!("Authorization: Basic {}\r\n", base64(b.as_bytes()));
    }
    // A client that opens a connection per request says so; the server need not hold it idle.
    if a.new_conn {
        req += "Connection: close\r\n";
    }
    req += "\r\n";
    Ok(Target::Http {
        host,
        port,
        tls: if tls { Some(tls_config(a)?) } else { None },
        request: req.into_bytes(),
    })
}

fn pem_certs(f: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(f)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", f.display()))
}

fn pem_key(f: &PathBuf) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(f).map_err(|e| format!("{}: {e}", f.display()))
}

fn pem_roots(f: &PathBuf) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in pem_certs(f)? {
        roots.add(c).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(roots)
}

fn tls_config(a: &Args) -> Result<Arc<ClientConfig>, String> {
    let roots = pem_roots(a.cacert.as_ref().ok_or("https needs --cacert")?)?;
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
    let mut cfg = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(pem_certs(c)?, pem_key(k)?)
            .map_err(|e| format!("client certificate: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert and --key go together".into()),
    };
    // Every new connection pays a full handshake, as the first request of a real client does;
    // resumption would depend on each server's ticket support and blur the comparison.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn connect(host: &str, port: u16, tls: &Option<Arc<ClientConfig>>) -> io::Result<Conn> {
    let s = TcpStream::connect((host, port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(match tls {
        None => Conn::Plain(s),
        Some(cfg) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let c = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
            let mut t = StreamOwned::new(c, s);
            // The handshake now, so a refused client certificate shows up as this error.
            while t.conn.is_handshaking() {
                t.conn.complete_io(&mut t.sock)?;
            }
            Conn::Tls(Box::new(t))
        }
    })
}

/// One parsed response: status, body, and whether the server will close the connection.
struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// Reads bytes from a connection, keeping what was read past the current response.
struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Reads more; false at EOF. A TLS peer that just closes (no close_notify) is EOF too.
    fn fill(&mut self, c: &mut Conn) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        let n = match c.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if self.buf.len() + n > MAX_RESPONSE {
            return Err(io::Error::other("response too large"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn need(&mut self, c: &mut Conn, len: usize) -> io::Result<()> {
        while self.buf.len() < len {
            if !self.fill(c)? {
                return Err(eof());
            }
        }
        Ok(())
    }

    /// A CRLF-terminated line, without the CRLF.
    fn line(&mut self, c: &mut Conn) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if !self.fill(c)? {
                return Err(eof());
            }
        }
    }

    fn response(&mut self, c: &mut Conn) -> io::Result<Response> {
        let head = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 4);
                break head;
            }
            if !self.fill(c)? {
                return Err(eof());
            }
        };
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line: {status_line:?}")))?;
        let (mut length, mut chunked) = (None, false);
        let mut close = version == "HTTP/1.0";
        for h in lines {
            let Some((k, v)) = h.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => {
                    length = Some(v.parse::<usize>().map_err(|_| bad("bad Content-Length"))?)
                }
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" if v.contains("close") => close = true,
                "connection" if v.contains("keep-alive") => close = false,
                _ => {}
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let line = self.line(c)?;
                let size = String::from_utf8_lossy(&line);
                let size = size.split(';').next().unwrap_or_default().trim();
                let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                if n == 0 {
                    // Trailers, up to the empty line.
                    while !self.line(c)?.is_empty() {}
                    break;
                }
                self.need(c, n + 2)?;
                body.extend_from_slice(&self.buf[..n]);
                self.buf.drain(..n + 2);
            }
            body
        } else if let Some(n) = length {
            self.need(c, n)?;
            self.buf.drain(..n).collect()
        } else if status == 204 || status == 304 || status / 100 == 1 {
            Vec::new()
        } else {
            // No length: the body runs to EOF.
            while self.fill(c)? {}
            close = true;
            std::mem::take(&mut self.buf)
        };
        Ok(Response {
            status,
            body,
            close,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-response",
    )
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: usize,
    statuses: std::collections::BTreeMap<u16, usize>,
    first_error: Option<String>,
    connections: usize,
    /// Requests slower than SLOW_US.
    slow: usize,
    /// Requests sent, answered or not.
    attempts: usize,
}

impl Tally {
    fn error(&mut self, msg: String) {
        self.errors += 1;
        self.first_error.get_or_insert(msg);
    }
}

/// Shared bounds: a request budget (if any) and a deadline (if any).
struct Budget {
    start: Instant,
    left: Option<AtomicUsize>,
    deadline: Option<Instant>,
}

impl Budget {
    fn take(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match &self.left {
            None => true,
            Some(n) => n
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok(),
        }
    }
}

fn http_worker(
    host: &str,
    port: u16,
    tls: &Option<Arc<ClientConfig>>,
    request: &[u8],
    new_conn: bool,
    expect: Option<&str>,
    budget: &Budget,
) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<(Conn, Reader)> = None;
    while budget.take() {
        t.attempts += 1;
        let start = Instant::now();
        // Latency includes (re)connecting when this request needs a new connection: that is what
        // a client of a server that closes after every response pays.
        let fresh = conn.is_none();
        let result = (|| -> io::Result<Response> {
            if conn.is_none() {
                conn = Some((connect(host, port, tls)?, Reader { buf: Vec::new() }));
                t.connections += 1;
            }
            let (c, r) = conn.as_mut().unwrap();
            c.write_all(request)?;
            c.flush()?;
            r.response(c)
        })();
        let elapsed = start.elapsed().as_micros() as u64;
        if elapsed > SLOW_US {
            t.slow += 1;
            // Outliers are worth a look (retransmits, a full accept queue): say when and where.
            eprintln!(
                "loadgen: slow request: {:.1} ms, {} connection, started {:.3} s into the run",
                elapsed as f64 / 1000.0,
                if fresh { "new" } else { "reused" },
                start.duration_since(budget.start).as_secs_f64()
            );
        }
        match result {
            Ok(resp) => {
                t.latencies_us.push(elapsed);
                *t.statuses.entry(resp.status).or_default() += 1;
                if !(200..300).contains(&resp.status) {
                    t.error(format!(
                        "HTTP {}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
                    ));
                } else if let Some(e) = expect {
                    if !String::from_utf8_lossy(&resp.body).contains(e) {
                        t.error(format!("response lacks {e:?}"));
                    }
                }
                if resp.close || new_conn {
                    conn = None;
                }
            }
            Err(e) => {
                t.error(format!("{e}"));
                conn = None;
            }
        }
    }
    t
}

fn unix_worker(path: &PathBuf, send: &[u8], expect: Option<&str>, budget: &Budget) -> Tally {
    let mut t = Tally::default();
    while budget.take() {
        t.attempts += 1;
        let start = Instant::now();
        // HAProxy's admin socket without `prompt`: one command per connection, answer to EOF.
        let result = (|| -> io::Result<Vec<u8>> {
            let mut s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.write_all(send)?;
            s.shutdown(Shutdown::Write)?;
            let mut out = Vec::new();
            s.read_to_end(&mut out)?;
            Ok(out)
        })();
        let elapsed = start.elapsed().as_micros() as u64;
        t.connections += 1;
        match result {
            Ok(out) => {
                t.latencies_us.push(elapsed);
                let text = String::from_utf8_lossy(&out);
                if out.is_empty() {
                    t.error("empty answer".into());
                } else if expect.is_some_and(|e| !text.contains(e)) {
                    t.error(format!("answer lacks {:?}", expect.unwrap_or_default()));
                }
            }
            Err(e) => t.error(format!("{e}")),
        }
    }
    t
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o += "\\\"",
            '\\' => o += "\\\\",
            c if (c as u32) < 0x20 => o += &format!("\\u{:04x}", c as u32),
            c => o.push(c),
        }
    }
    o + "\""
}

/// The handshake floor: a bare rustls server set up as lbagent's front is (ring, safe default
/// versions, default session settings, client certificates required when a CA is given) that
/// answers every request with a fixed 200 and keeps the connection unless asked to close. A
/// new-connection run against it costs TCP + the TLS handshake + a trivial answer, nothing more.
/// Prints its port on stdout, then serves (one connection at a time) until killed.
fn floor_server(argv: &[String]) -> Result<(), String> {
    let (mut cert, mut key, mut ca, mut port) = (None, None, None, 0u16);
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--cert" => cert = Some(PathBuf::from(v)),
            "--key" => key = Some(PathBuf::from(v)),
            "--client-ca" => ca = Some(PathBuf::from(v)),
            "--port" => {
                port = v
                    .parse()
                    .map_err(|_| format!("--port: not a number: {v}"))?
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err("floor-server needs --cert and --key".into());
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(pem_roots(&ca)?), provider)
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?,
        ),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(pem_certs(&cert)?, pem_key(&key)?)
        .map_err(|e| format!("server certificate: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("{port}");
    io::stdout().flush().map_err(|e| e.to_string())?;
    // One connection at a time, on this thread: starting a thread per connection would add
    // its cost to the floor (the bench runs one client against it).
    for s in listener.incoming().flatten() {
        let _ = floor_conn(cfg.clone(), s);
    }
    Ok(())
}

fn floor_conn(cfg: Arc<ServerConfig>, s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut t = StreamOwned::new(ServerConnection::new(cfg).map_err(io::Error::other)?, s);
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 16384]);
    loop {
        // Every complete request head gets the fixed answer (the bench's requests have no body).
        while let Some(i) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            buf.drain(..i + 4);
            let close = head
                .split("\r\n")
                .any(|h| h.starts_with("connection:") && h.contains("close"));
            if !close {
                t.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
                continue;
            }
            t.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")?;
            t.conn.send_close_notify();
            return t.flush();
        }
        let n = t.read(&mut chunk)?;
        if n == 0 || buf.len() + n > MAX_RESPONSE {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "floor-server") {
        if let Err(e) = floor_server(&argv[1..]) {
            eprintln!("loadgen floor-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
        return ExitCode::SUCCESS;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let target = match target(&args) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let budget = Arc::new(Budget {
        start,
        left: args.requests.map(AtomicUsize::new),
        deadline: args.duration.map(|d| start + Duration::from_secs_f64(d)),
    });
    let args = Arc::new(args);
    let tallies = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..args.conns)
        .map(|_| {
            let (target, args, budget, tallies) = (
                target.clone(),
                args.clone(),
                budget.clone(),
                tallies.clone(),
            );
            thread::spawn(move || {
                let expect = args.expect.as_deref();
                let t = match &*target {
                    Target::Http {
                        host,
                        port,
                        tls,
                        request,
                    } => http_worker(host, *port, tls, request, args.new_conn, expect, &budget),
                    Target::Unix { path, send } => unix_worker(path, send, expect, &budget),
                };
                tallies.lock().unwrap().push(t);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed().as_secs_f64();

    let tallies = std::mem::take(&mut *tallies.lock().unwrap());
    let mut lat: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let errors: usize = tallies.iter().map(|t| t.errors).sum();
    let requests: usize = tallies.iter().map(|t| t.attempts).sum();
    let completed = lat.len();
    let mut statuses = std::collections::BTreeMap::new();
    for t in &tallies {
        for (k, v) in &t.statuses {
            *statuses.entry(*k).or_insert(0) += v;
        }
    }
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let connections: usize = tallies.iter().map(|t| t.connections).sum();
    let slow: usize = tallies.iter().map(|t| t.slow).sum();
    let mean = if completed > 0 {
        lat.iter().sum::<u64>() as f64 / completed as f64 / 1000.0
    } else {
        0.0
    };
    let statuses = statuses
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "{{\"requests\":{requests},\"completed\":{completed},\"errors\":{errors},\"conns\":{},\
\"connections\":{connections},\"slow\":{slow},\"duration_s\":{elapsed:.3},\"rps\":{:.1},\"p50_ms\":{:.3},\
\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"mean_ms\":{mean:.3},\"max_ms\":{:.3},\"statuses\":{{{statuses}}},\
\"first_error\":{}{}}}",
        args.conns,
        completed as f64 / elapsed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        first_error.map_or("null".into(), |e| json_str(&e)),
        if args.raw {
            format!(",\"latencies_us\":{lat:?}")
        } else {
            String::new()
        },
    );
    ExitCode::SUCCESS
}
