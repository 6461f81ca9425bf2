//! The front's HTTP/1.1 semantics, from an outside probe's findings: every request gets an
//! answer or a close, in order, nothing holds a slot, connection wishes are honoured both ways,
//! ambiguous heads are refused, HEAD works, and the logs are safe and quiet. Raw sockets, plain
//! and TLS, against the real binary.

mod common;

use common::{curl, parse_response, raw, tls_connect, Agent, Pki, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SERVER: &str = concat!("lbagent/", env!("CARGO_PKG_VERSION"));

fn agent(dir: &TempDir, extra: &str) -> Agent {
    Agent::start(
        dir,
        &format!(
            "socat: {}\nfe: ['be']\n{extra}",
            dir.path("none.stat").display()
        ),
    )
}

/// Sends `request` and reads everything until the agent closes; fails if it does not close
/// within `within`.
fn exchange(port: u16, request: &[u8], within: Duration) -> String {
    let t = Instant::now();
    let answer = raw(port, request, within + Duration::from_secs(5));
    assert!(
        t.elapsed() < within,
        "not closed within {within:?} ({:?}): {answer:?}",
        t.elapsed()
    );
    answer
}

/// Status lines in the order they came.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .split("HTTP/1.")
        .skip(1)
        .filter_map(|a| a.get(2..5)?.parse().ok())
        .collect()
}

#[test]
fn http2_and_unknown_versions_get_505_and_free_their_slot_at_once() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "max_connections: 8\n");
    // Twice the cap, without credentials: each is answered and closed at once.
    for i in 0..16 {
        let request: &[u8] = if i % 2 == 0 {
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        } else {
            b"GET /v1/devices HTTP/2.0\r\nHost: x\r\n\r\n"
        };
        let answer = exchange(agent.port, request, Duration::from_secs(3));
        assert!(
            answer.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
            "{answer}"
        );
        assert_eq!(parse_response(&answer).json()["code"], 505);
    }
    let r = curl(&[&agent.url("http", "/v1/devices")]).unwrap();
    assert_eq!(r.status, 200, "slots are free");
    // Over TLS too.
    let pki = Pki::new();
    let dir = TempDir::new("http");
    let agent = agent_tls(&dir, &pki, "max_connections: 2\n");
    for _ in 0..4 {
        let mut s = tls_connect(agent.port, &pki.file("ca.pem")).unwrap();
        s.write_all(b"GET /v1/devices HTTP/2.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let answer = read_to_close(&mut s);
        assert!(answer.starts_with("HTTP/1.1 505 "), "{answer}");
    }
}

fn agent_tls(dir: &TempDir, pki: &Pki, extra: &str) -> Agent {
    agent(
        dir,
        &format!(
            "sslcrt: {}\nsslkey: {}\n{extra}",
            pki.file("server.pem"),
            pki.file("server.key")
        ),
    )
}

fn read_to_close(s: &mut impl Read) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_non_ascii_header_gets_400_first_and_nothing_after_it_is_answered() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "");
    let answer = exchange(
        agent.port,
        "GET /v1/devices HTTP/1.1\r\nHost: x\r\nUser-Agent: café\r\n\r\nGET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(statuses(&answer), [400], "{answer}");
    assert!(agent.access_log(1).contains("\"front: Bad Request\""));
    // A good request before it is answered first, in order.
    let answer = exchange(
        agent.port,
        "GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nX: \u{e9}\r\n\r\n"
            .as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(statuses(&answer), [200, 400], "{answer}");
}

#[test]
fn over_the_cap_slow_plain_clients_read_the_503_not_a_reset() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "max_connections: 16\n");
    let port = agent.port;
    let held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // 24 more, each sending its request over 3 s before it reads.
    let clients: Vec<_> = (0..24)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                for piece in ["GET /v1/devices ", "HTTP/1.1\r\n", "Host: x\r\n", "\r\n"] {
                    std::thread::sleep(Duration::from_millis(800));
                    if s.write_all(piece.as_bytes()).is_err() {
                        break;
                    }
                }
                let mut out = Vec::new();
                let got = s.read_to_end(&mut out);
                (
                    got.map_err(|e| e.kind()),
                    String::from_utf8_lossy(&out).into_owned(),
                )
            })
        })
        .collect();
    for c in clients {
        let (got, answer) = c.join().unwrap();
        assert!(got.is_ok(), "{got:?} after {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
        assert!(
            answer.contains(&format!("Server: {SERVER}\r\n")),
            "{answer}"
        );
    }
    drop(held);
}

