//! The agent's own figures: what the front, the handlers, the listeners and the heartbeat
//! sender count as they work (one process-wide registry, as each of them runs on threads of
//! its own), and what the kernel says of the process at scrape time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::expo::{Expo, Kind};

/// Request duration buckets, in seconds (upper bounds; `+Inf` follows).
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The route a request matched (its pattern), or what stood in its way.
pub type RouteLabel = &'static str;
pub const NO_ROUTE: RouteLabel = "none";

pub struct Registry {
    requests: Mutex<BTreeMap<(RouteLabel, &'static str, u16), u64>>,
    durations: Mutex<BTreeMap<RouteLabel, Histogram>>,
    connections: AtomicU64,
    open: AtomicI64,
    refused: AtomicU64,
    tls_failures: AtomicU64,
    login_failures: AtomicU64,
    listener_actions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    heartbeats: AtomicU64,
    heartbeat_failures: AtomicU64,
    started: AtomicU64,
}

pub static AGENT: Registry = Registry::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A method as a label: the ones routes use, anything else as `other` (a client cannot grow
/// the label set).
fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        _ => "other",
    }
}

/// A connection counted while it is open.
pub struct OpenConnection(());

impl Drop for OpenConnection {
    fn drop(&mut self) {
        AGENT.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            requests: Mutex::new(BTreeMap::new()),
            durations: Mutex::new(BTreeMap::new()),
            connections: AtomicU64::new(0),
            open: AtomicI64::new(0),
            refused: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            login_failures: AtomicU64::new(0),
            listener_actions: Mutex::new(BTreeMap::new()),
            heartbeats: AtomicU64::new(0),
            heartbeat_failures: AtomicU64::new(0),
            started: AtomicU64::new(0),
        }
    }

    /// When the agent started, for `process_start_time_seconds`.
    pub fn mark_start(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.started.store(now.as_secs(), Ordering::Relaxed);
    }

    pub fn request(&self, route: RouteLabel, method: &str, status: u16, took: Duration) {
        *lock(&self.requests)
            .entry((route, method_label(method), status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut d = lock(&self.durations);
        let h = d.entry(route).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.counts[i] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    /// An admitted connection, open until the guard drops.
    pub fn connection(&self) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(())
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A listener start, stop or reload and how it ended.
    pub fn listener_action(&self, action: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        *lock(&self.listener_actions)
            .entry((action, result))
            .or_default() += 1;
    }

    pub fn heartbeat(&self, sent: bool) {
        let c = if sent {
            &self.heartbeats
        } else {
            &self.heartbeat_failures
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn write(&self, e: &mut Expo) {
        self.write_requests(e);
        let counters = [
            (
                "lbagent_connections_total",
                "Client connections admitted.",
                &self.connections,
            ),
            (
                "lbagent_connections_refused_total",
                "Client connections refused over max_connections (answered 503).",
                &self.refused,
            ),
            (
                "lbagent_tls_handshake_failures_total",
                "TLS handshakes that failed (bad or missing client certificate, protocol).",
                &self.tls_failures,
            ),
            (
                "lbagent_login_failures_total",
                "Requests refused for their credentials (401).",
                &self.login_failures,
            ),
            (
                "lbagent_heartbeats_sent_total",
                "Heartbeats sent to the controller.",
                &self.heartbeats,
            ),
            (
                "lbagent_heartbeat_failures_total",
                "Heartbeat intervals that sent nothing (see the log for why).",
                &self.heartbeat_failures,
            ),
        ];
        for (name, help, c) in counters {
            e.family(name, Kind::Counter, help)
                .sample("")
                .int(c.load(Ordering::Relaxed));
        }
        e.family(
            "lbagent_connections_open",
            Kind::Gauge,
            "Client connections open now.",
        )
        .sample("")
        .int(self.open.load(Ordering::Relaxed).max(0) as u64);
        let mut f = e.family(
            "lbagent_listener_actions_total",
            Kind::Counter,
            "Listener starts, stops and reloads, by how they ended.",
        );
        for ((action, result), n) in lock(&self.listener_actions).iter() {
            f.sample("")
                .label("action", action)
                .label("result", result)
                .int(*n);
        }
        self.write_process(e);
    }

    fn write_requests(&self, e: &mut Expo) {
        let mut f = e.family(
            "lbagent_http_requests_total",
            Kind::Counter,
            "Requests answered, by route pattern, method and status.",
        );
        for ((route, method, status), n) in lock(&self.requests).iter() {
            f.sample("")
                .label("route", route)
                .label("method", method)
                .label("status", &status.to_string())
                .int(*n);
        }
        let mut f = e.family(
            "lbagent_http_request_duration_seconds",
            Kind::Histogram,
            "Time from a request's arrival to its answer, by route pattern.",
        );
        for (route, h) in lock(&self.durations).iter() {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                f.sample("_bucket")
                    .label("route", route)
                    .label("le", &bound.to_string())
                    .int(cumulative);
            }
            f.sample("_bucket")
                .label("route", route)
                .label("le", "+Inf")
                .int(h.count);
            f.sample("_sum").label("route", route).value(h.sum);
            f.sample("_count").label("route", route).int(h.count);
        }
    }

    fn write_process(&self, e: &mut Expo) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64);
        let process: [(&str, &str, Option<u64>); 4] = [
            (
                "process_resident_memory_bytes",
                "Resident memory of the agent.",
                field("VmRSS:").map(|kb| kb * 1024),
            ),
            (
                "process_threads",
                "Threads of the agent.",
                field("Threads:"),
            ),
            (
                "process_open_fds",
                "Open file descriptors of the agent.",
                fds.ok(),
            ),
            (
                "process_start_time_seconds",
                "When the agent started, in seconds since the Unix epoch.",
                Some(self.started.load(Ordering::Relaxed)).filter(|s| *s > 0),
            ),
        ];
        for (name, help, v) in process {
            if let Some(v) = v {
                e.family(name, Kind::Gauge, help).sample("").int(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_and_methods_are_a_closed_set() {
        let r = Registry::new();
        r.request("/a", "GET", 200, Duration::from_micros(500));
        r.request("/a", "GET", 200, Duration::from_millis(30));
        r.request("/a", "BREW", 405, Duration::from_secs(9));
        let mut e = Expo::new();
        r.write_requests(&mut e);
        let text = e.into_string();
        for line in [
            "lbagent_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 2",
            "lbagent_http_requests_total{route=\"/a\",method=\"other\",status=\"405\"} 1",
            "lbagent_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.001\"} 1",
            "lbagent_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.025\"} 1",
            "lbagent_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.05\"} 2",
            "lbagent_http_request_duration_seconds_bucket{route=\"/a\",le=\"2.5\"} 2",
            "lbagent_http_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3",
            "lbagent_http_request_duration_seconds_count{route=\"/a\"} 3",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
