//! VIP and network plugging for real: the agent runs in a network namespace the test makes,
//! with veth ports whose other ends sit in a peer namespace. Needs root (CI is root).

mod common;

use common::{call, lacks_root, run, wait_for, Agent, Netns, TempDir};
use std::process::Command;
use std::time::Duration;

const VIP_MAC: &str = "02:00:5e:00:00:01";
const NET_MAC: &str = "02:00:5e:00:00:02";
const V6_MAC: &str = "02:00:5e:00:00:03";

/// Whether `ip` answers a ping from `peer` within 4 s: pings go out every second until one is
/// answered (a link just brought up may drop the first while the kernel notices its carrier).
fn ping_from(peer: &Netns, ip: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &peer.name, "ping", "-c", "1", "-w", "4", ip,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn vip_body(subnet: &str, gateway: &str, mac: &str) -> Vec<u8> {
    serde_json::json!({ "subnet_cidr": subnet, "gateway": gateway, "mac_address": mac })
        .to_string()
        .into_bytes()
}

#[test]
fn plug_a_vip_and_a_network_then_survive_a_restart() {
    if lacks_root(
        "plug_a_vip_and_a_network_then_survive_a_restart",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, peer) = (Netns::new("amp"), Netns::new("peer"));
    // Two ports, still down on the amphora side, as a cloud attaches them.
    for (dev, mac, other) in [
        ("lbt0", VIP_MAC, "lbt1"),
        ("lbn0", NET_MAC, "lbn1"),
        ("lbv0", V6_MAC, "lbv1"),
    ] {
        amp.ip(&[
            "link", "add", dev, "address", mac, "type", "veth", "peer", "name", other, "netns",
            &peer.name,
        ]);
        peer.ip(&["link", "set", other, "up"]);
    }
    peer.ip(&["addr", "add", "203.0.113.1/24", "dev", "lbt1"]);
    peer.ip(&["addr", "add", "198.51.100.1/24", "dev", "lbn1"]);
    peer.ip(&["addr", "add", "2001:db8:5::1/64", "dev", "lbv1", "nodad"]);
    let dir = TempDir::new("plug");
    let mut agent = Agent::start_in(&dir, "", Some(&amp.name));

    // Bad input first: nothing is touched.
    for (vip, body, message) in [
        (
            "203.0.113.300",
            vip_body("203.0.113.0/24", "203.0.113.1", VIP_MAC),
            "Invalid VIP",
        ),
        (
            "198.51.100.7",
            vip_body("203.0.113.0/24", "203.0.113.1", VIP_MAC),
            "Invalid subnet information",
        ),
        (
            "203.0.113.2",
            vip_body("203.0.113.0/40", "203.0.113.1", VIP_MAC),
            "Invalid subnet information",
        ),
        (
            "203.0.113.2",
            vip_body("203.0.113.0/24", "203.0.113.1", "02:00:5e"),
            "Invalid subnet information",
        ),
    ] {
        let r = call(
            &agent,
            &dir,
            "POST",
            &format!("/v0.1/plug/vip/{vip}"),
            Some(&body),
        );
        assert_eq!(
            (r.status, r.json()["message"].as_str().unwrap()),
            (400, message),
            "{vip}: {}",
            r.body
        );
    }
    let r = call(
        &agent,
        &dir,
        "POST",
        "/v0.1/plug/vip/203.0.113.2",
        Some(&vip_body(
            "203.0.113.0/24",
            "203.0.113.1",
            "02:00:5e:00:00:99",
        )),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No suitable network interface found");
    assert!(!amp.ip(&["addr"]).contains("203.0.113.2"));

    // A step that fails (the same host route twice): 500 with ip's words, and nothing left over.
    let route = serde_json::json!({"destination": "192.0.2.0/24", "nexthop": "203.0.113.1"});
    let failing = serde_json::json!({"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
        "mac_address": VIP_MAC, "vrrp_ip": "203.0.113.3", "host_routes": [route, route]});
    let r = call(
        &agent,
        &dir,
        "POST",
        "/v0.1/plug/vip/203.0.113.2",
        Some(failing.to_string().as_bytes()),
    );
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["message"], "Error plugging VIP");
    assert!(r.details().contains("File exists"), "{}", r.body);
    let addr = amp.ip(&["-br", "addr", "show", "dev", "lbt0"]);
    assert!(
        !addr.contains("203.0.113.") && addr.contains("DOWN"),
        "rolled back: {addr}"
    );
    assert!(!amp.ip(&["rule"]).contains("203.0.113.2"));
    assert_eq!(amp.ip(&["route", "show", "table", "100"]).trim(), "");

    let good = serde_json::json!({"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
        "mac_address": VIP_MAC, "vrrp_ip": "203.0.113.3", "host_routes": [route]});
    let r = call(
        &agent,
        &dir,
        "POST",
        "/v0.1/plug/vip/203.0.113.2",
        Some(good.to_string().as_bytes()),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "OK", "details": "VIP 203.0.113.2 plugged on interface lbt0"})
    );
    let check_vip = |amp: &Netns| {
        let addr = amp.ip(&["-br", "addr", "show", "dev", "lbt0"]);
        assert!(
            addr.contains("203.0.113.2/24") && addr.contains("UP"),
            "{addr}"
        );
        let table = amp.ip(&["route", "show", "table", "100"]);
        assert!(
            table.contains("default via 203.0.113.1 dev lbt0"),
            "{table}"
        );
        assert!(
            table.contains("203.0.113.0/24 dev lbt0") && table.contains("src 203.0.113.2"),
            "{table}"
        );
        let rules = amp.ip(&["rule"]);
        assert!(rules.contains("from 203.0.113.2 lookup 100"), "{rules}");
        assert!(addr.contains("203.0.113.3/24"), "vrrp_ip: {addr}");
        assert!(
            table.contains("192.0.2.0/24 via 203.0.113.1 dev lbt0"),
            "host route: {table}"
        );
    };
    check_vip(&amp);
    assert!(
        ping_from(&peer, "203.0.113.2"),
        "the VIP answers from the peer network"
    );
    let r = call(
        &agent,
        &dir,
        "POST",
        "/v0.1/plug/vip/203.0.113.2",
        Some(&vip_body("203.0.113.0/24", "203.0.113.1", VIP_MAC)),
    );
    assert_eq!(r.status, 409, "{}", r.body);

    // The VIP port plugged again through plug/network, as Octavia's controller does when a
    // member subnet on the VIP network comes or goes: its further fixed IPs follow, the VIP
    // plug stays.
    let vip_port = |extra: &[(&str, &str)]| {
        let mut fixed = vec![serde_json::json!({"ip_address": "203.0.113.3",
            "subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1", "host_routes": []})];
        for (ip, subnet) in extra {
            fixed.push(serde_json::json!({"ip_address": ip, "subnet_cidr": subnet,
                "gateway": null, "host_routes": []}));
        }
        let body = serde_json::json!({"mac_address": VIP_MAC, "fixed_ips": fixed, "mtu": 1450,
            "is_sriov": false, "vip_net_info": {"subnet_cidr": "203.0.113.0/24",
            "gateway": "203.0.113.1", "mac_address": VIP_MAC, "vrrp_ip": "203.0.113.3",
            "mtu": 1450, "host_routes": [route], "additional_vips": [], "is_sriov": false,
            "vip": "203.0.113.2"}});
        call(
            &agent,
            &dir,
            "POST",
            "/1.0/plug/network",
            Some(body.to_string().as_bytes()),
        )
    };
    let r = vip_port(&[("2001:db8:7::3", "2001:db8:7::/64")]);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.details(), "Updated existing interface lbt0");
    assert!(amp
        .ip(&["-br", "addr", "show", "dev", "lbt0"])
        .contains("2001:db8:7::3/64"));
    check_vip(&amp);
    let r = vip_port(&[]);
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(!amp
        .ip(&["-br", "addr", "show", "dev", "lbt0"])
        .contains("2001:db8:7::3"));
    check_vip(&amp);

    let body = serde_json::json!({"mac_address": NET_MAC, "fixed_ips": [{"ip_address": "198.51.100.9", "subnet_cidr": "198.51.100.0/24"}]});
    let r = call(
        &agent,
        &dir,
        "POST",
        "/1.0/plug/network", // the same plug through API 1.0
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["details"], "Plugged interface lbn0");
    assert!(ping_from(&peer, "198.51.100.9"));

    // An IPv6 VIP, with a subnet written with host bits.
    let r = call(
        &agent,
        &dir,
        "POST",
        "/1.0/plug/vip/2001:db8:5::2", // through API 1.0
        Some(&vip_body("2001:db8:5::7/64", "2001:db8:5::1", V6_MAC)),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(amp
        .ip(&["-br", "addr", "show", "dev", "lbv0"])
        .contains("2001:db8:5::2/64"));
    assert!(amp
        .ip(&["-6", "route", "show", "table", "101"])
        .contains("default via 2001:db8:5::1"));
    assert!(ping_from(&peer, "2001:db8:5::2"));

    // A reboot takes the configuration away; the agent puts it back when it starts.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    for dev in ["lbt0", "lbn0"] {
        amp.ip(&["addr", "flush", "dev", dev]);
        amp.ip(&["link", "set", dev, "down"]);
    }
    amp.ip(&["rule", "del", "from", "203.0.113.2", "table", "100"]);
    let _ = run(Command::new("ip").args(["-n", &amp.name, "route", "flush", "table", "100"]));
    assert!(!ping_from(&peer, "203.0.113.2"));
    let _agent = Agent::start_in(&dir, "", Some(&amp.name));
    check_vip(&amp);
    // The peer's neighbour entry went FAILED while the port was down; under load its next
    // resolution can take more than one ping's deadline.
    for ip in ["203.0.113.2", "198.51.100.9"] {
        wait_for(
            &format!("{ip} answers again"),
            Duration::from_secs(20),
            || ping_from(&peer, ip),
        );
    }
}

