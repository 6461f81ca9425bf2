//! The legacy appliance API's /instances over the same listener store, with real HAProxy.

mod common;

use common::{call, curl, free_port, haproxy_pids, http_backend, Agent, Pki, TempDir};

const IID: &str = "635bbdc6-65cd-41fc-b879-22c02aaf8951";

fn config(bind: &str, backend: u16) -> String {
    format!(
        "global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
frontend fe\n    bind {bind}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:{backend}\n"
    )
}

#[test]
fn instances_lifecycle_in_plain_text() {
    let dir = TempDir::new("leg");
    let agent = Agent::start(&dir, "");
    let (fe, be) = (free_port(), http_backend());
    let r = call(&agent, &dir, "GET", "/instances", None);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));

    let r = call(
        &agent,
        &dir,
        "PUT",
        &format!("/instances/{IID}/haproxy"),
        Some(config(&format!("127.0.0.1:{fe}"), be).as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body
            .starts_with("OK\nConfiguration file is valid\nhaproxy daemon for"),
        "{}",
        r.body
    );
    let through = curl(&[&format!("http://127.0.0.1:{fe}/")]).unwrap();
    assert_eq!(through.body, "ok");

    assert_eq!(
        call(&agent, &dir, "GET", "/instances", None).body,
        format!("{IID}\n")
    );
    let r = call(&agent, &dir, "GET", &format!("/instances/{IID}"), None);
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    let r = call(
        &agent,
        &dir,
        "GET",
        &format!("/instances/{IID}/haproxy"),
        None,
    );
    assert!(r.body.contains(&format!("bind 127.0.0.1:{fe}")));

    // Bad PUT data is 409, and the running instance keeps serving.
    let r = call(
        &agent,
        &dir,
        "PUT",
        &format!("/instances/{IID}/haproxy"),
        Some(b"global\n    nonsense\n"),
    );
    assert_eq!(r.status, 409);
    assert!(r.body.starts_with("Invalid configuration\n"), "{}", r.body);
    assert!(r.body.contains("nonsense"));
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{fe}/")]).unwrap().body,
        "ok"
    );
    let r = call(
        &agent,
        &dir,
        "PUT",
        &format!("/instances/{IID}/certificates/x.pem"),
        Some(b"garbage"),
    );
    assert_eq!((r.status, r.body.as_str()), (409, "No certificate found"));
    let pki = Pki::new();
    let read = |f: &str| std::fs::read_to_string(pki.file(f)).unwrap();
    for (body, message) in [
        (read("server.key"), "No certificate found"),
        (read("server.pem"), "No RSA key found"),
        (
            format!("{}{}", read("server.key"), read("client.pem")),
            "Certificate and key do not match",
        ),
    ] {
        let r = call(
            &agent,
            &dir,
            "PUT",
            &format!("/instances/{IID}/certificates/x.pem"),
            Some(body.as_bytes()),
        );
        assert_eq!((r.status, r.body.as_str()), (409, message));
    }

    // Unknown methods and URLs on these paths: 403.
    for (m, p) in [
        ("POST", "/instances".to_string()),
        ("PATCH", format!("/instances/{IID}")),
        ("GET", format!("/instances/{IID}/bogus")),
        ("GET", "/instances/a/b/c/d/e".to_string()),
    ] {
        let r = call(&agent, &dir, m, &p, None);
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "Invalid Request"),
            "{m} {p}"
        );
    }
    // Not Found for unknown or invalid instances.
    for p in [
        "/instances/nope",
        "/instances/..%2F..",
        "/instances/nope/haproxy",
    ] {
        let r = call(&agent, &dir, "GET", p, None);
        assert_eq!((r.status, r.body.as_str()), (404, "Not Found"), "{p}");
    }

    let r = call(&agent, &dir, "DELETE", &format!("/instances/{IID}"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, format!("OK\nhaproxy daemon for {IID} stopped"));
    assert!(haproxy_pids(&dir.0.display().to_string()).is_empty());
    assert!(curl(&[&format!("http://127.0.0.1:{fe}/")]).is_err());
    assert_eq!(
        call(&agent, &dir, "GET", &format!("/instances/{IID}"), None).status,
        404
    );
    assert_eq!(
        call(&agent, &dir, "DELETE", &format!("/instances/{IID}"), None).status,
        404
    );
}

/// A TLS-terminating instance: its certificate is uploaded first (creating the instance), then
/// a config that serves it; a new certificate reloads the running HAProxy.
#[test]
fn certificates_first_then_a_terminated_https_instance() {
    let pki = Pki::new();
    let dir = TempDir::new("leg");
    let agent = Agent::start(&dir, "");
    let (fe, be) = (free_port(), http_backend());
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(pki.file("server.key")).unwrap(),
        std::fs::read_to_string(pki.file("server.pem")).unwrap()
    );
    let cert_path = format!("/instances/{IID}/certificates/localhost.pem");
    let r = call(&agent, &dir, "PUT", &cert_path, Some(bundle.as_bytes()));
    assert_eq!((r.status, r.body.as_str()), (201, "OK"));
    assert_eq!(
        call(&agent, &dir, "GET", &format!("/instances/{IID}"), None).body,
        "OK"
    );
    assert_eq!(
        call(&agent, &dir, "GET", "/instances", None).body,
        format!("{IID}\n")
    );

    let stored = dir.path(&format!("certs/{IID}/localhost.pem"));
    let cfg = config(&format!("127.0.0.1:{fe} ssl crt {}", stored.display()), be);
    let r = call(
        &agent,
        &dir,
        "PUT",
        &format!("/instances/{IID}/haproxy"),
        Some(cfg.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let https = curl(&[
        "--cacert",
        &pki.file("ca.pem"),
        &format!("https://localhost:{fe}/"),
    ])
    .unwrap();
    assert_eq!(https.body, "ok");

    // A new certificate for a running instance: stored, and HAProxy reloaded to use it.
    let r = call(&agent, &dir, "PUT", &cert_path, Some(bundle.as_bytes()));
    assert_eq!(r.status, 201);
    assert!(
        r.body.starts_with("OK\n") && r.body.contains("reloaded"),
        "{}",
        r.body
    );
    let md5 = call(&agent, &dir, "GET", &cert_path, None);
    assert_eq!(md5.status, 200);
    assert_eq!(md5.body.len(), 32);
    assert!(!md5.body.contains("BEGIN"));

    let r = call(
        &agent,
        &dir,
        "DELETE",
        &format!("/instances/{IID}/haproxy"),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(curl(&[
        "--cacert",
        &pki.file("ca.pem"),
        &format!("https://localhost:{fe}/")
    ])
    .is_err());
    // The certificate keeps the instance alive.
    assert_eq!(
        call(&agent, &dir, "GET", &format!("/instances/{IID}"), None).status,
        200
    );
    assert_eq!(call(&agent, &dir, "DELETE", &cert_path, None).body, "OK");
    assert_eq!(call(&agent, &dir, "DELETE", &cert_path, None).status, 404);
    assert_eq!(
        call(&agent, &dir, "GET", &format!("/instances/{IID}"), None).status,
        404
    );
}
