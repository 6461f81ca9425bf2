//! The SR-IOV VIP firewall (`PUT /1.0/interface/<ip>/rules`) for real: the agent runs in an
//! amphora namespace whose port is a veth pair to a client namespace, HAProxy listens on two
//! ports there, and the client tries both. Needs root and nft (CI has both).
//!
//! The bodies are built by hand as Octavia's controller builds them
//! (`GetAmphoraFirewallRules`: one item per listener and allowed CIDR from the database,
//! protocols mapped to TCP/UDP/SCTP, plus a VRRP item per peer amphora in ACTIVE_STANDBY): its
//! code needs the controller's database to run.

mod common;

use common::{call, curl_in, lacks_root, run, skip, Agent, Netns, TempDir};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const AMP_IP: &str = "203.0.113.2";
const CLIENT_IP: &str = "203.0.113.1";
const OPEN: u16 = 8080;
const SHUT: u16 = 8081;

/// The amphora and client namespaces, joined by `lbf0` (amphora) and `lbf1` (client).
fn namespaces() -> (Netns, Netns) {
    let (amp, client) = (Netns::new("fwamp"), Netns::new("fwcli"));
    join(&amp, &client);
    (amp, client)
}

/// `lbf0` in `amp` holding AMP_IP, and `lbf1` in `client` holding CLIENT_IP, one veth pair.
fn join(amp: &Netns, client: &Netns) {
    amp.ip(&[
        "link",
        "add",
        "lbf0",
        "type",
        "veth",
        "peer",
        "name",
        "lbf1",
        "netns",
        &client.name,
    ]);
    amp.ip(&["addr", "add", &format!("{AMP_IP}/24"), "dev", "lbf0"]);
    amp.ip(&["link", "set", "lbf0", "up"]);
    client.ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "lbf1"]);
    client.ip(&["link", "set", "lbf1", "up"]);
}

/// HAProxy in the amphora namespace, answering on both ports; killed on drop.
struct Listeners(Child);

