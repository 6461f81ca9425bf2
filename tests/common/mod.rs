//! Shared test harness: temp dirs, certificates (openssl CLI), a real HAProxy, the real agent
//! binary, and clients (curl, raw TCP). Every process started here is killed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_lbagent");

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "lbagent-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // HAProxies and keepalived an agent started here run in their own process groups and
        // outlive the agent: end them with the directory.
        for pid in haproxy_pids(&self.0.display().to_string()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`: whether it succeeded, and its stdout then stderr as text.
pub fn said(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Test PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1/localhost,
/// a client certificate, and from another CA a client certificate and a second server
/// certificate.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = &dir.0;
        ca(d, "ca", "lbagent test CA");
        ca(d, "other-ca", "some other CA");
        leaf(
            d,
            "ca",
            "server",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        leaf(
            d,
            "ca",
            "client",
            "/O=lbagent tests/CN=controller-1",
            "extendedKeyUsage=clientAuth\n",
        );
        leaf(
            d,
            "other-ca",
            "stranger",
            "/CN=stranger",
            "extendedKeyUsage=clientAuth\n",
        );
        leaf(
            d,
            "other-ca",
            "server2",
            "/CN=localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        // A key that belongs to no certificate here.
        run(Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(d.join("lone.key")));
        Pki { dir }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.path(name).display().to_string()
    }

    /// Another certificate from the test CA: `<name>.pem` and `<name>.key`.
    pub fn issue(&self, name: &str, subject: &str, extensions: &str) {
        leaf(&self.dir.0, "ca", name, subject, extensions);
    }
}

fn ca(d: &Path, name: &str, cn: &str) {
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(d.join(format!("{name}.key")))
        .arg("-out")
        .arg(d.join(format!("{name}.pem"))));
}

fn leaf(d: &Path, ca: &str, name: &str, subj: &str, ext: &str) {
    let extfile = d.join(format!("{name}.ext"));
    std::fs::write(&extfile, ext).unwrap();
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subj,
        ])
        .arg("-keyout")
        .arg(d.join(format!("{name}.key")))
        .arg("-out")
        .arg(d.join(format!("{name}.csr"))));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "7"])
        .arg("-in")
        .arg(d.join(format!("{name}.csr")))
        .arg("-CA")
        .arg(d.join(format!("{ca}.pem")))
        .arg("-CAkey")
        .arg(d.join(format!("{ca}.key")))
        .arg("-extfile")
        .arg(&extfile)
        .arg("-out")
        .arg(d.join(format!("{name}.pem"))));
}

/// A port that was free a moment ago (for HAProxy's own binds and closed-port servers).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP server that accepts and drops connections: an "up" backend for HAProxy's checks.
pub fn up_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A real HAProxy in the foreground (-db), with an admin socket in `dir`.
pub struct Haproxy {
    child: Child,
    pub sock: PathBuf,
}

impl Haproxy {
    /// `body` is everything after the global section (defaults, frontends, backends).
    pub fn start(dir: &TempDir, body: &str) -> Haproxy {
        let sock = dir.path("haproxy.stat");
        let cfg = format!(
            "global\n    stats socket {} mode 600 level admin\n\
defaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n{body}",
            sock.display()
        );
        let path = dir.write("haproxy.cfg", &cfg);
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy (is it installed?)");
        let s = sock.clone();
        wait_for("haproxy's admin socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        Haproxy { child, sock }
    }
}

impl Haproxy {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new HAProxy on the same config that takes over from this one (`-sf`), as a reload
    /// does: it binds a new socket at the same path; this one drains and exits once nothing
    /// holds it. Returns when the new one answers there.
    pub fn reload(&self, dir: &TempDir) -> Haproxy {
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(dir.path("haproxy.cfg"))
            .arg("-sf")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let (sock, pid) = (self.sock.clone(), child.id());
        wait_for("the new haproxy's socket", Duration::from_secs(10), || {
            haproxy_cli(&sock, "show info").contains(&format!("\nPid: {pid}\n"))
        });
        Haproxy { child, sock }
    }

    /// Whether this process still runs (a drained old one exits).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real agent binary with a config written into `dir`.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub access: PathBuf,
    /// The network namespace the agent runs in, if not the test's own.
    pub netns: Option<String>,
}

impl Agent {
    /// Starts with `port: 0` and logs in `dir`, plus `extra` config lines; waits until it listens.
    pub fn start(dir: &TempDir, extra: &str) -> Agent {
        Agent::start_in(dir, extra, None)
    }

    /// The same, inside a network namespace (its loopback is then the agent's).
    pub fn start_in(dir: &TempDir, extra: &str, netns: Option<&str>) -> Agent {
        let log = dir.path("agent.log");
        let access = dir.path("access.log");
        let cfg = format!(
            "port: 0\nlogfile: {}\naccesslog: {}\nstate_dir: {}\ncert_dir: {}\n{extra}",
            log.display(),
            access.display(),
            dir.path("state").display(),
            dir.path("certs").display()
        );
        let path = dir.write("agent.yaml", &cfg);
        Agent::launch(dir, &path, netns, Stdio::piped())
    }

    /// Started on Octavia's `amphora-agent.conf` (INI) in `dir`, which names no log file: the
    /// agent logs to stderr, kept in `dir`'s agent.log.
    pub fn start_octavia(dir: &TempDir, ini: &str) -> Agent {
        Agent::start_octavia_in(dir, ini, None)
    }

    /// The same, inside a network namespace (an amphora's).
    pub fn start_octavia_in(dir: &TempDir, ini: &str, netns: Option<&str>) -> Agent {
        let path = dir.write("amphora-agent.conf", ini);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path("agent.log"))
            .unwrap();
        Agent::launch(dir, &path, netns, Stdio::from(log))
    }

    /// Started again on the `amphora-agent.conf` in `dir`, as it is now (a push replaces it).
    pub fn restart_octavia(dir: &TempDir) -> Agent {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path("agent.log"))
            .unwrap();
        Agent::launch(dir, &dir.path("amphora-agent.conf"), None, Stdio::from(log))
    }

    /// Runs the agent on `config` and waits until its log says where it listens.
    fn launch(dir: &TempDir, config: &Path, netns: Option<&str>, stderr: Stdio) -> Agent {
        let log = dir.path("agent.log");
        let access = dir.path("access.log");
        // An earlier agent may have logged here: only this one's lines count.
        let skip = std::fs::read_to_string(&log).map_or(0, |t| t.len());
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        // Its own temp dir, so a test can see everything the agent wrote outside state_dir.
        let tmp = dir.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = cmd
            .env("TMPDIR", &tmp)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut port = 0;
        let end = Instant::now() + Duration::from_secs(10);
        while port == 0 {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = std::fs::read_to_string(&log).unwrap_or_default();
                if let Some(mut pipe) = child.stderr.take() {
                    pipe.read_to_string(&mut err).unwrap();
                }
                panic!("agent exited at start-up ({status}): {err}");
            }
            assert!(Instant::now() < end, "agent did not start listening");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text
                .get(skip..)
                .and_then(|t| t.split(" listening on ").nth(1))
            {
                let addr = rest.split_whitespace().next().unwrap();
                port = addr.rsplit(':').next().unwrap().parse().unwrap();
            } else {
                thread::sleep(Duration::from_millis(20));
            }
        }
        Agent {
            child,
            port,
            log,
            access,
            netns: netns.map(str::to_string),
        }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn signal(&self, sig: &str) {
        run(Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]));
    }

    /// The access log once it has `lines` lines (a line is written just after its response).
    pub fn access_log(&self, lines: usize) -> String {
        let mut text = String::new();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            text = std::fs::read_to_string(&self.access).unwrap_or_default();
            if text.lines().count() >= lines {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        text
    }

    pub fn app_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn socket_inodes(&self) -> Vec<String> {
        let mut inodes = Vec::new();
        for fd in std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap() {
            if let Ok(target) = std::fs::read_link(fd.unwrap().path()) {
                let t = target.display().to_string();
                if let Some(i) = t.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')) {
                    inodes.push(i.to_string());
                }
            }
        }
        inodes
    }

    /// Every TCP port the agent listens on.
    pub fn listening_ports(&self) -> Vec<u16> {
        let inodes = self.socket_inodes();
        let mut ports = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                    let port = f[1].rsplit(':').next().unwrap();
                    ports.push(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
        ports
    }

    /// Paths of the Unix sockets the agent listens on (its internal hand-off).
    pub fn listening_unix_sockets(&self) -> Vec<PathBuf> {
        let inodes = self.socket_inodes();
        let text = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // Flags 00010000 is a listening socket.
                let listening = f.len() > 7 && f[3] == "00010000";
                (listening && inodes.iter().any(|i| i == f[6])).then(|| PathBuf::from(f[7]))
            })
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response as curl saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body's `details`, as text.
    pub fn details(&self) -> String {
        self.json()["details"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Runs curl with `args`; Err(curl's exit code and message) when no HTTP response came back.
pub fn curl(args: &[&str]) -> Result<Resp, (i32, String)> {
    curl_in(None, args)
}

/// curl, run inside `netns` when given.
pub fn curl_in(netns: Option<&str>, args: &[&str]) -> Result<Resp, (i32, String)> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd
        .args([
            "-sS",
            "-i",
            "--path-as-is",
            "--max-time",
            "20",
            "-H",
            "Expect:",
        ])
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(parse_response(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_response(text: &str) -> Resp {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Sends raw bytes over plain TCP and reads until the server closes (or `timeout`).
pub fn raw(port: u16, request: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal HTTP backend on loopback: answers every request with `200 ok` and closes.
pub fn http_backend() -> u16 {
    serve_ok(TcpListener::bind("127.0.0.1:0").unwrap())
}

/// The same backend on the loopback of the network namespace `netns` (its listening socket is
/// made by a thread that entered it; the socket stays there whichever thread accepts).
pub fn http_backend_in(netns: &str) -> u16 {
    use std::os::fd::AsRawFd;
    let path = Path::new("/run/netns").join(netns);
    let l = thread::spawn(move || {
        let ns = std::fs::File::open(path).unwrap();
        // SAFETY: setns gets a descriptor that `ns` keeps open; it moves this thread only.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        TcpListener::bind("127.0.0.1:0").unwrap()
    })
    .join()
    .unwrap();
    serve_ok(l)
}

/// Serves `l` as [`http_backend`] does; its port.
fn serve_ok(l: TcpListener) -> u16 {
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

/// One command on an HAProxy socket (stats or master CLI), as an operator would send it.
pub fn haproxy_cli(sock: &Path, cmd: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Pids of running haproxy or keepalived processes whose command line mentions `needle`.
pub fn haproxy_pids(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        let ours = cmd.contains("haproxy") || cmd.contains("keepalived");
        if ours && cmd.contains(needle) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// `method path` on the agent over plain HTTP, with an optional body sent from a file in `dir`
/// (as `curl --data-binary @file` would).
pub fn call(agent: &Agent, dir: &TempDir, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
    let url = agent.url("http", path);
    let mut args = vec!["-X".to_string(), method.to_string(), url];
    if let Some(b) = body {
        let f = dir.path("body.tmp");
        std::fs::write(&f, b).unwrap();
        args.push("--data-binary".into());
        args.push(format!("@{}", f.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl_in(agent.netns.as_deref(), &args).unwrap()
}

/// An HTTP load balancer's HAProxy config: a frontend on each of `binds`, then `then` (its
/// answer, or `default_backend` and the backend).
pub fn http_lb(binds: &[&str], then: &str) -> String {
    let binds: String = binds.iter().map(|b| format!("    bind {b}\n")).collect();
    format!(
        "global\n    maxconn 100\ndefaults\n    mode http\n    timeout client 5s\n\
    timeout server 5s\n    timeout connect 3s\nfrontend f\n{binds}{then}"
    )
}

/// Uploads `cfg` as API 1.0 load balancer `lb` and starts it; both must answer 202.
pub fn start_lb(agent: &Agent, dir: &TempDir, lb: &str, cfg: &str) {
    let path = format!("/1.0/loadbalancer/amp/{lb}/haproxy");
    let r = call(agent, dir, "PUT", &path, Some(cfg.as_bytes()));
    assert_eq!(r.status, 202, "upload {lb}: {}", r.body);
    let r = call(
        agent,
        dir,
        "PUT",
        &format!("/1.0/loadbalancer/{lb}/start"),
        None,
    );
    assert_eq!(r.status, 202, "start {lb}: {}", r.body);
}

/// md5sum(1) of exactly `data` (written to a file in `dir`): what an ETag or md5sum should be.
pub fn md5sum(dir: &TempDir, data: &[u8]) -> String {
    let f = dir.path("md5sum.tmp");
    std::fs::write(&f, data).unwrap();
    let out = run(Command::new("md5sum").arg(&f));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().unwrap().to_string()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A test whose prerequisite is missing: by hand it prints SKIP and stops; under CI
/// (`CI=true`) it fails with the reason, since a skipped test is not a passed one.
pub fn skip(test: &str, reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {reason} (CI=true: every prerequisite must be present)"
    );
    eprintln!("SKIP: {test}: {reason}");
}

/// True (after `skip`) when the test cannot run for want of root.
pub fn lacks_root(test: &str, why: &str) -> bool {
    if is_root() {
        return false;
    }
    skip(test, &format!("needs root {why}"));
    true
}

/// A network namespace made for one test, with its loopback up; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lbt-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = run(Command::new("ip").args(["-n", &self.name]).args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to the agent on `port`, verified against the CA file `ca`, handshake done.
pub fn tls_connect(port: u16, ca: &str) -> std::io::Result<TlsStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca)?;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Whether the peer has closed `sock` (EOF or reset), reading and dropping whatever arrives.
pub fn is_closed(sock: &mut TcpStream) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
