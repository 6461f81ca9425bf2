//! The Debian package (issue 17, item 2), packed by `scripts/make-deb` as `make deb` packs it
//! (here from the test build): installed with dpkg, not started before it is configured,
//! configured and started with its init script against a real HAProxy, called over HTTPS,
//! reinstalled without losing the changed config, purged leaving nothing behind.

mod common;

use common::{curl, free_port, run, said, Haproxy, Pki, TempDir, BIN};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TEST: &str = "the_package_installs_runs_and_purges_cleanly";

/// Everything the package or the agent it runs may put on the system.
const LEFTOVERS: &[&str] = &[
    "/usr/sbin/lbagent",
    "/etc/lbagent",
    "/etc/init.d/lbagent",
    "/etc/logrotate.d/lbagent",
    "/lib/systemd/system/lbagent.service",
    "/usr/share/doc/lbagent",
    "/var/lib/lbagent",
    "/var/log/lbagent",
    "/run/lbagent",
    "/run/lbagent.pid",
];

fn dpkg(args: &[&str]) -> (bool, String) {
    said(Command::new("dpkg").args(args))
}

fn init(action: &str) -> (bool, String) {
    said(Command::new("/etc/init.d/lbagent").arg(action))
}

fn agent_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe.to_string_lossy().starts_with("/usr/sbin/lbagent") {
            pids.push(pid);
        }
    }
    pids
}

/// Whether the machine can run this test without harm; SKIP (or fail under CI) when not.
fn can_run() -> bool {
    if common::lacks_root(TEST, "to install a package") {
        return false;
    }
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        common::skip(TEST, "dpkg-deb is missing (not a Debian system)");
        return false;
    }
    if dpkg(&["-s", "lbagent"]).0 || Path::new("/usr/sbin/lbagent").exists() {
        common::skip(
            TEST,
            "lbagent is installed on this machine; not replacing it",
        );
        return false;
    }
    true
}

#[test]
fn the_package_installs_runs_and_purges_cleanly() {
    if !can_run() {
        return;
    }
    let dir = TempDir::new("deb");
    let made = run(Command::new("scripts/make-deb")
        .env("DEB_COMPRESSION", "none")
        .arg(BIN)
        .arg(dir.path("out")));
    let deb = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(deb.ends_with(".deb"), "{deb}");
    let listing = run(Command::new("dpkg-deb").args(["-c", &deb]));
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.starts_with("drwxr-xr-x root/root"),
        "the package's root: {listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw------- root/root")
                && l.ends_with("./etc/lbagent/lbagent.yaml")),
        "{listing}"
    );
    let conffiles = run(Command::new("dpkg-deb").args(["-I", &deb, "conffiles"]));
    assert_eq!(
        String::from_utf8_lossy(&conffiles.stdout),
        "/etc/init.d/lbagent\n/etc/lbagent/lbagent.yaml\n/etc/logrotate.d/lbagent\n"
    );

    let (ok, said) = dpkg(&["-i", &deb]);
    assert!(ok, "dpkg -i: {said}");
    let result = std::panic::catch_unwind(|| installed(&deb));
    // Whatever happened, the machine is left as it was.
    let _ = init("stop");
    let (purged, said) = dpkg(&["--purge", "lbagent"]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(purged, "dpkg --purge: {said}");
    for path in LEFTOVERS {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    let links = rc_links();
    assert!(links.is_empty(), "boot links left: {links:?}");
    assert!(agent_pids().is_empty(), "an agent still runs");
}

/// /etc/rc?.d links to lbagent's init script.
fn rc_links() -> Vec<String> {
    let mut found = Vec::new();
    for d in std::fs::read_dir("/etc").unwrap().flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("rc") && name.ends_with(".d")) {
            continue;
        }
        for l in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if l.file_name().to_string_lossy().contains("lbagent") {
                found.push(l.path().display().to_string());
            }
        }
    }
    found
}

/// From an installed package: configure, start, call, reinstall, and check each step.
fn installed(deb: &str) {
    let mode = std::fs::metadata("/etc/lbagent/lbagent.yaml")
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(Path::new("/var/lib/lbagent").is_dir());
    assert!(Path::new("/var/log/lbagent").is_dir());
    // Not started before it is configured.
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent_pids().is_empty(), "the agent started on install");

    // The administrator's config: HTTPS with basic auth, HApi on a real HAProxy.
    let pki = Pki::new();
    let hx = TempDir::new("deb-haproxy");
    let fe = free_port();
    let haproxy = Haproxy::start(
        &hx,
        &format!("frontend www\n    bind 127.0.0.1:{fe}\n    default_backend be\nbackend be\n    server lamp1 127.0.0.1:1 disabled\n"),
    );
    let port = free_port();
    let cfg = format!(
        "bind: 127.0.0.1\nport: {port}\nsslcrt: {}\nsslkey: {}\nuser: admin\npassword: 'deb-test'\n\
socat: {}\nserver: lamp\nwww: ['be']\naccesslog: /var/log/lbagent/access.log\n\
logfile: /var/log/lbagent/lbagent.log\n",
        pki.file("server.pem"),
        pki.file("server.key"),
        haproxy.sock.display()
    );
    std::fs::write("/etc/lbagent/lbagent.yaml", &cfg).unwrap();
    let (ok, said) = init("start");
    assert!(ok, "init start: {said}");
    let ca = pki.file("ca.pem");
    let url = format!("https://127.0.0.1:{port}/loadBalancer/status");
    let call = || curl(&["--cacert", &ca, "-u", "admin:deb-test", &url]).unwrap();
    let r = call();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"Name\":\"HAProxy\""), "{}", r.body);
    assert!(Path::new("/var/log/lbagent/access.log").exists());

    // Installed again over itself (an upgrade's path): the changed config stays.
    let (ok, said) = dpkg(&["-i", deb]);
    assert!(ok, "dpkg -i again: {said}");
    assert_eq!(
        std::fs::read_to_string("/etc/lbagent/lbagent.yaml").unwrap(),
        cfg
    );
    let (ok, said) = init("restart");
    assert!(ok, "init restart: {said}");
    assert_eq!(call().status, 200);
    let (ok, said) = init("status");
    assert!(ok, "init status: {said}");
}
