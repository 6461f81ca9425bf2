//! The application log on a syslog socket the test binds: lines as syslog(3) writes them, with
//! the configured facility and each level's severity; while the socket is absent the lines go to
//! the log file (said once), and to the socket again once it is back.

mod common;

use common::{Agent, TempDir, BIN};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Datagrams on `sock` until one contains `needle` (all of them, in order), within 10 s.
fn until(sock: &UnixDatagram, needle: &str) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if got.last().is_some_and(|l| l.contains(needle)) {
                return got;
            }
        }
    }
    panic!("no syslog line with {needle:?}; got {got:?}");
}

/// The agent on `config`, and the lines it sent `sock` up to the one saying where it listens.
fn start(config: &Path, sock: &UnixDatagram) -> (Child, Vec<String>) {
    let child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, until(sock, " listening on "))
}

/// The line with `needle`, checked to be `<PRI>Mmm dd hh:mm:ss lbagent[pid]: LEVEL ...`;
/// returns its PRI.
fn pri(lines: &[String], needle: &str, pid: u32) -> u16 {
    let line = lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {lines:?}"));
    let (pri, rest) = line[1..].split_once('>').unwrap();
    let stamp = &rest[..15];
    let b = stamp.as_bytes();
    assert!(
        b[0].is_ascii_uppercase() && b[3] == b' ' && b[6] == b' ' && b[9] == b':',
        "{line}"
    );
    assert!(
        rest[15..].starts_with(&format!(" lbagent[{pid}]: ")),
        "{line}"
    );
    pri.parse().unwrap()
}

#[test]
fn the_application_log_goes_to_syslog_with_its_facility() {
    let dir = TempDir::new("syslog");
    let path = dir.path("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let config = dir.write(
        "agent.yaml",
        &format!(
            "port: 0\nstate_dir: {}\ncert_dir: {}\nsyslog: {}\nsyslog_facility: local3\n",
            dir.path("state").display(),
            dir.path("certs").display(),
            path.display()
        ),
    );
    let (mut child, mut lines) = start(&config, &sock);
    // The heartbeat thread's warning comes before or after that line.
    if !lines.iter().any(|l| l.contains("WARN no heartbeat")) {
        lines.extend(until(&sock, "WARN no heartbeat"));
    }
    let pid = child.id();
    // local3 is facility 19: info 19 * 8 + 6, warning 19 * 8 + 4.
    assert_eq!(pri(&lines, "INFO lbagent", pid), 158);
    assert_eq!(pri(&lines, "WARN no heartbeat", pid), 156);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Octavia's agent config: `use_syslog` with `administrative_log_facility` (local<N>), to the
/// socket lbagent's `[amphora_agent] syslog_socket` names (the image's rsyslog socket otherwise).
#[test]
fn an_octavia_agent_config_logs_to_local_admin_facility() {
    let dir = TempDir::new("syslogini");
    let path = dir.path("log.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let config = dir.write(
        "amphora-agent.conf",
        &format!(
            "[DEFAULT]\nuse_syslog = True\n[haproxy_amphora]\nbase_path = {}\nbase_cert_dir = {}\n\
bind_host = 127.0.0.1\nbind_port = 0\nadministrative_log_facility = 2\n\
[amphora_agent]\nsyslog_socket = {}\n",
            dir.path("state").display(),
            dir.path("certs").display(),
            path.display()
        ),
    );
    let (mut child, lines) = start(&config, &sock);
    // local2 is facility 18.
    assert_eq!(pri(&lines, "INFO lbagent", child.id()), 18 * 8 + 6);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// No socket yet: the lines go to the log file, which says so once; once a socket is there the
/// lines go to it again (and the file says that too), and a second outage is said again.
#[test]
fn without_the_socket_nothing_is_lost() {
    let dir = TempDir::new("syslogdown");
    let path = dir.path("log.sock");
    let agent = Agent::start(&dir, &format!("syslog: {}\n", path.display()));
    let file = || std::fs::read_to_string(dir.path("agent.log")).unwrap_or_default();
    let unavailable = format!("syslog socket {} is unavailable", path.display());
    assert!(file().contains(" listening on "), "{}", file());
    assert_eq!(file().matches(&unavailable).count(), 1, "{}", file());

    let sock = UnixDatagram::bind(&path).unwrap();
    agent.signal("HUP");
    let lines = until(&sock, "is back");
    assert!(
        lines.iter().any(|l| l.contains("log files reopened")),
        "{lines:?}"
    );
    common::wait_for("the file to say so", Duration::from_secs(5), || {
        file().contains("is back")
    });
    assert!(!file().contains("log files reopened"), "{}", file());

    drop(sock);
    std::fs::remove_file(&path).unwrap();
    agent.signal("HUP");
    common::wait_for("the line in the file", Duration::from_secs(5), || {
        file().contains("log files reopened")
    });
    assert_eq!(file().matches(&unavailable).count(), 2, "{}", file());
}
