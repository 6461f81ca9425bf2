//! HTTPS, client certificates and basic auth, through the real binary and curl.

mod common;

use common::{curl, Agent, Pki, TempDir};

const PATH: &str = "/loadBalancer/nodes/foo";

fn tls_lines(pki: &Pki) -> String {
    format!(
        "sslcrt: {}\nsslkey: {}\n",
        pki.file("server.pem"),
        pki.file("server.key")
    )
}

#[test]
fn https_with_the_server_certificate() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(&dir, &tls_lines(&pki));
    let ca = pki.file("ca.pem");
    // A known path with a bad status word: the request got through TLS and routing.
    let r = curl(&["--cacert", &ca, &agent.url("https", PATH)]).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    // Verified against the wrong CA: curl refuses the server.
    assert!(curl(&[
        "--cacert",
        &pki.file("other-ca.pem"),
        &agent.url("https", PATH)
    ])
    .is_err());
    // TLS 1.1 is refused; 1.2 and 1.3 work.
    assert!(curl(&[
        "--cacert",
        &ca,
        "--tls-max",
        "1.1",
        &agent.url("https", PATH)
    ])
    .is_err());
    for v in ["1.2", "1.3"] {
        let r = curl(&["--cacert", &ca, "--tls-max", v, &agent.url("https", PATH)]).unwrap();
        assert_eq!(r.status, 400, "TLS {v}");
    }
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(curl(&[&agent.url("http", PATH)]).map_or(true, |r| r.status == 0));
}

#[test]
fn one_file_may_hold_key_and_chain() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let key = std::fs::read_to_string(pki.file("server.key")).unwrap();
    let cert = std::fs::read_to_string(pki.file("server.pem")).unwrap();
    let ca = std::fs::read_to_string(pki.file("ca.pem")).unwrap();
    let both = dir.write("bundle.pem", &format!("{key}{cert}{ca}"));
    let agent = Agent::start(&dir, &format!("sslcrt: {0}\nsslkey: {0}\n", both.display()));
    let r = curl(&["--cacert", &pki.file("ca.pem"), &agent.url("https", PATH)]).unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn client_certificates_are_required_and_verified() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(
        &dir,
        &format!("{}client_ca: {}\n", tls_lines(&pki), pki.file("ca.pem")),
    );
    let ca = pki.file("ca.pem");
    let url = agent.url("https", PATH);
    // No client certificate: the handshake is refused.
    assert!(curl(&["--cacert", &ca, &url]).is_err());
    // A certificate from another CA: refused.
    let (sc, sk) = (pki.file("stranger.pem"), pki.file("stranger.key"));
    assert!(curl(&["--cacert", &ca, "--cert", &sc, "--key", &sk, &url]).is_err());
    // A good one: served, and its subject is in the access log.
    let (cc, ck) = (pki.file("client.pem"), pki.file("client.key"));
    let r = curl(&["--cacert", &ca, "--cert", &cc, "--key", &ck, &url]).unwrap();
    assert_eq!(r.status, 400);
    let log = agent.access_log(1);
    assert!(
        log.contains("cert=O=lbagent tests, CN=controller-1"),
        "{log}"
    );
    assert!(
        log.contains("\"GET /loadBalancer/nodes/foo HTTP/1.1\" 400"),
        "{log}"
    );
    assert!(
        log.starts_with("127.0.0.1 "),
        "real peer address first: {log}"
    );
    // Only the good request reached the HTTP layer.
    assert_eq!(log.lines().count(), 1, "{log}");
}

#[test]
fn basic_auth() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(
        &dir,
        &format!("{}user: yourUser\npassword: 'yourPass'\n", tls_lines(&pki)),
    );
    let ca = pki.file("ca.pem");
    let url = agent.url("https", PATH);
    for creds in [
        None,
        Some("wrong:yourPass"),
        Some("yourUser:wrong"),
        Some("yourUser:"),
    ] {
        let mut args = vec!["--cacert", ca.as_str(), url.as_str()];
        if let Some(c) = creds {
            args.extend(["-u", c]);
        }
        let r = curl(&args).unwrap();
        assert_eq!(r.status, 401, "{creds:?}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"lbagent\"")
        );
        assert_eq!(r.json()["code"], 401);
    }
    // Unknown paths are 401 too, not 404: nothing is learned without credentials.
    let r = curl(&["--cacert", &ca, &agent.url("https", "/nope")]).unwrap();
    assert_eq!(r.status, 401);
    let r = curl(&["--cacert", &ca, "-u", "yourUser:yourPass", &url]).unwrap();
    assert_eq!(r.status, 400);
    let log = agent.access_log(6);
    assert!(
        log.lines().last().unwrap().contains("\"user=yourUser\""),
        "{log}"
    );
    assert!(
        !log.contains("yourPass"),
        "the access log must not hold credentials"
    );
}

