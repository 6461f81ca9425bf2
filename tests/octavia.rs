//! Octavia's own controller code drives the real agent: tests/octavia/conformance.py runs
//! `rest_api_driver`'s client and driver classes and Octavia's jinja templates, from PyPI's
//! `octavia` package in a venv this test makes, against lbagent over HTTPS with client
//! certificates; tests/octavia/heartbeats.py feeds its health manager the agent's heartbeats, and
//! tests/octavia/active_standby.py sets up and fails over an ACTIVE_STANDBY pair in network
//! namespaces; tests/octavia/promproxy.py renders a PROMETHEUS listener's config and serves
//! Octavia's own metrics proxy beside the agent's. Skipped (with a SKIP line) only when PyPI
//! cannot be reached or, for the pair and the metrics proxy, without root, and never under CI.

mod common;

use common::{Agent, Netns, Pki, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The controller versions checked (README names them): PyPI's newest, and an older release.
const NEWEST: &str = "19.0.0";
const OLDER: &str = "16.0.1";
const AMPHORA_ID: &str = "6e2bc8a0-2548-4fb7-a5f0-fb1ef4a696ce";

fn pypi_reachable() -> bool {
    Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "--max-time",
            "20",
            "https://pypi.org/simple/octavia/",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// A venv with Octavia `version` in it, kept between runs under cargo's target dir; None
/// without PyPI.
fn octavia_python(version: &str) -> Option<PathBuf> {
    // Two tests of one version must not build its venv at once (each would remove the
    // other's); the tests of this file share one process.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-octavia-{version}"));
    let python = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import octavia.amphorae.drivers.haproxy.rest_api_driver",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Some(python);
    }
    if !pypi_reachable() {
        return None;
    }
    let _ = std::fs::remove_dir_all(&venv);
    common::run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    // pyroute2: the driver imports the agent-side network helpers too.
    common::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        &format!("octavia=={version}"),
        "pyroute2",
    ]));
    assert!(
        ready(&python),
        "octavia installed but its client does not import"
    );
    Some(python)
}

/// A PKI whose server certificate names the amphora (Octavia's client checks the agent's
/// certificate against the amphora id, a DNS name), and that certificate with its key in one
/// PEM in `dir`, as the agent takes it.
fn amphora_pki(dir: &TempDir) -> (Pki, PathBuf) {
    let pki = Pki::new();
    pki.issue(
        "amphora",
        &format!("/CN={AMPHORA_ID}"),
        &format!("subjectAltName=DNS:{AMPHORA_ID},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
    );
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(pki.file("amphora.key")).unwrap(),
        std::fs::read_to_string(pki.file("amphora.pem")).unwrap()
    );
    let bundle = dir.write("amphora-bundle.pem", &bundle);
    (pki, bundle)
}

#[test]
fn octavias_newest_client_drives_the_agent() {
    conformance(NEWEST);
}

#[test]
fn an_older_octavia_client_drives_the_agent() {
    conformance(OLDER);
}

fn conformance(version: &str) {
    let Some(python) = octavia_python(version) else {
        common::skip(
            &format!("Octavia {version} conformance"),
            "PyPI is unreachable, cannot install it",
        );
        return;
    };
    let dir = TempDir::new("octavia");
    let (pki, bundle) = amphora_pki(&dir);
    let agent = Agent::start(
        &dir,
        &format!(
            "sslcrt: {0}\nsslkey: {0}\nclient_ca: {1}\n",
            bundle.display(),
            pki.file("ca.pem")
        ),
    );
    // Where Octavia's template puts each load balancer's stats socket and server state.
    let base = dir.path("octavia-base");
    std::fs::create_dir_all(&base).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/octavia/conformance.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["--url", &agent.url("https", "")])
        .args(["--ca", &pki.file("ca.pem")])
        .args([
            "--cert",
            &pki.file("client.pem"),
            "--key",
            &pki.file("client.key"),
        ])
        .args(["--amphora-id", AMPHORA_ID])
        .arg("--agent-base-path")
        .arg(&base)
        .arg("--agent-cert-dir")
        .arg(dir.path("certs"))
        .arg("--rotate-cert")
        .arg(&bundle)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "conformance with Octavia {version} failed"
    );
    assert!(!text.contains("FAIL "), "{text}");
    assert!(!text.contains("SKIP "), "every step runs here: {text}");
    assert!(
        text.contains("PASS  B03 "),
        "the driver's listener update ran"
    );
}

