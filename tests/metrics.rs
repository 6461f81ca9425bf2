//! `GET /metrics` (issue 16, item 1), scraped as Prometheus would: checked by Prometheus's own
//! `promtool`, its HAProxy figures against the listener's own `show stat` and against HAProxy's
//! built-in exporter serving the same process, and the agent's own counters after the calls
//! that move them.

mod common;

use common::{call, curl, free_port, haproxy_cli, Agent, Haproxy, Resp, TempDir};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Series of a scrape: `name{labels, sorted}` to value, for one `listener` label (dropped from
/// the key) or for a text without that label.
fn series(text: &str, listener: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut pairs: Vec<(&str, &str)> = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once("=\"").unwrap();
                (k, v.trim_end_matches('"'))
            })
            .collect();
        let own = pairs.iter().find(|(k, _)| *k == "listener").map(|p| p.1);
        if own != listener {
            continue;
        }
        pairs.retain(|(k, _)| *k != "listener");
        pairs.sort();
        let labels: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        out.insert(format!("{name}{{{}}}", labels.join(",")), value.to_string());
    }
    out
}

/// One series' value.
fn value<'a>(series: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    series.get(key).map(String::as_str)
}

/// Each family's TYPE.
fn types(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect()
}

/// `promtool check metrics` on `text`: its complaints (errors and lint), empty when none.
fn promtool(test: &str, text: &str) -> Option<String> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        common::skip(
            test,
            "promtool (Debian package prometheus) is not installed",
        );
        return None;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() || !said.is_empty(), "promtool failed");
    Some(said)
}

