//! Hostile clients and the authorization audit (issue 7, first part): every route refuses an
//! unauthenticated caller; path parameters carrying traversal or bad bytes are refused; slow,
//! silent and never-reading clients are cut off, and the agent's threads come back to normal.

mod common;

use common::{call, curl, raw, Agent, TempDir, BIN};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (method, pattern) of every route, from the binary itself.
fn routes() -> Vec<(String, String)> {
    let out = std::process::Command::new(BIN)
        .arg("--routes")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let routes: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (m, p) = l.split_once(' ').unwrap();
            (m.to_string(), p.to_string())
        })
        .collect();
    assert!(routes.len() > 30, "{text}");
    routes
}

/// The pattern with every `{param}` replaced: `value(name)` for each.
fn fill(pattern: &str, value: impl Fn(&str) -> String) -> String {
    pattern
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => value(name),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn plausible(name: &str) -> String {
    match name {
        "filename" => "a.pem".into(),
        "ip" => "127.0.0.1".into(),
        "id" => "1".into(),
        "status" => "up".into(),
        "action" => "start".into(),
        _ => "x1".into(),
    }
}

fn threads(agent: &Agent) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn every_route_refuses_a_caller_without_credentials() {
    let dir = TempDir::new("host");
    let agent = Agent::start(&dir, "user: admin\npassword: 's3cret'\n");
    let mut checked = 0;
    for (method, pattern) in routes() {
        let path = fill(&pattern, plausible);
        let r = call(&agent, &dir, &method, &path, Some(b"{}"));
        assert_eq!(
            r.status, 401,
            "{method} {path} answered without credentials: {}",
            r.body
        );
        assert!(r.header("WWW-Authenticate").is_some(), "{method} {path}");
        checked += 1;
    }
    // Unknown paths and methods too.
    for (m, p) in [
        ("GET", "/nope"),
        ("DELETE", "/loadBalancer/status"),
        ("POST", "/instances"),
    ] {
        assert_eq!(call(&agent, &dir, m, p, None).status, 401, "{m} {p}");
    }
    eprintln!("{checked} routes refused without credentials");
}

#[test]
fn traversal_and_bad_bytes_in_every_path_parameter_are_refused() {
    let dir = TempDir::new("host");
    let agent = Agent::start(&dir, "");
    let hostile = [
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%252f..%252fetc%252fpasswd",
        "..",
        "a%00b",
        "%ff%fe",
        "a%2Fb",
        "%0d%0aX-Injected:%201",
    ];
    let mut tried = 0;
    for (method, pattern) in routes() {
        let names: Vec<String> = pattern
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        for name in names.iter().filter(|n| n.as_str() != "amphora_id") {
            for bad in hostile {
                let path = fill(&pattern, |n| {
                    if n == name {
                        bad.to_string()
                    } else {
                        plausible(n)
                    }
                });
                let r = call(&agent, &dir, &method, &path, Some(b"{}"));
                assert!(
                    (400..500).contains(&r.status),
                    "{method} {path}: {} {}",
                    r.status,
                    r.body
                );
                tried += 1;
            }
        }
    }
    assert!(!std::path::Path::new("/etc/passwd.pem").exists());
    eprintln!("{tried} hostile path parameters refused");
    // Raw bytes no client should send: the front or the router refuses, the agent lives on.
    for req in [
        &b"GET /v0.1/listeners/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let answer = raw(agent.port, req, Duration::from_secs(3));
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer:?}");
    }
    assert_eq!(
        curl(&[&agent.url("http", "/v0.1/listeners")])
            .unwrap()
            .status,
        200
    );
}

