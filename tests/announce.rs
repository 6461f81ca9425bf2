//! Gratuitous ARP and unsolicited Neighbor Advertisements, seen from a client namespace's
//! neighbour table: after a VIP plug, a load balancer's start and reload (SINGLE only) and a
//! member network's plug, the client's entries hold the amphora port's MAC. Linux updates an
//! entry it has from such a packet but makes none, so each check first plants a wrong one.
//! Needs root (CI is root).

mod common;

use common::{call, lacks_root, wait_for, Agent, Netns, TempDir};
use std::thread;
use std::time::Duration;

const LB: &str = "0c3d5a1e-7b2f-4e88-9d61-3f4a2b1c5e77";
const VIP_MAC: &str = "02:00:5e:00:10:01";
const NET_MAC: &str = "02:00:5e:00:10:02";
/// What the client holds before each announcement: nobody's MAC.
const WRONG: &str = "02:00:00:00:00:99";

/// A veth pair from `amp` (port `dev`, with `mac`, left down as a cloud attaches it) to
/// `client` (port `peer`, up, with `addrs`).
fn wire(amp: &Netns, client: &Netns, (dev, mac, peer): (&str, &str, &str), addrs: &[&str]) {
    amp.ip(&[
        "link",
        "add",
        dev,
        "address",
        mac,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        &client.name,
    ]);
    client.ip(&["link", "set", peer, "up"]);
    for a in addrs {
        client.ip(&["addr", "add", a, "dev", peer, "nodad"]);
    }
}

fn plant(client: &Netns, dev: &str, ips: &[&str]) {
    for ip in ips {
        client.ip(&[
            "neigh", "replace", ip, "lladdr", WRONG, "dev", dev, "nud", "stale",
        ]);
    }
}

fn neighbour(client: &Netns, dev: &str, ip: &str) -> String {
    client.ip(&["neigh", "show", ip, "dev", dev])
}

fn learned(client: &Netns, dev: &str, ips: &[&str], mac: &str) {
    for ip in ips {
        wait_for(
            &format!("the client to learn {ip} at {mac}"),
            Duration::from_secs(3),
            || neighbour(client, dev, ip).contains(mac),
        );
    }
}

/// A load balancer with its VIPs in Octavia's forms (a bare IPv6 address before the port).
fn lb_config(binds: &[&str]) -> String {
    common::http_lb(binds, "    http-request return status 200\n")
}

/// `plug/vip` for `vip` on `subnet`, with `extra` as its additional VIPs (address, subnet).
fn vip_plug(vip: &str, subnet: &str, extra: &[(&str, &str)]) -> (String, Vec<u8>) {
    let additional: Vec<_> = extra
        .iter()
        .map(|(ip, net)| serde_json::json!({"ip_address": ip, "subnet_cidr": net}))
        .collect();
    let body = serde_json::json!({"subnet_cidr": subnet, "mac_address": VIP_MAC,
        "additional_vips": additional});
    (
        format!("/1.0/plug/vip/{vip}"),
        body.to_string().into_bytes(),
    )
}

