//! Amphora API v0.1, the host half (spec/amphora-api-v0.1.rst): `/info` (unversioned),
//! `/v0.1/details`, `/v0.1/topology`, `/v0.1/interface/<ip>`, `/v0.1/plug/...`,
//! `/v0.1/certificate`, `/v0.1/vrrp/...`; API 1.0 routes the same operations here (its
//! `/1.0/info` and `/1.0/details` say more). Listener routes are in `amphora.rs`.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::api::ops::{Details, DomainError, HostOp, Identity, Op, Outcome};
use crate::api::{amphora, held, plug_body, words, ApiRoute, Endpoint, Reply};
use crate::certs::CertError;
use crate::error::ApiError;
use crate::firewall::{self, FirewallError, Protocol, Rule};
use crate::http::{Method, Params};
use crate::keepalived::KeepalivedError;
use crate::netplug::{PlugError, PlugRequest, Plugged};
use crate::system;
use crate::tls::RotateError;
use crate::topology::{Change, Kind, Role, Status, Topology};

const INVALID: &str = "Invalid request";
/// Octavia's agent's words for a rules body its schema refuses.
const INVALID_RULES: &str = "Invalid rules information";

/// The API version a route belongs to: `/info` and `/details` name it, and 1.0's details say
/// more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V01,
    V10,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::V01 => "0.1",
            Version::V10 => "1.0",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Info(Version),
    Details(Version),
    Interface,
    Rules,
    Certificate,
    GetTopology,
    SetTopology,
    PlugVip,
    PlugNetwork,
    VrrpUpload,
    VrrpAction,
}

pub fn routes() -> Vec<ApiRoute> {
    let r = |method, pattern, key| held(method, pattern, Endpoint::Host(key));
    vec![
        r(Method::Get, "/info", Key::Info(Version::V01)),
        r(Method::Get, "/v0.1/details", Key::Details(Version::V01)),
        r(Method::Get, "/v0.1/interface/{ip}", Key::Interface),
        r(Method::Put, "/v0.1/certificate", Key::Certificate),
        r(Method::Get, "/v0.1/topology", Key::GetTopology),
        r(Method::Post, "/v0.1/topology", Key::SetTopology),
        r(Method::Post, "/v0.1/plug/vip/{ip}", Key::PlugVip),
        r(Method::Post, "/v0.1/plug/network/", Key::PlugNetwork),
        r(Method::Post, "/v0.1/plug/network", Key::PlugNetwork),
        // Before `{action}`, which would take "upload" for an action.
        r(Method::Put, "/v0.1/vrrp/upload", Key::VrrpUpload),
        r(Method::Put, "/v0.1/vrrp/{action}", Key::VrrpAction),
    ]
}

pub fn parse(key: Key, p: &Params, body: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Host(match key {
        Key::Info(_) => HostOp::Info,
        Key::Details(v) => HostOp::Details {
            frontends: v == Version::V10,
        },
        Key::Interface => HostOp::Interface(ip_param(p)?),
        Key::Rules => HostOp::SetRules {
            ip: ip_param(p)?,
            rules: rules_body(&body)?,
        },
        Key::Certificate => HostOp::RotateCert(body),
        Key::GetTopology => HostOp::Topology,
        Key::SetTopology => HostOp::SetTopology(topology_body(&body)?),
        Key::PlugVip => HostOp::Plug(PlugRequest::Vip(plug_body::vip_plug(p.get("ip")?, &body)?)),
        Key::PlugNetwork => HostOp::Plug(plug_body::network_plug(&body)?),
        Key::VrrpUpload => HostOp::VrrpUpload(body),
        Key::VrrpAction => HostOp::Vrrp(amphora::action_word(p.get("action")?)?),
    }))
}

fn ip_param(p: &Params) -> Result<IpAddr, ApiError> {
    p.get("ip")?
        .parse()
        .map_err(|_| ApiError::new(400, "Bad IP address version"))
}

