//! keepalived through /v0.1/vrrp: the real keepalived, VRRP on a veth pair in a network
//! namespace made by the test, with the agent running inside it. Needs root (CI is root).

mod common;

use common::{call, lacks_root, Agent, Netns, TempDir};
use std::time::Duration;

fn config(vip: &str, interface: &str) -> String {
    format!(
        "global_defs {{\n    router_id lbagent_test\n}}\n\
vrrp_instance VI_1 {{\n    state MASTER\n    interface {interface}\n    virtual_router_id 51\n    priority 100\n    advert_int 1\n\
    authentication {{\n        auth_type PASS\n        auth_pass s3cret\n    }}\n    virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n"
    )
}

/// A namespace with a veth pair up and 198.51.100.1/24 on veth0, where VRRP can run.
fn vrrp_netns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.ip(&["link", "set", "veth0", "up"]);
    ns.ip(&["link", "set", "veth1", "up"]);
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "veth0"]);
    ns
}

fn has_address(ns: &Netns, addr: &str) -> bool {
    ns.ip(&["-br", "addr", "show", "dev", "veth0"])
        .contains(&format!("{addr}/24"))
}

#[test]
fn keepalived_upload_start_reload_stop() {
    if lacks_root(
        "keepalived_upload_start_reload_stop",
        "for network namespaces",
    ) {
        return;
    }
    let ns = vrrp_netns("vrrp");
    let dir = TempDir::new("vrrp");
    let agent = Agent::start_in(&dir, "", Some(&ns.name));
    let conf_of = |c: String| Some(c.into_bytes());

    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/dance", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["details"], "Unknown action: dance");
    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/start", None);
    assert_eq!(r.status, 400, "no config yet: {}", r.body);

    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/vrrp/upload",
        conf_of(config("198.51.100.50", "veth0")).as_deref(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"message": "OK"}));
    let stored = dir.path("state/keepalived/keepalived.conf");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&stored).unwrap().mode() & 0o777, 0o600);

    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/start", None);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "OK", "details": "keepalived started"})
    );
    common::wait_for("the VIP on veth0", Duration::from_secs(15), || {
        has_address(&ns, "198.51.100.50")
    });
    let pids = common::haproxy_pids(&dir.0.display().to_string());
    assert!(!pids.is_empty(), "keepalived runs");
    // Start of a running keepalived reloads it.
    assert_eq!(
        call(&agent, &dir, "PUT", "/v0.1/vrrp/start", None).details(),
        "keepalived reloaded"
    );

    // A new VIP, applied by reload.
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/1.0/vrrp/upload", // the same handler through API 1.0
        conf_of(config("198.51.100.51", "veth0")).as_deref(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        call(&agent, &dir, "PUT", "/1.0/vrrp/reload", None).details(),
        "keepalived reloaded"
    );
    common::wait_for("the new VIP", Duration::from_secs(15), || {
        has_address(&ns, "198.51.100.51") && !has_address(&ns, "198.51.100.50")
    });

    // A broken config is refused with keepalived's words; the running one goes on.
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/vrrp/upload",
        conf_of(config("198.51.100.52", "nosuchif0")).as_deref(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.details().contains("nosuchif0") || r.details().contains("interface"),
        "{}",
        r.body
    );
    assert!(std::fs::read_to_string(&stored)
        .unwrap()
        .contains("198.51.100.51"));
    assert!(has_address(&ns, "198.51.100.51"));

    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/stop", None);
    assert_eq!(r.details(), "keepalived stopped");
    common::wait_for("the VIP to go", Duration::from_secs(10), || {
        !has_address(&ns, "198.51.100.51")
    });
    assert!(
        common::haproxy_pids(&dir.0.display().to_string()).is_empty(),
        "keepalived gone"
    );
    assert_eq!(
        call(&agent, &dir, "PUT", "/v0.1/vrrp/stop", None).details(),
        "keepalived is not running"
    );
}

#[test]
fn a_topology_change_runs_in_the_background_and_holds_changes_off() {
    if lacks_root(
        "a_topology_change_runs_in_the_background_and_holds_changes_off",
        "for network namespaces",
    ) {
        return;
    }
    let ns = vrrp_netns("topo");
    let dir = TempDir::new("topo");
    let agent = Agent::start_in(&dir, "", Some(&ns.name));
    let conf = config("198.51.100.60", "veth0").into_bytes();
    assert_eq!(
        call(&agent, &dir, "PUT", "/v0.1/vrrp/upload", Some(&conf)).status,
        200
    );

    let body = br#"{"topology":"ACTIVE-STANDBY","role":"ACTIVE","ha_ip":"198.51.100.2","secret":"s3cret"}"#;
    let r = call(&agent, &dir, "POST", "/v0.1/topology", Some(body));
    assert_eq!(r.status, 202, "{}", r.body);
    // Changes wait while keepalived comes up and takes the VIP; reads go on.
    let upload = b"global\n    maxconn 10\nfrontend f\n    bind unix@fe.sock\n".to_vec();
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/listeners/amp/l1/haproxy",
        Some(&upload),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["message"], "Topology transition in progress");
    // Every family's writes to what a transition changes wait too: API 1.0's and the legacy
    // API's, not only v0.1's.
    for (method, path) in [
        ("PUT", "/1.0/loadbalancer/amp/l1/haproxy"),
        ("PUT", "/1.0/loadbalancer/l1/start"),
        ("PUT", "/1.0/vrrp/upload"),
        ("PUT", "/instances/l1/haproxy"),
        ("DELETE", "/instances/l1"),
    ] {
        let r = call(&agent, &dir, method, path, Some(&upload));
        assert_eq!(r.status, 503, "{method} {path}: {}", r.body);
    }
    assert_eq!(call(&agent, &dir, "GET", "/1.0/info", None).status, 200);
    assert_eq!(
        call(&agent, &dir, "POST", "/v0.1/topology", Some(body)).status,
        503
    );
    assert_eq!(
        call(&agent, &dir, "GET", "/v0.1/topology", None).status,
        200
    );
    common::wait_for("the transition to end", Duration::from_secs(20), || {
        call(&agent, &dir, "GET", "/v0.1/details", None).json()["topology_status"] == "OK"
    });
    assert!(
        has_address(&ns, "198.51.100.60"),
        "keepalived holds the VIP once settled"
    );
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/listeners/amp/l1/haproxy",
        Some(&upload),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // Back to SINGLE: keepalived goes, and the VIP with it.
    let r = call(
        &agent,
        &dir,
        "POST",
        "/v0.1/topology",
        Some(br#"{"topology":"SINGLE"}"#),
    );
    assert_eq!(r.status, 202);
    common::wait_for("SINGLE settled", Duration::from_secs(20), || {
        call(&agent, &dir, "GET", "/v0.1/details", None).json()["topology_status"] == "OK"
            && !has_address(&ns, "198.51.100.60")
    });
    assert!(common::haproxy_pids(&dir.path("state/keepalived").display().to_string()).is_empty());
}