fn scrape(agent: &Agent, dir: &TempDir) -> Resp {
    let r = call(agent, dir, "GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r
}

/// A load balancer with two checked servers (one up, one refusing) and HAProxy's own exporter
/// on `exporter`.
fn lb(front: u16, exporter: u16, member: u16) -> String {
    common::http_lb(
        &[&format!("127.0.0.1:{front}")],
        &format!(
            "    default_backend pool1\n\
backend pool1\n    server up 127.0.0.1:{member} check inter 200ms\n\
    server refusing 127.0.0.1:{} check inter 200ms\n\
backend empty\n\
frontend exporter\n    bind 127.0.0.1:{exporter}\n\
    http-request use-service prometheus-exporter\n",
            free_port()
        ),
    )
}

#[test]
fn a_scrape_passes_promtool_and_says_what_haproxy_says() {
    const TEST: &str = "a_scrape_passes_promtool_and_says_what_haproxy_says";
    let dir = TempDir::new("metrics");
    let main = Haproxy::start(
        &dir,
        &format!(
            "frontend fe\n    bind 127.0.0.1:{}\n    default_backend be\n\
backend be\n    server s1 127.0.0.1:1 disabled\n",
            free_port()
        ),
    );
    let agent = Agent::start(
        &dir,
        &format!("socat: {}\nfe: ['be']\n", main.sock.display()),
    );
    let (front, exporter) = (free_port(), free_port());
    common::start_lb(
        &agent,
        &dir,
        "lb1",
        &lb(front, exporter, common::http_backend()),
    );
    let sock = dir.path("state/listeners/lb1/run/stats.sock");
    common::wait_for("the checks to settle", Duration::from_secs(10), || {
        let stat = haproxy_cli(&sock, "show stat");
        stat.contains("pool1,up,")
            && stat
                .lines()
                .any(|l| l.starts_with("pool1,refusing,") && l.contains(",DOWN,"))
    });
    for _ in 0..7 {
        let r = curl(&[&format!("http://127.0.0.1:{front}/")]).unwrap();
        assert_eq!(r.status, 200);
    }

    let body = scrape(&agent, &dir).body;
    if let Some(said) = promtool(TEST, &body) {
        assert_eq!(said, "", "promtool on\n{body}");
    }
    let ours = series(&body, Some("lb1"));

    // The listener's own `show stat`, field by field.
    let stat = haproxy_cli(&sock, "show stat");
    let header: Vec<&str> = stat.lines().next().unwrap()[2..].split(',').collect();
    let row = |px: &str, sv: &str| -> BTreeMap<&str, String> {
        let line = stat
            .lines()
            .find(|l| l.starts_with(&format!("{px},{sv},")))
            .unwrap();
        header
            .iter()
            .copied()
            .zip(line.split(',').map(String::from))
            .collect()
    };
    let (fe, be, srv) = (
        row("f", "FRONTEND"),
        row("pool1", "BACKEND"),
        row("pool1", "up"),
    );
    assert_eq!(fe["req_tot"], "7", "{stat}");
    for (metric, want) in [
        ("haproxy_frontend_bytes_in_total{proxy=\"f\"}", &fe["bin"]),
        ("haproxy_frontend_bytes_out_total{proxy=\"f\"}", &fe["bout"]),
        ("haproxy_frontend_sessions_total{proxy=\"f\"}", &fe["stot"]),
        (
            "haproxy_frontend_http_requests_total{proxy=\"f\"}",
            &fe["req_tot"],
        ),
        (
            "haproxy_frontend_http_responses_total{code=\"2xx\",proxy=\"f\"}",
            &fe["hrsp_2xx"],
        ),
        (
            "haproxy_backend_sessions_total{proxy=\"pool1\"}",
            &be["stot"],
        ),
        (
            "haproxy_backend_active_servers{proxy=\"pool1\"}",
            &be["act"],
        ),
        (
            "haproxy_server_sessions_total{proxy=\"pool1\",server=\"up\"}",
            &srv["stot"],
        ),
        (
            "haproxy_server_bytes_out_total{proxy=\"pool1\",server=\"up\"}",
            &srv["bout"],
        ),
    ] {
        assert_eq!(ours.get(metric), Some(want), "{metric} in\n{body}");
    }
    for (metric, want) in [
        (
            "haproxy_server_status{proxy=\"pool1\",server=\"up\",state=\"UP\"}",
            "1",
        ),
        (
            "haproxy_server_status{proxy=\"pool1\",server=\"refusing\",state=\"DOWN\"}",
            "1",
        ),
        (
            "haproxy_server_check_status{proxy=\"pool1\",server=\"refusing\",state=\"L4CON\"}",
            "1",
        ),
        (
            "haproxy_backend_agg_server_status{proxy=\"pool1\",state=\"UP\"}",
            "1",
        ),
        (
            "haproxy_backend_agg_server_status{proxy=\"pool1\",state=\"DOWN\"}",
            "1",
        ),
        ("lbagent_haproxy_up{}", "1"),
    ] {
        assert_eq!(value(&ours, metric), Some(want), "{metric} in\n{body}");
    }
    // HApi's main HAProxy is in the same scrape, under its own label.
    let main_series = series(&body, Some("_main"));
    assert_eq!(
        main_series
            .get("haproxy_server_status{proxy=\"be\",server=\"s1\",state=\"MAINT\"}")
            .map(String::as_str),
        Some("1"),
        "{body}"
    );

    // HAProxy's own exporter, on the same process: the same series, the same types, and the
    // same values for every counter that no scrape moves.
    let theirs_text = curl(&[&format!("http://127.0.0.1:{exporter}/metrics")])
        .unwrap()
        .body;
    let theirs = series(&theirs_text, None);
    let ours = series(&scrape(&agent, &dir).body, Some("lb1"));
    let moves = |key: &str| {
        key.contains("proxy=\"exporter\"")
            || key.starts_with("haproxy_process_")
            || key.contains("_seconds")
            || key.contains("_rate")
            || key.contains("idle_connections")
            || key.contains("check_")
    };
    let (mut compared, mut wrong) = (0, Vec::new());
    for (key, value) in theirs
        .iter()
        .filter(|(k, _)| !k.contains("proxy=\"exporter\""))
    {
        match ours.get(key) {
            None => wrong.push(format!("missing: {key}")),
            Some(mine) if !moves(key) && mine != value => {
                wrong.push(format!("{key}: {mine}, HAProxy's {value}"))
            }
            Some(_) => compared += 1,
        }
    }
    for key in ours.keys() {
        if !theirs.contains_key(key) && !key.starts_with("lbagent_") {
            wrong.push(format!("not in HAProxy's exporter: {key}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(compared > 100, "only {compared} values compared");
    let (our_types, their_types) = (types(&body), types(&theirs_text));
    for (family, kind) in &their_types {
        if let Some(mine) = our_types.get(family) {
            // A counter without `_total` breaks the format's rule: served untyped.
            if *family != "haproxy_process_failed_resolutions" {
                assert_eq!(mine, kind, "TYPE of {family}");
            }
        }
    }
}

#[test]
fn a_haproxy_that_does_not_answer_costs_only_its_series() {
    let dir = TempDir::new("metrics");
    let agent = Agent::start(
        &dir,
        &format!(
            "socat: {}\nfe: ['be']\nuser: u\npassword: p\n",
            dir.path("no-such.sock").display()
        ),
    );
    let (front, exporter) = (free_port(), free_port());
    let url = |path: &str| agent.url("http", path);
    let f = dir.write("lb.cfg", &lb(front, exporter, common::http_backend()));
    let put = |path: &str, data: Option<&std::path::Path>| {
        let mut args = vec![
            "-u".to_string(),
            "u:p".into(),
            "-X".into(),
            "PUT".into(),
            url(path),
        ];
        if let Some(d) = data {
            args.extend(["--data-binary".into(), format!("@{}", d.display())]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args).unwrap()
    };
    assert_eq!(
        put("/1.0/loadbalancer/amp/lb1/haproxy", Some(&f)).status,
        202
    );
    assert_eq!(put("/1.0/loadbalancer/lb1/start", None).status, 202);
    assert_eq!(put("/1.0/loadbalancer/lb1/reload", None).status, 202);
    assert_eq!(put("/1.0/loadbalancer/nope/reload", None).status, 404);
    for _ in 0..3 {
        assert_eq!(curl(&[&url("/metrics")]).unwrap().status, 401);
    }

    // The second scrape counts the first.
    let get = || curl(&["-u", "u:p", &url("/metrics")]).unwrap();
    assert_eq!(get().status, 200);
    let r = get();
    assert_eq!(r.status, 200, "{}", r.body);
    let all = series(&r.body, None);
    let main = series(&r.body, Some("_main"));
    let lb1 = series(&r.body, Some("lb1"));
    assert_eq!(value(&main, "lbagent_haproxy_up{}"), Some("0"));
    assert_eq!(main.len(), 1, "{main:?}");
    assert_eq!(value(&lb1, "lbagent_haproxy_up{}"), Some("1"));
    assert!(lb1.contains_key("haproxy_frontend_bytes_in_total{proxy=\"f\"}"));
    for (key, want) in [
        ("lbagent_login_failures_total{}", "3"),
        ("lbagent_listener_actions_total{action=\"start\",result=\"ok\"}", "1"),
        ("lbagent_listener_actions_total{action=\"reload\",result=\"ok\"}", "1"),
        (
            "lbagent_http_requests_total{method=\"PUT\",route=\"/1.0/loadbalancer/{lb}/{action}\",status=\"202\"}",
            "2",
        ),
        (
            "lbagent_http_requests_total{method=\"GET\",route=\"none\",status=\"401\"}",
            "3",
        ),
        ("lbagent_connections_refused_total{}", "0"),
    ] {
        assert_eq!(value(&all, key), Some(want), "{key} in\n{}", r.body);
    }
    for family in [
        "process_resident_memory_bytes{}",
        "process_threads{}",
        "process_open_fds{}",
        "process_start_time_seconds{}",
        "lbagent_connections_open{}",
        "lbagent_http_request_duration_seconds_count{route=\"/metrics\"}",
    ] {
        assert!(all.contains_key(family), "{family} in\n{}", r.body);
    }
    if let Some(said) = promtool(
        "a_haproxy_that_does_not_answer_costs_only_its_series",
        &r.body,
    ) {
        assert_eq!(said, "", "promtool on\n{}", r.body);
    }
}

/// A scrape larger than what the front holds for one client (`max_body` + 1 MiB, and more
/// than the sockets between hold) still reaches a client that reads it slowly: the rest waits
/// inside the agent while the client takes it.
#[test]
fn a_scrape_larger_than_the_front_holds_reaches_a_slow_reader() {
    use std::io::Read;
    let dir = TempDir::new("metrics");
    let agent = Agent::start(
        &dir,
        "max_body: 262144
",
    );
    let servers: String = (0..3000)
        .map(|i| format!("    server m{i} 127.0.0.1:1 disabled\n"))
        .collect();
    let cfg = common::http_lb(
        &[&format!("127.0.0.1:{}", free_port())],
        &format!("    default_backend pool1\nbackend pool1\n{servers}"),
    );
    common::start_lb(&agent, &dir, "lb1", &cfg);

    let mut s = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // A second of slow reading (the agent has all of it by then), then the rest.
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 32 * 1024];
    for _ in 0..20 {
        let n = s.read(&mut chunk).unwrap();
        got.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(50));
    }
    s.read_to_end(&mut got).unwrap();
    let text = String::from_utf8(got).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 12 << 20, "only {length} bytes: not a test");
    assert_eq!(body.len(), length, "{head}");
    assert!(body.contains("lbagent_haproxy_up{listener=\"lb1\"} 1\n"));
    assert!(!agent.app_log().contains("cut off"), "{}", agent.app_log());
}

/// A HAProxy that stopped answering (SIGSTOP: its socket accepts, nothing replies) costs its own
/// series after a short wait, never the scrape.
#[test]
fn a_haproxy_that_hangs_costs_its_series_not_the_scrape() {
    let dir = TempDir::new("metrics");
    let agent = Agent::start(&dir, "");
    let cfg = common::http_lb(
        &[&format!("127.0.0.1:{}", free_port())],
        "    default_backend pool1\nbackend pool1\n    server m1 127.0.0.1:1 disabled\n",
    );
    common::start_lb(&agent, &dir, "lb1", &cfg);
    let lb1 = series(&scrape(&agent, &dir).body, Some("lb1"));
    assert_eq!(value(&lb1, "lbagent_haproxy_up{}"), Some("1"));

    let pids = common::haproxy_pids(&dir.path("state/listeners/lb1").display().to_string());
    assert!(!pids.is_empty());
    let signal = |sig| {
        for pid in &pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(*pid as i32, sig) };
        }
    };
    signal(libc::SIGSTOP);
    let started = std::time::Instant::now();
    let r = call(&agent, &dir, "GET", "/metrics", None);
    let took = started.elapsed();
    signal(libc::SIGCONT);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(took < Duration::from_secs(5), "the scrape took {took:?}");
    let lb1 = series(&r.body, Some("lb1"));
    assert_eq!(value(&lb1, "lbagent_haproxy_up{}"), Some("0"));
    assert_eq!(lb1.len(), 1, "{lb1:?}");
    assert!(
        r.body.contains("\nlbagent_connections_total "),
        "{}",
        r.body
    );
}
