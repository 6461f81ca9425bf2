//! The amphora host endpoints (/info, /v0.1/details, /v0.1/interface) and the legacy /status
//! and /service_status, against the real machine.

mod common;

use common::{call, free_port, http_backend, Agent, TempDir};
use serde_json::Value;
use std::time::Duration;

const AMP: &str = "6e2bc8a0-2548-4fb7-a5f0-fb1ef4a696ce";

fn start_listener(agent: &Agent, dir: &TempDir, id: &str) {
    let cfg = format!(
        "global\n    maxconn 64\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
frontend fe\n    bind 127.0.0.1:{}\n    default_backend be\nbackend be\n    server s1 127.0.0.1:{}\n",
        free_port(),
        http_backend()
    );
    let r = call(
        agent,
        dir,
        "PUT",
        &format!("/v0.1/listeners/{AMP}/{id}/haproxy"),
        Some(cfg.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        call(
            agent,
            dir,
            "PUT",
            &format!("/v0.1/listeners/{id}/start"),
            None
        )
        .status,
        202
    );
}

fn meminfo_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn info_and_details_describe_this_machine() {
    let dir = TempDir::new("host");
    let agent = Agent::start(&dir, &format!("amphora_id: {AMP}\n"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();

    let info = call(&agent, &dir, "GET", "/info", None).json();
    assert_eq!(info["hostname"], hostname.trim());
    assert_eq!(info["uuid"], AMP);
    assert_eq!(info["api_version"], "0.1");
    assert!(
        info["haproxy_version"].as_str().unwrap().starts_with("2."),
        "{info}"
    );

    start_listener(&agent, &dir, "l-one");
    start_listener(&agent, &dir, "l-two");
    // Some loopback traffic inside the sampling window.
    std::thread::sleep(Duration::from_millis(1500));
    let d = call(&agent, &dir, "GET", "/v0.1/details", None).json();
    assert_eq!(d["hostname"], hostname.trim());
    assert_eq!(d["haproxy_count"], 2);
    assert_eq!(d["listeners"], serde_json::json!(["l-one", "l-two"]));
    assert_eq!(d["memory"]["total"], meminfo_total());
    for k in [
        "free",
        "available",
        "buffers",
        "cached",
        "swap_used",
        "shared",
        "slab",
        "committed_as",
    ] {
        assert!(d["memory"][k].is_u64(), "memory.{k}: {d}");
    }
    assert!(d["disk"]["used"].as_u64().unwrap() > 0);
    assert!(d["disk"]["available"].as_u64().unwrap() > 0);
    assert_eq!(d["load"].as_array().unwrap().len(), 3);
    for k in ["total", "user", "system", "soft_irq"] {
        let v = d["cpu"][k].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&v), "cpu.{k} = {v}");
    }
    assert!(
        d["networks"]["lo"]["network_tx"].as_f64().unwrap() > 0.0,
        "{d}"
    );
    assert!(d["network_rx"].as_f64().unwrap() > 0.0);
    assert_eq!(d["topology"], "SINGLE");
    assert_eq!(d["topology_status"], "OK");
    assert_eq!(d["active"], true);
    let pkgs: Vec<String> = d["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p.as_object().unwrap().keys().cloned())
        .collect();
    assert!(
        pkgs.contains(&"haproxy".to_string()) && pkgs.contains(&"openssl".to_string()),
        "{pkgs:?}"
    );

    assert_eq!(
        call(&agent, &dir, "PUT", "/v0.1/listeners/l-two/stop", None).status,
        202
    );
    let d = call(&agent, &dir, "GET", "/v0.1/details", None).json();
    assert_eq!(d["haproxy_count"], 1);

    // Legacy status: same samplers, legacy types.
    let s = call(&agent, &dir, "GET", "/status", None).json();
    assert_eq!(s["haproxy_count"], "1");
    assert_eq!(s["stunnel_count"], "0");
    assert_eq!(s["hostname"], hostname.trim());
    assert_eq!(s["load"].as_array().unwrap().len(), 3);
    assert!(s["load"][0].is_string());
    for k in [
        "network_tx",
        "network_rx",
        "user_cpu",
        "system_cpu",
        "software_irq",
    ] {
        assert!(s[k].is_number(), "{k}: {s}");
    }
    let text = call(&agent, &dir, "GET", "/service_status", None);
    assert!(text
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    let lines: Vec<&str> = text.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", text.body);
    assert!(
        lines[0].starts_with("l-one ") && lines[0].ends_with("OK"),
        "{}",
        text.body
    );
    assert!(
        lines[1].starts_with("  haproxy          running (pid "),
        "{}",
        text.body
    );
    assert_eq!(lines[3], "  haproxy          stopped");
}

#[test]
fn interface_lookup() {
    let dir = TempDir::new("host");
    let agent = Agent::start(&dir, "");
    let ipv6 = std::path::Path::new("/proc/net/if_inet6").exists();
    let ips: &[&str] = if ipv6 {
        &["127.0.0.1", "::1", "0:0:0:0:0:0:0:1"]
    } else {
        &["127.0.0.1"]
    };
    for ip in ips {
        let r = call(&agent, &dir, "GET", &format!("/v0.1/interface/{ip}"), None);
        assert_eq!(r.status, 200, "{ip}");
        assert_eq!(
            r.json(),
            serde_json::json!({"message": "OK", "interface": "lo"})
        );
    }
    for bad in ["10.6.0.1.1", "not-an-ip", "1.2.3.256", "%3A%3A%3A"] {
        let r = call(&agent, &dir, "GET", &format!("/v0.1/interface/{bad}"), None);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["message"], "Bad IP address version");
    }
    let r = call(&agent, &dir, "GET", "/1.0/interface/203.0.113.77", None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"],
        "Error interface not found for IP address"
    );
    let _: Value = r.json();
}

#[test]
fn topology_without_work() {
    let dir = TempDir::new("host");
    let agent = Agent::start(&dir, &format!("amphora_id: {AMP}\n"));
    let t = call(&agent, &dir, "GET", "/v0.1/topology", None).json();
    assert_eq!(t["topology"], "SINGLE");
    assert_eq!(t["role"], "ACTIVE");
    assert_eq!(t["ha_ip"], "");
    assert_eq!(t["uuid"], AMP);
    for (body, why) in [
        (
            r#"{"topology":"BAD_TEST_DATA"}"#,
            "Unknown topology: BAD_TEST_DATA",
        ),
        (
            r#"{"topology":"SINGLE","role":"BOSS"}"#,
            "Unknown role: BOSS",
        ),
        (
            r#"{"topology":"ACTIVE-STANDBY","role":"ACTIVE"}"#,
            "Invalid ha_ip",
        ),
        (
            r#"{"topology":"ACTIVE-STANDBY","ha_ip":"203.0.113.2"}"#,
            "Missing secret",
        ),
        ("nope", "not JSON"),
        // Well formed, but not something this host can enact.
        (
            r#"{"topology":"ACTIVE-STANDBY","role":"STANDBY","ha_ip":" 203.0.113.2","secret":"b20e06cf1abcf29c"}"#,
            "no interface has an address on the network of ha_ip 203.0.113.2",
        ),
        (
            r#"{"topology":"ACTIVE-ACTIVE"}"#,
            "ACTIVE-ACTIVE is not supported",
        ),
    ] {
        let r = call(
            &agent,
            &dir,
            "POST",
            "/v0.1/topology",
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.json()["message"], "Invalid request");
        assert!(r.details().contains(why), "{body}: {}", r.body);
    }
    let t = call(&agent, &dir, "GET", "/v0.1/topology", None).json();
    assert_eq!(
        (t["topology"].as_str(), t["role"].as_str()),
        (Some("SINGLE"), Some("ACTIVE"))
    );
    // keepalived configs may not pull in other files (they could echo secrets back).
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/vrrp/upload",
        Some(b"include /var/lib/lbagent/topology.json\n"),
    );
    assert_eq!(r.status, 400);
    assert!(r.details().contains("include is not allowed"), "{}", r.body);
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/vrrp/upload",
        Some(b"@node1 include /etc/shadow\n"),
    );
    assert_eq!(r.status, 400);
}