#[test]
fn slow_silent_and_deaf_clients_are_cut_off_and_threads_come_back() {
    let dir = TempDir::new("host");
    let agent = Agent::start(&dir, "request_timeout: 15\n");
    // A large config, so that a client that never reads its answers fills its socket.
    let mut cfg = String::from("global\n    maxconn 10\nfrontend f\n    bind unix@fe.sock\n");
    while cfg.len() < 3 << 20 {
        cfg.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/listeners/amp/big/haproxy",
        Some(cfg.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = threads(&agent);

    // 30 slowloris connections trickling a head, 10 silent ones, and 10 that pipeline requests
    // for the large config and never read (more than the agent has workers).
    let mut conns = Vec::new();
    for _ in 0..30 {
        let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        s.write_all(b"GET /v0.1/listeners HTTP/1.1\r\n").unwrap();
        conns.push(s);
    }
    for _ in 0..10 {
        conns.push(TcpStream::connect(("127.0.0.1", agent.port)).unwrap());
    }
    let ask = "GET /v0.1/listeners/big/haproxy HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4);
    for _ in 0..10 {
        let mut s = TcpStream::connect(("127.0.0.1", agent.port)).unwrap();
        s.write_all(ask.as_bytes()).unwrap();
        conns.push(s);
    }
    // Meanwhile, normal callers are served: beside the hostile connections, not after them
    // (the slowloris ones are still open when the answers are in).
    for _ in 0..3 {
        assert_eq!(
            curl(&[&agent.url("http", "/v0.1/listeners")])
                .unwrap()
                .status,
            200
        );
    }
    for s in conns.iter_mut().take(30) {
        s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut one = [0u8; 1];
        let open = matches!(s.read(&mut one), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
        assert!(
            open,
            "a slowloris connection was cut before normal callers were served"
        );
    }
    // Drip one more byte into the slowloris ones: still cut at the request deadline.
    for s in conns.iter_mut().take(30) {
        let _ = s.write_all(b"H");
    }
    all_cut(
        "all hostile connections cut",
        &mut conns,
        Duration::from_secs(40),
    );
    drop(conns);
    // tiny_http lets an idle connection thread go after 5 s.
    common::wait_for("threads back to normal", Duration::from_secs(25), || {
        threads(&agent) <= baseline + 2
    });
    let t = Instant::now();
    assert_eq!(
        curl(&[&agent.url("http", "/v0.1/listeners")])
            .unwrap()
            .status,
        200
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn secrets_never_reach_responses_or_logs() {
    let pki = common::Pki::new();
    let dir = TempDir::new("host");
    let agent = Agent::start(
        &dir,
        "user: admin\npassword: 'pa55-w0rd-xyz'\ndebug: true\n",
    );
    let key = std::fs::read_to_string(pki.file("server.key")).unwrap();
    let cert = std::fs::read_to_string(pki.file("server.pem")).unwrap();
    let key_line = key.lines().nth(1).unwrap().to_string();
    let auth = ["-u", "admin:pa55-w0rd-xyz"];
    let run = |method: &str, path: &str, body: &str| {
        let f = dir.write("secret-body.tmp", body);
        let data = format!("@{}", f.display());
        let url = agent.url("http", path);
        let mut args = vec!["-X", method, "--data-binary", data.as_str(), url.as_str()];
        args.extend(auth);
        curl(&args).unwrap()
    };
    let mut bodies = Vec::new();
    let cfg = "global\n    maxconn 10\nfrontend f\n    bind unix@fe.sock\n";
    bodies.push(run("PUT", "/v0.1/listeners/amp/l1/haproxy", cfg).body);
    for (name, pem) in [
        ("good.pem", format!("{key}{cert}")),
        ("bad.pem", format!("{key}garbage")),
        ("keyonly.pem", key.clone()),
    ] {
        bodies.push(
            run(
                "PUT",
                &format!("/v0.1/listeners/l1/certificates/{name}"),
                &pem,
            )
            .body,
        );
        bodies.push(run("PUT", &format!("/instances/l1/certificates/{name}"), &pem).body);
        bodies.push(
            run(
                "GET",
                &format!("/v0.1/listeners/l1/certificates/{name}"),
                "",
            )
            .body,
        );
    }
    let topo = r#"{"topology":"ACTIVE-STANDBY","role":"STANDBY","ha_ip":"203.0.113.2","secret":"t0p-s3cret-value"}"#;
    bodies.push(run("POST", "/v0.1/topology", topo).body);
    bodies.push(run("GET", "/v0.1/topology", "").body);
    bodies.push(run("GET", "/v0.1/details", "").body);
    bodies.push(run("PUT", "/v0.1/vrrp/upload", "include /etc/shadow\n").body);
    // Wrong credentials carry the password attempt: it must not be logged either.
    let url = agent.url("http", "/v0.1/listeners");
    curl(&["-u", "admin:wr0ng-guess-abc", &url]).unwrap();
    agent.access_log(12);
    let logs = format!("{}{}", agent.access_log(0), agent.app_log());
    for secret in [
        "pa55-w0rd-xyz",
        "wr0ng-guess-abc",
        "t0p-s3cret-value",
        "PRIVATE KEY",
        key_line.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret:?} in the logs");
        for b in &bodies {
            assert!(!b.contains(secret), "{secret:?} in a response: {b}");
        }
    }
    assert!(
        !logs.contains("Authorization") && !logs.contains("YWRtaW4"),
        "auth header logged"
    );
}

/// Every file under `root`, recursively (sockets and directories left out).
fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn kill_9_at_random_points_leaves_every_file_old_or_new() {
    let pki = common::Pki::new();
    let dir = TempDir::new("kill");
    let pems: Vec<String> = ["server", "client"]
        .iter()
        .map(|n| {
            format!(
                "{}{}",
                std::fs::read_to_string(pki.file(&format!("{n}.key"))).unwrap(),
                std::fs::read_to_string(pki.file(&format!("{n}.pem"))).unwrap()
            )
        })
        .collect();
    let configs: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "# version {i}\nglobal\n    maxconn {}\nfrontend f\n    bind unix@fe.sock\n",
                10 + i
            )
        })
        .collect();
    let mut kills = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    while kills < 100 {
        let mut agent = Agent::start(&dir, "");
        let port = agent.port;
        let (cfgs, pems2) = (configs.clone(), pems.clone());
        // How many writes this agent has answered: the kill window opens only once it has
        // answered one of each kind, however slow the machine.
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = answered.clone();
        let writer = std::thread::spawn(move || {
            let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
            for i in 0.. {
                let (path, body, method) = match i % 4 {
                    0 => (
                        "/v0.1/listeners/amp/l1/haproxy".to_string(),
                        cfgs[i % cfgs.len()].clone(),
                        "PUT",
                    ),
                    1 => (
                        format!("/instances/l1/certificates/c{}.pem", i % 3),
                        pems2[i % 2].clone(),
                        "PUT",
                    ),
                    2 => (
                        "/v1/devices".to_string(),
                        format!(
                            r#"{{"name":"d{i}-{port}","address":"10.9.{}.{}"}}"#,
                            (i / 250) % 250,
                            i % 250
                        ),
                        "POST",
                    ),
                    _ => (
                        "/v0.1/topology".to_string(),
                        format!(r#"{{"topology":"SINGLE","ha_ip":"203.0.113.{}"}}"#, i % 250),
                        "POST",
                    ),
                };
                if curl(&[
                    "--max-time",
                    "5",
                    "-X",
                    method,
                    "--data-binary",
                    &body,
                    &url(&path),
                ])
                .is_err()
                {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        common::wait_for("the agent's first writes", Duration::from_secs(60), || {
            answered.load(Ordering::SeqCst) >= 4
        });
        // A pseudo-random moment in the next 0-150 ms.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 150));
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        writer.join().unwrap();
        kills += 1;
        for f in files_under(&dir.path("state"))
            .into_iter()
            .chain(files_under(&dir.path("certs")))
        {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if name.starts_with(".lbagent.tmp.") {
                continue; // an unfinished write that never replaced anything
            }
            match name.as_str() {
                "haproxy.cfg" | "haproxy.cfg.lkg" => {
                    assert!(configs.contains(&text), "kill {kills}: torn {f:?}")
                }
                "devices.json" | "topology.json" | "state.json" | "plugs.json" => {
                    serde_json::from_str::<serde_json::Value>(&text)
                        .unwrap_or_else(|e| panic!("kill {kills}: torn {f:?}: {e}"));
                }
                n if n.ends_with(".pem") => {
                    assert!(pems.contains(&text), "kill {kills}: torn {f:?}")
                }
                _ => assert!(
                    !text.is_empty() || name.ends_with(".log"),
                    "kill {kills}: empty {f:?}"
                ),
            }
        }
    }
    // The agent starts cleanly on what is left, and serves it.
    let agent = Agent::start(&dir, "");
    let usage = call(&agent, &dir, "GET", "/v1/devices/usage", None).json();
    assert!(
        usage["total"].as_u64().unwrap() > 0,
        "writes happened between the kills"
    );
    assert!(dir.path("state/listeners/l1/haproxy.cfg").exists());
    // Leftovers of cut writes are swept at start-up, and nothing was written outside
    // state_dir and cert_dir but the logs and the running agent's socket directory.
    let temps: Vec<_> = files_under(&dir.path("state"))
        .into_iter()
        .chain(files_under(&dir.path("certs")))
        .filter(|f| f.to_string_lossy().contains(".lbagent.tmp."))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    let mut top: Vec<String> = std::fs::read_dir(dir.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            "access.log",
            "agent.log",
            "agent.yaml",
            "certs",
            "state",
            "tmp"
        ]
    );
    let tmp: Vec<_> = std::fs::read_dir(dir.path("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(tmp, [format!("lbagent-{}", agent.child.id()).as_str()]);
    eprintln!("{kills} kill -9s survived; every file was an old or a new version");
}

/// A tmpfs mounted for one test; lazily unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: std::path::PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let opt = format!("size={size},mode=0700");
        let p = path.to_str().unwrap();
        common::run(
            std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &opt, "tmpfs", p]),
        );
        Tmpfs(path)
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn unfill(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Every file under the roots (but the test's filler) with its content.
fn snapshot(roots: &[std::path::PathBuf]) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut all: Vec<_> = roots
        .iter()
        .flat_map(|r| files_under(r))
        .filter(|f| !f.ends_with("filler"))
        .map(|f| {
            let data = std::fs::read(&f).unwrap();
            (f, data)
        })
        .collect();
    all.sort();
    all
}

#[test]
fn a_full_disk_gives_a_clean_500_and_leaves_every_file_whole() {
    if common::lacks_root(
        "a_full_disk_gives_a_clean_500_and_leaves_every_file_whole",
        "to mount a small tmpfs",
    ) {
        return;
    }
    let pki = common::Pki::new();
    let pem = |n: &str| {
        format!(
            "{}{}",
            std::fs::read_to_string(pki.file(&format!("{n}.key"))).unwrap(),
            std::fs::read_to_string(pki.file(&format!("{n}.pem"))).unwrap()
        )
    };
    let dir = TempDir::new("full");
    let state = Tmpfs::mount(dir.path("state"), "512k");
    let certs = Tmpfs::mount(dir.path("certs"), "128k");
    let agent = Agent::start(&dir, "");
    let put = |path: &str, body: &str| call(&agent, &dir, "PUT", path, Some(body.as_bytes()));
    let post = |path: &str, body: &str| call(&agent, &dir, "POST", path, Some(body.as_bytes()));
    let config = |v: &str| {
        format!(
            "# {v}\nglobal\n    maxconn 10\nfrontend f\n    bind unix@fe.sock\n# {}\n",
            "x".repeat(8000)
        )
    };
    const CFG: &str = "/v0.1/listeners/amp/l1/haproxy";
    const CERT: &str = "/v0.1/listeners/l1/certificates/c.pem";
    let device = |n: u8| format!(r#"{{"name":"d{n}","address":"192.0.2.{n}"}}"#);
    // Something to lose.
    assert!(put(CFG, &config("old")).status < 300);
    assert_eq!(put(CERT, &pem("server")).status, 201);
    assert_eq!(post("/v1/devices", &device(1)).status, 200);
    let roots = [dir.path("state"), dir.path("certs")];
    let before = snapshot(&roots);

    state.fill();
    certs.fill();
    for (what, r) in [
        ("listener config", put(CFG, &config("new"))),
        ("certificate", put(CERT, &pem("client"))),
        ("device", post("/v1/devices", &device(2))),
        (
            "topology",
            post("/v0.1/topology", r#"{"topology":"SINGLE","role":"ACTIVE"}"#),
        ),
    ] {
        assert_eq!(r.status, 500, "{what}: {}", r.body);
        assert!(
            r.details().contains("No space left on device"),
            "{what}: the reason is given: {}",
            r.body
        );
        assert!(!r.body.contains("PRIVATE KEY"), "{what}: {}", r.body);
    }
    assert_eq!(
        snapshot(&roots),
        before,
        "a failed write changed or left a file"
    );
    let r = call(&agent, &dir, "GET", "/v0.1/listeners/l1/haproxy", None);
    assert!(r.body.starts_with("# old"), "{}", r.body);
    let usage = call(&agent, &dir, "GET", "/v1/devices/usage", None).json();
    assert_eq!(usage["total"], 1);

    // With space again, the same writes go through.
    state.unfill();
    certs.unfill();
    assert!(put(CFG, &config("new")).status < 300);
    assert_eq!(put(CERT, &pem("client")).status, 201);
    assert_eq!(post("/v1/devices", &device(2)).status, 200);
    assert!(
        call(&agent, &dir, "GET", "/v0.1/listeners/l1/haproxy", None)
            .body
            .starts_with("# new")
    );
}

fn rss_kb(agent: &Agent) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `data` on a new TLS connection and returns what comes back until the agent closes it.
fn tls_exchange(port: u16, ca: &str, data: &[u8]) -> String {
    let mut s = common::tls_connect(port, ca).unwrap();
    // The agent may answer and close before it has read everything.
    let _ = s.write_all(data);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `bytes` on every connection each `every` until the agent has cut them all.
fn trickle_until_cut(
    what: &str,
    mut conns: Vec<common::TlsStream>,
    bytes: &[u8],
    every: Duration,
    within: Duration,
) {
    let end = Instant::now() + within;
    while Instant::now() < end && !conns.iter_mut().all(|c| common::is_closed(&mut c.sock)) {
        for c in &mut conns {
            let _ = c.write_all(bytes);
        }
        std::thread::sleep(every);
    }
    let mut socks: Vec<_> = conns.into_iter().map(|c| c.sock).collect();
    all_cut(what, &mut socks, Duration::from_secs(1));
}

/// Waits until the agent has closed every one of `socks`.
fn all_cut(what: &str, socks: &mut [TcpStream], within: Duration) {
    common::wait_for(what, within, || socks.iter_mut().all(common::is_closed));
}

#[test]
fn after_each_hostile_case_the_agent_answers_and_threads_and_rss_come_back() {
    const TIMEOUT: u64 = 3;
    let pki = common::Pki::new();
    let ca = pki.file("ca.pem");
    let dir = TempDir::new("hostile");
    let agent = Agent::start(
        &dir,
        &format!(
            "sslcrt: {}\nsslkey: {}\nmax_connections: 32\nrequest_timeout: {TIMEOUT}\n",
            pki.file("server.pem"),
            pki.file("server.key")
        ),
    );
    let port = agent.port;
    let url = agent.url("https", "/v1/devices");
    // Enough devices that a listing is ~15 KB: clients that never read fill their sockets.
    for i in 0..100 {
        let body = format!(
            r#"{{"name":"device-{i:03}-{}","address":"10.1.0.{i}"}}"#,
            "n".repeat(60)
        );
        let r = curl(&["--cacert", &ca, "--data-binary", &body, &url]).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (threads0, rss0) = (threads(&agent), rss_kb(&agent));
    let timeout = Duration::from_secs(TIMEOUT);
    let cut_within = timeout * 3 + Duration::from_secs(5);
    let get = b"GET /v1/devices HTTP/1.1\r\nHost: x\r\n\r\n";

    type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let cases: Vec<Case> = vec![
        (
            "huge headers",
            Box::new(|| {
                let head = format!(
                    "GET /v1/devices HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(200_000)
                );
                let r = tls_exchange(port, &ca, head.as_bytes());
                assert!(r.starts_with("HTTP/1.1 431"), "{r}");
            }),
        ),
        (
            "huge declared body",
            Box::new(|| {
                let r = tls_exchange(
                    port,
                    &ca,
                    b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n",
                );
                assert!(r.starts_with("HTTP/1.1 413"), "{r}");
            }),
        ),
        (
            "huge chunked body",
            Box::new(|| {
                let mut s = common::tls_connect(port, &ca).unwrap();
                s.write_all(
                    b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                )
                .unwrap();
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while s.write_all(chunk.as_bytes()).is_ok() && !common::is_closed(&mut s.sock) {}
            }),
        ),
        (
            "chunked bodies that never end",
            Box::new(|| {
                let mut conns: Vec<_> = (0..10)
                    .map(|_| common::tls_connect(port, &ca).unwrap())
                    .collect();
                for c in &mut conns {
                    c.write_all(b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .unwrap();
                }
                trickle_until_cut(
                    "never-ending chunked bodies cut",
                    conns,
                    b"1\r\na\r\n",
                    Duration::from_millis(300),
                    cut_within,
                );
            }),
        ),
        (
            "NUL and invalid UTF-8 in path and headers",
            Box::new(|| {
                for req in [
                    &b"GET /v1/devices/\xff\xfe HTTP/1.1\r\n\r\n"[..],
                    b"GET /v1/devices/a\0b HTTP/1.1\r\n\r\n",
                    b"GET /v1/devices HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
                    b"GET /v1/devices HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\n\r\n",
                ] {
                    let r = tls_exchange(port, &ca, req);
                    assert!(
                        r.starts_with("HTTP/1.1 400"),
                        "{:?}: {r}",
                        String::from_utf8_lossy(req)
                    );
                }
            }),
        ),
        (
            "pipelining",
            Box::new(|| {
                let mut s = common::tls_connect(port, &ca).unwrap();
                let mut reqs = get.repeat(49);
                reqs.extend_from_slice(
                    b"GET /v1/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                s.write_all(&reqs).unwrap();
                let mut out = Vec::new();
                let _ = s.read_to_end(&mut out);
                let answers = String::from_utf8_lossy(&out)
                    .matches("HTTP/1.1 200 ")
                    .count();
                assert_eq!(answers, 50);
            }),
        ),
        (
            "a flood past max_connections",
            Box::new(|| {
                let mut conns: Vec<_> = (0..48)
                    .filter_map(|_| common::tls_connect(port, &ca).ok())
                    .collect();
                let mut busy = 0;
                for c in &mut conns {
                    let _ = c.write_all(get);
                    let mut head = [0u8; 12];
                    if c.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 503" {
                        busy += 1;
                    }
                }
                assert!(busy >= 16, "{busy} of 48 got 503");
            }),
        ),
        (
            "TLS handshakes that stop halfway",
            Box::new(|| {
                let mut socks: Vec<_> = (0..20)
                    .map(|_| {
                        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                        // A handshake record header and the start of a ClientHello, then nothing.
                        s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                            .unwrap();
                        s
                    })
                    .collect();
                all_cut("half handshakes cut", &mut socks, cut_within);
            }),
        ),
        (
            "slowloris over TLS",
            Box::new(|| {
                let conns = (0..20)
                    .map(|_| common::tls_connect(port, &ca).unwrap())
                    .collect();
                trickle_until_cut(
                    "slowloris cut",
                    conns,
                    b"X",
                    Duration::from_millis(500),
                    cut_within,
                );
            }),
        ),
        (
            "clients that never read",
            Box::new(|| {
                let mut socks: Vec<_> = (0..5)
                    .map(|_| {
                        let mut c = common::tls_connect(port, &ca).unwrap();
                        c.write_all(&get.repeat(300)).unwrap();
                        c.sock
                    })
                    .collect();
                // Never reading TLS records: is_closed only looks for the close.
                all_cut(
                    "never-reading clients cut",
                    &mut socks,
                    Duration::from_secs(60),
                );
            }),
        ),
    ];
    // The worst case (most memory held while it lasts) again at the end: memory must not grow
    // with each repetition.
    let worst = cases.len() - 1;
    let order: Vec<usize> = (0..cases.len()).chain([worst; 3]).collect();
    let mut after_worst = Vec::new();
    for i in order {
        let (what, case) = &cases[i];
        case();
        let t = Instant::now();
        let r = curl(&["--cacert", &ca, &url]).unwrap();
        let took = t.elapsed();
        assert_eq!(r.status, 200, "after {what}");
        assert!(took < Duration::from_secs(1), "after {what}: {took:?}");
        common::wait_for(
            &format!("threads back after {what}"),
            Duration::from_secs(20),
            || threads(&agent) <= threads0 + 2,
        );
        // Freed memory goes back to the system within a second or two.
        // Freed memory goes back to the system within a second or two; what glibc keeps of its
        // arenas (fragments) stays under 5 MiB.
        common::wait_for(
            &format!("RSS back after {what}"),
            Duration::from_secs(5),
            || rss_kb(&agent) <= rss0 + 5 * 1024,
        );
        let rss = rss_kb(&agent);
        eprintln!("{what}: answered in {took:?}, RSS {rss} kB ({rss0} kB at rest)");
        if i == worst {
            after_worst.push(rss);
        }
    }
    let (first, last) = (after_worst[1], after_worst[after_worst.len() - 1]);
    assert!(
        last <= first + 1024,
        "RSS grows with each repetition: {after_worst:?} kB"
    );
}
