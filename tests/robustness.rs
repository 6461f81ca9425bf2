//! The front's promises: errors, limits, deadlines, the connection cap, the internal listener,
//! signals. Plain HTTP on loopback, real binary.

mod common;

use common::{curl, parse_response, raw, Agent, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

const SOME_PATH: &str = "/loadBalancer/nodes/bogus";

fn agent(dir: &TempDir, extra: &str) -> Agent {
    Agent::start(
        dir,
        &format!(
            "socat: {}\nfe: ['be']\n{extra}",
            dir.path("none.stat").display()
        ),
    )
}

fn connect(agent: &Agent) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn unknown_paths_and_methods() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "");
    let r = curl(&[&agent.url("http", "/no/such/thing")]).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], 404);
    let r = curl(&["-X", "DELETE", &agent.url("http", "/loadBalancer/status")]).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_eq!(r.json()["message"], "Method Not Allowed");
    let r = curl(&[&agent.url("http", "/loadBalancer/poolManager/fe/disable/1")]).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
}

#[test]
fn bodies_over_max_body_get_413() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "max_body: 1024\n");
    let big = "x".repeat(5000);
    let url = agent.url("http", "/loadBalancer/poolManager/fe/disable/1");
    let r = curl(&["--data-binary", &big, &url]).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], 413);
    // Chunked, with no length announced.
    let r = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &big,
        &url,
    ])
    .unwrap();
    assert_eq!(r.status, 413);
    // At the limit is fine (the request goes on to the handler: 503, no HAProxy here).
    let r = curl(&["--data-binary", &"x".repeat(1024), &url]).unwrap();
    assert_eq!(r.status, 503);
    // A huge head is refused too.
    let huge = format!("X-Big: {}", "h".repeat(64 * 1024));
    let r = curl(&["-H", &huge, &url]).unwrap();
    assert_eq!(r.status, 431);
}

#[test]
fn a_stalled_client_is_cut_off_while_others_are_served() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "request_timeout: 2\n");
    let mut slow = connect(&agent);
    let started = Instant::now();
    slow.write_all(b"GET /loadBalancer/nodes/up HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Others are served meanwhile.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(curl(&[&agent.url("http", SOME_PATH)]).unwrap().status, 400);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    let answer = read_all(&mut slow);
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        took >= Duration::from_millis(1900),
        "cut off too early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "cut off too late: {took:?}");
    // An idle keep-alive connection is closed after the timeout too.
    let mut idle = connect(&agent);
    let t = Instant::now();
    assert_eq!(read_all(&mut idle), "");
    assert!(t.elapsed() < Duration::from_secs(8));
}

