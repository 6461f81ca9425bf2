//! Entry points for the fuzz targets in `fuzz/`: every parser that takes outside bytes, reachable
//! from one place. Each takes arbitrary bytes, must never panic, and asserts what must hold of
//! any answer the parser gives. The unit tests below replay the seed corpus and every input a
//! fuzzer ever crashed (`fuzz/regressions/<target>/`), so a fixed crash stays fixed.

use std::sync::OnceLock;

use crate::api::Endpoint;
use crate::config::Api;
use crate::http::{Match, Method, Router};
use crate::names::{CertName, ListenerId, ProxyName};
use crate::{
    announce, api, certs, config, error, firewall, framing, hapi, haproxy, keepalived, netplug,
    pools, tls,
};

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The targets, by the name of their directory under `fuzz/`.
pub const TARGETS: [(&str, Target); 6] = [
    ("config", config_yaml),
    ("framing", request_framing),
    ("haproxy_replies", haproxy_replies),
    ("pem", pem_bundle),
    ("routes", routes),
    ("bodies", json_bodies),
];

/// The agent's YAML config (`--config`), HApi keys included.
pub fn config_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(problems) = config::parse(text) {
            assert!(!problems.is_empty(), "an error names at least one problem");
        }
    }
}

/// The front's request framing. Where a client's bytes are split into reads must not change
/// what is forwarded or refused: the input is fed whole, then in pieces cut where the first
/// byte says.
pub fn request_framing(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let run = |piece: usize| {
        let mut f = framing::Framer::new(1024, 4096, "t0k3n");
        let mut out = Vec::new();
        let mut verdict = Ok(());
        for chunk in input.chunks(piece) {
            verdict = f.feed(chunk, &mut out);
            if verdict.is_err() {
                break;
            }
        }
        (verdict, f.completed(), f.in_request())
    };
    let whole = run(input.len().max(1));
    let split = run(usize::from(step % 7) + 1);
    assert_eq!(whole, split, "framing depends on how the bytes arrive");
}

/// What HAProxy and keepalived print, as the agent reads it: `show info`, `show stat` (and the
/// pools, members and HApi nodes built from it), `show servers state`, `show proc`, a listener
/// config's type, frontends and bind addresses, and any program output carried into a JSON
/// error body.
pub fn haproxy_replies(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for (k, _) in haproxy::parse_info(&text) {
        assert!(!k.is_empty() && !k.contains('\n'));
    }
    if let Some(rows) = haproxy::parse_stat(&text) {
        let _ = pools::pools(&rows);
        for status in ["UP", "DOWN", "MAINT"] {
            if let Some(s) = hapi::NodeStatus::parse(status) {
                let _ = hapi::nodes(&rows, s, Some("srv"));
                let _ = hapi::nodes(&rows, s, None);
            }
        }
    }
    let _ = haproxy::parse_servers_state(&text);
    if let Some(p) = haproxy::parse_proc(&text) {
        assert!(!p.workers.contains(&0) || text.contains('0'));
    }
    let _ = pools::listener_type(&text);
    for (name, _) in pools::frontends(&text) {
        assert!(!name.is_empty() && !name.contains(char::is_whitespace));
    }
    for ip in announce::bind_addresses(&text) {
        assert!(!ip.is_unspecified() && !ip.is_loopback() && !ip.is_multicast());
    }
    let _ = keepalived::check_self_contained(&text);
    let body = error::ApiError::internal(text.to_string()).body();
    let v: serde_json::Value = serde_json::from_str(&body).expect("error bodies are JSON"); // ok: a fuzz target panics on a bug
    assert_eq!(v["details"].as_str(), Some(&*text));
}

/// Certificate uploads: PEM bundles, key/certificate matching, client certificate subjects.
pub fn pem_bundle(data: &[u8]) {
    let ok = certs::validate(data).is_ok();
    if ok {
        assert!(!tls::certificates(data).is_empty());
    }
    for der in tls::certificates(data) {
        let _ = tls::subject(&der);
    }
    let _ = tls::subject(data);
}

fn router() -> &'static Router<Endpoint> {
    static R: OnceLock<Router<Endpoint>> = OnceLock::new();
    R.get_or_init(|| Router::new(api::routes(&Api::ALL)))
}

/// Route matching and the path parameters' validation: a parameter that validates as a name is
/// safe in a path component (listener ids, certificate names) or in an HAProxy CLI line.
pub fn routes(data: &[u8]) {
    const METHODS: [&str; 6] = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH"];
    let Some((&m, path)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let method = Method::parse(METHODS[usize::from(m) % METHODS.len()]);
    let Match::Found(route, params) = router().find(&method, path) else {
        return;
    };
    for name in route.pattern.split('/').filter_map(|p| p.strip_prefix('{')) {
        let value = params
            .get(name.trim_end_matches('}'))
            .expect("the pattern declares it"); // ok: a fuzz target panics on a bug
        assert!(!value.is_empty());
        if let Ok(id) = ListenerId::parse(value) {
            assert!(safe_component(id.as_str()));
        }
        if let Ok(c) = CertName::parse(value) {
            assert!(safe_component(c.as_str()));
        }
        if let Ok(p) = ProxyName::parse(value) {
            assert!(!p
                .as_str()
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b';'));
        }
        if let Ok(s) = hapi::server_name(Some("srv"), value) {
            assert!(!s.as_str().bytes().any(|b| b.is_ascii_whitespace()));
        }
    }
}

fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

