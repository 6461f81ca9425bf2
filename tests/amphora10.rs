//! Amphora API 1.0 beyond what Octavia's client exercises (tests/octavia.rs): version discovery
//! at `/` and `//`, the agent-config push, what a certificate upload accepts, idempotent
//! deletes, JSON 404s and action words in any case.

mod common;

use common::{call, Agent, Pki, TempDir};
use serde_json::json;
use std::os::unix::fs::MetadataExt;

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