#[test]
fn kill_9_during_plugs_leaves_the_plug_record_old_or_new() {
    if lacks_root(
        "kill_9_during_plugs_leaves_the_plug_record_old_or_new",
        "for network namespaces",
    ) {
        return;
    }
    const KILLS: usize = 25;
    let amp = Netns::new("kamp");
    let dir = TempDir::new("plugkill");
    let record = dir.path("state/plugs.json");
    let recorded = || -> Vec<serde_json::Value> {
        match std::fs::read(&record) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                panic!("torn plugs.json: {e}: {}", String::from_utf8_lossy(&b))
            }),
            Err(_) => Vec::new(),
        }
    };
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut before = 0;
    for k in 0..KILLS {
        // Two fresh ports a cloud just attached: one for a VIP, one for a member network.
        let macs = [
            format!("02:00:5e:01:00:{:02x}", 2 * k),
            format!("02:00:5e:01:00:{:02x}", 2 * k + 1),
        ];
        for (j, mac) in macs.iter().enumerate() {
            let (dev, other) = (format!("lbk{k}x{j}"), format!("lbq{k}x{j}"));
            amp.ip(&[
                "link", "add", &dev, "address", mac, "type", "veth", "peer", "name", &other,
            ]);
        }
        let mut agent = Agent::start_in(&dir, "", Some(&amp.name));
        let (ns, port) = (amp.name.clone(), agent.port);
        let writer = std::thread::spawn(move || {
            let vip = format!("203.0.113.{}", 10 + k);
            let vip_body = vip_body("203.0.113.0/24", "203.0.113.1", &macs[0]);
            let net_body = serde_json::json!({"mac_address": macs[1], "fixed_ips": [
                {"ip_address": format!("198.51.100.{}", 10 + k), "subnet_cidr": "198.51.100.0/24"}]})
            .to_string();
            for (path, body) in [
                (
                    format!("/v0.1/plug/vip/{vip}"),
                    String::from_utf8(vip_body).unwrap(),
                ),
                ("/v0.1/plug/network".to_string(), net_body),
            ] {
                let url = format!("http://127.0.0.1:{port}{path}");
                let args = [
                    "--max-time",
                    "5",
                    "-X",
                    "POST",
                    "--data-binary",
                    &body,
                    &url,
                ];
                if common::curl_in(Some(&ns), &args).is_err() {
                    return;
                }
            }
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(seed % 120));
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        writer.join().unwrap();
        // Old or new: every plug recorded before is still there, in order.
        let now = recorded();
        assert!(
            now.len() >= before,
            "kill {k}: plugs lost ({before} -> {})",
            now.len()
        );
        before = now.len();
    }
    // The agent starts on what is left and puts every recorded plug back.
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    let plugs = recorded();
    assert!(!plugs.is_empty(), "plugs happened between the kills");
    let links = amp.ip(&["-o", "link", "show", "up"]);
    for p in &plugs {
        let mac = p["mac_address"].as_str().unwrap();
        assert!(
            links.contains(mac),
            "{mac} recorded but not up after restart:\n{links}"
        );
    }
    drop(agent);
    eprintln!(
        "{KILLS} kill -9s during plugs survived; {} plugs recorded and re-applied",
        plugs.len()
    );
}

