//! Heartbeats to Octavia's controller, received here as its health manager would: one UDP
//! datagram per interval, zlib + hex HMAC-SHA256, version 3 deltas, following `PUT /1.0/config`.
//! (tests/octavia.rs judges them with Octavia's own receiver.)

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{call, curl, free_port, http_backend, Agent, TempDir};
use ring::hmac;
use serde_json::{json, Value};

const AMP: &str = "amp-1";
const LB: &str = "lb-1";
const LISTENER: &str = "listener-1";

/// A health manager on 127.0.0.1: the next datagram, opened with `key` (None: nothing came).
struct Receiver(UdpSocket);

impl Receiver {
    fn new() -> Receiver {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Receiver(s)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn next(&self, key: &str, within: Duration) -> Option<Value> {
        let end = Instant::now() + within;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            if let Ok(n) = self.0.recv(&mut buf) {
                return Some(open(&buf[..n], key).expect("a datagram that opens with the key"));
            }
        }
        None
    }

    /// Drops what has arrived so far.
    fn drain(&self) {
        let mut buf = vec![0u8; 65536];
        while self.0.recv(&mut buf).is_ok() {}
    }
}

/// Octavia's `unwrap_envelope`, hex form: the last 64 bytes are the HMAC of the rest, which
/// is a zlib stream of the JSON.
fn open(datagram: &[u8], key: &str) -> Result<Value, String> {
    let (z, tag) = datagram.split_at(datagram.len().checked_sub(64).ok_or("too short")?);
    let tag = std::str::from_utf8(tag).map_err(|e| e.to_string())?;
    if tag.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("an uppercase digest".into());
    }
    let tag: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&tag[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()), z, &tag)
        .map_err(|_| "bad HMAC")?;
    let json = miniz_oxide::inflate::decompress_to_vec_zlib(z).map_err(|e| format!("{e:?}"))?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

fn push_config(agent: &Agent, dir: &TempDir, port: u16, key: &str) {
    let conf = format!(
        "[health_manager]\ncontroller_ip_port_list = 127.0.0.1:{port}\nheartbeat_interval = 1\nheartbeat_key = {key}\n"
    );
    let r = call(agent, dir, "PUT", "/1.0/config", Some(conf.as_bytes()));
    assert_eq!(
        (r.status, r.json()),
        (202, json!({"message": "OK"})),
        "{}",
        r.body
    );
}

/// One frontend named after its listener, a pool with a member that answers, one that does
/// not (checked: DOWN) and one drained (weight 0).
fn lb_config(fe: u16, up: u16, down: u16) -> String {
    format!(
        "global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
frontend {LISTENER}\n    bind 127.0.0.1:{fe}\n    default_backend pool-1:{LISTENER}\n\
backend pool-1:{LISTENER}\n    option httpchk GET /\n    default-server inter 200ms fall 1 rise 1\n\
    server m-up 127.0.0.1:{up} check\n    server m-down 127.0.0.1:{down} check\n    server m-drain 127.0.0.1:{up} check weight 0\n"
    )
}

/// The next heartbeat whose pool shows the down member DOWN (health checks take a moment).
fn settled(rx: &Receiver, key: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let msg = rx.next(key, Duration::from_secs(3)).expect("a heartbeat");
        let pool = &msg["pools"][format!("pool-1:{LISTENER}")];
        if pool["members"]["m-down"] == "DOWN" || Instant::now() > end {
            return msg;
        }
    }
}

