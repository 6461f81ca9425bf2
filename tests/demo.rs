//! `make demo` (scripts/demo.sh) as a newcomer runs it: every family's calls answer, and
//! `demo.sh stop` stops everything it started, the load balancer's HAProxy included.

mod common;

use common::{free_port, haproxy_pids, said, TempDir, BIN};
use std::process::Command;

fn demo(dir: &TempDir, port: u16, action: &str) -> (bool, String) {
    said(
        Command::new("bash")
            .arg("scripts/demo.sh")
            .arg(action)
            .env("LBAGENT", BIN)
            .env("DEMO_DIR", dir.path("demo"))
            .env("DEMO_PORT", port.to_string()),
    )
}

#[test]
fn the_demo_shows_every_family_and_stops_cleanly() {
    let dir = TempDir::new("demo");
    let port = free_port();
    let (ok, said) = demo(&dir, port, "start");
    let stopped = demo(&dir, port, "stop");
    assert!(ok, "{said}");
    for shown in [
        "[{\"found\":\"True\"},{\"Nodes\":[\"wwwbackend: lamp1\",\"wwwbackend: lamp2\"]}]",
        "haproxy daemon for lb1 started",
        "x-config: v1",
        "x-config: v2",
        "[{\"status\":\"ACTIVE\",\"type\":\"HTTP\",\"uuid\":\"lb1\"}]",
        "\"name\":\"edge-lb-1\"",
        "lbagent_haproxy_up{listener=\"lb1\"} 1",
        "== Demo running",
    ] {
        assert!(said.contains(shown), "{shown} not shown in\n{said}");
    }
    assert!(!said.contains("(HTTP 5"), "{said}");
    assert!(stopped.0, "{}", stopped.1);
    assert!(
        stopped.1.contains("stopped listener process"),
        "{}",
        stopped.1
    );
    let demo_dir = dir.path("demo").display().to_string();
    assert!(
        haproxy_pids(&demo_dir).is_empty(),
        "left running: {}",
        stopped.1
    );
}
