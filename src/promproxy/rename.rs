//! HAProxy's exporter text in Octavia's terms (AGENT.md appendix A): which lines are kept, and
//! what their metrics and labels are called. Pure: text in, text out.

/// One family of HAProxy's metrics, what Octavia calls it, and which of its metrics it keeps.
struct Family {
    haproxy: &'static str,
    octavia: &'static str,
    /// The metrics kept, by the part of their name after `haproxy`.
    kept: &'static [&'static str],
    /// Labels renamed on every sample of the family.
    labels: &'static [(&'static str, &'static str)],
}

const PROCESS: Family = Family {
    haproxy: "haproxy_process_",
    octavia: "octavia_loadbalancer_",
    kept: &[
        "connections_total",
        "current_backend_ssl_key_rate",
        "current_connection_rate",
        "current_connections",
        "current_frontend_ssl_key_rate",
        "current_session_rate",
        "current_ssl_connections",
        "current_ssl_rate",
        "dropped_logs_total",
        "frontend_ssl_reuse",
        "http_comp_bytes_in_total",
        "http_comp_bytes_out_total",
        "limit_connection_rate",
        "limit_http_comp",
        "limit_session_rate",
        "limit_ssl_rate",
        "listeners",
        "max_backend_ssl_key_rate",
        "max_connection_rate",
        "max_connections",
        "max_frontend_ssl_key_rate",
        "max_session_rate",
        "max_ssl_connections",
        "max_ssl_rate",
        "pool_allocated_bytes",
        "pool_failures_total",
        "pool_used_bytes",
        "requests_total",
        "ssl_cache_lookups_total",
        "ssl_cache_misses_total",
        "ssl_connections_total",
    ],
    labels: &[],
};

const FRONTEND: Family = Family {
    haproxy: "haproxy_frontend_",
    octavia: "octavia_listener_",
    kept: &[
        "bytes_in_total",
        "bytes_out_total",
        "connections_rate_max",
        "connections_total",
        "current_sessions",
        "denied_connections_total",
        "denied_sessions_total",
        "failed_header_rewriting_total",
        "http_cache_hits_total",
        "http_cache_lookups_total",
        "http_comp_bytes_bypassed_total",
        "http_comp_bytes_in_total",
        "http_comp_bytes_out_total",
        "http_comp_responses_total",
        "http_requests_rate_max",
        "http_requests_total",
        "http_responses_total",
        "intercepted_requests_total",
        "limit_session_rate",
        "limit_sessions",
        "max_session_rate",
        "max_sessions",
        "request_errors_total",
        "requests_denied_total",
        "responses_denied_total",
        "sessions_total",
        "status",
    ],
    labels: &[("proxy", "listener")],
};

const BACKEND: Family = Family {
    haproxy: "haproxy_backend_",
    octavia: "octavia_pool_",
    kept: &[
        "active_servers",
        "backup_servers",
        "bytes_in_total",
        "bytes_out_total",
        "check_last_change_seconds",
        "check_up_down_total",
        "client_aborts_total",
        "connect_time_average_seconds",
        "connection_attempts_total",
        "connection_errors_total",
        "connection_reuses_total",
        "current_queue",
        "current_sessions",
        "downtime_seconds_total",
        "failed_header_rewriting_total",
        "http_cache_hits_total",
        "http_cache_lookups_total",
        "http_comp_bytes_bypassed_total",
        "http_comp_bytes_in_total",
        "http_comp_bytes_out_total",
        "http_comp_responses_total",
        "http_requests_total",
        "http_responses_total",
        "last_session_seconds",
        "limit_sessions",
        "loadbalanced_total",
        "max_connect_time_seconds",
        "max_queue",
        "max_queue_time_seconds",
        "max_response_time_seconds",
        "max_session_rate",
        "max_sessions",
        "max_total_time_seconds",
        "queue_time_average_seconds",
        "redispatch_warnings_total",
        "requests_denied_total",
        "response_errors_total",
        "response_time_average_seconds",
        "responses_denied_total",
        "retry_warnings_total",
        "server_aborts_total",
        "sessions_total",
        "status",
        "total_time_average_seconds",
    ],
    labels: &[("proxy", "pool")],
};