#[test]
fn heartbeats_follow_the_agent_config_and_count_once() {
    let dir = TempDir::new("hb");
    let rx = Receiver::new();
    let agent = Agent::start(&dir, &format!("amphora_id: {AMP}\n"));
    // No key, no destination: silent, and the log says why (once).
    assert!(rx.next("k1", Duration::from_millis(1500)).is_none());
    push_config(&agent, &dir, rx.port(), "k1");
    let first = rx
        .next("k1", Duration::from_secs(3))
        .expect("a heartbeat after the config");
    assert_eq!(
        first,
        json!({"id": AMP, "seq": first["seq"], "ver": 3, "listeners": {}, "pools": {}})
    );

    // An API 1.0 load balancer is reported; a v0.1 listener is not (it would spoil the count).
    let (fe, up, down) = (free_port(), http_backend(), free_port());
    let cfg = lb_config(fe, up, down);
    let path = format!("/1.0/loadbalancer/{AMP}/{LB}/haproxy");
    assert_eq!(
        call(&agent, &dir, "PUT", &path, Some(cfg.as_bytes())).status,
        202
    );
    let start = format!("/1.0/loadbalancer/{LB}/start");
    assert_eq!(call(&agent, &dir, "PUT", &start, None).status, 202);
    let other = "global\n    maxconn 10\nfrontend v01-fe\n    bind unix@fe.sock\n";
    let r = call(
        &agent,
        &dir,
        "PUT",
        "/v0.1/listeners/amp/v01/haproxy",
        Some(other.as_bytes()),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        call(&agent, &dir, "PUT", "/v0.1/listeners/v01/start", None).status,
        202
    );
    let msg = settled(&rx, "k1");
    assert_eq!(
        msg["pools"],
        json!({format!("pool-1:{LISTENER}"): {"status": "UP",
               "members": {"m-up": "UP", "m-down": "DOWN", "m-drain": "DRAIN"}}})
    );
    let listeners = msg["listeners"].as_object().unwrap();
    assert_eq!(listeners.keys().collect::<Vec<_>>(), [LISTENER]);
    assert_eq!(listeners[LISTENER]["status"], "OPEN");

    // Traffic through the listener shows once, as deltas.
    for _ in 0..5 {
        let r = curl(&["--max-time", "3", &format!("http://127.0.0.1:{fe}/")]).unwrap();
        assert_eq!(r.status, 200);
    }
    let sum = |rx: &Receiver, key: &str, beats: usize| {
        (0..beats).fold((0, 0), |(total, rxb), _| {
            let m = rx.next(key, Duration::from_secs(3)).expect("a heartbeat");
            let s = &m["listeners"][LISTENER]["stats"];
            (
                total + s["totconns"].as_u64().unwrap(),
                rxb + s["rx"].as_u64().unwrap(),
            )
        })
    };
    rx.drain();
    let (conns, bytes) = sum(&rx, "k1", 3);
    assert_eq!(conns, 5, "five connections, counted once");
    assert!(bytes > 0);

    // A restarted agent does not send whole counters again.
    let mut agent = agent;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    rx.drain();
    let agent = Agent::start(&dir, &format!("amphora_id: {AMP}\n"));
    push_config(&agent, &dir, rx.port(), "k1");
    let (conns, _) = sum(&rx, "k1", 2);
    assert_eq!(conns, 0, "no traffic since: nothing to count");

    // Another controller and key: the datagrams move, signed with the new key.
    let rx2 = Receiver::new();
    push_config(&agent, &dir, rx2.port(), "k2");
    let moved = rx2
        .next("k2", Duration::from_secs(3))
        .expect("at the new destination");
    assert_eq!(moved["id"], AMP);
    rx.drain();
    assert!(rx.next("k1", Duration::from_millis(2500)).is_none());
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert_eq!(
        log.matches("no heartbeat: heartbeat_key is not set")
            .count(),
        2,
        "{log}"
    );
    // The agent counts what it sent; its silence before it had a config is no failure.
    let m = call(&agent, &dir, "GET", "/metrics", None).body;
    let value = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    assert!(value("lbagent_heartbeats_sent_total ") >= Some(3), "{m}");
    assert_eq!(value("lbagent_heartbeat_failures_total "), Some(0), "{m}");
}

#[test]
fn no_heartbeat_without_an_amphora_id() {
    let dir = TempDir::new("hbid");
    let rx = Receiver::new();
    let agent = Agent::start(&dir, "");
    push_config(&agent, &dir, rx.port(), "k");
    assert!(rx.next("k", Duration::from_millis(2500)).is_none());
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert_eq!(
        log.matches("no heartbeat: amphora_id is not set").count(),
        1,
        "{log}"
    );
}
