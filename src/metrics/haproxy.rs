//! HAProxy's figures (`show info`, `show stat`) as the metric families HAProxy's own exporter
//! (promex, built into Debian's 2.6) serves: the same names, types, labels and values, plus a
//! `listener` label naming the HAProxy, so one scrape covers every HAProxy of the appliance.
//! Pure: the replies in, text out.

use std::collections::HashMap;

use super::expo::{number, Expo, Family, Kind, Sample};
use crate::haproxy::{info_fields, stat_lines};

/// One HAProxy's replies, or None where it did not answer.
pub struct Source<'a> {
    /// The listener id, or `_main` for HApi's main HAProxy (listener ids begin with a letter
    /// or digit, so it cannot be one).
    pub listener: &'a str,
    pub info: Option<&'a str>,
    pub stat: Option<&'a str>,
}

pub const MAIN: &str = "_main";

use Kind::{Counter as C, Gauge as G, Untyped as U};

/// `show info` field, metric (after `haproxy_process_`), type, help.
#[rustfmt::skip]
const PROCESS: &[(&str, &str, Kind, &str)] = &[
    ("Nbthread", "nbthread", G, "Threads HAProxy runs."),
    ("Nbproc", "nbproc", G, "Processes HAProxy was configured to run."),
    ("Process_num", "relative_process_id", G, "This process's number among them."),
    ("Uptime_sec", "uptime_seconds", G, "Time since the process started."),
    ("Start_time_sec", "start_time_seconds", G, "When the process started, in seconds since the Unix epoch."),
    ("Memmax_bytes", "max_memory_bytes", G, "Memory limit of the process (0: none)."),
    ("PoolAlloc_bytes", "pool_allocated_bytes", G, "Memory held by the memory pools."),
    ("PoolUsed_bytes", "pool_used_bytes", G, "Memory of the memory pools in use."),
    ("PoolFailed", "pool_failures_total", C, "Failed memory pool allocations."),
    ("Ulimit-n", "max_fds", G, "File descriptor limit of the process."),
    ("Maxsock", "max_sockets", G, "Socket limit of the process."),
    ("Maxconn", "max_connections", G, "Connection limit of the process."),
    ("Hard_maxconn", "hard_max_connections", G, "Connection limit the process was started with."),
    ("CurrConns", "current_connections", G, "Connections open now."),
    ("CumConns", "connections_total", C, "Connections accepted."),
    ("CumReq", "requests_total", C, "Requests received (HTTP requests and TCP sessions)."),
    ("MaxSslConns", "max_ssl_connections", G, "TLS connection limit of the process."),
    ("CurrSslConns", "current_ssl_connections", G, "TLS connections open now."),
    ("CumSslConns", "ssl_connections_total", C, "TLS connections accepted."),
    ("Maxpipes", "max_pipes", G, "Pipe limit of the process."),
    ("PipesUsed", "pipes_used_total", C, "Pipes in use."),
    ("PipesFree", "pipes_free_total", C, "Pipes allocated and free."),
    ("ConnRate", "current_connection_rate", G, "Connections accepted over the last second."),
    ("ConnRateLimit", "limit_connection_rate", G, "Connection rate limit of the process."),
    ("MaxConnRate", "max_connection_rate", G, "Highest connection rate seen."),
    ("SessRate", "current_session_rate", G, "Sessions over the last second."),
    ("SessRateLimit", "limit_session_rate", G, "Session rate limit of the process."),
    ("MaxSessRate", "max_session_rate", G, "Highest session rate seen."),
    ("SslRate", "current_ssl_rate", G, "TLS sessions over the last second."),
    ("SslRateLimit", "limit_ssl_rate", G, "TLS session rate limit of the process."),
    ("MaxSslRate", "max_ssl_rate", G, "Highest TLS session rate seen."),
    ("SslFrontendKeyRate", "current_frontend_ssl_key_rate", G, "Client-side TLS key computations over the last second."),
    ("SslFrontendMaxKeyRate", "max_frontend_ssl_key_rate", G, "Highest client-side TLS key computation rate seen."),
    ("SslFrontendSessionReuse_pct", "frontend_ssl_reuse", G, "Client-side TLS session reuse, in percent."),
    ("SslBackendKeyRate", "current_backend_ssl_key_rate", G, "Server-side TLS key computations over the last second."),
    ("SslBackendMaxKeyRate", "max_backend_ssl_key_rate", G, "Highest server-side TLS key computation rate seen."),
    ("SslCacheLookups", "ssl_cache_lookups_total", C, "TLS session cache lookups."),
    ("SslCacheMisses", "ssl_cache_misses_total", C, "TLS session cache misses."),
    ("CompressBpsIn", "http_comp_bytes_in_total", C, "Bytes fed to the HTTP compressor."),
    ("CompressBpsOut", "http_comp_bytes_out_total", C, "Bytes the HTTP compressor gave out."),
    ("CompressBpsRateLim", "limit_http_comp", G, "HTTP compression rate limit."),
    ("ZlibMemUsage", "current_zlib_memory", G, "Memory zlib uses now."),
    ("MaxZlibMemUsage", "max_zlib_memory", G, "Memory limit of zlib."),
    ("Tasks", "current_tasks", G, "Tasks now."),
    ("Run_queue", "current_run_queue", G, "Tasks in the run queue now."),
    ("Idle_pct", "idle_time_percent", G, "Time idle, in percent."),
    ("Stopping", "stopping", G, "1 while the process stops."),
    ("Jobs", "jobs", G, "Active jobs (listeners, sessions, open devices)."),
    ("Unstoppable Jobs", "unstoppable_jobs", G, "Jobs that a soft stop waits for."),
    ("Listeners", "listeners", G, "Listening sockets."),
    ("ActivePeers", "active_peers", G, "Peers configured."),
    ("ConnectedPeers", "connected_peers", G, "Peers connected."),
    ("DroppedLogs", "dropped_logs_total", C, "Log messages dropped."),
    ("BusyPolling", "busy_polling_enabled", G, "1 when busy polling is on."),
    // HAProxy's exporter calls this a counter, but its name lacks `_total`: kept as named,
    // typed untyped so the format's rules hold.
    ("FailedResolutions", "failed_resolutions", U, "Failed DNS resolutions."),
    ("TotalBytesOut", "bytes_out_total", C, "Bytes sent."),
    ("TotalSplicdedBytesOut", "spliced_bytes_out_total", C, "Bytes sent by splicing."),
    ("BytesOutRate", "bytes_out_rate", G, "Bytes sent over the last second."),
    ("CumRecvLogs", "recv_logs_total", C, "Log messages received by log-forward."),
];

