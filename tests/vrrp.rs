//! keepalived through /v0.1/vrrp: the real keepalived, VRRP on a veth pair in a network
//! namespace made by the test, with the agent running inside it. Needs root (CI is root).

mod common;

use common::{call, lacks_root, Agent, Netns, TempDir};
use std::process::Command;
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
    // The agent's syslog facility is keepalived's too (its socket is absent here: the agent's
    // lines go to its file).
    let syslog = format!(
        "syslog: {}\nsyslog_facility: local3\n",
        dir.path("no.sock").display()
    );
    let agent = Agent::start_in(&dir, &syslog, Some(&ns.name));
    let conf_of = |c: String| Some(c.into_bytes());

    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/dance", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["details"], "Unknown action: dance");
    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/start", None);
    assert_eq!(r.status, 400, "no config yet: {}", r.body);
    // `keepalived -t` passes an empty file, but such a keepalived never starts VRRP (a start
    // timed out with a 500; found by scripts/api-fuzz).
    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/upload", Some(b""));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("vrrp_instance"), "{}", r.body);
    let r = call(&agent, &dir, "PUT", "/v0.1/vrrp/start", None);
    assert_eq!(r.status, 400, "still no config: {}", r.body);

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
    for pid in &pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        assert!(args.contains(&&b"--log-facility=3"[..]), "keepalived {pid}");
    }
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

/// Octavia's ACTIVE_STANDBY on one amphora: the topology pushed by `PUT /1.0/config`, the plug
/// leaves the VIP to keepalived, a config tracking Octavia's check script (keepalived -t: security
/// warnings only) is accepted, and keepalived holds the VIP exactly while the load balancer's
/// HAProxy answers. The pair itself, with Octavia's rendered configs: tests/octavia.rs.
#[test]
fn keepalived_holds_the_vip_while_haproxy_answers() {
    if lacks_root(
        "keepalived_holds_the_vip_while_haproxy_answers",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, peer) = (Netns::new("as"), Netns::new("aspeer"));
    amp.ip(&[
        "link",
        "add",
        "lbk0",
        "address",
        "02:00:5e:00:00:41",
        "type",
        "veth",
        "peer",
        "name",
        "lbk1",
        "netns",
        &peer.name,
    ]);
    peer.ip(&["link", "set", "lbk1", "up"]);
    peer.ip(&["addr", "add", "203.0.113.1/24", "dev", "lbk1"]);
    let dir = TempDir::new("as");
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    let state = dir.path("state");
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/1.0/config",
        Some(b"[controller_worker]\nloadbalancer_topology = ACTIVE_STANDBY\n"),
    );
    assert_eq!(r.status, 202, "{}", r.body);

    let plug = |vrrp_ip: Option<&str>| {
        let mut body = serde_json::json!({"subnet_cidr": "203.0.113.0/24",
            "gateway": "203.0.113.1", "mac_address": "02:00:5e:00:00:41"});
        if let Some(ip) = vrrp_ip {
            body["vrrp_ip"] = ip.into();
        }
        let body = body.to_string().into_bytes();
        call(
            &agent,
            &dir,
            "POST",
            "/1.0/plug/vip/203.0.113.50",
            Some(&body),
        )
    };
    let r = plug(None);
    assert_eq!(r.status, 400, "keepalived needs vrrp_ip: {}", r.body);
    let r = plug(Some("203.0.113.3"));
    assert_eq!(r.status, 202, "{}", r.body);
    let port = || amp.ip(&["-br", "addr", "show", "dev", "lbk0"]);
    assert!(port().contains("203.0.113.3/24"), "{}", port());
    assert!(!port().contains("203.0.113.50"), "{}", port());
    let interface = |ip: &str| call(&agent, &dir, "GET", &format!("/1.0/interface/{ip}"), None);
    assert_eq!(interface("203.0.113.3").status, 200);
    assert_eq!(interface("203.0.113.50").status, 404);

    // As Octavia renders it: a tracked check script, routes and rules for the VIP.
    let script = state.join("vrrp/check_script.sh");
    let conf = format!(
        "vrrp_script check_script {{\n    script {}\n    interval 1\n    fall 1\n    rise 1\n}}\n\
vrrp_instance lb_1 {{\n    interface lbk0\n    virtual_router_id 1\n    priority 100\n    nopreempt\n\
    accept\n    advert_int 1\n    authentication {{\n        auth_type PASS\n        auth_pass s3cret\n    }}\n\
    unicast_src_ip 203.0.113.3\n    unicast_peer {{\n        203.0.113.4\n    }}\n\
    virtual_ipaddress {{\n        203.0.113.50\n    }}\n\
    virtual_routes {{\n        203.0.113.0/24 dev lbk0 src 203.0.113.50 scope link table 1\n\
        default via 203.0.113.1 dev lbk0 onlink table 1\n    }}\n\
    virtual_rules {{\n        from 203.0.113.50/32 table 1 priority 100\n    }}\n\
    track_script {{\n        check_script\n    }}\n}}\n",
        script.display()
    );
    // Warnings alone pass; a real error beside them does not.
    let broken = conf.replace("virtual_router_id 1\n", "virtual_router_id 999\n");
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/1.0/vrrp/upload",
        Some(broken.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.details().contains("999"), "{}", r.body);
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/1.0/vrrp/upload",
        Some(conf.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    use std::os::unix::fs::PermissionsExt;
    for f in [
        script.clone(),
        state.join("vrrp/check_scripts/haproxy_check_script.sh"),
    ] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", f.display());
    }
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_lbagent"))
            .arg("--vrrp-check")
            .arg(&state)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, why) = check();
    assert!(!ok && why.contains("no listener is configured"), "{why}");

    common::start_lb(&agent, &dir, "lb1", &common::http_lb(&["unix@fe.sock"], ""));
    assert!(check().0, "{}", check().1);
    let r = call(&agent, &dir, "PUT", "/1.0/vrrp/start", None);
    assert_eq!(r.status, 202, "{}", r.body);
    let holds = || port().contains("203.0.113.50/32");
    common::wait_for("keepalived to take the VIP", Duration::from_secs(15), holds);
    assert_eq!(interface("203.0.113.50").status, 200);

    // A hung HAProxy fails the check: keepalived gives the VIP up, and takes it back after.
    let haproxy = common::haproxy_pids(&state.join("listeners/lb1").display().to_string());
    assert!(!haproxy.is_empty());
    let signal = |sig: &str| {
        for pid in &haproxy {
            common::run(Command::new("kill").args([sig, &pid.to_string()]));
        }
    };
    signal("-STOP");
    let (ok, why) = check();
    assert!(!ok && why.contains("lb1"), "{why}");
    common::wait_for("the VIP to go", Duration::from_secs(15), || !holds());
    assert_eq!(interface("203.0.113.50").status, 404);
    signal("-CONT");
    common::wait_for("the VIP back", Duration::from_secs(15), holds);

    // A load balancer stopped through the API is not probed (as with Octavia's agent).
    let r = call(&agent, &dir, "PUT", "/1.0/loadbalancer/lb1/stop", None);
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(check().0, "{}", check().1);
    assert_eq!(
        call(&agent, &dir, "PUT", "/1.0/vrrp/stop", None).details(),
        "keepalived stopped"
    );
}