impl Listeners {
    fn start(dir: &TempDir, amp: &Netns) -> Listeners {
        let mut cfg = String::from(
            "global\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    \
             timeout server 5s\n",
        );
        for port in [OPEN, SHUT] {
            cfg.push_str(&format!(
                "frontend f{port}\n    bind {AMP_IP}:{port}\n    \
                 http-request return status 200 content-type text/plain string p{port}\n"
            ));
        }
        let path = dir.write("listeners.cfg", &cfg);
        let child = Command::new("ip")
            .args(["netns", "exec", &amp.name, "haproxy", "-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        Listeners(child)
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the client gets from `port`: Ok(body), or curl's exit code (28: timed out, the SYN
/// was dropped; 7: refused).
fn try_port(client: &Netns, port: u16) -> Result<String, i32> {
    let url = format!("http://{AMP_IP}:{port}/");
    match curl_in(Some(&client.name), &["--connect-timeout", "1", &url]) {
        Ok(r) if r.status == 200 => Ok(r.body),
        Ok(r) => panic!("{url}: {} {}", r.status, r.body),
        Err((code, _)) => Err(code),
    }
}

fn put_rules(agent: &Agent, dir: &TempDir, ip: &str, body: &serde_json::Value) -> common::Resp {
    let path = format!("/1.0/interface/{ip}/rules");
    call(agent, dir, "PUT", &path, Some(body.to_string().as_bytes()))
}

fn has_nft(test: &str) -> bool {
    let ok = Command::new("nft").arg("--version").output().is_ok();
    if !ok {
        skip(test, "needs nft (Debian's nftables)");
    }
    ok
}

fn ruleset(amp: &Netns) -> String {
    let out = run(Command::new("ip").args(["netns", "exec", &amp.name, "nft", "list", "ruleset"]));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_allowed_port_is_open_the_others_are_dropped_also_after_a_restart() {
    let test = "an_allowed_port_is_open_the_others_are_dropped_also_after_a_restart";
    if lacks_root(test, "for network namespaces") || !has_nft(test) {
        return;
    }
    let (amp, client) = namespaces();
    let dir = TempDir::new("fw");
    let _listeners = Listeners::start(&dir, &amp);
    common::wait_for("both listeners", Duration::from_secs(10), || {
        try_port(&client, OPEN).is_ok() && try_port(&client, SHUT).is_ok()
    });
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    // As the controller sends them for a load balancer with one TCP listener, in an
    // ACTIVE_STANDBY pair (the peer's VRRP), and an SCTP listener allowed from one network.
    let rules = serde_json::json!([
        {"protocol": "TCP", "cidr": null, "port": OPEN},
        {"protocol": "SCTP", "cidr": "2001:db8::/32", "port": 9000},
        {"protocol": "VRRP", "cidr": "203.0.113.3/32", "port": 112},
    ]);
    let r = put_rules(&agent, &dir, AMP_IP, &rules);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"message": "OK"}));
    let check = |why: &str| {
        assert_eq!(try_port(&client, OPEN), Ok(format!("p{OPEN}")), "{why}");
        assert_eq!(
            try_port(&client, SHUT),
            Err(28),
            "{why}: dropped, not refused"
        );
    };
    check("rules applied");
    let table = ruleset(&amp);
    assert!(
        table.contains("iifname \"lbf0\" goto amphora_vip_chain"),
        "{table}"
    );
    assert!(
        table.contains("ip saddr 203.0.113.3 ip protocol vrrp accept"),
        "{table}"
    );
    let file = dir.path("state/nftables-vip.rules");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A source the client is not in closes the port too; the client's own opens it again.
    let only = |cidr: &str| serde_json::json!([{"protocol": "TCP", "cidr": cidr, "port": OPEN}]);
    let r = put_rules(&agent, &dir, AMP_IP, &only("198.51.100.0/24"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(try_port(&client, OPEN), Err(28), "not from 198.51.100.0/24");
    let r = put_rules(&agent, &dir, AMP_IP, &only(&format!("{CLIENT_IP}/32")));
    assert_eq!(r.status, 200, "{}", r.body);
    check("allowed from the client's address");
    let one_table = ruleset(&amp).matches("table inet amphora_table").count();
    assert_eq!(one_table, 1, "replaced, not added");

    // An agent restart after a reboot (nft's tables are gone): the rules come back.
    drop(agent);
    run(Command::new("ip").args(["netns", "exec", &amp.name, "nft", "flush", "ruleset"]));
    assert!(try_port(&client, SHUT).is_ok(), "no rules after the flush");
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    check("after the restart");
    assert!(
        agent.app_log().contains("firewall rules loaded"),
        "{}",
        agent.app_log()
    );
}

#[test]
fn bad_bodies_and_unknown_addresses_are_refused_and_change_nothing() {
    let test = "bad_bodies_and_unknown_addresses_are_refused_and_change_nothing";
    if lacks_root(test, "for network namespaces") || !has_nft(test) {
        return;
    }
    let (amp, _client) = namespaces();
    let dir = TempDir::new("fwbad");
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    let good = serde_json::json!([{"protocol": "TCP", "cidr": null, "port": OPEN}]);
    for (body, details) in [
        (serde_json::json!({}), "body must be a JSON array"),
        (
            serde_json::json!([{"protocol": "ICMP", "cidr": null, "port": 1}]),
            "item 0: protocol must be one of TCP, UDP, SCTP, VRRP",
        ),
        (
            serde_json::json!([good[0], {"protocol": "TCP", "cidr": "10.0.0.0/8", "port": 0}]),
            "item 1: port must be a whole number from 1 to 65535, not 0",
        ),
        (
            serde_json::json!([{"protocol": "TCP", "cidr": "10.0.0.0/8; flush ruleset", "port": 1}]),
            "item 0: cidr must be a network",
        ),
        (
            serde_json::json!([{"protocol": "UDP", "port": 53}]),
            "item 0: missing field cidr",
        ),
    ] {
        let r = put_rules(&agent, &dir, AMP_IP, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["message"], "Invalid rules information");
        assert!(r.details().starts_with(details), "{body}: {}", r.body);
    }
    let r = put_rules(&agent, &dir, "198.51.100.77", &good);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "Error interface not found for IP address"
    );
    let r = put_rules(&agent, &dir, "203.0.113.999", &good);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!dir.path("state/nftables-vip.rules").exists());
    assert!(!ruleset(&amp).contains("amphora_table"));
}

/// With `tenant_namespace` the VIP port lives there, and so do the rules: Octavia's layout
/// exactly (no other interface is left open), while the agent's own namespace has no table and
/// its addresses are no VIP's.
#[test]
fn in_the_tenant_namespace_the_rules_are_loaded_there() {
    let test = "in_the_tenant_namespace_the_rules_are_loaded_there";
    if lacks_root(test, "for network namespaces") || !has_nft(test) {
        return;
    }
    let (amp, tenant, client) = (
        Netns::new("fwtamp"),
        Netns::new("fwtten"),
        Netns::new("fwtcli"),
    );
    join(&tenant, &client);
    // An address of the agent's own namespace (the kernel here has no dummy links).
    amp.ip(&["addr", "add", "198.51.100.5/32", "dev", "lo"]);
    let dir = TempDir::new("fwt");
    let _listeners = Listeners::start(&dir, &tenant);
    common::wait_for("both listeners", Duration::from_secs(10), || {
        try_port(&client, OPEN).is_ok() && try_port(&client, SHUT).is_ok()
    });
    let extra = format!("tenant_namespace: {}\n", tenant.name);
    let agent = Agent::start_in(&dir, &extra, Some(&amp.name));
    let rules = serde_json::json!([{"protocol": "TCP", "cidr": null, "port": OPEN}]);
    let r = put_rules(&agent, &dir, "198.51.100.5", &rules);
    assert_eq!(r.status, 404, "the management side is no VIP: {}", r.body);
    let r = put_rules(&agent, &dir, AMP_IP, &rules);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(try_port(&client, OPEN), Ok(format!("p{OPEN}")));
    assert_eq!(try_port(&client, SHUT), Err(28));
    let table = ruleset(&tenant);
    assert!(
        table.contains("iifname \"lbf0\" goto amphora_vip_chain\n\t}"),
        "{table}"
    );
    assert!(!ruleset(&amp).contains("amphora_table"));
    assert_eq!(call(&agent, &dir, "GET", "/1.0/info", None).status, 200);
}