#[test]
fn connection_close_and_http_1_0_are_honoured_both_ways() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "request_timeout: 20\n");
    let get = "GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n";
    // `close`: one answer that says so, then the close; the pipelined request is not answered.
    let answer = exchange(
        agent.port,
        format!("GET /v1/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{get}").as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(statuses(&answer), [200], "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    // HTTP/1.0 without keep-alive: the same.
    let answer = exchange(
        agent.port,
        format!("GET /v1/devices HTTP/1.0\r\n\r\n{get}").as_bytes(),
        Duration::from_secs(3),
    );
    assert!(answer.starts_with("HTTP/1.0 200 "), "{answer}");
    assert_eq!(answer.matches("HTTP/1.").count(), 1, "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    // HTTP/1.0 asking for keep-alive gets it, and says so.
    let keep = "GET /v1/devices HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let answer = exchange(
        agent.port,
        format!("{keep}{keep}GET /v1/devices HTTP/1.0\r\n\r\n").as_bytes(),
        Duration::from_secs(3),
    );
    assert_eq!(answer.matches("HTTP/1.0 200 ").count(), 3, "{answer}");
    assert_eq!(
        answer.matches("Connection: keep-alive\r\n").count(),
        2,
        "{answer}"
    );
    // HTTP/1.1 keep-alive answers say nothing of the connection, which stays open.
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..3 {
        s.write_all(get.as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        assert!(!answer.contains("Connection:"), "{answer}");
    }
}

#[test]
fn ambiguous_heads_get_400_and_the_connection_closes() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "request_timeout: 20\n");
    for head in [
        "PUT /v1/devices HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /v1/devices HTTP/1.1\r\n\r\n",
        "GET /v1/devices HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /v1/devices HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\nAuthorization: Basic eDp5\r\n\r\n",
    ] {
        let answer = exchange(
            agent.port,
            format!("{head}GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            Duration::from_secs(3),
        );
        assert_eq!(statuses(&answer), [400], "{head:?}: {answer}");
        assert_eq!(parse_response(&answer).json()["code"], 400);
    }
}

#[test]
fn head_is_served_on_every_get_route_and_204_has_no_length() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "");
    let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ask = |request: &str| {
        s.write_all(request.as_bytes()).unwrap();
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let get = ask("GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = ask("HEAD /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n");
    let (g, h) = (parse_response(&get), parse_response(&head));
    assert_eq!(h.status, 200, "{head}");
    assert_eq!(h.body, "", "no body: {head}");
    assert_eq!(h.header("Content-Length"), g.header("Content-Length"));
    assert_eq!(h.header("Content-Type"), g.header("Content-Type"));
    // The connection is still in step: a POST, then a 204 DELETE without a length.
    let body = r#"{"name":"lb1","address":"192.0.2.1"}"#;
    let created = ask(&format!(
        "POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let id = parse_response(&created).json()["id"].clone();
    let deleted = ask(&format!(
        "DELETE /v1/devices/{id} HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    assert!(deleted.starts_with("HTTP/1.1 204 "), "{deleted}");
    assert!(
        !deleted.to_ascii_lowercase().contains("content-length"),
        "{deleted}"
    );
    assert!(ask("GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 200 "));
    // HEAD where only other methods are: 405, and Allow names HEAD beside GET.
    let r = curl(&["-X", "DELETE", &agent.url("http", "/v1/devices")]).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, POST"));
}

#[test]
fn every_answer_names_lbagent_and_no_other_server() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "max_connections: 1\n");
    let refused = raw(
        agent.port,
        b"GET / HTTP/1.1\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(refused.starts_with("HTTP/1.1 400 "), "{refused}");
    assert!(
        refused.contains(&format!("\r\nServer: {SERVER}\r\n")),
        "{refused}"
    );
    // A keep-alive client holds the one slot once it has been answered (the refused
    // connection's slot frees a moment after its close).
    let (held, handler) = loop {
        let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        if answer.starts_with("HTTP/1.1 200 ") {
            break (s, answer);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        handler.contains(&format!("\r\nServer: {SERVER}\r\n")),
        "{handler}"
    );
    let busy = raw(
        agent.port,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
    assert!(
        busy.contains(&format!("\r\nServer: {SERVER}\r\n")),
        "{busy}"
    );
    drop(held);
    for answer in [&refused, &handler, &busy] {
        assert!(!answer.contains("tiny-http"), "{answer}");
    }
}

#[test]
fn client_certificate_subjects_cannot_forge_log_lines() {
    let pki = Pki::new();
    pki.issue(
        "evil",
        "/O=lbagent tests/CN=evil\r\n127.0.0.1 - - [forged]\u{1b}[31m\\\\\"q",
        "extendedKeyUsage=clientAuth\n",
    );
    let dir = TempDir::new("http");
    let agent = agent_tls(&dir, &pki, &format!("client_ca: {}\n", pki.file("ca.pem")));
    let r = curl(&[
        "--cacert",
        &pki.file("ca.pem"),
        "--cert",
        &pki.file("evil.pem"),
        "--key",
        &pki.file("evil.key"),
        "-A",
        "agent \"quoted\" \\ back",
        &agent.url("https", "/v1/devices"),
    ])
    .unwrap();
    assert_eq!(r.status, 200);
    let log = agent.access_log(1);
    assert_eq!(log.lines().count(), 1, "{log:?}");
    assert!(!log.contains('\r') && !log.contains('\u{1b}'), "{log:?}");
    assert!(
        log.contains("CN=evil\\x0d\\x0a127.0.0.1 - - [forged]\\x1b[31m\\\\\\\"q"),
        "{log}"
    );
    assert!(log.contains("\"agent \\\"quoted\\\" \\\\ back\""), "{log}");
}

#[test]
fn failed_logins_and_handshakes_are_logged_once_a_second_with_a_count() {
    let pki = Pki::new();
    let dir = TempDir::new("http");
    let agent = agent_tls(
        &dir,
        &pki,
        &format!("client_ca: {}\nuser: u\npassword: p\n", pki.file("ca.pem")),
    );
    let ca = pki.file("ca.pem");
    let (cc, ck) = (pki.file("client.pem"), pki.file("client.key"));
    let t = Instant::now();
    // 300 failed logins on one connection (curl reuses it), then 20 failed handshakes.
    let mut args = vec![
        "--cacert", &ca, "--cert", &cc, "--key", &ck, "-u", "u:wrong",
    ];
    let url = agent.url("https", "/v1/devices");
    for _ in 0..300 {
        args.extend([
            "--next", "--cacert", &ca, "--cert", &cc, "--key", &ck, "-u", "u:wrong", &url,
        ]);
    }
    args.push(&url);
    let r = curl(&args).unwrap();
    assert_eq!(r.status, 401);
    for _ in 0..20 {
        assert!(curl(&["--cacert", &ca, &url]).is_err());
    }
    std::thread::sleep(Duration::from_millis(1100));
    // One more of each after a quiet second: logged, with what was held back counted.
    curl(&[
        "--cacert", &ca, "--cert", &cc, "--key", &ck, "-u", "u:wrong", &url,
    ])
    .unwrap();
    assert!(curl(&["--cacert", &ca, &url]).is_err());
    let seconds = t.elapsed().as_secs() + 1;
    let log = agent.app_log();
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("login refused"))
        .collect();
    let handshakes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS handshake failed"))
        .collect();
    for lines in [&logins, &handshakes] {
        assert!(!lines.is_empty(), "{log}");
        assert!(
            lines.len() as u64 <= seconds + 1,
            "{} lines in {seconds} s: {log}",
            lines.len()
        );
        assert!(lines.iter().all(|l| l.contains("127.0.0.1: ")), "{log}");
    }
    let counted: u64 = logins
        .iter()
        .map(|l| {
            l.split(" (")
                .nth(1)
                .and_then(|c| c.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        })
        .sum();
    assert!(
        counted >= 290,
        "counts add up to the failures: {counted}: {log}"
    );
    assert!(!log.contains("wrong"), "no password in the log");
}

/// The ids of the agent's threads named `name`.
fn thread_ids(agent: &Agent, name: &str) -> Vec<u32> {
    let tasks = format!("/proc/{}/task", agent.child.id());
    let mut ids: Vec<u32> = std::fs::read_dir(tasks)
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn new_connections_are_served_by_threads_already_running() {
    let dir = TempDir::new("http");
    let agent = agent(&dir, "");
    let ask = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(
        statuses(&exchange(agent.port, ask, Duration::from_secs(5))),
        [404]
    );
    let before = thread_ids(&agent, "conn");
    assert!(!before.is_empty() && before.len() <= 3, "{before:?}");
    // One after the other, each on a connection of its own: a thread started per connection
    // would show 20 new ids.
    for _ in 0..20 {
        assert_eq!(
            statuses(&exchange(agent.port, ask, Duration::from_secs(5))),
            [404]
        );
    }
    let after = thread_ids(&agent, "conn");
    let new = after.iter().filter(|t| !before.contains(t)).count();
    assert!(
        new < 10,
        "{new} new connection threads for 20 connections: {after:?}"
    );
    assert!(after.len() <= 3, "{after:?}");
}