/// Heartbeats judged by Octavia's own health manager (tests/octavia/heartbeats.py), from an
/// agent run on an amphora-agent.conf as an amphora image would run it; the script asks for an
/// agent restart halfway (RESTART on its stdout, a line back on its stdin when done).
#[test]
fn octavias_health_manager_accepts_the_heartbeats() {
    heartbeats(NEWEST);
}

#[test]
fn an_older_octavia_health_manager_accepts_the_heartbeats() {
    heartbeats(OLDER);
}

fn heartbeats(version: &str) {
    use std::io::{BufRead, BufReader, Write};
    let Some(python) = octavia_python(version) else {
        common::skip(
            &format!("Octavia {version} heartbeats"),
            "PyPI is unreachable, cannot install Octavia",
        );
        return;
    };
    let dir = TempDir::new("octhb");
    let (pki, bundle) = amphora_pki(&dir);
    let base = dir.path("octavia-base");
    let port = common::free_port();
    let ini = format!(
        "[DEFAULT]\ndebug = False\n[haproxy_amphora]\nbase_cert_dir = {}\nbase_path = {}\n\
bind_host = 127.0.0.1\nbind_port = {port}\n[amphora_agent]\nagent_server_ca = {}\n\
agent_server_cert = {}\namphora_id = {AMPHORA_ID}\n",
        dir.path("certs").display(),
        base.display(),
        pki.file("ca.pem"),
        bundle.display()
    );
    let mut agent = Agent::start_octavia(&dir, &ini);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/octavia/heartbeats.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .args(["--url", &agent.url("https", "")])
        .args(["--ca", &pki.file("ca.pem")])
        .args(["--cert", &pki.file("client.pem")])
        .args(["--key", &pki.file("client.key")])
        .args(["--amphora-id", AMPHORA_ID])
        .arg("--base-path")
        .arg(&base)
        .arg("--cert-dir")
        .arg(dir.path("certs"))
        .arg("--server-cert")
        .arg(&bundle)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        eprintln!("{line}");
        if line == "RESTART" {
            agent.child.kill().unwrap();
            agent.child.wait().unwrap();
            agent = Agent::restart_octavia(&dir);
            stdin.write_all(b"\n").unwrap();
        }
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert!(status.success(), "{text}\nagent log:\n{log}");
    assert!(!text.contains("FAIL "), "{text}");
    assert!(text.contains("PASS  C07 "), "{text}");
}

/// The second amphora of the ACTIVE_STANDBY pair.
const BACKUP_ID: &str = "0c1e4b6d-93a7-4f3e-8d2a-5b7c9e1f2a40";

/// An amphora of the pair: a network namespace with a management port (addressed, as the
/// image's boot leaves it) and a VIP-network port left down and unaddressed for the plug, and the
/// agent in it on an amphora-agent.conf. Fields drop in order: the agent, then its HAProxies and
/// keepalived (with the directory), then the namespace.
struct Amphora {
    agent: Agent,
    dir: TempDir,
    ns: Netns,
    id: &'static str,
    mgmt: &'static str,
    mac: &'static str,
}