/// A rules PUT's body, checked as Octavia's `SUPPORTED_RULES_SCHEMA` checks it, and more
/// strictly where its agent would fail later: an item must be an object, `port` a whole
/// number, `cidr` a network. Every item that fails is named in the details.
pub(crate) fn rules_body(body: &[u8]) -> Result<Vec<Rule>, ApiError> {
    let invalid = |d: String| ApiError::new(400, INVALID_RULES).with_details(d);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    let items = v
        .as_array()
        .ok_or_else(|| invalid("body must be a JSON array".into()))?;
    let mut rules = Vec::new();
    let mut bad = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match rule_item(item) {
            Ok(rule) => rules.push(rule),
            Err(why) => bad.push(format!("item {i}: {}", why.join(", "))),
        }
    }
    if bad.is_empty() {
        Ok(rules)
    } else {
        Err(invalid(bad.join("; ")))
    }
}

const RULE_FIELDS: [&str; 3] = ["protocol", "cidr", "port"];

/// One item of a rules body: exactly `protocol`, `cidr` and `port`; or what is wrong with it.
fn rule_item(item: &Value) -> Result<Rule, Vec<String>> {
    let Some(obj) = item.as_object() else {
        return Err(vec![format!("not an object: {}", brief(item))]);
    };
    let mut bad: Vec<String> = obj
        .keys()
        .filter(|k| !RULE_FIELDS.contains(&k.as_str()))
        .map(|k| format!("unknown field {}", brief(&json!(k))))
        .collect();
    for name in RULE_FIELDS.iter().filter(|f| !obj.contains_key(**f)) {
        bad.push(format!("missing field {name}"));
    }
    let wrong = |name: &str, what: &str, v: &Value| format!("{name} {what}, not {}", brief(v));
    let protocol = obj.get("protocol").map(|v| {
        let what = "must be one of TCP, UDP, SCTP, VRRP";
        v.as_str()
            .and_then(Protocol::parse)
            .ok_or_else(|| wrong("protocol", what, v))
    });
    let source = obj.get("cidr").map(|v| match v {
        Value::Null => Ok(None),
        Value::String(text) => {
            firewall::source(text).ok_or_else(|| wrong("cidr", "must be a network", v))
        }
        _ => Err(wrong("cidr", "must be a string or null", v)),
    });
    let port = obj.get("port").map(|v| {
        let what = "must be a whole number from 1 to 65535";
        v.as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p >= 1)
            .ok_or_else(|| wrong("port", what, v))
    });
    match (protocol, source, port) {
        (Some(Ok(protocol)), Some(Ok(source)), Some(Ok(port))) if bad.is_empty() => Ok(Rule {
            protocol,
            source,
            port,
        }),
        (p, s, n) => {
            bad.extend(p.and_then(Result::err));
            bad.extend(s.and_then(Result::err));
            bad.extend(n.and_then(Result::err));
            Err(bad)
        }
    }
}

/// A request value in an error's details, cut short.
fn brief(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// A topology POST's body; every field that fails is named in the details.
pub(crate) fn topology_body(body: &[u8]) -> Result<Topology, ApiError> {
    let invalid = |d: String| ApiError::new(400, INVALID).with_details(d);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("body must be a JSON object".into()))?;
    // A value that is not a string counts as absent.
    let text = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::trim);
    let mut bad = Vec::new();
    let word = text("topology").unwrap_or("");
    let topology = Kind::parse(word);
    if topology.is_none() {
        bad.push(format!("Unknown topology: {word}"));
    }
    let word = text("role").unwrap_or("ACTIVE");
    let role = Role::parse(word);
    if role.is_none() {
        bad.push(format!("Unknown role: {word}"));
    }
    let ha_ip = text("ha_ip").unwrap_or("");
    let secret = text("secret").unwrap_or("");
    if topology == Some(Kind::ActiveStandby) {
        if ha_ip.parse::<IpAddr>().is_err() {
            bad.push(format!("Invalid ha_ip: {ha_ip:?}"));
        }
        if secret.is_empty() {
            bad.push("Missing secret".into());
        }
    } else if !ha_ip.is_empty() && ha_ip.parse::<IpAddr>().is_err() {
        bad.push(format!("Invalid ha_ip: {ha_ip:?}"));
    }
    match (topology, role) {
        (Some(topology), Some(role)) if bad.is_empty() => {
            Ok(Topology::new(topology, role, ha_ip.into(), secret.into()))
        }
        _ => Err(invalid(bad.join("; "))),
    }
}