#[test]
fn vip_plug_start_and_reload_announce_the_vips_in_single() {
    if lacks_root(
        "vip_plug_start_and_reload_announce_the_vips_in_single",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, client) = (Netns::new("gamp"), Netns::new("gcli"));
    wire(
        &amp,
        &client,
        ("lbg0", VIP_MAC, "lbg1"),
        &["203.0.113.1/24", "2001:db8:7::1/64"],
    );
    let dir = TempDir::new("garp");
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    let api = |method: &str, path: &str, body: Option<&[u8]>| {
        let r = call(&agent, &dir, method, path, body);
        assert_eq!(r.status, 202, "{method} {path}: {}", r.body);
    };
    let (v4, v6) = ("203.0.113.5", "2001:db8:7::5");

    let both = [v4, v6];
    plant(&client, "lbg1", &both);
    let (path, body) = vip_plug(v4, "203.0.113.0/24", &[(v6, "2001:db8:7::/64")]);
    api("POST", &path, Some(&body));
    learned(&client, "lbg1", &both, VIP_MAC);

    let cfg = lb_config(&["203.0.113.5:8080", "2001:db8:7::5:8080", "*:8081"]);
    plant(&client, "lbg1", &both);
    common::start_lb(&agent, &dir, LB, &cfg);
    learned(&client, "lbg1", &both, VIP_MAC);
    plant(&client, "lbg1", &both);
    api("PUT", &format!("/1.0/loadbalancer/{LB}/reload"), None);
    learned(&client, "lbg1", &both, VIP_MAC);

    // Stopping announces nothing, nor does a reload in ACTIVE_STANDBY (keepalived's task).
    plant(&client, "lbg1", &both);
    api("PUT", &format!("/1.0/loadbalancer/{LB}/stop"), None);
    api(
        "PUT",
        "/1.0/config",
        Some(b"[controller_worker]\nloadbalancer_topology = ACTIVE_STANDBY\n"),
    );
    api("PUT", &format!("/1.0/loadbalancer/{LB}/start"), None);
    api("PUT", &format!("/1.0/loadbalancer/{LB}/reload"), None);
    thread::sleep(Duration::from_millis(500));
    for ip in both {
        let entry = neighbour(&client, "lbg1", ip);
        assert!(entry.contains(WRONG), "{ip} left alone: {entry}");
    }
}

#[test]
fn a_network_plug_and_a_replug_announce_their_fixed_ips() {
    if lacks_root(
        "a_network_plug_and_a_replug_announce_their_fixed_ips",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, client) = (Netns::new("namp"), Netns::new("ncli"));
    wire(
        &amp,
        &client,
        ("lbh0", NET_MAC, "lbh1"),
        &["198.51.100.1/24", "2001:db8:8::1/64"],
    );
    let dir = TempDir::new("nagarp");
    let agent = Agent::start_in(&dir, "", Some(&amp.name));
    let plug = |fixed: &[&str]| {
        plant(&client, "lbh1", fixed);
        let nets = ["198.51.100.0/24", "2001:db8:8::/64"];
        let ips: Vec<_> = fixed
            .iter()
            .zip(nets)
            .map(|(ip, net)| serde_json::json!({"ip_address": ip, "subnet_cidr": net}))
            .collect();
        let body = serde_json::json!({"mac_address": NET_MAC, "fixed_ips": ips});
        let r = call(
            &agent,
            &dir,
            "POST",
            "/1.0/plug/network",
            Some(body.to_string().as_bytes()),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        learned(&client, "lbh1", fixed, NET_MAC);
    };
    plug(&["198.51.100.5", "2001:db8:8::5"]);
    // Plugged again with other addresses (a subnet changed): the new ones are announced.
    plug(&["198.51.100.6", "2001:db8:8::6"]);
}

/// With a tenant namespace (Octavia's `amphora-haproxy`) the ports live there, and so must the
/// sockets that announce their addresses; the agent stays in its own namespace.
#[test]
fn in_the_tenant_namespace_the_vip_is_announced_from_there() {
    if lacks_root(
        "in_the_tenant_namespace_the_vip_is_announced_from_there",
        "for network namespaces",
    ) {
        return;
    }
    let (amp, client, tenant) = (Netns::new("tamp"), Netns::new("tcli"), Netns::new("tten"));
    wire(
        &amp,
        &client,
        ("lbi0", VIP_MAC, "lbi1"),
        &["198.51.100.1/24"],
    );
    let dir = TempDir::new("tngarp");
    let extra = format!("tenant_namespace: {}\n", tenant.name);
    let agent = Agent::start_in(&dir, &extra, Some(&amp.name));
    let vip = "198.51.100.5";
    plant(&client, "lbi1", &[vip]);
    let (path, body) = vip_plug(vip, "198.51.100.0/24", &[]);
    let r = call(&agent, &dir, "POST", &path, Some(&body));
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(tenant.ip(&["link"]).contains("lbi0"), "moved in");
    learned(&client, "lbi1", &[vip], VIP_MAC);
    plant(&client, "lbi1", &[vip]);
    common::start_lb(&agent, &dir, LB, &lb_config(&["198.51.100.5:8080"]));
    learned(&client, "lbi1", &[vip], VIP_MAC);
}