/// The v0.1 ACTIVE-STANDBY topology from `ha_ip` and `secret` alone: two amphorae and a client
/// on one bridge, each amphora running the agent in its own namespace. The agents write the
/// keepalived configs themselves; the ACTIVE holds `ha_ip` and serves, a hung HAProxy moves it
/// (and the role) to the STANDBY, and back when it recovers. A change that cannot take hold
/// leaves `topology_status` saying why.
#[test]
fn the_v01_active_standby_topology_runs_vrrp_and_role_follows_a_failover() {
    if lacks_root(
        "the_v01_active_standby_topology_runs_vrrp_and_role_follows_a_failover",
        "for network namespaces",
    ) {
        return;
    }
    let client = Netns::new("v01c");
    client.ip(&["link", "add", "br0", "type", "bridge"]);
    client.ip(&["link", "set", "br0", "up"]);
    client.ip(&["addr", "add", "203.0.113.1/24", "dev", "br0"]);
    let mut amps = Vec::new();
    for i in 1..=2 {
        let ns = Netns::new(&format!("v01a{i}"));
        let (mac, port) = (format!("02:00:5e:00:01:0{i}"), format!("v01p{i}"));
        ns.ip(&[
            "link",
            "add",
            "lbp0",
            "address",
            &mac,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &client.name,
        ]);
        client.ip(&["link", "set", &port, "master", "br0", "up"]);
        let dir = TempDir::new(&format!("v01a{i}"));
        let agent = Agent::start_in(&dir, "", Some(&ns.name));
        let body = serde_json::json!({"mac_address": mac, "fixed_ips": [
            {"ip_address": format!("203.0.113.1{i}"), "subnet_cidr": "203.0.113.0/24"}]});
        let r = call(
            &agent,
            &dir,
            "POST",
            "/v0.1/plug/network",
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        amps.push((ns, dir, agent, mac));
    }
    let api = |i: usize, method: &str, path: &str, body: Option<&[u8]>| {
        let (_, dir, agent, _) = &amps[i];
        call(agent, dir, method, path, body)
    };
    let set = |i: usize, role: &str| {
        let body = format!(
            r#"{{"topology":"ACTIVE-STANDBY","role":"{role}","ha_ip":"203.0.113.50","secret":"b20e06cf1abcf29c708d"}}"#
        );
        let r = api(i, "POST", "/v0.1/topology", Some(body.as_bytes()));
        assert_eq!(r.status, 202, "{}", r.body);
    };
    let details = |i: usize| api(i, "GET", "/v0.1/details", None).json();
    let settled = |i: usize| details(i)["topology_status"] != "TOPOLOGY-CHANGE";
    let holds = |i: usize| {
        amps[i]
            .0
            .ip(&["-br", "addr", "show", "dev", "lbp0"])
            .contains("203.0.113.50/32")
    };
    let role = |i: usize| api(i, "GET", "/v0.1/topology", None).json()["role"].clone();

    // No listener yet: VRRP's check fails, so the ACTIVE cannot take ha_ip, and says so.
    set(0, "ACTIVE");
    common::wait_for("the change to end", Duration::from_secs(20), || settled(0));
    let d = details(0);
    assert_eq!(d["topology_status"], "ERROR", "{d}");
    let why = d["topology_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("203.0.113.50") && why.contains("no listener is configured"),
        "{why}"
    );

    for (i, (_, dir, agent, _)) in amps.iter().enumerate() {
        let answer = format!(
            "    http-request return status 200 content-type text/plain string amp{}\n",
            i + 1
        );
        let cfg = common::http_lb(&[":8080"], &answer);
        let r = call(
            agent,
            dir,
            "PUT",
            "/v0.1/listeners/amp/l1/haproxy",
            Some(cfg.as_bytes()),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let r = call(agent, dir, "PUT", "/v0.1/listeners/l1/start", None);
        assert_eq!(r.status, 202, "{}", r.body);
    }
    set(0, "ACTIVE");
    set(1, "STANDBY");
    common::wait_for("both changes to end", Duration::from_secs(20), || {
        settled(0) && settled(1)
    });
    assert_eq!(details(0)["topology_status"], "OK", "{}", details(0));
    assert!(holds(0) && !holds(1));
    assert_eq!((role(0), role(1)), ("ACTIVE".into(), "STANDBY".into()));
    assert_eq!(
        (details(0)["active"].clone(), details(1)["active"].clone()),
        (true.into(), false.into())
    );
    let t = api(1, "GET", "/v0.1/topology", None);
    assert!(
        !t.body.contains("b20e06cf"),
        "the secret is never returned: {}",
        t.body
    );
    use std::os::unix::fs::MetadataExt;
    let file = amps[1].1.path("state/topology.json");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    let served = || {
        common::curl_in(
            Some(&client.name),
            &["--max-time", "2", "http://203.0.113.50:8080/"],
        )
        .map(|r| r.body)
        .unwrap_or_default()
    };
    assert_eq!(served(), "amp1");

    // The ACTIVE's HAProxy hangs: the STANDBY takes ha_ip and the role, and the client's ARP
    // entry follows it.
    let haproxy = common::haproxy_pids(&amps[0].1.path("state/listeners/l1").display().to_string());
    assert!(!haproxy.is_empty());
    let signal = |sig: &str| {
        for pid in &haproxy {
            common::run(Command::new("kill").args([sig, &pid.to_string()]));
        }
    };
    signal("-STOP");
    common::wait_for("the STANDBY to take over", Duration::from_secs(15), || {
        holds(1) && !holds(0)
    });
    assert_eq!((role(0), role(1)), ("STANDBY".into(), "ACTIVE".into()));
    common::wait_for("the client served by amp2", Duration::from_secs(10), || {
        served() == "amp2"
    });
    let neigh = client.ip(&["neigh", "show", "203.0.113.50"]);
    assert!(neigh.contains(&amps[1].3), "{neigh}");

    // Healthy again, the ACTIVE takes ha_ip back.
    signal("-CONT");
    common::wait_for(
        "the ACTIVE to take it back",
        Duration::from_secs(15),
        || holds(0) && !holds(1),
    );
    assert_eq!((role(0), role(1)), ("ACTIVE".into(), "STANDBY".into()));
    common::wait_for("the client served by amp1", Duration::from_secs(10), || {
        served() == "amp1"
    });

    // Back to SINGLE: keepalived and its config go.
    let r = api(
        0,
        "POST",
        "/v0.1/topology",
        Some(br#"{"topology":"SINGLE"}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    common::wait_for("SINGLE", Duration::from_secs(15), || {
        settled(0) && !holds(0)
    });
    assert!(!amps[0].1.path("state/keepalived/keepalived.conf").exists());
}