const SERVER: Family = Family {
    haproxy: "haproxy_server_",
    octavia: "octavia_member_",
    kept: &[
        "bytes_in_total",
        "bytes_out_total",
        "check_failures_total",
        "check_last_change_seconds",
        "check_up_down_total",
        "client_aborts_total",
        "connect_time_average_seconds",
        "connection_attempts_total",
        "connection_errors_total",
        "connection_reuses_total",
        "current_queue",
        "current_sessions",
        "current_throttle",
        "downtime_seconds_total",
        "failed_header_rewriting_total",
        "http_responses_total",
        "idle_connections_current",
        "idle_connections_limit",
        "last_session_seconds",
        "limit_sessions",
        "loadbalanced_total",
        "max_connect_time_seconds",
        "max_queue",
        "max_queue_time_seconds",
        "max_response_time_seconds",
        "max_session_rate",
        "max_sessions",
        "max_total_time_seconds",
        "queue_limit",
        "queue_time_average_seconds",
        "redispatch_warnings_total",
        "response_errors_total",
        "response_time_average_seconds",
        "responses_denied_total",
        "retry_warnings_total",
        "server_aborts_total",
        "sessions_total",
        "status",
        "total_time_average_seconds",
        "weight",
    ],
    labels: &[("proxy", "pool"), ("server", "member")],
};

const FAMILIES: [&Family; 4] = [&PROCESS, &FRONTEND, &BACKEND, &SERVER];

/// Kept metrics whose Octavia name is not the family's prefix and the same suffix:
/// (HAProxy's name, Octavia's prefix, Octavia's suffix).
const RENAMED: &[(&str, &str, &str)] = &[
    (
        "haproxy_process_pool_allocated_bytes",
        "octavia_memory_pool_",
        "allocated_bytes",
    ),
    (
        "haproxy_process_pool_used_bytes",
        "octavia_memory_pool_",
        "used_bytes",
    ),
    (
        "haproxy_process_pool_failures_total",
        "octavia_memory_pool_",
        "failures_total",
    ),
    (
        "haproxy_backend_active_servers",
        "octavia_pool_",
        "active_members",
    ),
    (
        "haproxy_backend_backup_servers",
        "octavia_pool_",
        "backup_members",
    ),
    (
        "haproxy_backend_server_aborts_total",
        "octavia_pool_",
        "member_aborts_total",
    ),
];