#[test]
fn connections_over_the_cap_get_503_instead_of_hanging() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "max_connections: 2\n");
    let held: Vec<TcpStream> = (0..2).map(|_| connect(&agent)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let answer = raw(
        agent.port,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(parse_response(&answer).status, 503);
    drop(held);
    common::wait_for("a free slot", Duration::from_secs(5), || {
        curl(&[&agent.url("http", SOME_PATH)]).is_ok_and(|r| r.status == 400)
    });
}

#[test]
fn the_internal_socket_serves_nobody_directly() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "");
    assert_eq!(
        agent.listening_ports(),
        [agent.port],
        "no TCP listener but the public one"
    );
    let sockets = agent.listening_unix_sockets();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    let private = sockets[0].parent().unwrap();
    assert_eq!(std::fs::metadata(private).unwrap().mode() & 0o777, 0o700);
    // Root may still connect: with no token, or a guessed one, nothing is served.
    for token in [None, Some("00000000000000000000000000000000")] {
        let mut s = std::os::unix::net::UnixStream::connect(&sockets[0]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut req = format!("GET {SOME_PATH} HTTP/1.1\r\nHost: x\r\n");
        if let Some(t) = token {
            req.push_str(&format!("X-Lbagent-Conn: {t}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.is_empty(),
            "{token:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    let log = agent.app_log();
    assert_eq!(
        log.matches("did not come through the front; dropped")
            .count(),
        2,
        "{log}"
    );
    // Through the front, the same request is served; a client cannot name the connection.
    assert_eq!(curl(&[&agent.url("http", SOME_PATH)]).unwrap().status, 400);
    let r = curl(&[
        "-H",
        "X-Lbagent-Conn: 00",
        &agent.url("http", "/loadBalancer/status"),
    ])
    .unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let dir = TempDir::new("rob");
    let mut agent = agent(&dir, "");
    let mut s = connect(&agent);
    s.write_all(format!("GET {SOME_PATH} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    agent.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    // New connections are no longer taken.
    assert!(TcpStream::connect(("127.0.0.1", agent.port)).is_err());
    s.write_all(b"Connection: close\r\n\r\n").unwrap();
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(agent.app_log().contains("stopped"));
}

#[test]
fn sighup_reopens_the_logs() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "");
    curl(&[&agent.url("http", SOME_PATH)]).unwrap();
    agent.access_log(1);
    let rotated = dir.path("access.log.1");
    std::fs::rename(&agent.access, &rotated).unwrap();
    agent.signal("HUP");
    common::wait_for("the log to be reopened", Duration::from_secs(5), || {
        agent.app_log().contains("log files reopened")
    });
    curl(&[&agent.url("http", "/again")]).unwrap();
    let fresh = agent.access_log(1);
    assert!(fresh.contains("/again"), "{fresh}");
    assert!(!std::fs::read_to_string(rotated).unwrap().contains("/again"));
}

#[test]
fn pipelined_and_keep_alive_requests_are_all_answered() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "");
    let one = format!("GET {SOME_PATH} HTTP/1.1\r\nHost: x\r\n\r\n");
    let req = format!("{one}{one}GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let answer = raw(agent.port, req.as_bytes(), Duration::from_secs(5));
    assert_eq!(answer.matches("HTTP/1.1 400").count(), 2, "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 404").count(), 1, "{answer}");
}

#[test]
fn hostile_heads_are_refused_and_the_agent_lives_on() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "");
    for (what, head, status) in [
        (
            "huge Content-Length",
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999\r\n\r\n"[..],
            "413",
        ),
        (
            "length past u64",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "400",
        ),
        (
            "folded Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\n Content-Length: 99999999999999999\r\n\r\n",
            "400",
        ),
        ("bare LF", b"GET / HTTP/1.1\r\nHost: x\n\n", "400"),
        (
            "chunked trailer",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n\r\n",
            "400",
        ),
        (
            "upgrade",
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            "400",
        ),
    ] {
        let answer = raw(agent.port, head, Duration::from_secs(5));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer:?}"
        );
        let r = curl(&[&agent.url("http", SOME_PATH)]).unwrap();
        assert_eq!(r.status, 400, "after {what}, the agent must still serve");
    }
    // The front's own answers are in the access log too.
    let log = agent.access_log(12);
    assert!(
        log.contains("\"-\" 413 0 \"-\" \"-\" 0.000 \"front: Payload Too Large\""),
        "{log}"
    );
    assert_eq!(log.matches("\"front: Bad Request\"").count(), 5, "{log}");
}

#[test]
fn an_early_answer_does_not_hold_the_connection_open() {
    let dir = TempDir::new("rob");
    let agent = agent(&dir, "request_timeout: 2\nuser: u\npassword: p\n");
    let mut s = connect(&agent);
    s.write_all(b"POST /loadBalancer/poolManager/fe/disable/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        .unwrap();
    // The 401 comes before the body is sent.
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    s.write_all(&[b'x'; 2000]).unwrap();
    // Nothing more is owed: the idle connection is closed at the request timeout, not kept.
    let t = Instant::now();
    let _ = read_all(&mut s);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

/// Many keep-alive clients arriving at once, each holding its connection open: every one is
/// answered while the others stay open (a request must never wait for another client to leave).
#[test]
fn a_burst_of_keep_alive_clients_is_answered_while_all_stay_open() {
    let dir = TempDir::new("burst");
    let agent = agent(&dir, "max_connections: 100\n");
    let port = agent.port;
    let n = 48;
    // A few rounds: a burst only sometimes meets the moment that matters.
    for _ in 0..4 {
        burst_round(port, n);
    }
}

fn burst_round(port: u16, n: usize) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                barrier.wait();
                let mut answers = 0;
                for _ in 0..3 {
                    s.write_all(b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    while !String::from_utf8_lossy(&got).contains("\"devices\"") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return (answers, s),
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    answers += 1;
                }
                (answers, s)
            })
        })
        .collect();
    // Every connection stays open until all are checked.
    let results: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let short = results.iter().filter(|(a, _)| *a < 3).count();
    assert_eq!(
        short, 0,
        "{short} of {n} clients were not answered within 5 s"
    );
}