pub fn render(key: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    let ok = |status| Reply::json(status, &json!({ "message": "OK" }));
    let details =
        |status, d: String| Reply::json(status, &json!({ "message": "OK", "details": d }));
    Ok(match r.map_err(|e| error(key, e))? {
        Outcome::Identity(id) => {
            let Key::Info(v) = key else {
                return Err(words::unexpected(&key));
            };
            Reply::json(200, &Value::Object(identity(&id, v)))
        }
        Outcome::Details(d) => {
            let Key::Details(v) = key else {
                return Err(words::unexpected(&key));
            };
            Reply::json(200, &Value::Object(details_of(&d, v)))
        }
        Outcome::Interface(name) => {
            Reply::json(200, &json!({ "message": "OK", "interface": name }))
        }
        // Octavia's agent answers rules with 200, its other host calls with 202.
        Outcome::Done if key == Key::Rules => ok(200),
        Outcome::Done => ok(202),
        Outcome::Topology { identity, topology } => Reply::json(
            200,
            &json!({
                "hostname": identity.hostname,
                "uuid": identity.uuid,
                "topology": topology.topology,
                "role": topology.role,
                "ha_ip": topology.ha_ip,
            }),
        ),
        Outcome::TopologySet(Change::Done) => ok(200),
        Outcome::TopologySet(Change::Started) => ok(202),
        Outcome::Plugged { vip, done } => details(
            202,
            match (vip, done) {
                (Some(vip), Plugged::New(dev)) => format!("VIP {vip} plugged on interface {dev}"),
                (None, Plugged::New(dev)) => format!("Plugged interface {dev}"),
                // Octavia's words, which its controller logs.
                (_, Plugged::Updated(dev)) => format!("Updated existing interface {dev}"),
            },
        ),
        Outcome::Uploaded { md5 } => ok(200).with_header("ETag", md5),
        Outcome::Keepalived(ran) => details(202, words::keepalived_ran(ran).to_string()),
        other => return Err(words::unexpected(&other)),
    })
}

/// What `/info` says, which `/details` starts with.
fn identity(id: &Identity, v: Version) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("hostname".into(), json!(id.hostname));
    m.insert("uuid".into(), json!(id.uuid));
    m.insert("haproxy_version".into(), json!(id.haproxy_version));
    m.insert("api_version".into(), json!(v.as_str()));
    m
}

/// Memory figures in kB, named as the spec names them.
fn memory(d: &Details) -> Value {
    let get = |k: &str| d.memory.get(k).copied().unwrap_or(0);
    json!({
        "total": get("MemTotal"),
        "free": get("MemFree"),
        "available": get("MemAvailable"),
        "buffers": get("Buffers"),
        "cached": get("Cached"),
        "swap_used": get("SwapTotal").saturating_sub(get("SwapFree")),
        "shared": get("Shmem"),
        "slab": get("Slab"),
        "committed_as": get("Committed_AS"),
    })
}

