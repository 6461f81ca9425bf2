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