/// How a `show stat` metric is read from a row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The column as it is (`NaN` when empty).
    Col(&'static str),
    /// The column, for HTTP proxies only.
    Http(&'static str),
    /// A time in milliseconds, as seconds.
    Secs(&'static str),
    /// Only for a server whose checks run: the last check's layer 5-7 code (0 before one).
    CheckCode,
    /// Only when a check has ended: its duration, as seconds.
    CheckDuration,
    /// One series per state, 1 for the one the object is in.
    Status,
    /// `hrsp_1xx`..`hrsp_other` as one family with a `code` label (HTTP only).
    Codes,
    /// One series per check result, for a server whose checks run.
    CheckStatus,
    /// A backend's servers counted by state.
    ServersByState,
    /// A backend's checked servers counted by their last check result.
    ServersByCheck,
}

const FE: u8 = 1;
const BE: u8 = 2;
const SRV: u8 = 4;

/// Metric (after `haproxy_<scope>_`), scopes, type, how it is read, help.
#[rustfmt::skip]
const STATS: &[(&str, u8, Kind, Read, &str)] = &[
    ("current_queue", BE | SRV, G, Read::Col("qcur"), "Requests queued now."),
    ("max_queue", BE | SRV, G, Read::Col("qmax"), "Most requests queued at once."),
    ("current_sessions", FE | BE | SRV, G, Read::Col("scur"), "Sessions now."),
    ("max_sessions", FE | BE | SRV, G, Read::Col("smax"), "Most sessions at once."),
    ("limit_sessions", FE | BE | SRV, G, Read::Col("slim"), "Session limit (maxconn; fullconn for a backend)."),
    ("sessions_total", FE | BE | SRV, C, Read::Col("stot"), "Sessions."),
    ("bytes_in_total", FE | BE | SRV, C, Read::Col("bin"), "Bytes received."),
    ("bytes_out_total", FE | BE | SRV, C, Read::Col("bout"), "Bytes sent."),
    ("requests_denied_total", FE | BE, C, Read::Col("dreq"), "Requests denied by rules."),
    ("responses_denied_total", FE | BE | SRV, C, Read::Col("dresp"), "Responses denied by rules."),
    ("request_errors_total", FE, C, Read::Col("ereq"), "Request errors."),
    ("connection_errors_total", BE | SRV, C, Read::Col("econ"), "Failed connections to servers."),
    ("response_errors_total", BE | SRV, C, Read::Col("eresp"), "Response errors."),
    ("retry_warnings_total", BE | SRV, C, Read::Col("wretr"), "Connection retries."),
    ("redispatch_warnings_total", BE | SRV, C, Read::Col("wredis"), "Requests redispatched to another server."),
    ("status", FE | BE | SRV, G, Read::Status, "1 for the state the object is in, per state label."),
    ("weight", BE | SRV, G, Read::Col("weight"), "Effective weight (a backend: its active servers' sum)."),
    ("active_servers", BE, G, Read::Col("act"), "Active servers up."),
    ("backup_servers", BE, G, Read::Col("bck"), "Backup servers up."),
    ("check_failures_total", SRV, C, Read::Col("chkfail"), "Failed health checks."),
    ("check_up_down_total", BE | SRV, C, Read::Col("chkdown"), "Transitions between up and down."),
    ("check_last_change_seconds", BE | SRV, G, Read::Col("lastchg"), "Time since the last up/down transition."),
    ("downtime_seconds_total", BE | SRV, C, Read::Col("downtime"), "Time spent down."),
    ("queue_limit", SRV, G, Read::Col("qlimit"), "Queue limit (maxqueue)."),
    ("current_throttle", SRV, G, Read::Col("throttle"), "Slow-start throttle, in percent."),
    ("loadbalanced_total", BE | SRV, C, Read::Col("lbtot"), "Times a server was picked by load balancing."),
    ("limit_session_rate", FE, G, Read::Col("rate_lim"), "Session rate limit."),
    ("max_session_rate", FE | BE | SRV, G, Read::Col("rate_max"), "Highest session rate seen."),
    ("check_status", SRV, G, Read::CheckStatus, "1 for the last health check's result, per state label."),
    ("check_code", SRV, G, Read::CheckCode, "Layer 5-7 code of the last health check."),
    ("check_duration_seconds", SRV, G, Read::CheckDuration, "Duration of the last health check."),
    ("http_responses_total", FE | BE | SRV, C, Read::Codes, "HTTP responses, per code class."),
    ("http_requests_rate_max", FE, G, Read::Http("req_rate_max"), "Highest HTTP request rate seen."),
    ("http_requests_total", FE | BE, C, Read::Http("req_tot"), "HTTP requests."),
    ("client_aborts_total", BE | SRV, C, Read::Col("cli_abrt"), "Transfers aborted by the client."),
    ("server_aborts_total", BE | SRV, C, Read::Col("srv_abrt"), "Transfers aborted by the server."),
    ("http_comp_bytes_in_total", FE | BE, C, Read::Http("comp_in"), "Bytes fed to the HTTP compressor."),
    ("http_comp_bytes_out_total", FE | BE, C, Read::Http("comp_out"), "Bytes the HTTP compressor gave out."),
    ("http_comp_bytes_bypassed_total", FE | BE, C, Read::Http("comp_byp"), "Bytes that bypassed the HTTP compressor."),
    ("http_comp_responses_total", FE | BE, C, Read::Http("comp_rsp"), "HTTP responses compressed."),
    ("last_session_seconds", BE | SRV, G, Read::Col("lastsess"), "Time since the last session was assigned."),
    ("queue_time_average_seconds", BE | SRV, G, Read::Secs("qtime"), "Average queue time over the last 1024 connections."),
    ("connect_time_average_seconds", BE | SRV, G, Read::Secs("ctime"), "Average connect time over the last 1024 connections."),
    ("response_time_average_seconds", BE | SRV, G, Read::Secs("rtime"), "Average response time over the last 1024 connections."),
    ("total_time_average_seconds", BE | SRV, G, Read::Secs("ttime"), "Average total time over the last 1024 connections."),
    ("connections_rate_max", FE, G, Read::Col("conn_rate_max"), "Highest connection rate seen."),
    ("connections_total", FE, C, Read::Col("conn_tot"), "Connections."),
    ("intercepted_requests_total", FE, C, Read::Http("intercepted"), "Requests answered by HAProxy itself."),
    ("denied_connections_total", FE, C, Read::Col("dcon"), "Connections denied by tcp-request connection rules."),
    ("denied_sessions_total", FE, C, Read::Col("dses"), "Sessions denied by tcp-request session rules."),
    ("failed_header_rewriting_total", FE | BE | SRV, C, Read::Col("wrew"), "Failed header rewrites."),
    ("connection_attempts_total", BE | SRV, C, Read::Col("connect"), "Connection attempts."),
    ("connection_reuses_total", BE | SRV, C, Read::Col("reuse"), "Connections reused."),
    ("http_cache_lookups_total", FE | BE, C, Read::Http("cache_lookups"), "HTTP cache lookups."),
    ("http_cache_hits_total", FE | BE, C, Read::Http("cache_hits"), "HTTP cache hits."),
    ("idle_connections_current", SRV, G, Read::Col("srv_icur"), "Idle connections ready for reuse."),
    ("idle_connections_limit", SRV, G, Read::Col("src_ilim"), "Idle connection limit."),
    ("max_queue_time_seconds", BE | SRV, G, Read::Secs("qtime_max"), "Longest time in the queue."),
    ("max_connect_time_seconds", BE | SRV, G, Read::Secs("ctime_max"), "Longest connect time."),
    ("max_response_time_seconds", BE | SRV, G, Read::Secs("rtime_max"), "Longest response time."),
    ("max_total_time_seconds", BE | SRV, G, Read::Secs("ttime_max"), "Longest total time."),
    ("internal_errors_total", FE | BE | SRV, C, Read::Col("eint"), "Internal errors."),
    ("unsafe_idle_connections_current", SRV, G, Read::Col("idle_conn_cur"), "Unsafe idle connections."),
    ("safe_idle_connections_current", SRV, G, Read::Col("safe_conn_cur"), "Safe idle connections."),
    ("used_connections_current", SRV, G, Read::Col("used_conn_cur"), "Connections in use."),
    ("need_connections_current", SRV, G, Read::Col("need_conn_est"), "Connections estimated to be needed."),
    ("uweight", BE | SRV, G, Read::Col("uweight"), "Configured weight (a backend: its servers' sum)."),
    ("agg_server_status", BE, G, Read::ServersByState, "The backend's servers in each state."),
    ("agg_server_check_status", BE, G, Read::ServersByState, "The backend's servers in each state (the older name of agg_server_status)."),
    ("agg_check_status", BE, G, Read::ServersByCheck, "The backend's checked servers by their last check's result."),
];

const FRONT_STATES: [&str; 2] = ["DOWN", "UP"];
/// `hrsp_<code>` columns, served as one family with a `code` label.
const CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];
/// The check results HAProxy's exporter lists (those that end a check), in its order.
const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

/// A `show stat` reply split into rows of fields.
struct Table<'a> {
    header: Vec<&'a str>,
    rows: Vec<Row<'a>>,
    pxname: Option<usize>,
    mode: Option<usize>,
    status: Option<usize>,
    check: Option<usize>,
}