/// `/details`; 1.0's adds what Octavia's controller reads from it: `cpu_count` and
/// `active_tuned_profiles` (it tunes HAProxy's threads by them), and its listeners are
/// frontends.
fn details_of(d: &Details, v: Version) -> Map<String, Value> {
    let (mut tx, mut rx) = (0.0, 0.0);
    let mut networks = Map::new();
    for (name, (t, r)) in &d.rates.net {
        tx += t;
        rx += r;
        networks.insert(name.clone(), json!({ "network_tx": t, "network_rx": r }));
    }
    let (total, user, system, soft_irq) = d.rates.cpu;
    let (used, available) = d.disk;
    let listeners: Vec<String> = match (&d.frontends, v) {
        (Some(names), Version::V10) => names.clone(),
        _ => d.listeners.iter().map(|id| id.to_string()).collect(),
    };
    let packages: Vec<Value> = d
        .packages
        .iter()
        .map(|(n, v)| json!({ n.as_str(): v }))
        .collect();
    let (status, failure) = match &d.topology_status {
        Status::Ok => ("OK", None),
        Status::Changing => ("TOPOLOGY-CHANGE", None),
        Status::Failed(why) => ("ERROR", Some(why.as_str())),
    };
    let mut out = identity(&d.identity, v);
    let rest = json!({
        "network_tx": tx,
        "network_rx": rx,
        "networks": networks,
        "active": d.topology.is_active(),
        "haproxy_count": d.running,
        "cpu": { "total": total, "user": user, "system": system, "soft_irq": soft_irq },
        "memory": memory(d),
        "disk": { "used": used, "available": available },
        "load": system::parse_loadavg(&d.loadavg),
        "topology": d.topology.topology,
        "topology_status": status,
        "listeners": listeners,
        "packages": packages,
    });
    if let Value::Object(rest) = rest {
        out.extend(rest);
    }
    if let Some(why) = failure {
        out.insert("topology_error".into(), why.into());
    }
    if v == Version::V10 {
        out.insert("cpu_count".into(), json!(d.cpu_count));
        out.insert("active_tuned_profiles".into(), json!(d.tuned));
        out.insert("lvs_listener_process_count".into(), json!(0));
    }
    out
}

fn keepalived_error(e: KeepalivedError) -> ApiError {
    match e {
        KeepalivedError::Invalid(out) => ApiError::new(400, INVALID).with_details(out),
        KeepalivedError::Unavailable(why) => {
            ApiError::new(503, "keepalived unavailable").with_details(why)
        }
        KeepalivedError::NoConfig => ApiError::new(400, INVALID)
            .with_details("no keepalived configuration has been uploaded"),
        KeepalivedError::Failed(action, out) => ApiError::new(
            500,
            format!("Failed to {} keepalived service", words::verb(action)),
        )
        .with_details(out),
        KeepalivedError::Io(e) => ApiError::new(500, "Failed to upload keepalived configuration.")
            .with_details(e.to_string()),
    }
}

/// A plug that was not done; `failed` is the message of a failed step, which names the kind
/// of plug.
fn plug_error(e: PlugError, failed: &'static str) -> ApiError {
    match e {
        // The details are what Octavia's controller looks for to retry: the port may
        // still be on its way.
        PlugError::NoInterface => ApiError::new(404, "No suitable network interface found")
            .with_details("No suitable network interface found"),
        PlugError::NoVrrpIp => ApiError::new(400, plug_body::INVALID_VIP)
            .with_details("ACTIVE_STANDBY topology: the plug needs vrrp_ip for keepalived"),
        PlugError::AlreadyPlugged(mac) => ApiError::new(409, "Interface already plugged")
            .with_details(format!("the interface with MAC {mac} is already plugged")),
        PlugError::NoFreeTable => ApiError::new(500, failed).with_details("no free routing table"),
        PlugError::Failed(step) => ApiError::new(500, failed).with_details(step.to_string()),
        PlugError::Io(e) => ApiError::internal(format!("cannot record the plug: {e}")),
    }
}