#[test]
fn basic_auth_and_client_certificates_together_need_both() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(
        &dir,
        &format!(
            "{}client_ca: {}\nuser: u\npassword: p\n",
            tls_lines(&pki),
            pki.file("ca.pem")
        ),
    );
    let ca = pki.file("ca.pem");
    let url = agent.url("https", PATH);
    let (cc, ck) = (pki.file("client.pem"), pki.file("client.key"));
    assert!(curl(&["--cacert", &ca, "-u", "u:p", &url]).is_err());
    let r = curl(&["--cacert", &ca, "--cert", &cc, "--key", &ck, &url]).unwrap();
    assert_eq!(r.status, 401);
    let r = curl(&[
        "--cacert", &ca, "--cert", &cc, "--key", &ck, "-u", "u:p", &url,
    ])
    .unwrap();
    assert_eq!(r.status, 400);
    let log = agent.access_log(2);
    assert!(
        log.contains("\"user=u; cert=O=lbagent tests, CN=controller-1\""),
        "{log}"
    );
}

#[test]
fn over_the_cap_tls_clients_get_a_readable_503() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(&dir, &format!("{}max_connections: 1\n", tls_lines(&pki)));
    let held = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let r = curl(&["--cacert", &pki.file("ca.pem"), &agent.url("https", PATH)]).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], 503);
    drop(held);
}

#[test]
fn a_handshake_that_never_comes_is_cut_off() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(&dir, &format!("{}request_timeout: 1\n", tls_lines(&pki)));
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut silent, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected the agent to close the connection");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
    // Meanwhile and afterwards, others are served.
    let r = curl(&["--cacert", &pki.file("ca.pem"), &agent.url("https", PATH)]).unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn a_dripping_handshake_is_cut_off_at_the_deadline() {
    let pki = Pki::new();
    let dir = TempDir::new("tls");
    let agent = Agent::start(&dir, &format!("{}request_timeout: 1\n", tls_lines(&pki)));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    // The start of a ClientHello record, one byte at a time, each within the timeout.
    let hello = [
        0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let t = std::time::Instant::now();
    let mut cut = false;
    for b in hello.iter().cycle().take(40) {
        if std::io::Write::write_all(&mut s, &[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(cut, "the connection outlived the handshake deadline");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn the_agents_certificate_rotates_without_a_restart() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::MetadataExt;
    use std::process::{Command, Stdio};

    let pki = Pki::new();
    let dir = TempDir::new("tls");
    // The agent rewrites its own files: give it copies.
    let (crt, key) = (dir.path("server.crt"), dir.path("server.key"));
    std::fs::copy(pki.file("server.pem"), &crt).unwrap();
    std::fs::copy(pki.file("server.key"), &key).unwrap();
    // Readable to start with, so the 0600 check below shows what the agent wrote.
    use std::os::unix::fs::PermissionsExt;
    for f in [&crt, &key] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut agent = Agent::start(
        &dir,
        &format!("sslcrt: {}\nsslkey: {}\n", crt.display(), key.display()),
    );
    let (ca, other) = (pki.file("ca.pem"), pki.file("other-ca.pem"));
    let get = |ca: &str, agent: &Agent| {
        curl(&["--cacert", ca, &agent.url("https", PATH)])
            .map(|r| r.status)
            .ok()
    };

    // A client holding a keep-alive connection made with the old certificate.
    let mut held = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{}", agent.port),
            "-CAfile",
            &ca,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to_held = held.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = held.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let ask = |to: &mut std::process::ChildStdin| {
        to.write_all(format!("GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        to.flush().unwrap();
        loop {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("held connection answered");
            // A body has no newline at its end: the next status line may follow it directly.
            if let Some(i) = line.find("HTTP/1.1 ") {
                return line[i..].to_string();
            }
        }
    };
    assert!(ask(&mut to_held).starts_with("HTTP/1.1 400"));

    // PUT /v0.1/certificate with `key` + `cert` from the test PKI, trusting `ca`.
    let rotate = |ca: &str, key: &str, cert: &str, agent: &Agent| {
        let read = |f: &str| std::fs::read_to_string(pki.file(f)).unwrap();
        let body = dir.write("upload.pem", &format!("{}{}", read(key), read(cert)));
        let data = format!("@{}", body.display());
        let url = agent.url("https", "/v0.1/certificate");
        curl(&["--cacert", ca, "-X", "PUT", "--data-binary", &data, &url]).unwrap()
    };
    let r = rotate(&ca, "server2.key", "server2.pem", &agent);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"message": "OK"}));

    // The held connection goes on; new connections get the new certificate.
    assert!(ask(&mut to_held).starts_with("HTTP/1.1 400"));
    assert_eq!(get(&other, &agent), Some(400));
    assert_eq!(get(&ca, &agent), None);
    drop(to_held);
    let _ = held.kill();
    let _ = held.wait();

    // A bad upload changes nothing.
    let r = rotate(&other, "server.key", "server2.pem", &agent);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "Certificate and key do not match");
    assert_eq!(get(&other, &agent), Some(400));

    // Stored (0600), and still served after a restart.
    assert_eq!(std::fs::metadata(&crt).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let mut agent = Agent::start(
        &dir,
        &format!("sslcrt: {}\nsslkey: {}\n", crt.display(), key.display()),
    );
    assert_eq!(get(&other, &agent), Some(400));

    // A rotation cut short after the certificate file (old key file left): still starts, new pair.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    std::fs::copy(pki.file("server.key"), &key).unwrap();
    let agent = Agent::start(
        &dir,
        &format!("sslcrt: {}\nsslkey: {}\n", crt.display(), key.display()),
    );
    assert_eq!(get(&other, &agent), Some(400));
}
