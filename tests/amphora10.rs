//! Amphora API 1.0 beyond what Octavia's client exercises (tests/octavia.rs): version discovery
//! at `/` and `//`, the agent-config push, what a certificate upload accepts, idempotent
//! deletes, JSON 404s and action words in any case; and a load balancer's lifecycle (upload,
//! start, reload, stop, delete) with a real HAProxy and traffic through its frontend.

mod common;

use common::{
    call, curl, free_port, haproxy_pids, http_backend, md5sum, wait_for, Agent, Pki, TempDir,
};
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const AMP: &str = "6e2bc8a0-2548-4fb7-a5f0-fb1ef4a696ce";
const LB: &str = "3f1c6a52-8d0e-4b7a-9c11-2a5e7d9b0c44";
/// Octavia names each frontend after its listener.
const LISTENER: &str = "b52d8e1a-6f3c-4d29-8e47-0c9a1f2b3d65";

#[test]
fn version_config_push_certificates_and_deletes() {
    let dir = TempDir::new("a10");
    let agent = Agent::start(&dir, "");
    for path in ["/", "//"] {
        let r = call(&agent, &dir, "GET", path, None);
        assert_eq!(
            (r.status, r.json()),
            (200, json!({"api_version": "1.0"})),
            "{path}"
        );
    }
    let r = call(&agent, &dir, "GET", "/1.0/info", None);
    assert_eq!(r.json()["api_version"], "1.0");
    assert!(r.json()["haproxy_version"]
        .as_str()
        .unwrap()
        .starts_with("2."));

    // The controller's agent config is kept, private (it holds the heartbeat key).
    let conf = b"[health_manager]\nheartbeat_key = s3cret\n";
    let r = call(&agent, &dir, "PUT", "/1.0/config", Some(conf));
    assert_eq!((r.status, r.json()), (202, json!({"message": "OK"})));
    let stored = dir.path("state/amphora-agent.conf");
    assert_eq!(std::fs::read(&stored).unwrap(), conf);
    assert_eq!(std::fs::metadata(&stored).unwrap().mode() & 0o777, 0o600);

    // Unknown load balancers: JSON 404s (a non-JSON one makes the controller retry for minutes).
    for (method, path) in [
        ("GET", "/1.0/loadbalancer/nope/haproxy"),
        ("PUT", "/1.0/loadbalancer/nope/START"),
    ] {
        let r = call(&agent, &dir, method, path, None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["message"], "Loadbalancer Not Found");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
    let r = call(&agent, &dir, "PUT", "/1.0/loadbalancer/nope/restart", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["details"], "Unknown action: restart");

    // Certificates before any config: key + chain (checked), a crt-list, a CA bundle.
    let pki = Pki::new();
    let read = |n: &str| std::fs::read_to_string(pki.file(n)).unwrap();
    let url = |f: &str| format!("/1.0/loadbalancer/lb1/certificates/{f}");
    let bundle = format!("{}{}", read("server.key"), read("server.pem"));
    let crt_list = format!("{}/lb1/cert1.pem\n", dir.path("certs").display());
    for (name, body) in [
        ("cert1.pem", bundle.as_str()),
        ("listener1.pem", crt_list.as_str()),
        ("ca.pem", &read("ca.pem")),
    ] {
        let r = call(&agent, &dir, "PUT", &url(name), Some(body.as_bytes()));
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let sum = r.header("ETag").unwrap().to_string();
        let r = call(&agent, &dir, "GET", &url(name), None);
        assert_eq!(r.json(), json!({ "md5sum": sum }));
        let file = dir.path(&format!("certs/lb1/{name}"));
        assert_eq!(std::fs::metadata(file).unwrap().mode() & 0o777, 0o600);
    }
    // A key that is not the certificate's is refused, and never echoed.
    let wrong = format!("{}{}", read("lone.key"), read("server.pem"));
    let r = call(&agent, &dir, "PUT", &url("bad.pem"), Some(wrong.as_bytes()));
    assert_eq!(r.status, 400);
    assert!(!r.body.contains("PRIVATE KEY"));
    let r = call(&agent, &dir, "PUT", &url("..pem"), Some(b"x"));
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (400, json!("Filename has wrong format"))
    );

    // Deletes are idempotent, and a load balancer's delete takes its certificates.
    let r = call(&agent, &dir, "DELETE", &url("ca.pem"), None);
    assert_eq!(r.status, 200);
    let r = call(&agent, &dir, "DELETE", &url("ca.pem"), None);
    assert_eq!(r.status, 200);
    for _ in 0..2 {
        let r = call(&agent, &dir, "DELETE", "/1.0/listeners/lb1", None);
        assert_eq!((r.status, r.json()), (200, json!({"message": "OK"})));
    }
    assert!(!dir.path("certs/lb1").exists());
}

