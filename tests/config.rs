//! The command line and the config file, through the real binary.

mod common;

use common::{Pki, TempDir, BIN};
use std::process::Command;

fn check(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--check-config")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Start-up must refuse the same config, with the same message on stderr.
fn start_fails(path: &std::path::Path) -> String {
    let out = Command::new(BIN).arg("-c").arg(path).output().unwrap();
    assert!(!out.status.success(), "agent started with a bad config");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn hapi_example_loads_with_only_its_paths_pointed_at_real_files() {
    let pki = Pki::new();
    let dir = TempDir::new("cfg");
    let example = std::fs::read_to_string("conf/hapi-example.yaml").unwrap();
    let text = example
        .replace("/opt/hapi/ssl/hapi.key", &pki.file("server.key"))
        .replace("/opt/hapi/ssl/hapi.crt", &pki.file("server.pem"))
        .replace("/opt/hapi/log", &dir.0.display().to_string());
    let (ok, out) = check(&dir.write("hapi.yaml", &text));
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "OK");
}

#[test]
fn hapi_example_unchanged_only_misses_its_files() {
    let (ok, out) = check(std::path::Path::new("conf/hapi-example.yaml"));
    assert!(!ok);
    // Its structure is fine; what fails is that /opt/hapi/ssl does not exist here.
    for line in out.lines() {
        assert!(line.contains("cannot read"), "unexpected problem: {line}");
    }
    assert!(out.contains("sslcrt") && out.contains("sslkey"), "{out}");
}

#[test]
fn bad_configs_fail_naming_the_key() {
    let pki = Pki::new();
    let dir = TempDir::new("cfg");
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown scalar key", "prot: 6000\n".into(), "prot"),
        ("wrong type", "workers: [1]\n".into(), "workers"),
        ("bad port", "port: 70000\n".into(), "port"),
        ("port not a number", "port: http\n".into(), "port"),
        (
            "missing cert file",
            format!(
                "sslcrt: {}\nsslkey: {}\n",
                dir.path("nope.pem").display(),
                pki.file("server.key")
            ),
            "sslcrt",
        ),
        (
            "key/cert mismatch",
            format!(
                "sslcrt: {}\nsslkey: {}\n",
                pki.file("server.pem"),
                pki.file("lone.key")
            ),
            "sslkey",
        ),
        (
            "basic auth on 0.0.0.0 without TLS",
            "bind: 0.0.0.0\nuser: u\npassword: p\n".into(),
            "bind",
        ),
        ("no auth on 0.0.0.0", "bind: 0.0.0.0\n".into(), "bind"),
        ("bad bind", "bind: somewhere\n".into(), "bind"),
        (
            "client_ca without TLS",
            format!("client_ca: {}\n", pki.file("ca.pem")),
            "client_ca",
        ),
        ("not YAML", "port: [\n".into(), "(file)"),
    ];
    for (what, text, key) in cases {
        let path = dir.write("bad.yaml", &text);
        let (ok, out) = check(&path);
        assert!(!ok, "{what}: accepted");
        assert!(out.contains(&format!(": {key}: ")), "{what}: {out}");
        let err = start_fails(&path);
        assert!(
            err.contains(&format!(": {key}: ")),
            "{what}: start-up said {err}"
        );
    }
}