struct Row<'a> {
    fields: Vec<&'a str>,
    scope: u8,
    /// listener, proxy and (a server's) server, escaped once for all its samples.
    labels: String,
}

impl<'a> Table<'a> {
    fn parse(listener: &'a str, reply: &'a str) -> Option<Self> {
        let (header, lines) = stat_lines(reply)?;
        let at = |name: &str| header.iter().position(|h| *h == name);
        let (kind, pxname, svname) = (at("type"), at("pxname"), at("svname"));
        let rows = lines
            .map(|l| {
                let fields: Vec<&str> = l.split(',').collect();
                let scope = scope_of(field(&fields, kind));
                let mut labels = vec![("listener", listener), ("proxy", field(&fields, pxname))];
                if scope == SRV {
                    labels.push(("server", field(&fields, svname)));
                }
                let labels = super::expo::labels(&labels);
                Row {
                    fields,
                    scope,
                    labels,
                }
            })
            .collect();
        Some(Table {
            pxname,
            mode: at("mode"),
            status: at("status"),
            check: at("check_status"),
            header,
            rows,
        })
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| *h == name)
    }

    fn rows(&self, scope: u8) -> impl Iterator<Item = &Row<'a>> {
        self.rows.iter().filter(move |r| r.scope == scope)
    }
}