impl Amphora {
    fn new(
        client: &Netns,
        (tag, id, mgmt, mac): (&str, &'static str, &'static str, &'static str),
        pki: &Pki,
        bundle: &Path,
    ) -> Amphora {
        let ns = Netns::new(tag);
        let (to_mgmt, to_vip) = (format!("mgmt-{tag}"), format!("vip-{tag}"));
        // The management port, addressed as the image's boot leaves it; the VIP network's port,
        // with its Neutron MAC, down and unaddressed until the plug.
        for (dev, peer, bridge) in [("eth0", &to_mgmt, "br-mgmt"), ("eth1", &to_vip, "br-vip")] {
            let add = ["link", "add", dev, "type", "veth", "peer", "name"];
            ns.ip(&[&add[..], &[peer, "netns", &client.name]].concat());
            client.ip(&["link", "set", peer, "master", bridge, "up"]);
        }
        ns.ip(&["link", "set", "eth1", "address", mac]);
        ns.ip(&["addr", "add", &format!("{mgmt}/24"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        // The image's setting: the standby's HAProxy binds the VIP it does not hold. (A process
        // in the namespace sees its /proc/sys/net: no sysctl(8) needed.)
        let nonlocal_bind = "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind";
        common::run(
            Command::new("ip")
                .args(["netns", "exec", &ns.name, "sh", "-c"])
                .arg(nonlocal_bind),
        );
        let dir = TempDir::new(tag);
        let base = dir.path("base");
        let ini = format!(
            "[DEFAULT]\ndebug = False\n[haproxy_amphora]\nbase_cert_dir = {0}/certs\n\
base_path = {0}\nbind_host = {mgmt}\nbind_port = 9443\n[amphora_agent]\nagent_server_ca = {1}\n\
agent_server_cert = {2}\namphora_id = {id}\n[controller_worker]\n\
loadbalancer_topology = ACTIVE_STANDBY\n",
            base.display(),
            pki.file("ca.pem"),
            bundle.display()
        );
        let agent = Agent::start_octavia_in(&dir, &ini, Some(&ns.name));
        Amphora {
            agent,
            dir,
            ns,
            id,
            mgmt,
            mac,
        }
    }

    fn logs(&self) -> String {
        let keepalived = self.dir.path("base/keepalived/keepalived.log");
        format!(
            "--- {} agent log:\n{}--- keepalived log:\n{}",
            self.id,
            self.agent.app_log(),
            std::fs::read_to_string(keepalived).unwrap_or_default()
        )
    }
}

/// Issue 19's proof with Octavia's own controller code (tests/octavia/active_standby.py): an
/// ACTIVE_STANDBY pair set up as Octavia's controller sets it up (agent config, VIP plug,
/// keepalived config, a load balancer whose stick table is synced through `peers`) holds the VIP
/// on its MASTER only, syncs the client's stick-table entry to the BACKUP, and fails over within
/// seconds, the client served again on the new holder's MAC, when the MASTER's keepalived stops
/// and when the holder's HAProxy hangs. The controller runs in the client's namespace, which is
/// the VIP network's gateway and the management network's host.
#[test]
fn octavias_active_standby_pair_fails_over() {
    const TEST: &str = "octavias_active_standby_pair_fails_over";
    if common::lacks_root(TEST, "for network namespaces and keepalived") {
        return;
    }
    let Some(python) = octavia_python(NEWEST) else {
        common::skip(TEST, "PyPI is unreachable, cannot install Octavia");
        return;
    };
    let started = std::time::Instant::now();
    let pki = Pki::new();
    // Octavia's client checks the agent's certificate against the amphora id: one certificate
    // names both.
    pki.issue(
        "amphorae",
        "/CN=amphorae",
        &format!("subjectAltName=DNS:{AMPHORA_ID},DNS:{BACKUP_ID}\nextendedKeyUsage=serverAuth\n"),
    );
    let bundle = pki.dir.write(
        "amphorae-bundle.pem",
        &format!(
            "{}{}",
            std::fs::read_to_string(pki.file("amphorae.key")).unwrap(),
            std::fs::read_to_string(pki.file("amphorae.pem")).unwrap()
        ),
    );
    let client = Netns::new("hacli");
    for (bridge, address) in [("br-mgmt", "198.51.100.1/24"), ("br-vip", "203.0.113.1/24")] {
        client.ip(&["link", "add", bridge, "type", "bridge"]);
        client.ip(&["addr", "add", address, "dev", bridge]);
        client.ip(&["link", "set", bridge, "up"]);
    }
    // The member the script serves.
    client.ip(&["addr", "add", "203.0.113.100/24", "dev", "br-vip"]);
    let pair = [
        ("haa", AMPHORA_ID, "198.51.100.11", "fa:16:3e:19:00:0a"),
        ("hab", BACKUP_ID, "198.51.100.12", "fa:16:3e:19:00:0b"),
    ]
    .map(|spec| Amphora::new(&client, spec, &pki, &bundle));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/octavia/active_standby.py");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &client.name])
        .arg(&python)
        .arg(&script)
        .args(["--ca", &pki.file("ca.pem")])
        .args(["--cert", &pki.file("client.pem")])
        .args(["--key", &pki.file("client.key")])
        .arg("--server-cert")
        .arg(&bundle)
        .args(["--port", "9443"]);
    for amp in &pair {
        cmd.args(["--amphora", amp.id, amp.mgmt])
            .arg(amp.dir.path("base"))
            .args([&amp.ns.name, amp.mac]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let logs = || pair.iter().map(Amphora::logs).collect::<String>();
    assert!(out.status.success(), "{text}\n{}", logs());
    assert!(!text.contains("FAIL "), "{text}");
    assert!(text.contains("PASS  D10 "), "{text}");

    // Nothing is left behind: no HAProxy or keepalived, no namespace.
    let dirs: Vec<String> = pair.iter().map(|a| a.dir.0.display().to_string()).collect();
    let mut names: Vec<String> = pair.iter().map(|a| a.ns.name.clone()).collect();
    names.push(client.name.clone());
    drop(pair);
    drop(client);
    for dir in &dirs {
        let left = common::haproxy_pids(dir);
        assert!(left.is_empty(), "still running under {dir}: {left:?}");
    }
    let list = common::run(Command::new("ip").args(["netns", "list"]));
    let list = String::from_utf8_lossy(&list.stdout);
    for name in &names {
        let left = list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str()));
        assert!(!left, "{name} left: {list}");
    }
    eprintln!("{TEST}: {:.1} s", started.elapsed().as_secs_f64());
}

/// A helper of tests/octavia/promproxy.py serving inside `ns` (Octavia's proxy, or a replayed
/// exporter) until dropped.
struct Served(std::process::Child);

impl Served {
    fn start(python: &Path, ns: &Netns, dir: &TempDir, args: &[&str]) -> Served {
        use std::io::{BufRead, BufReader};
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/octavia/promproxy.py");
        // Octavia's proxy prints a traceback for each 502: kept out of the test's output.
        let log = std::fs::File::create(dir.path(&format!("promproxy-{}.log", args[0]))).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(python)
            .arg(script)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Octavia's proxy prints why it answers 502: its stdout must stay open.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let served = Served(child);
        assert_eq!(
            line, "READY\n",
            "promproxy.py {args:?} did not start (see its log)"
        );
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scrape's text, by part: each series' value, each metric's TYPE, the metrics with a HELP.
#[derive(Debug)]
struct Exposition {
    samples: std::collections::BTreeMap<String, String>,
    types: std::collections::BTreeMap<String, String>,
    helps: std::collections::BTreeSet<String>,
}

fn exposition(text: &str) -> Exposition {
    let mut e = Exposition {
        samples: Default::default(),
        types: Default::default(),
        helps: Default::default(),
    };
    for line in text.lines() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let name = help.split(' ').next().unwrap();
            assert!(e.helps.insert(name.to_string()), "two HELP for {name}");
        } else if let Some(ty) = line.strip_prefix("# TYPE ") {
            let (name, ty) = ty.split_once(' ').unwrap();
            assert!(e.types.insert(name.into(), ty.into()).is_none(), "{line}");
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let again = e.samples.insert(series.into(), value.into());
            assert!(again.is_none(), "{series} twice");
        }
    }
    e
}

/// Asserts that two scrapes name the same metrics with the same types, the same series
/// (metric and label set) and the same values, but for the metrics in `moving`; returns how
/// many values were compared.
fn same_scrape(ours: &str, octavias: &str, moving: &[&str]) -> usize {
    let (ours, octavias) = (exposition(ours), exposition(octavias));
    assert_eq!(ours.helps, octavias.helps);
    assert_eq!(ours.types, octavias.types);
    let series = |e: &Exposition| e.samples.keys().cloned().collect::<Vec<_>>();
    assert_eq!(series(&ours), series(&octavias));
    let mut compared = 0;
    for (series, value) in &ours.samples {
        let metric = series.split('{').next().unwrap();
        if !moving.contains(&metric) {
            assert_eq!(value, &octavias.samples[series], "{series}");
            compared += 1;
        }
    }
    compared
}

/// Change from one moment to the next: the gauges of the host; and HAProxy's process-wide
/// figures, which count each scrape's connection to the exporter (and the agent's to the stats
/// socket) and the memory they take, and the time since a check changed.
const TIMING: [&str; 2] = ["octavia_loadbalancer_cpu", "octavia_loadbalancer_memory"];
const SCRAPE_DEPENDENT: [&str; 13] = [
    "octavia_loadbalancer_cpu",
    "octavia_loadbalancer_memory",
    "octavia_loadbalancer_current_connections",
    "octavia_loadbalancer_connections_total",
    "octavia_loadbalancer_requests_total",
    "octavia_loadbalancer_current_connection_rate",
    "octavia_loadbalancer_max_connection_rate",
    "octavia_loadbalancer_current_session_rate",
    "octavia_loadbalancer_max_session_rate",
    "octavia_memory_pool_allocated_bytes",
    "octavia_memory_pool_used_bytes",
    "octavia_pool_check_last_change_seconds",
    "octavia_member_check_last_change_seconds",
];

/// Issue 16's proof for the metrics proxy: a load balancer rendered by Octavia 19.0.0's own
/// templates (an HTTP listener and a PROMETHEUS listener) runs under the agent in a network
/// namespace of its own. After traffic through the HTTP listener, the agent's proxy on 9102 and
/// Octavia's own proxy code (octavia.cmd.prometheus_proxy, served on 9103) scraping the same
/// HAProxy give the same metric names, types, series and values but for the figures that move
/// between two scrapes; the PROMETHEUS listener answers a scrape through the load balancer;
/// both answer 502 while HAProxy is stopped; and fed one recorded exporter text, both give the
/// same values to the last one, but for the host's CPU and memory.
#[test]
fn octavias_metrics_proxy_and_the_agents_agree() {
    const TEST: &str = "octavias_metrics_proxy_and_the_agents_agree";
    if common::lacks_root(TEST, "for a network namespace (its own ports 9101-9103)") {
        return;
    }
    let Some(python) = octavia_python(NEWEST) else {
        common::skip(TEST, "PyPI is unreachable, cannot install Octavia");
        return;
    };
    let started = std::time::Instant::now();
    let ns = Netns::new("prom");
    let dir = TempDir::new("prom");
    let member = common::http_backend_in(&ns.name);
    let render = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/octavia/promproxy.py"))
        .arg("render")
        .arg("--base-path")
        .arg(dir.path("octavia-base"))
        .arg("--cert-dir")
        .arg(dir.path("certs"))
        .args(["--http-port", "8080", "--prometheus-port", "8081"])
        .args(["--member-port", &member.to_string()])
        .output()
        .unwrap();
    assert!(render.status.success(), "{render:?}");
    std::fs::create_dir_all(dir.path("octavia-base")).unwrap();
    let cfg = String::from_utf8(render.stdout).unwrap();
    let ids = cfg.lines().last().and_then(|l| l.strip_prefix("# ids "));
    let ids: Vec<&str> = ids.unwrap().split(' ').collect();
    let (lb, listener, pool, member_id) = (ids[0], ids[1], ids[2], ids[3]);

    let agent = Agent::start_in(&dir, "prometheus_proxy: true\n", Some(&ns.name));
    common::start_lb(&agent, &dir, lb, &cfg);
    let get = |port: u16, path: &str| {
        common::curl_in(Some(&ns.name), &[&format!("http://127.0.0.1:{port}{path}")])
    };
    common::wait_for(
        "HAProxy's exporter",
        std::time::Duration::from_secs(10),
        || get(9101, "/metrics").is_ok_and(|r| r.status == 200),
    );
    for _ in 0..5 {
        assert_eq!(get(8080, "/").unwrap().status, 200);
    }
    let _octavia = Served::start(&python, &ns, &dir, &["octavia", "--port", "9103"]);

    let ours = get(9102, "/metrics").unwrap();
    let octavias = get(9103, "/metrics").unwrap();
    assert_eq!((ours.status, octavias.status), (200, 200), "{}", ours.body);
    for h in ["content-type", "cache-control", "connection"] {
        assert_eq!(ours.header(h), octavias.header(h), "{h}");
    }
    let compared = same_scrape(&ours.body, &octavias.body, &SCRAPE_DEPENDENT);
    let requests = format!("octavia_listener_http_requests_total{{listener=\"{listener}\"}} 5\n");
    let member_up = format!(
        "octavia_member_status{{pool=\"{pool}:{listener}\",member=\"{member_id}\",state=\"UP\"}} 1\n"
    );
    for line in [&requests, &member_up] {
        assert!(
            ours.body.contains(line.as_str()),
            "{line} in\n{}",
            ours.body
        );
    }
    eprintln!(
        "{TEST}: {} series, {compared} values equal to Octavia's",
        exposition(&ours.body).samples.len()
    );

    // A scrape through the PROMETHEUS listener, as a user's Prometheus makes it.
    let through = get(8081, "/metrics").unwrap();
    assert_eq!(through.status, 200, "{}", through.body);
    assert!(through.body.contains(&requests), "{}", through.body);

    // HAProxy stopped: no exporter, so both answer 502.
    let recorded = get(9101, "/metrics").unwrap().body;
    let stop = common::call(
        &agent,
        &dir,
        "PUT",
        &format!("/1.0/loadbalancer/{lb}/stop"),
        None,
    );
    assert_eq!(stop.status, 202, "{}", stop.body);
    assert_eq!(get(9102, "/").unwrap().status, 502);
    assert_eq!(get(9103, "/").unwrap().status, 502);

    // One recorded exporter text, replayed: everything equal but the host's gauges.
    let file = dir.write("recorded-metrics", &recorded);
    let file = file.to_str().unwrap();
    let _replay = Served::start(
        &python,
        &ns,
        &dir,
        &["replay", "--port", "9101", "--file", file],
    );
    let ours = get(9102, "/").unwrap();
    let octavias = get(9103, "/").unwrap();
    assert_eq!((ours.status, octavias.status), (200, 200));
    let compared = same_scrape(&ours.body, &octavias.body, &TIMING);
    let (ours, octavias) = (exposition(&ours.body), exposition(&octavias.body));
    for gauge in TIMING {
        let [a, b] = [&ours, &octavias].map(|e| e.samples[gauge].clone());
        let decimals = |v: &str| v.split_once('.').map(|(_, d)| d.len());
        assert_eq!((decimals(&a), decimals(&b)), (Some(1), Some(1)), "{gauge}");
        let [a, b] = [a, b].map(|v| v.parse::<f64>().unwrap());
        // Memory moves a little between the two scrapes; the load average every 5 s.
        let near = if gauge.ends_with("memory") {
            1.0
        } else {
            100.0
        };
        assert!((a - b).abs() < near && a >= 0.0, "{gauge}: {a} against {b}");
    }
    let total = ours.samples.len();
    assert_eq!(compared + TIMING.len(), total);
    eprintln!(
        "{TEST}: replayed: {compared} of {total} values equal; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