/// A load balancer config as Octavia renders it, trimmed: one frontend (named after its
/// listener) to one backend, with a response header saying which config served.
fn lb_config(fe: u16, be: u16, version: &str) -> String {
    format!(
        "global\n    daemon\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
frontend {LISTENER}\n    bind 127.0.0.1:{fe}\n    http-response set-header X-Config {version}\n    default_backend pool-1\n\
backend pool-1\n    server member-1 127.0.0.1:{be}\n"
    )
}

#[test]
fn load_balancer_lifecycle_with_traffic() {
    let dir = TempDir::new("a10lb");
    let agent = Agent::start(&dir, "");
    let (fe, be) = (free_port(), http_backend());
    let api = |method: &str, path: &str| call(&agent, &dir, method, path, None);
    let config_path = format!("/1.0/loadbalancer/{LB}/haproxy");
    let upload = |version: &str| {
        let cfg = lb_config(fe, be, version);
        let path = format!("/1.0/loadbalancer/{AMP}/{LB}/haproxy");
        let r = call(&agent, &dir, "PUT", &path, Some(cfg.as_bytes()));
        assert_eq!((r.status, r.json()), (202, json!({"message": "OK"})));
        let sum = md5sum(&dir, cfg.as_bytes());
        assert_eq!(r.header("ETag"), Some(sum.as_str()));
        cfg
    };
    let act = |word: &str| api("PUT", &format!("/1.0/loadbalancer/{LB}/{word}"));
    // A 202 "OK" for the action: its details.
    let acted = |word: &str| {
        let r = act(word);
        let message = r.json()["message"].clone();
        assert_eq!(
            (r.status, message),
            (202, json!("OK")),
            "{word}: {}",
            r.body
        );
        r.details()
    };
    let listeners = |status: &str| {
        let r = api("GET", "/1.0/listeners");
        let expected = json!([{"status": status, "uuid": LISTENER, "type": "HTTP"}]);
        assert_eq!((r.status, r.json()), (200, expected));
    };
    // The X-Config of what answered through the frontend; None if nothing did.
    let served = || {
        let r = curl(&["--max-time", "3", &format!("http://127.0.0.1:{fe}/")]).ok()?;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        r.header("X-Config").map(str::to_string)
    };
    let daemon = format!("haproxy daemon for {LB}");

    let v1 = upload("v1");
    let r = api("GET", &config_path);
    assert_eq!((r.status, r.body.as_str()), (200, v1.as_str()));
    listeners("STOPPED");
    let d = acted("start");
    let started = format!("Configuration file is valid\n{daemon} started (pid ");
    assert!(d.starts_with(&started), "{d}");
    // The action word in any case: START is start, and finds it running.
    let d = acted("START");
    assert!(
        d.starts_with(&format!("{daemon} already running (pid ")),
        "{d}"
    );
    assert_eq!(served().as_deref(), Some("v1"));
    listeners("ACTIVE");

    // A changed config: stored by the upload, served after the reload.
    let v2 = upload("v2");
    assert_eq!(api("GET", &config_path).body, v2);
    let d = acted("reload");
    let reloaded = format!("Configuration file is valid\n{daemon} reloaded (new worker pid ");
    assert!(d.starts_with(&reloaded), "{d}");
    wait_for("the new config to serve", Duration::from_secs(10), || {
        served().as_deref() == Some("v2")
    });
    listeners("ACTIVE");

    let r = act("jump");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Invalid Request");
    assert_eq!(r.json()["details"], "Unknown action: jump");

    assert_eq!(acted("stop"), format!("{daemon} stopped"));
    assert_eq!(served(), None);
    listeners("STOPPED");
    assert!(haproxy_pids(&dir.path("state").display().to_string()).is_empty());

    // Delete: the config is gone (a JSON 404), and a second delete is still a success.
    for _ in 0..2 {
        let r = api("DELETE", &format!("/1.0/listeners/{LB}"));
        assert_eq!((r.status, r.json()), (200, json!({"message": "OK"})));
        let r = api("GET", &config_path);
        let details = format!("No loadbalancer with UUID: {LB}");
        let expected =
            json!({"code": 404, "message": "Loadbalancer Not Found", "details": details});
        assert_eq!((r.status, r.json()), (404, expected));
    }
    assert_eq!(api("GET", "/1.0/listeners").json(), json!([]));
}