fn field<'a>(row: &[&'a str], col: Option<usize>) -> &'a str {
    col.and_then(|i| row.get(i)).copied().unwrap_or("")
}

/// The scope of a row's `type` (0 frontend, 1 backend, 2 server; 3, listener sockets, is not
/// served, as the exporter serves them only on request).
fn scope_of(kind: &str) -> u8 {
    match kind {
        "0" => FE,
        "1" => BE,
        "2" => SRV,
        _ => 0,
    }
}

/// A server's state as the exporter names it, from its `show stat` status.
fn server_state(status: &str) -> &'static str {
    let word = status.split([' ', '(']).next().unwrap_or("");
    match word {
        "MAINT" => "MAINT",
        "DRAIN" => "DRAIN",
        "NOLB" => "NOLB",
        // `no check`: a server without checks is running.
        "UP" | "no" => "UP",
        _ => "DOWN",
    }
}

/// A server's last check result, when its checks run (`* ` marks one in progress).
fn check_state<'a>(t: &Table<'a>, row: &[&'a str]) -> Option<&'a str> {
    let s = field(row, t.check);
    (!s.is_empty()).then(|| s.strip_prefix("* ").unwrap_or(s))
}

/// Every HAProxy's process, frontend, backend and server families, then whether each
/// answered.
pub fn write(e: &mut Expo, sources: &[Source]) {
    write_process(e, sources);
    let tables: Vec<Table> = sources
        .iter()
        .filter_map(|s| Table::parse(s.listener, s.stat?))
        .collect();
    for (scope, prefix) in [
        (FE, "haproxy_frontend_"),
        (BE, "haproxy_backend_"),
        (SRV, "haproxy_server_"),
    ] {
        for &(metric, _, kind, read, help) in STATS.iter().filter(|m| m.1 & scope != 0) {
            let name = format!("{prefix}{metric}");
            let mut f = e.family(&name, kind, help);
            for t in &tables {
                write_stat(&mut f, t, scope, read);
            }
        }
    }
    let mut up = e.family(
        "lbagent_haproxy_up",
        Kind::Gauge,
        "1 when the HAProxy answered show info and show stat for this scrape, 0 otherwise.",
    );
    for s in sources {
        let answered = s.info.is_some() && s.stat.is_some();
        up.sample("")
            .label("listener", s.listener)
            .int(answered.into());
    }
}

fn write_process(e: &mut Expo, sources: &[Source]) {
    let infos: Vec<(&str, Vec<(&str, &str)>)> = sources
        .iter()
        .filter_map(|s| Some((s.listener, info_fields(s.info?).collect())))
        .collect();
    for &(key, metric, kind, help) in PROCESS {
        let name = format!("haproxy_process_{metric}");
        let mut f = e.family(&name, kind, help);
        for (listener, info) in &infos {
            // A field this build lacks (zlib's, without zlib) is NaN, as the exporter has it.
            let v = info.iter().find(|(k, _)| *k == key).map_or("", |kv| kv.1);
            f.sample("").label("listener", listener).raw(number(v));
        }
    }
    let mut f = e.family(
        "haproxy_process_build_info",
        Kind::Gauge,
        "HAProxy's version, as a label.",
    );
    for (listener, info) in &infos {
        if let Some((_, v)) = info.iter().find(|(k, _)| *k == "Version") {
            f.sample("")
                .label("listener", listener)
                .label("version", v)
                .int(1);
        }
    }
}

fn write_stat(f: &mut Family, t: &Table, scope: u8, read: Read) {
    let col = match read {
        Read::Col(c) | Read::Http(c) | Read::Secs(c) => t.col(c),
        Read::CheckCode => t.col("check_code"),
        Read::CheckDuration => t.col("check_duration"),
        _ => None,
    };
    if matches!(read, Read::ServersByState | Read::ServersByCheck) {
        return write_aggregate(f, t, read);
    }
    let codes = CODES.map(|code| t.col(&format!("hrsp_{code}")));
    for row in t.rows(scope) {
        let fields = &row.fields[..];
        let http = field(fields, t.mode) == "http";
        let value = field(fields, col);
        match read {
            Read::Col(_) => sample(f, row).raw(number(value)),
            Read::Http(_) if http => sample(f, row).raw(number(value)),
            Read::Secs(_) => sample(f, row).value(millis(value)),
            Read::CheckCode if check_state(t, fields).is_some() => {
                sample(f, row).raw(if value.is_empty() { "0" } else { number(value) });
            }
            Read::CheckDuration if !value.is_empty() => sample(f, row).value(millis(value)),
            Read::Status => {
                let (states, now) = state_of(scope, field(fields, t.status));
                for s in states {
                    sample(f, row).label("state", s).int((*s == now).into());
                }
            }
            Read::Codes if http => {
                for (code, col) in CODES.iter().zip(codes) {
                    sample(f, row)
                        .label("code", code)
                        .raw(number(field(fields, col)));
                }
            }
            Read::CheckStatus => {
                if let Some(now) = check_state(t, fields) {
                    for s in CHECK_STATES {
                        sample(f, row).label("state", s).int((s == now).into());
                    }
                }
            }
            // Not an HTTP proxy, no check: no series.
            _ => {}
        }
    }
}

/// A sample of `row`, with its labels.
fn sample<'f>(f: &'f mut Family<'_>, row: &Row) -> Sample<'f> {
    f.sample("").labels(&row.labels)
}

/// The states an object can be in, and the one it is in, from its `show stat` status.
fn state_of(scope: u8, status: &str) -> (&'static [&'static str], &'static str) {
    match scope {
        FE => (&FRONT_STATES, if status == "STOP" { "DOWN" } else { "UP" }),
        BE if status.starts_with("UP") => (&FRONT_STATES, "UP"),
        BE => (&FRONT_STATES, "DOWN"),
        _ => (&SERVER_STATES, server_state(status)),
    }
}