/// Our own HELP text where HAProxy's speaks of servers, backends and frontends, or of several
/// kinds of object at once; every other metric keeps HAProxy's.
const HELP: &[(&str, &str)] = &[
    ("octavia_memory_pool_allocated_bytes", "Memory held by the load balancer's memory pools, in bytes."),
    ("octavia_memory_pool_used_bytes", "Memory of the load balancer's memory pools in use, in bytes."),
    ("octavia_memory_pool_failures_total", "Allocations from the memory pools that failed."),
    ("octavia_loadbalancer_current_ssl_connections", "Open TLS connections, client and member sides together."),
    ("octavia_listener_status", "1 when the listener is in the state the label names, 0 otherwise."),
    ("octavia_listener_denied_connections_total", "Connections the listener refused by a tcp-request connection rule."),
    ("octavia_listener_denied_sessions_total", "Sessions the listener refused by a tcp-request session rule."),
    ("octavia_listener_failed_header_rewriting_total", "HTTP header rewrites that failed on the listener."),
    ("octavia_pool_status", "1 when the pool is in the state the label names, 0 otherwise."),
    ("octavia_pool_last_session_seconds", "Seconds since the pool last sent a connection to a member."),
    ("octavia_pool_max_response_time_seconds", "Longest time a member of the pool took to answer, in seconds."),
    ("octavia_pool_member_aborts_total", "Requests or connections that a member of the pool aborted."),
    ("octavia_pool_active_members", "Active members of the pool that are UP with a weight above zero."),
    ("octavia_pool_backup_members", "Backup members of the pool that are UP with a weight above zero."),
    ("octavia_pool_downtime_seconds_total", "Seconds the pool has spent DOWN."),
    ("octavia_pool_loadbalanced_total", "Requests the pool's balancing algorithm sent to a member (queued and sticky ones not counted)."),
    ("octavia_member_status", "1 when the member is in the state the label names, 0 otherwise."),
    ("octavia_member_last_session_seconds", "Seconds since the member last got a connection."),
    ("octavia_member_queue_limit", "The longest queue the member allows (its maxqueue)."),
    ("octavia_member_max_response_time_seconds", "Longest time the member took to answer, in seconds."),
    ("octavia_member_weight", "The member's effective weight."),
    ("octavia_member_check_failures_total", "Health checks of the member that failed."),
    ("octavia_member_downtime_seconds_total", "Seconds the member has spent DOWN."),
    ("octavia_member_current_throttle", "Percentage of its maxconn and weight the member gets while slow start ramps it up."),
    ("octavia_member_loadbalanced_total", "Requests the balancing algorithm sent to the member (queued and sticky ones not counted)."),
];

/// A line naming this is about Octavia's internal exporter frontend and proxy backend (the
/// loop that brings a scrape here), not about the user's listeners.
const INTERNAL: &str = "prometheus-exporter";

/// Octavia's name for a kept metric, in two parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Name {
    prefix: &'static str,
    suffix: &'static str,
}

impl Name {
    fn is(&self, full: &str) -> bool {
        full.strip_prefix(self.prefix) == Some(self.suffix)
    }

    fn write(&self, out: &mut String) {
        out.push_str(self.prefix);
        out.push_str(self.suffix);
    }
}

/// Octavia's name for HAProxy's metric `name` and its family, or None when it is not kept.
fn lookup(name: &str) -> Option<(Name, &'static Family)> {
    let family = FAMILIES.into_iter().find(|f| name.starts_with(f.haproxy))?;
    if let Some(&(_, prefix, suffix)) = RENAMED.iter().find(|(from, ..)| *from == name) {
        return Some((Name { prefix, suffix }, family));
    }
    let suffix = &name[family.haproxy.len()..];
    let kept = family.kept.iter().find(|k| **k == suffix)?;
    Some((
        Name {
            prefix: family.octavia,
            suffix: kept,
        },
        family,
    ))
}

/// Appends to `out` what Octavia's proxy makes of the exporter's `text`: the kept lines,
/// renamed, each ending in a newline.
pub fn transform(text: &str, out: &mut String) {
    for line in text.lines() {
        transform_line(line, out);
    }
}

/// One line of the exporter's text (without its newline), kept and renamed or dropped.
fn transform_line(line: &str, out: &mut String) {
    if line.contains(INTERNAL) {
        return;
    }
    let kept = match line.strip_prefix("# ") {
        Some(comment) => comment_line(comment, out),
        None => sample_line(line, out),
    };
    if kept.is_some() {
        out.push('\n');
    }
}

/// `HELP` and `TYPE` lines of kept metrics (other comments are dropped).
fn comment_line(comment: &str, out: &mut String) -> Option<()> {
    let (keyword, rest) = comment.split_once(' ')?;
    if keyword != "HELP" && keyword != "TYPE" {
        return None;
    }
    let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let (name, _) = lookup(name)?;
    let own = HELP.iter().find(|(n, _)| name.is(n)).map(|(_, t)| *t);
    let text = match own {
        Some(own) if keyword == "HELP" => own,
        _ => text,
    };
    out.push_str("# ");
    out.push_str(keyword);
    out.push(' ');
    name.write(out);
    if !text.is_empty() {
        out.push(' ');
        out.push_str(text);
    }
    Some(())
}