/// The JSON (and text) bodies of POST/PUT requests, the first byte choosing which.
pub fn json_bodies(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => match api::devices::fields(body) {
            Ok(f) => {
                if let Some(a) = f.address {
                    assert!(a.parse::<std::net::IpAddr>().is_ok());
                }
            }
            Err(e) => body_refusal(&e, "Bad Request"),
        },
        1 => match api::host::topology_body(body) {
            Ok(t) => assert!(t.ha_ip.is_empty() || t.ha_ip.parse::<std::net::IpAddr>().is_ok()),
            Err(e) => body_refusal(&e, "Invalid request"),
        },
        2 => {
            // The VIP comes from the URL: take it from the body's first line.
            let (vip, rest) = match body.iter().position(|&b| b == b'\n') {
                Some(i) => (
                    String::from_utf8_lossy(&body[..i]).into_owned(),
                    &body[i + 1..],
                ),
                None => ("203.0.113.10".to_string(), body),
            };
            match api::plug_body::vip_plug(&vip, rest) {
                Ok(p) => vip_plug_holds(p),
                Err(e) => plug_refusal(&e),
            }
        }
        3 => match api::plug_body::network_plug(body) {
            Ok(netplug::PlugRequest::Network(n)) => network_plug_holds(n),
            Ok(netplug::PlugRequest::VipPort(v) | netplug::PlugRequest::Vip(v)) => {
                vip_plug_holds(v)
            }
            Err(e) => plug_refusal(&e),
        },
        4 => {
            let _ = keepalived::check_self_contained(&String::from_utf8_lossy(body));
        }
        _ => match api::host::rules_body(body) {
            Ok(rules) => rules_hold(&rules),
            Err(e) => body_refusal(&e, "Invalid rules information"),
        },
    }
}

/// Rules the agent accepts are one line each in nft's text, of nothing but its words, numbers
/// and addresses: nothing of the request reaches the file as it came.
fn rules_hold(rules: &[firewall::Rule]) {
    let text = firewall::render("eth1", rules, true);
    let chain = text
        .split("chain amphora_vip_chain")
        .nth(1)
        .unwrap_or_default();
    let lines: Vec<&str> = chain.lines().filter(|l| l.starts_with("    ")).collect();
    assert_eq!(lines.len(), rules.len());
    for line in lines {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b" .:/".contains(&b);
        assert!(
            line.ends_with(" accept") && line.bytes().all(plain),
            "{line}"
        );
    }
}

/// A VIP plug the agent accepts has every address where `ip` will put it, and survives the
/// plug record.
fn vip_plug_holds(p: netplug::VipPlug) {
    assert!(p.subnet.contains(p.vip));
    for ip in p.gateway.iter().chain(&p.vrrp_ip) {
        assert!(p.subnet.contains(*ip) && *ip != p.vip);
    }
    for r in &p.host_routes {
        assert!(p.subnet.contains(r.nexthop));
        assert_eq!(r.destination.addr.is_ipv4(), p.subnet.addr.is_ipv4());
    }
    for x in &p.additional {
        assert!(x.subnet.contains(x.ip) && x.ip != p.vip);
        assert!(x.gateway.is_none_or(|g| x.subnet.contains(g) && g != x.ip));
    }
    assert!(p.mtu.is_none_or(|m| (68..=65535).contains(&m)));
    let extra: Vec<u32> = (101..).take(p.additional.len()).collect();
    for (holder, extra_tables) in [
        (netplug::VipHolder::Plug, extra),
        (netplug::VipHolder::Keepalived, Vec::new()),
    ] {
        recorded_as_is(netplug::Plug::Vip {
            plug: p.clone(),
            table: 100,
            extra_tables,
            holder,
        });
    }
}

fn network_plug_holds(n: netplug::NetworkPlug) {
    for f in &n.fixed_ips {
        assert!(f.subnet.contains(f.ip));
        assert!(f.host_routes.iter().all(|r| f.subnet.contains(r.nexthop)));
    }
    assert!(n.mtu.is_none_or(|m| (68..=65535).contains(&m)));
    recorded_as_is(netplug::Plug::Network(n));
}

/// What is written to `plugs.json` reads back as the same plug.
fn recorded_as_is(p: netplug::Plug) {
    let bytes = serde_json::to_vec(&p).expect("a plug serializes"); // ok: a fuzz target panics on a bug
    let back: netplug::Plug = serde_json::from_slice(&bytes).expect("a recorded plug loads"); // ok: a fuzz target panics on a bug
    assert_eq!(back, p);
}

/// A refused plug body is the client's fault, said in one of the spec's words.
fn plug_refusal(e: &error::ApiError) {
    assert_eq!(e.status, 400);
    assert!([
        "Invalid VIP",
        "Invalid request",
        "Invalid subnet information"
    ]
    .contains(&e.message.as_str()));
    assert!(e.details.is_some());
}

/// A refused body is a 400 that says what is wrong with it.
fn body_refusal(e: &error::ApiError, message: &str) {
    assert_eq!((e.status, e.message.as_str()), (400, message));
    assert!(e.details.as_ref().is_some_and(|d| !d.is_empty()));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Replays the seeds and every kept crash input through its target.
    #[test]
    fn seeds_and_past_crashes_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut replayed = 0;
        for (name, target) in super::TARGETS {
            for kind in ["seeds", "regressions"] {
                let Ok(dir) = std::fs::read_dir(root.join(kind).join(name)) else {
                    continue;
                };
                for entry in dir.flatten() {
                    let data = std::fs::read(entry.path()).expect("readable corpus file"); // ok: a fuzz replay panics on a bad corpus
                    target(&data);
                    replayed += 1;
                }
            }
        }
        assert!(
            replayed >= super::TARGETS.len(),
            "only {replayed} inputs found"
        );
    }
}
