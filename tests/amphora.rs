//! Amphora API v0.1: listener config upload/get/delete and listener certificates, against the
//! real binary and a real `haproxy -c`.

mod common;

use common::{call, run, Agent, TempDir};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

const AMP: &str = "6e2bc8a0-2548-4fb7-a5f0-fb1ef4a696ce";
const LID: &str = "04bff5c3-5862-4a13-b9e3-9b440d0ed50a";

const GOOD_CFG: &str = "# Config file for 04bff5c3\nglobal\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend fe\n    bind 127.0.0.1:8443\n    default_backend be\nbackend be\n    server s1 127.0.0.1:9 check\n";

/// PUT a listener's config through the v0.1 upload route.
fn upload(agent: &Agent, dir: &TempDir, id: &str, cfg: &[u8]) -> common::Resp {
    let path = format!("/v0.1/listeners/{AMP}/{id}/haproxy");
    call(agent, dir, "PUT", &path, Some(cfg))
}

#[test]
fn upload_get_and_delete_a_listener_config() {
    let dir = TempDir::new("amp");
    let agent = Agent::start(&dir, "");
    let r = upload(&agent, &dir, LID, GOOD_CFG.as_bytes());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "OK", "details": "Configuration file is valid"})
    );
    let r = call(
        &agent,
        &dir,
        "GET",
        &format!("/v0.1/listeners/{LID}/haproxy"),
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    assert_eq!(r.body, GOOD_CFG);
    let stored = dir.path(&format!("state/listeners/{LID}/haproxy.cfg"));
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), GOOD_CFG);

    // A bad upload: 400 with HAProxy's own words, and the live config is untouched.
    let bad = format!("{GOOD_CFG}BAD_LINE\n");
    let r = upload(&agent, &dir, LID, bad.as_bytes());
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["message"], "Invalid request");
    assert!(v["details"].as_str().unwrap().contains("BAD_LINE"), "{v}");
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), GOOD_CFG);
    let leftovers: Vec<_> = std::fs::read_dir(stored.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".new") || n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let r = call(
        &agent,
        &dir,
        "DELETE",
        &format!("/v0.1/listeners/{LID}"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"message": "OK"}));
    assert!(!stored.parent().unwrap().exists());
    let r = call(
        &agent,
        &dir,
        "GET",
        &format!("/v0.1/listeners/{LID}/haproxy"),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Listener Not Found", "details": format!("No listener with UUID: {LID}"), "code": 404})
    );
    let r = call(
        &agent,
        &dir,
        "DELETE",
        &format!("/v0.1/listeners/{LID}"),
        None,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn a_first_upload_that_fails_leaves_no_listener() {
    let dir = TempDir::new("amp");
    let agent = Agent::start(&dir, "");
    let r = upload(&agent, &dir, "new-one", b"global\n    bogus_keyword\n");
    assert_eq!(r.status, 400);
    assert!(!dir.path("state/listeners/new-one").exists());
    let r = call(&agent, &dir, "GET", "/v0.1/listeners/new-one/haproxy", None);
    assert_eq!(r.status, 404);
}

#[test]
fn bad_ids_are_refused_before_any_file_access() {
    let dir = TempDir::new("amp");
    let agent = Agent::start(&dir, "");
    for id in [
        "..",
        "%2e%2e",
        "a%2Fb",
        "-x",
        "a.b",
        "%2e%2e%2f%2e%2e%2fetc",
    ] {
        let r = upload(&agent, &dir, id, GOOD_CFG.as_bytes());
        assert_eq!(r.status, 400, "{id}: {}", r.body);
    }
    assert!(!dir.path("state/listeners").exists());
}

#[test]
fn a_missing_haproxy_binary_is_503() {
    let dir = TempDir::new("amp");
    let agent = Agent::start(&dir, "haproxy: /nonexistent/haproxy\n");
    let r = upload(&agent, &dir, LID, GOOD_CFG.as_bytes());
    assert_eq!(r.status, 503);
    assert!(r.details().contains("/nonexistent/haproxy"));
}

/// Key + self-signed certificate PEM bundles of every supported kind, made by openssl.
struct Bundles {
    dir: TempDir,
}

impl Bundles {
    fn new() -> Bundles {
        let dir = TempDir::new("pem");
        let d = &dir.0;
        let key = |name: &str, args: &[&str]| {
            run(Command::new("openssl")
                .arg(args[0])
                .arg("-out")
                .arg(d.join(name))
                .args(&args[1..]));
        };
        key("rsa-pkcs1.key", &["genrsa", "-traditional", "2048"]);
        key(
            "rsa-pkcs8.key",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
        );
        key(
            "ec-sec1.key",
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        );
        key(
            "ec-pkcs8.key",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
        );
        for k in ["rsa-pkcs1", "rsa-pkcs8", "ec-sec1", "ec-pkcs8"] {
            run(Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=www.example.com",
                    "-key",
                ])
                .arg(d.join(format!("{k}.key")))
                .arg("-out")
                .arg(d.join(format!("{k}.crt"))));
        }
        Bundles { dir }
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path(name)).unwrap()
    }

    /// key, certificate: the order the spec gives.
    fn bundle(&self, kind: &str) -> String {
        format!(
            "{}{}",
            self.read(&format!("{kind}.key")),
            self.read(&format!("{kind}.crt"))
        )
    }
}