fn firewall_error(e: FirewallError) -> ApiError {
    const FAILED: &str = "Failed to load the firewall rules";
    match e {
        FirewallError::Unavailable(why) => ApiError::new(503, "nft unavailable").with_details(why),
        FirewallError::Refused(out) => ApiError::new(500, FAILED).with_details(out),
        FirewallError::BadInterface(name) => ApiError::new(500, FAILED)
            .with_details(format!("interface name not usable in nft rules: {name:?}")),
        FirewallError::Io(e) => ApiError::internal(format!("cannot write the rules: {e}")),
    }
}

fn error(key: Key, e: DomainError) -> ApiError {
    match e {
        DomainError::Firewall(e) => firewall_error(e),
        DomainError::Keepalived(e) => keepalived_error(e),
        DomainError::Plug(e) if key == Key::PlugVip => plug_error(e, "Error plugging VIP"),
        DomainError::Plug(e) => plug_error(e, "Error plugging Port"),
        DomainError::NoInterface => ApiError::new(404, "Error interface not found for IP address"),
        DomainError::PlainHttp => ApiError::new(400, INVALID)
            .with_details("the agent serves plain HTTP: it has no certificate to replace"),
        DomainError::Rotate(RotateError::Pem(e)) => words::cert_error(&CertError::from(e)),
        DomainError::Rotate(RotateError::Io(e)) => {
            ApiError::internal(format!("cannot store the certificate: {e}"))
        }
        DomainError::InTransition => ApiError::new(503, "Topology transition in progress"),
        DomainError::TopologyRefused(why) => ApiError::new(400, INVALID).with_details(why),
        DomainError::TopologyStore(e) => {
            ApiError::internal(format!("cannot store the topology: {e}"))
        }
        DomainError::Io(e) => ApiError::internal(e.to_string()),
        other => words::unexpected(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{parse_request as parse, refusal};
    use crate::process::Action;

    fn host(method: &str, path: &str, body: &str) -> HostOp {
        match parse(method, path, body) {
            Ok(Op::Host(op)) => op,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn every_route_parses() {
        let vip = r#"{"subnet_cidr":"203.0.113.0/24","gateway":"203.0.113.1","mac_address":"fa:16:3e:00:00:01"}"#;
        let port = r#"{"mac_address":"fa:16:3e:00:00:02","fixed_ips":[]}"#;
        let topo = r#"{"topology":"SINGLE"}"#;
        for prefix in ["/v0.1", "/1.0"] {
            let frontends = prefix == "/1.0";
            let info = if frontends { "/1.0/info" } else { "/info" };
            assert_eq!(host("GET", info, ""), HostOp::Info);
            let details = format!("{prefix}/details");
            assert_eq!(host("GET", &details, ""), HostOp::Details { frontends });
            let interface = format!("{prefix}/interface/203.0.113.7");
            assert_eq!(
                host("GET", &interface, ""),
                HostOp::Interface("203.0.113.7".parse().unwrap())
            );
            let cert = format!("{prefix}/certificate");
            assert_eq!(
                host("PUT", &cert, "pem"),
                HostOp::RotateCert(b"pem".to_vec())
            );
            let upload = format!("{prefix}/vrrp/upload");
            assert_eq!(host("PUT", &upload, "c"), HostOp::VrrpUpload(b"c".to_vec()));
            let reload = format!("{prefix}/vrrp/reload");
            assert_eq!(host("PUT", &reload, ""), HostOp::Vrrp(Action::Reload));
            let plug = format!("{prefix}/plug/vip/203.0.113.7");
            let HostOp::Plug(PlugRequest::Vip(v)) = host("POST", &plug, vip) else {
                panic!("{plug}");
            };
            assert_eq!(v.vip.to_string(), "203.0.113.7");
            let plug = format!("{prefix}/plug/network");
            assert!(matches!(
                host("POST", &plug, port),
                HostOp::Plug(PlugRequest::Network(_))
            ));
        }
        let rules = r#"[{"protocol":"TCP","cidr":null,"port":80}]"#;
        assert_eq!(
            host("PUT", "/1.0/interface/203.0.113.7/rules", rules),
            HostOp::SetRules {
                ip: "203.0.113.7".parse().unwrap(),
                rules: vec![Rule {
                    protocol: Protocol::Tcp,
                    source: None,
                    port: 80
                }],
            }
        );
        assert!(matches!(
            host("POST", "/v0.1/plug/network/", port),
            HostOp::Plug(PlugRequest::Network(_))
        ));
        assert_eq!(host("GET", "/v0.1/topology", ""), HostOp::Topology);
        assert_eq!(
            host("POST", "/v0.1/topology", topo),
            HostOp::SetTopology(Topology::new(
                Kind::Single,
                Role::Active,
                String::new(),
                String::new()
            ))
        );
    }

    #[test]
    fn bad_addresses_words_and_bodies() {
        let s = |t: &str| t.to_string();
        let cases = [
            (
                "GET",
                "/v0.1/interface/nope",
                "",
                (400, s("Bad IP address version"), None),
            ),
            (
                "GET",
                "/1.0/interface/1.2.3",
                "",
                (400, s("Bad IP address version"), None),
            ),
            (
                "PUT",
                "/1.0/interface/203.0.113.300/rules",
                "[]",
                (400, s("Bad IP address version"), None),
            ),
            (
                "PUT",
                "/v0.1/vrrp/jump",
                "",
                (400, s("Invalid Request"), Some(s("Unknown action: jump"))),
            ),
            (
                "POST",
                "/v0.1/topology",
                r#"{"topology":"MESH"}"#,
                (400, s(INVALID), Some(s("Unknown topology: MESH"))),
            ),
        ];
        for (method, path, body, want) in cases {
            assert_eq!(refusal(parse(method, path, body)), want, "{method} {path}");
        }
        let (status, message, _) = refusal(parse("POST", "/1.0/plug/vip/nope", "{}"));
        assert_eq!((status, message.as_str()), (400, "Invalid VIP"));
    }

    /// Bodies as Octavia's controller builds them (`GetAmphoraFirewallRules`: one item per
    /// listener and allowed CIDR, plus VRRP from the peer's address in ACTIVE_STANDBY).
    #[test]
    fn rules_bodies_as_the_controller_sends_them() {
        let body = br#"[{"protocol":"TCP","cidr":null,"port":80},
            {"protocol":"UDP","cidr":"198.51.100.0/24","port":53},
            {"protocol":"SCTP","cidr":"2001:db8::/32","port":5000},
            {"protocol":"TCP","cidr":"0.0.0.0/0","port":443},
            {"protocol":"VRRP","cidr":"203.0.113.3/32","port":112}]"#;
        let rules = rules_body(body).unwrap();
        let got: Vec<(Protocol, Option<String>, u16)> = rules
            .iter()
            .map(|r| (r.protocol, r.source.map(|c| c.to_string()), r.port))
            .collect();
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            got,
            [
                (Protocol::Tcp, None, 80),
                (Protocol::Udp, s("198.51.100.0/24"), 53),
                (Protocol::Sctp, s("2001:db8::/32"), 5000),
                (Protocol::Tcp, None, 443),
                (Protocol::Vrrp, s("203.0.113.3/32"), 112),
            ]
        );
        assert_eq!(rules_body(b"[]").unwrap(), []);
    }

    #[test]
    fn rules_body_names_every_bad_item_and_field() {
        let details = |body: &str| {
            let e = rules_body(body.as_bytes()).unwrap_err();
            assert_eq!(
                (e.status, e.message.as_str()),
                (400, INVALID_RULES),
                "{body}"
            );
            e.details.unwrap_or_default()
        };
        let ok = r#"{"protocol":"TCP","cidr":null,"port":80}"#;
        let cases = [
            ("", "body is not JSON"),
            ("{}", "body must be a JSON array"),
            ("null", "body must be a JSON array"),
            ("[7]", "item 0: not an object: 7"),
            (
                r#"[{"protocol":"ICMP","cidr":null,"port":80}]"#,
                r#"item 0: protocol must be one of TCP, UDP, SCTP, VRRP, not "ICMP""#,
            ),
            (
                r#"[{"protocol":"tcp","cidr":null,"port":80}]"#,
                r#"item 0: protocol must be one of TCP, UDP, SCTP, VRRP, not "tcp""#,
            ),
            (
                r#"[{"protocol":"TCP","cidr":"10.0.0.0/33","port":80}]"#,
                r#"item 0: cidr must be a network, not "10.0.0.0/33""#,
            ),
            (
                r#"[{"protocol":"TCP","cidr":"1.2.3.0/24 accept","port":80}]"#,
                r#"item 0: cidr must be a network, not "1.2.3.0/24 accept""#,
            ),
            (
                r#"[{"protocol":"TCP","cidr":5,"port":80}]"#,
                "item 0: cidr must be a string or null, not 5",
            ),
            (
                r#"[{"protocol":"TCP","cidr":null,"port":0}]"#,
                "item 0: port must be a whole number from 1 to 65535, not 0",
            ),
            (
                r#"[{"protocol":"TCP","cidr":null,"port":65536}]"#,
                "item 0: port must be a whole number from 1 to 65535, not 65536",
            ),
            (
                r#"[{"protocol":"TCP","cidr":null,"port":"80"}]"#,
                r#"item 0: port must be a whole number from 1 to 65535, not "80""#,
            ),
            (
                r#"[{"protocol":"TCP","cidr":null,"port":80.5}]"#,
                "item 0: port must be a whole number from 1 to 65535, not 80.5",
            ),
            (
                r#"[{"protocol":"TCP","port":80}]"#,
                "item 0: missing field cidr",
            ),
            (
                r#"[{"protocol":"TCP","cidr":null,"port":80,"action":"drop"}]"#,
                r#"item 0: unknown field "action""#,
            ),
        ];
        for (body, want) in cases {
            let got = details(body);
            assert!(got.starts_with(want), "{body}: {got}");
        }
        // Every bad item, each with every bad field; good items are not named.
        let body = format!(r#"[{ok},{{"protocol":"X","port":-1}},{ok},{{"cidr":null}}]"#);
        assert_eq!(
            details(&body),
            "item 1: missing field cidr, protocol must be one of TCP, UDP, SCTP, VRRP, \
             not \"X\", port must be a whole number from 1 to 65535, not -1; \
             item 3: missing field protocol, missing field port"
        );
        let long = format!(
            r#"[{{"protocol":"{}","cidr":null,"port":1}}]"#,
            "A".repeat(5000)
        );
        assert!(details(&long).len() < 120, "values are cut short");
    }

    #[test]
    fn topology_body_names_every_bad_field() {
        let details = |body: &[u8]| {
            let e = topology_body(body).unwrap_err();
            assert_eq!((e.status, e.message.as_str()), (400, INVALID));
            e.details.unwrap_or_default()
        };
        let t = topology_body(
            br#"{"topology":"ACTIVE-STANDBY","role":"ACTIVE","ha_ip":" 203.0.113.2","secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(t.ha_ip, "203.0.113.2");
        assert_eq!(
            details(br#"{"topology":"BAD_TEST_DATA"}"#),
            "Unknown topology: BAD_TEST_DATA"
        );
        let e = details(br#"{"topology":"ACTIVE-STANDBY","role":"BOSS","ha_ip":"x"}"#);
        assert!(
            e.contains("Unknown role: BOSS")
                && e.contains("Invalid ha_ip")
                && e.contains("Missing secret"),
            "{e}"
        );
        assert_eq!(details(b"[]"), "body must be a JSON object");
        assert_eq!(
            topology_body(br#"{"topology":"SINGLE"}"#).unwrap().role,
            Role::Active
        );
    }
}