/// Each backend's servers, counted by state (or by last check result).
fn write_aggregate(f: &mut Family, t: &Table, read: Read) {
    let by_backend = count_servers(t, read);
    let states: &[&str] = match read {
        Read::ServersByState => &SERVER_STATES,
        _ => &CHECK_STATES,
    };
    for row in t.rows(BE) {
        // A backend without servers: the exporter skips it.
        let Some(counts) = by_backend.get(field(&row.fields, t.pxname)) else {
            continue;
        };
        for s in states {
            let n = counts.get(s).copied().unwrap_or(0);
            sample(f, row).label("state", s).int(n);
        }
    }
}

/// Per backend, its servers counted by state (or by last check result).
fn count_servers<'a>(t: &Table<'a>, read: Read) -> HashMap<&'a str, HashMap<&'a str, u64>> {
    let mut by: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for row in t.rows(SRV) {
        let fields = &row.fields[..];
        let state = match read {
            Read::ServersByState => Some(server_state(field(fields, t.status))),
            _ => check_state(t, fields),
        };
        let counts = by.entry(field(fields, t.pxname)).or_default();
        if let Some(s) = state {
            *counts.entry(s).or_default() += 1;
        }
    }
    by
}

/// Milliseconds (HAProxy's times) as seconds; NaN when unset.
fn millis(ms: &str) -> f64 {
    ms.parse::<u64>().map_or(f64::NAN, |v| v as f64 / 1000.0)
}