#[test]
fn listener_certificates() {
    let pems = Bundles::new();
    let dir = TempDir::new("amp");
    let agent = Agent::start(&dir, "");
    let cert_url = |name: &str| format!("/v0.1/listeners/{LID}/certificates/{name}");

    // Unknown listener: 404 for every method.
    let good = pems.bundle("rsa-pkcs1");
    for m in ["PUT", "GET", "DELETE"] {
        let r = call(
            &agent,
            &dir,
            m,
            &cert_url("www.example.com.pem"),
            Some(good.as_bytes()),
        );
        assert_eq!(r.status, 404, "{m}");
        assert_eq!(r.json()["message"], "Listener Not Found");
    }
    assert_eq!(upload(&agent, &dir, LID, GOOD_CFG.as_bytes()).status, 201);

    for kind in ["rsa-pkcs1", "rsa-pkcs8", "ec-sec1", "ec-pkcs8"] {
        let pem = pems.bundle(kind);
        let r = call(
            &agent,
            &dir,
            "PUT",
            &cert_url("www.example.com.pem"),
            Some(pem.as_bytes()),
        );
        assert_eq!(r.status, 201, "{kind}: {}", r.body);
        assert_eq!(r.json(), serde_json::json!({"message": "OK"}));
        let r = call(&agent, &dir, "GET", &cert_url("www.example.com.pem"), None);
        assert_eq!(r.status, 200);
        // md5sum(1) of exactly the uploaded bytes.
        let expected = common::md5sum(&dir, pem.as_bytes());
        assert_eq!(r.json(), serde_json::json!({"md5sum": expected}), "{kind}");
        assert!(!r.body.contains("BEGIN"), "the PEM must never be returned");
    }
    let stored = dir.path(&format!("certs/{LID}/www.example.com.pem"));
    assert_eq!(std::fs::metadata(&stored).unwrap().mode() & 0o777, 0o600);

    // Refusals, with the spec's messages.
    let key_only = pems.read("ec-sec1.key");
    let cert_only = pems.read("ec-sec1.crt");
    let mismatched = format!(
        "{}{}",
        pems.read("rsa-pkcs8.key"),
        pems.read("rsa-pkcs1.crt")
    );
    let cross = format!(
        "{}{}",
        pems.read("ec-pkcs8.key"),
        pems.read("rsa-pkcs1.crt")
    );
    for (what, body, message) in [
        ("key only", key_only.as_str(), "No certificate found"),
        ("cert only", cert_only.as_str(), "No RSA key found"),
        (
            "mismatched pair",
            mismatched.as_str(),
            "Certificate and key do not match",
        ),
        (
            "EC key, RSA cert",
            cross.as_str(),
            "Certificate and key do not match",
        ),
        ("garbage", "this is not PEM at all", "No certificate found"),
        ("empty", "", "No certificate found"),
    ] {
        let r = call(
            &agent,
            &dir,
            "PUT",
            &cert_url("other.pem"),
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.json()["message"], message, "{what}");
        assert!(
            !r.body.contains("BEGIN"),
            "{what}: error bodies never echo PEM data"
        );
    }
    assert!(!dir.path(&format!("certs/{LID}/other.pem")).exists());

    // Wildcard names are stored as WILDCARD.
    let r = call(
        &agent,
        &dir,
        "PUT",
        &cert_url("%2A.example.com.pem"),
        Some(good.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(dir
        .path(&format!("certs/{LID}/WILDCARD.example.com.pem"))
        .exists());
    let r = call(
        &agent,
        &dir,
        "GET",
        &cert_url("WILDCARD.example.com.pem"),
        None,
    );
    assert_eq!(r.status, 200);

    // Bad names are refused before any file access.
    let long = format!("{}.pem", "a".repeat(252));
    for name in [
        "noext",
        "a.crt",
        "..%2Fescape.pem",
        "%2e%2e.pem",
        "a%00.pem",
        "a%2Fb.pem",
        long.as_str(),
    ] {
        let r = call(&agent, &dir, "PUT", &cert_url(name), Some(good.as_bytes()));
        assert_eq!(r.status, 400, "{name}: {}", r.body);
    }

    // Delete: 200, then 404 Certificate Not Found.
    let r = call(
        &agent,
        &dir,
        "DELETE",
        &cert_url("www.example.com.pem"),
        None,
    );
    assert_eq!(r.status, 200);
    let r = call(
        &agent,
        &dir,
        "DELETE",
        &cert_url("www.example.com.pem"),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Certificate Not Found", "details": "No certificate with file name: www.example.com.pem", "code": 404})
    );
    assert_eq!(
        call(&agent, &dir, "GET", &cert_url("www.example.com.pem"), None).status,
        404
    );

    // Deleting the listener removes its certificates too.
    assert_eq!(
        call(
            &agent,
            &dir,
            "DELETE",
            &format!("/v0.1/listeners/{LID}"),
            None
        )
        .status,
        200
    );
    assert!(!dir.path(&format!("certs/{LID}")).exists());
}
