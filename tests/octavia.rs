//! Octavia's own controller code drives the real agent: tests/octavia/conformance.py runs
//! `rest_api_driver`'s client and driver classes and Octavia's jinja templates, from PyPI's
//! `octavia` package in a venv this test makes, against lbagent over HTTPS with client
//! certificates. Skipped (with a SKIP line) only when PyPI cannot be reached, and never under CI.

mod common;

use common::{Agent, Pki, TempDir};
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
