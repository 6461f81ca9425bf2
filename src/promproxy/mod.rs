//! Octavia's metrics proxy (AGENT.md section 3 row 9, appendix A), run as a thread of the agent:
//! on 127.0.0.1:9102 where HAProxy runs (inside the tenant namespace when there is one), each
//! GET, whatever its path, fetches HAProxy's built-in exporter at 127.0.0.1:9101 and answers
//! with the load balancer's CPU and memory gauges, then the exporter's metrics Octavia keeps,
//! under Octavia's names; 502 when the exporter does not answer. Octavia's PROMETHEUS listeners
//! send their scrapes here (their config's `prometheus-exporter-internal` backend).
//!
//! It runs when the config's `prometheus_proxy` is on: by default with an Octavia agent config
//! (an amphora, whose image runs Octavia's own proxy as a service), off with the YAML.

mod gauges;
mod rename;
mod wire;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{logs, netns};

const LISTEN: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9102);
const EXPORTER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9101);
/// A scraper (HAProxy forwarding one) sends its request at once; one that does not is cut off
/// soon, since requests are served one at a time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_HEAD: usize = 8192;
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const EXPORTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole exporter answer must arrive within this (Octavia's templates give its backend 5 s).
const EXPORTER_TIMEOUT: Duration = Duration::from_secs(5);
/// 2,000 members come to about 10 MB of exporter text.
const MAX_EXPORTER_ANSWER: usize = 64 << 20;
/// How often a port that is taken (Octavia's own proxy running too) is tried again.
const BIND_RETRY: Duration = Duration::from_secs(5);

/// Starts the proxy's thread, in the network namespace `namespace` when given (the thread
/// enters it before opening any socket), otherwise in the agent's.
pub fn start(namespace: Option<&'static str>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("promproxy".into())
        .spawn(move || run(namespace))
}

fn run(namespace: Option<&str>) {
    if let Some(ns) = namespace {
        if let Err(e) = netns::enter(ns) {
            logs::error(&format!(
                "metrics proxy: cannot enter the network namespace {ns}: {e}; not serving"
            ));
            return;
        }
    }
    let listener = bind();
    let mut proxy = Proxy { failing: false };
    // One request at a time: scrapes are rare and take milliseconds, and every wait is bounded.
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => proxy.serve(stream),
            Err(e) => {
                logs::warn(&format!("metrics proxy: accept: {e}"));
                // Out of descriptors, say: do not spin on it.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The listening socket, once the port is free.
fn bind() -> TcpListener {
    let mut said = false;
    loop {
        match TcpListener::bind(LISTEN) {
            Ok(listener) => {
                logs::info(&format!("metrics proxy: serving http://{LISTEN}"));
                return listener;
            }
            Err(e) => {
                if !said {
                    logs::warn(&format!(
                        "metrics proxy: cannot listen on {LISTEN}: {e}; trying again every {}s",
                        BIND_RETRY.as_secs()
                    ));
                    said = true;
                }
                thread::sleep(BIND_RETRY);
            }
        }
    }
}

struct Proxy {
    /// Whether the last fetch failed, so that an exporter that is down is logged once.
    failing: bool,
}

impl Proxy {
    /// Answers one connection's request and closes it.
    fn serve(&mut self, mut stream: TcpStream) {
        let answer = match read_head(&mut stream) {
            Some(head) if wire::method(&head) == Some("GET") => self.scrape(),
            Some(_) => wire::NOT_ALLOWED.to_vec(),
            None => return,
        };
        // A scraper that has gone away costs nothing but this answer.
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = stream.write_all(&answer);
        let _ = stream.shutdown(Shutdown::Write);
    }

    /// The answer to a GET: the gauges and the exporter's metrics, or 502.
    fn scrape(&mut self) -> Vec<u8> {
        match fetch() {
            Ok(body) => {
                if self.failing {
                    logs::info(&format!(
                        "metrics proxy: the exporter at {EXPORTER} answers again"
                    ));
                    self.failing = false;
                }
                let text = String::from_utf8_lossy(&body);
                let mut out = String::with_capacity(text.len());
                gauges::write(&mut out, cpu_percent(), memory_percent());
                rename::transform(&text, &mut out);
                wire::ok(&out)
            }
            Err(e) => {
                if !self.failing {
                    logs::warn(&format!(
                        "metrics proxy: HAProxy's exporter at {EXPORTER}: {e}; answering 502"
                    ));
                    self.failing = true;
                }
                wire::BAD_GATEWAY.to_vec()
            }
        }
    }
}

/// The request's head, or None when it is incomplete, too large or late.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while wire::head_end(&buf).is_none() && buf.len() <= MAX_HEAD {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    wire::head_end(&buf).is_some().then_some(buf)
}

/// The exporter's metrics text.
fn fetch() -> Result<Vec<u8>, wire::Upstream> {
    let io = |e: io::Error| wire::Upstream::Io(e.to_string());
    let deadline = Instant::now() + EXPORTER_TIMEOUT;
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(EXPORTER), EXPORTER_CONNECT_TIMEOUT)
        .map_err(io)?;
    s.set_write_timeout(Some(EXPORTER_TIMEOUT)).map_err(io)?;
    s.write_all(wire::EXPORTER_REQUEST).map_err(io)?;
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io(io::ErrorKind::TimedOut.into()))?;
        s.set_read_timeout(Some(left)).map_err(io)?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
        if response.len() > MAX_EXPORTER_ANSWER {
            return Err(wire::Upstream::TooLarge);
        }
    }
    wire::exporter_body(&response)
}

fn cpu_percent() -> Option<f64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    gauges::cpu_percent(&loadavg, online_cpus())
}

fn memory_percent() -> Option<f64> {
    gauges::memory_percent(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// The CPUs online, as Octavia's `os.cpu_count()` counts them (not the affinity mask or cgroup
/// quota that `available_parallelism` honours).
fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(0)
}