/// A port on the amphora side (down, with `mac`) and its peer in `peer`, up.
fn port(amp: &Netns, peer: &Netns, dev: &str, mac: &str, other: &str) {
    amp.ip(&[
        "link", "add", dev, "address", mac, "type", "veth", "peer", "name", other, "netns",
        &peer.name,
    ]);
    peer.ip(&["link", "set", other, "up"]);
}

/// Octavia's multi-VIP plug: one VIP and two additional ones, IPv4 and IPv6, on one port, each
/// with its own table and rule; a load balancer bound to all three answers on each from the
/// peer network.
#[test]
fn a_dual_stack_vip_with_two_additional_vips_answers_on_all_of_them() {
    if lacks_root(
        "a_dual_stack_vip_with_two_additional_vips_answers_on_all_of_them",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, peer) = (Netns::new("mv"), Netns::new("mvpeer"));
    port(&amp, &peer, "lbm0", VIP_MAC, "lbm1");
    for a in ["203.0.113.1/24", "198.51.100.1/24", "2001:db8:5::1/64"] {
        peer.ip(&["addr", "add", a, "dev", "lbm1", "nodad"]);
    }
    let dir = TempDir::new("multivip");
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    // Keys and shapes as Octavia's driver sends them (rest_api_driver post_vip_plug).
    let body = serde_json::json!({"subnet_cidr": "203.0.113.0/24", "gateway": "203.0.113.1",
        "mac_address": VIP_MAC, "vrrp_ip": null, "host_routes": [], "mtu": 1500,
        "is_sriov": false, "additional_vips": [
            {"ip_address": "2001:db8:5::2", "subnet_cidr": "2001:db8:5::/64",
             "gateway": "2001:db8:5::1", "host_routes": []},
            {"ip_address": "198.51.100.2", "subnet_cidr": "198.51.100.0/24",
             "gateway": "198.51.100.1",
             "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "198.51.100.1"}]}]});
    let r = call(
        &agent,
        &dir,
        "POST",
        "/1.0/plug/vip/203.0.113.2",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let addr = amp.ip(&["-br", "addr", "show", "dev", "lbm0"]);
    for a in ["203.0.113.2/24", "2001:db8:5::2/64", "198.51.100.2/24"] {
        assert!(addr.contains(a), "{a}: {addr}");
    }
    let rules = amp.ip(&["rule"]) + &amp.ip(&["-6", "rule"]);
    for (from, table) in [
        ("203.0.113.2", "100"),
        ("2001:db8:5::2", "101"),
        ("198.51.100.2", "102"),
    ] {
        assert!(
            rules.contains(&format!("from {from} lookup {table}")),
            "{rules}"
        );
    }
    assert!(amp
        .ip(&["-6", "route", "show", "table", "101"])
        .contains("default via 2001:db8:5::1"));
    assert!(amp
        .ip(&["route", "show", "table", "102"])
        .contains("192.0.2.0/24 via 198.51.100.1"));

    let lb = common::http_lb(
        &[
            "203.0.113.2:8080",
            "[2001:db8:5::2]:8080",
            "198.51.100.2:8080",
        ],
        "    http-request return status 200 content-type text/plain string served\n",
    );
    common::start_lb(&agent, &dir, "lbm", &lb);
    for url in [
        "http://203.0.113.2:8080/",
        "http://[2001:db8:5::2]:8080/",
        "http://198.51.100.2:8080/",
    ] {
        let r = common::curl_in(Some(&peer.name), &["--max-time", "3", url]);
        assert_eq!(
            r.map(|r| r.body).unwrap_or_else(|e| format!("{e:?}")),
            "served",
            "{url}"
        );
    }
}

/// Re-plugging a member port (Octavia sends the whole new fixed IP list after a subnet is
/// added or removed): addresses and host routes move to the new list, 202 "Updated existing
/// interface", and a kill -9 during a re-plug leaves the port as before or as after once the
/// agent is back.
#[test]
fn replugging_a_member_port_moves_its_addresses_and_routes() {
    if lacks_root(
        "replugging_a_member_port_moves_its_addresses_and_routes",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, peer) = (Netns::new("rp"), Netns::new("rppeer"));
    port(&amp, &peer, "lbr0", NET_MAC, "lbr1");
    for a in ["198.51.100.1/24", "2001:db8:6::1/64"] {
        peer.ip(&["addr", "add", a, "dev", "lbr1", "nodad"]);
    }
    let dir = TempDir::new("replug");
    let mut agent = Agent::start_in(&dir, "", Some(&amp.name));
    let one = serde_json::json!({"mac_address": NET_MAC, "fixed_ips": [
        {"ip_address": "198.51.100.9", "subnet_cidr": "198.51.100.0/24", "host_routes": []}]});
    let two = serde_json::json!({"mac_address": NET_MAC, "fixed_ips": [
        {"ip_address": "198.51.100.10", "subnet_cidr": "198.51.100.0/24", "gateway": "198.51.100.1",
         "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "198.51.100.1"}]},
        {"ip_address": "2001:db8:6::9", "subnet_cidr": "2001:db8:6::/64", "host_routes": []}]});
    let plug = |agent: &Agent, body: &serde_json::Value| {
        call(
            agent,
            &dir,
            "POST",
            "/1.0/plug/network",
            Some(body.to_string().as_bytes()),
        )
    };
    // What the port holds: its global addresses and its routes through a next hop.
    let held = || {
        let addr = amp.ip(&["-br", "addr", "show", "dev", "lbr0"]);
        let routes = amp.ip(&["route", "show", "dev", "lbr0"]);
        (addr, routes)
    };
    let is_one = |(addr, routes): &(String, String)| {
        addr.contains("198.51.100.9/24")
            && !addr.contains("198.51.100.10")
            && !addr.contains("2001:db8:6::9")
            && !routes.contains("192.0.2.0/24")
    };
    let is_two = |(addr, routes): &(String, String)| {
        addr.contains("198.51.100.10/24")
            && addr.contains("2001:db8:6::9/64")
            && !addr.contains("198.51.100.9/")
            && routes.contains("192.0.2.0/24 via 198.51.100.1")
    };
    let r = plug(&agent, &one);
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(is_one(&held()), "{:?}", held());
    let r = plug(&agent, &two);
    assert_eq!(
        (r.status, r.details()),
        (202, "Updated existing interface lbr0".to_string()),
        "{}",
        r.body
    );
    assert!(is_two(&held()), "{:?}", held());
    assert!(ping_from(&peer, "198.51.100.10") && ping_from(&peer, "2001:db8:6::9"));
    let r = plug(&agent, &one);
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(is_one(&held()), "{:?}", held());

    // kill -9 at random points of re-plugs back and forth: once the agent is back, the port
    // is as its record says, one list or the other.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for k in 0..12 {
        let body = if k % 2 == 0 { &two } else { &one };
        let (ns, port) = (amp.name.clone(), agent.port);
        let body = body.to_string();
        let writer = std::thread::spawn(move || {
            let url = format!("http://127.0.0.1:{port}/1.0/plug/network");
            let args = [
                "--max-time",
                "5",
                "-X",
                "POST",
                "--data-binary",
                &body,
                &url,
            ];
            let _ = common::curl_in(Some(&ns), &args);
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(seed % 60));
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        writer.join().unwrap();
        agent = Agent::start_in(&dir, "", Some(&amp.name));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path("state/plugs.json")).unwrap()).unwrap();
        let first = record[0]["fixed_ips"][0]["ip_address"].as_str().unwrap();
        let now = held();
        match first {
            "198.51.100.9" => assert!(is_one(&now), "kill {k}: record one, port {now:?}"),
            _ => assert!(is_two(&now), "kill {k}: record two, port {now:?}"),
        }
    }
}

/// The tenant namespace (`tenant_namespace`, Octavia's `amphora-haproxy`): the VIP port moves into
/// it, HAProxy runs in it and reaches a member behind the VIP subnet's gateway through that
/// gateway, while the agent's own namespace routes elsewhere (its default route leads to a
/// management network that knows no members) and the agent answers there.
#[test]
fn in_the_tenant_namespace_haproxy_reaches_members_through_the_vip_gateway() {
    if lacks_root(
        "in_the_tenant_namespace_haproxy_reaches_members_through_the_vip_gateway",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, mgmt, router, member) = (
        Netns::new("tnamp"),
        Netns::new("tnmgmt"),
        Netns::new("tnrtr"),
        Netns::new("tnmem"),
    );
    let tenant = Netns::new("tenant");
    // The management side: the agent's namespace, whose default route goes there.
    port(&amp, &mgmt, "lbg0", "02:00:5e:00:02:01", "lbg1");
    mgmt.ip(&["addr", "add", "203.0.113.129/25", "dev", "lbg1"]);
    amp.ip(&["addr", "add", "203.0.113.130/25", "dev", "lbg0"]);
    amp.ip(&["link", "set", "lbg0", "up"]);
    amp.ip(&["route", "add", "default", "via", "203.0.113.129"]);
    // The VIP network's router, and a member network behind it.
    port(&amp, &router, "lbv0", VIP_MAC, "lbv1");
    router.ip(&["addr", "add", "203.0.113.1/25", "dev", "lbv1"]);
    port(&member, &router, "lbw0", "02:00:5e:00:02:02", "lbw1");
    router.ip(&["addr", "add", "198.51.100.1/24", "dev", "lbw1"]);
    member.ip(&["addr", "add", "198.51.100.10/24", "dev", "lbw0"]);
    member.ip(&["link", "set", "lbw0", "up"]);
    member.ip(&["route", "add", "default", "via", "198.51.100.1"]);
    run(Command::new("ip").args([
        "netns",
        "exec",
        &router.name,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
    ]));
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &member.name,
            "python3",
            "-m",
            "http.server",
        ])
        .args(["8081", "--bind", "198.51.100.10"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let dir = TempDir::new("tenant");
    let extra = format!("tenant_namespace: {}\n", tenant.name);
    let agent = Agent::start_in(&dir, &extra, Some(&amp.name));
    let r = call(
        &agent,
        &dir,
        "POST",
        "/1.0/plug/vip/203.0.113.5",
        Some(&vip_body("203.0.113.0/25", "203.0.113.1", VIP_MAC)),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(
        tenant.ip(&["link"]).contains("lbv0"),
        "moved into the tenant namespace"
    );
    assert!(!amp.ip(&["link"]).contains("lbv0"));
    assert!(tenant
        .ip(&["route"])
        .contains("default via 203.0.113.1 dev lbv0"));
    let r = call(&agent, &dir, "GET", "/1.0/interface/203.0.113.5", None);
    assert_eq!(
        (r.status, r.json()["interface"].clone()),
        (200, "lbv0".into()),
        "{}",
        r.body
    );

    let lb = common::http_lb(
        &["203.0.113.5:8080"],
        "    default_backend b\nbackend b\n    server m1 198.51.100.10:8081\n",
    );
    common::start_lb(&agent, &dir, "lbt", &lb);
    let pids = common::haproxy_pids(&dir.path("state/listeners/lbt").display().to_string());
    assert!(!pids.is_empty());
    for pid in &pids {
        let out = run(Command::new("ip").args(["netns", "identify", &pid.to_string()]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            tenant.name,
            "HAProxy {pid}"
        );
    }
    common::wait_for(
        "the member through the VIP",
        std::time::Duration::from_secs(10),
        || {
            common::curl_in(
                Some(&router.name),
                &["--max-time", "3", "http://203.0.113.5:8080/"],
            )
            .is_ok_and(|r| r.status == 200)
        },
    );
    // The agent's own namespace (the management side) keeps its routes, and the agent
    // answers there.
    assert!(amp
        .ip(&["route"])
        .contains("default via 203.0.113.129 dev lbg0"));
    assert_eq!(call(&agent, &dir, "GET", "/1.0/info", None).status, 200);

    // An agent restart finds the port in the tenant namespace and keeps it as it is.
    drop(agent);
    let agent = Agent::start_in(&dir, &extra, Some(&amp.name));
    assert!(tenant
        .ip(&["-br", "addr", "show", "dev", "lbv0"])
        .contains("203.0.113.5/25"));
    assert_eq!(
        call(&agent, &dir, "GET", "/1.0/interface/203.0.113.5", None).status,
        200
    );
    let _ = server.kill();
    let _ = server.wait();
}