/// A sample: `name{labels} value [timestamp]` or `name value [timestamp]`. Dropped when its
/// metric is not kept or its labels do not parse. (20 lines; the brace characters it matches
/// make brace-counting tools see it run on to the end of the file.)
fn sample_line(line: &str, out: &mut String) -> Option<()> {
    let end = line.find(['{', ' '])?;
    let (name, family) = lookup(&line[..end])?;
    let rest = &line[end..];
    let start = out.len();
    name.write(out);
    let value = match rest.strip_prefix('{') {
        Some(labels) => match relabel(labels, family.labels, out) {
            Some(value) => value,
            None => {
                out.truncate(start);
                return None;
            }
        },
        None => rest,
    };
    out.push_str(value);
    Some(())
}

/// Writes the label set that `labels` opens (just after its `{`) with the label names in
/// `renames` renamed, and returns what follows its `}`; None when it does not parse.
fn relabel<'a>(labels: &'a str, renames: &[(&str, &str)], out: &mut String) -> Option<&'a str> {
    out.push('{');
    let mut rest = labels;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            out.push('}');
            return Some(after);
        }
        let (key, after_key) = rest.split_once("=\"")?;
        let key = key.trim();
        let renamed = renames.iter().find(|(from, _)| *from == key);
        out.push_str(renamed.map_or(key, |(_, to)| to));
        out.push_str("=\"");
        let len = quoted_len(after_key)?;
        out.push_str(&after_key[..=len]);
        rest = &after_key[len + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            out.push(',');
            rest = after;
        }
    }
}