#[test]
fn every_problem_is_reported() {
    let dir = TempDir::new("cfg");
    let (ok, out) = check(&dir.write("bad.yaml", "port: -1\nfoo: bar\ndebug: perhaps\n"));
    assert!(!ok);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn no_config_at_the_default_path_refuses_to_start() {
    if std::path::Path::new("/etc/lbagent/lbagent.yaml").exists() {
        common::skip(
            "no_config_at_the_default_path_refuses_to_start",
            "/etc/lbagent/lbagent.yaml exists on this machine",
        );
        return;
    }
    let out = Command::new(BIN).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("lbagent "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--check-config"));
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Octavia's `amphora-agent.conf`, as its controller renders it (paths made the test's).
fn octavia_conf(dir: &TempDir, pki: &Pki, port: u16) -> String {
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(pki.file("server.key")).unwrap(),
        std::fs::read_to_string(pki.file("server.pem")).unwrap()
    );
    let bundle = dir.write("server-bundle.pem", &bundle);
    format!(
        "[DEFAULT]\ndebug = False\nuse_syslog = True\nsyslog_log_facility = LOG_LOCAL1\n\n\
[haproxy_amphora]\nbase_cert_dir = {certs}\nbase_path = {state}\nbind_host = 127.0.0.1\n\
bind_port = {port}\nhaproxy_cmd = /usr/sbin/haproxy\nuser_log_facility = 0\n\
administrative_log_facility = 1\n\n\
[health_manager]\ncontroller_ip_port_list = 192.0.2.10:5555, [2001:db8::10]:5555\n\
heartbeat_interval = 10\nheartbeat_key = insecure\n\n\
[amphora_agent]\nagent_server_ca = {ca}\nagent_server_cert = {bundle}\n\
agent_request_read_timeout = 180\namphora_id = aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\n\
amphora_udp_driver = keepalived_lvs\nagent_tls_protocol = TLSv1.2\n\n\
[controller_worker]\nloadbalancer_topology = SINGLE\n",
        certs = dir.path("certs").display(),
        state = dir.path("state").display(),
        ca = pki.file("ca.pem"),
        bundle = bundle.display(),
    )
}

#[test]
fn an_amphora_image_agent_conf_runs_the_agent_unchanged() {
    let pki = Pki::new();
    let dir = TempDir::new("octconf");
    let conf = octavia_conf(&dir, &pki, 0);
    let path = dir.write("checked.conf", &conf);
    assert_eq!(check(&path), (true, "OK\n".to_string()));
    let agent = common::Agent::start_octavia(&dir, &conf);
    // curl with the client certificate, then `args`.
    let mtls = |args: &[&str]| {
        let (ca, cert, key) = (
            pki.file("ca.pem"),
            pki.file("client.pem"),
            pki.file("client.key"),
        );
        let mut all = vec!["--cacert", &ca, "--cert", &cert, "--key", &key];
        all.extend_from_slice(args);
        common::curl(&all).unwrap()
    };
    let https = |path: &str| mtls(&[&agent.url("https", path)]);
    let r = https("/1.0/info");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["api_version"], "1.0");
    // Only the amphora API: an amphora image serves nothing else.
    assert_eq!(https("/loadBalancer/status").status, 404);
    // Without a client certificate: no service.
    let plain = common::curl(&[
        "--cacert",
        &pki.file("ca.pem"),
        &agent.url("https", "/1.0/info"),
    ]);
    assert!(plain.is_err() || plain.unwrap().status != 200);

    // The controller's push replaces the file the agent runs on, private; one the agent could
    // not start on is refused and changes nothing.
    let put = |body: &str| {
        let f = format!("@{}", dir.write("push.conf", body).display());
        mtls(&[
            "-X",
            "PUT",
            "--data-binary",
            &f,
            &agent.url("https", "/1.0/config"),
        ])
    };
    let pushed = conf.replace("heartbeat_interval = 10", "heartbeat_interval = 1");
    let r = put(&pushed);
    assert_eq!((r.status, r.json()["message"].as_str()), (202, Some("OK")));
    let running_on = dir.path("amphora-agent.conf");
    assert_eq!(std::fs::read_to_string(&running_on).unwrap(), pushed);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&running_on).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let r = put(&pushed.replace("bind_port = 0", "bind_port = nine"));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Unable to update amphora-agent configuration."
    );
    assert!(r.json()["details"]
        .as_str()
        .unwrap()
        .contains("[haproxy_amphora] bind_port"));
    assert_eq!(std::fs::read_to_string(&running_on).unwrap(), pushed);

    // A bad file: every problem, named by section and key.
    let bad = conf.replace("bind_port = 0", "bind_port = nine").replace(
        "loadbalancer_topology = SINGLE",
        "loadbalancer_topology = MESH",
    );
    let (ok, out) = check(&dir.write("bad.conf", &bad));
    assert!(!ok);
    assert!(
        out.contains("[haproxy_amphora] bind_port: \"nine\""),
        "{out}"
    );
    assert!(
        out.contains("[controller_worker] loadbalancer_topology: \"MESH\""),
        "{out}"
    );
}
