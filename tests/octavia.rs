//! Octavia's own controller code drives the real agent: tests/octavia/conformance.py runs
//! `rest_api_driver`'s client and driver classes and Octavia's jinja templates, from PyPI's
//! `octavia` package in a venv this test makes, against lbagent over HTTPS with client
//! certificates; tests/octavia/heartbeats.py feeds its health manager the agent's heartbeats, and
//! tests/octavia/active_standby.py sets up and fails over an ACTIVE_STANDBY pair in network
//! namespaces. Skipped (with a SKIP line) only when PyPI cannot be reached or, for the pair,
//! without root, and never under CI.

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