/// Where the label value that `s` starts (just after its opening quote) ends: the index of its
/// closing quote, past backslash escapes.
fn quoted_len(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> String {
        let mut out = String::new();
        transform(text, &mut out);
        out
    }

    #[test]
    fn the_whitelist_holds_appendix_a() {
        let counts: Vec<usize> = FAMILIES.iter().map(|f| f.kept.len()).collect();
        assert_eq!(counts, [31, 27, 44, 40]);
        for f in FAMILIES {
            let mut sorted = f.kept.to_vec();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted, f.kept, "{} sorted, no repeats", f.haproxy);
        }
        for (from, ..) in RENAMED {
            assert!(lookup(from).is_some(), "{from} is kept");
        }
        for (name, _) in HELP {
            let kept = FAMILIES.iter().flat_map(|f| {
                f.kept
                    .iter()
                    .filter_map(move |k| lookup(&format!("{}{k}", f.haproxy)))
            });
            assert!(kept.map(|(n, _)| n).any(|n| n.is(name)), "{name} is kept");
        }
    }

    #[test]
    fn names_follow_the_rules() {
        let name = |n: &str| lookup(n).map(|(n, _)| format!("{}{}", n.prefix, n.suffix));
        let cases = [
            (
                "haproxy_process_current_connections",
                "octavia_loadbalancer_current_connections",
            ),
            (
                "haproxy_process_pool_used_bytes",
                "octavia_memory_pool_used_bytes",
            ),
            (
                "haproxy_frontend_bytes_in_total",
                "octavia_listener_bytes_in_total",
            ),
            (
                "haproxy_backend_active_servers",
                "octavia_pool_active_members",
            ),
            (
                "haproxy_backend_server_aborts_total",
                "octavia_pool_member_aborts_total",
            ),
            ("haproxy_backend_status", "octavia_pool_status"),
            (
                "haproxy_server_server_aborts_total",
                "octavia_member_server_aborts_total",
            ),
            ("haproxy_server_weight", "octavia_member_weight"),
        ];
        for (from, to) in cases {
            assert_eq!(name(from).as_deref(), Some(to), "{from}");
        }
        for dropped in [
            "haproxy_process_uptime_seconds",
            "haproxy_frontend_internal_errors_total",
            "haproxy_backend_weight",
            "haproxy_server_check_status",
            "haproxy_sticktable_size",
            "haproxy_process_",
            "haproxy_server_weightx",
        ] {
            assert_eq!(name(dropped), None, "{dropped}");
        }
    }

    #[test]
    fn samples_are_renamed_with_their_labels() {
        let text = "\
haproxy_frontend_bytes_in_total{proxy=\"fe1\"} 246
haproxy_server_status{proxy=\"p1:l1\",server=\"m1\",state=\"UP\"} 1
haproxy_backend_active_servers{proxy=\"p1:l1\"} 2
haproxy_process_current_connections 3
haproxy_process_uptime_seconds 100
haproxy_backend_weight{proxy=\"p1:l1\"} 2
";
        assert_eq!(
            run(text),
            "\
octavia_listener_bytes_in_total{listener=\"fe1\"} 246
octavia_member_status{pool=\"p1:l1\",member=\"m1\",state=\"UP\"} 1
octavia_pool_active_members{pool=\"p1:l1\"} 2
octavia_loadbalancer_current_connections 3
"
        );
    }

    #[test]
    fn help_and_type_lines_are_renamed_and_some_reworded() {
        let text = "\
# HELP haproxy_frontend_bytes_in_total Total number of request bytes since process started
# TYPE haproxy_frontend_bytes_in_total counter
# HELP haproxy_server_weight Server's effective weight, or sum of active servers' effective weights for a backend
# TYPE haproxy_server_weight gauge
# HELP haproxy_process_uptime_seconds How long ago this worker process was started (seconds)
# TYPE haproxy_process_uptime_seconds gauge
# EOF
";
        assert_eq!(
            run(text),
            "\
# HELP octavia_listener_bytes_in_total Total number of request bytes since process started
# TYPE octavia_listener_bytes_in_total counter
# HELP octavia_member_weight The member's effective weight.
# TYPE octavia_member_weight gauge
"
        );
    }

    #[test]
    fn the_internal_exporter_loop_is_dropped() {
        let text = "\
haproxy_frontend_bytes_in_total{proxy=\"prometheus-exporter-internal-endpoint\"} 0
haproxy_backend_status{proxy=\"prometheus-exporter-internal\",state=\"UP\"} 1
haproxy_server_status{proxy=\"prometheus-exporter-internal\",server=\"prometheus-internal\",state=\"UP\"} 1
haproxy_frontend_bytes_in_total{proxy=\"l1\"} 7
";
        assert_eq!(
            run(text),
            "octavia_listener_bytes_in_total{listener=\"l1\"} 7\n"
        );
    }

    #[test]
    fn only_label_names_are_renamed() {
        // A value holding `proxy=` or `,server=` is left as it is, escapes included.
        let text =
            "haproxy_server_weight{proxy=\"a,server=\\\"x\\\"\",server=\"proxy=\"} 1 1700000000\n";
        assert_eq!(
            run(text),
            "octavia_member_weight{pool=\"a,server=\\\"x\\\"\",member=\"proxy=\"} 1 1700000000\n"
        );
    }

    #[test]
    fn broken_lines_are_dropped() {
        for bad in [
            "haproxy_server_weight{proxy=\"a\" 1",
            "haproxy_server_weight{proxy=a} 1",
            "haproxy_server_weight{proxy=\"a} 1",
            "haproxy_server_weight",
            "",
            "#",
            "# HELP",
        ] {
            assert_eq!(run(bad), "", "{bad:?}");
        }
        assert_eq!(
            run("haproxy_server_weight{} 1\n# TYPE haproxy_server_weight\n"),
            "octavia_member_weight{} 1\n# TYPE octavia_member_weight\n"
        );
    }

    #[test]
    fn crlf_and_a_missing_last_newline_are_read() {
        assert_eq!(
            run("haproxy_process_listeners 2\r\nhaproxy_process_max_connections 9"),
            "octavia_loadbalancer_listeners 2\noctavia_loadbalancer_max_connections 9\n"
        );
    }
}
