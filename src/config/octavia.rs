//! Octavia's `amphora-agent.conf` (INI, as its controller renders it) read into the same
//! validated `Config` as the YAML: an amphora image's file works unchanged. Also the settings
//! Octavia changes at run time (`PUT /1.0/config`), read on their own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use super::{as_bool, as_ip, as_namespace, as_path, as_uint, Api, Config, Problem, RawConfig};
use crate::ini::{self, Ini};
use crate::syslog;

/// Octavia's defaults where its file says nothing (`octavia/common/config.py`).
const BASE_PATH: &str = "/var/lib/octavia";
const BASE_CERT_DIR: &str = "/var/lib/octavia/certs";
const BIND_HOST: &str = "::";
const BIND_PORT: u16 = 9443;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
const ADMIN_LOG_FACILITY: u8 = 1;
/// The socket the amphora image's rsyslog listens on (`55-octavia-socket.conf`).
const SYSLOG_SOCKET: &str = "/run/rsyslog/octavia/log";

/// One of `[health_manager] controller_ip_port_list`: a controller's health manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// An address, or a name resolved at each send.
    pub host: String,
    pub port: u16,
}

/// Where heartbeats go, how often, and the key that signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub destinations: Vec<Destination>,
    pub interval: Duration,
    pub key: Option<String>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            destinations: Vec::new(),
            interval: HEARTBEAT_INTERVAL,
            key: None,
        }
    }
}

/// `[controller_worker] loadbalancer_topology`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LbTopology {
    #[default]
    Single,
    ActiveStandby,
}

/// What Octavia's controller changes at run time; applied as soon as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mutable {
    pub heartbeat: Heartbeat,
    pub topology: LbTopology,
    pub debug: bool,
}

fn key(section: &str, name: &str) -> String {
    format!("[{section}] {name}")
}

fn read_ini(text: &str) -> Result<Ini, Vec<Problem>> {
    Ini::parse(text).map_err(|errs| {
        errs.into_iter()
            .map(|e| Problem::new("(file)", format!("line {}", e.line), e.why))
            .collect()
    })
}

/// The whole file, as the agent's config.
pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let ini = read_ini(text)?;
    let mut p = Vec::new();
    let value = |section: &str, name: &str| {
        ini.get(section, name)
            .map(|v| (key(section, name), Value::String(v.to_string())))
    };
    let mut raw = RawConfig::default();
    let path_of =
        |section: &str, name: &str, dflt: &str, p: &mut Vec<Problem>| match value(section, name) {
            Some((k, v)) => as_path(&k, &v, p),
            None => Some(PathBuf::from(dflt)),
        };
    raw.state_dir = path_of("haproxy_amphora", "base_path", BASE_PATH, &mut p);
    raw.cert_dir = path_of("haproxy_amphora", "base_cert_dir", BASE_CERT_DIR, &mut p);
    raw.bind = match value("haproxy_amphora", "bind_host") {
        Some((k, v)) => as_ip(&k, &v, &mut p),
        None => BIND_HOST.parse().ok(),
    };
    raw.port = match value("haproxy_amphora", "bind_port") {
        Some((k, v)) => as_uint(&k, &v, 0, 65535, &mut p).map(|n| n as u16),
        None => Some(BIND_PORT),
    };
    if let Some((k, v)) = value("haproxy_amphora", "haproxy_cmd") {
        raw.haproxy = as_path(&k, &v, &mut p);
    }
    // One PEM holds the agent's certificate and its key.
    if let Some((k, v)) = value("amphora_agent", "agent_server_cert") {
        raw.sslcrt = as_path(&k, &v, &mut p);
        raw.sslkey = raw.sslcrt.clone();
    }
    if let Some((k, v)) = value("amphora_agent", "agent_server_ca") {
        raw.client_ca = as_path(&k, &v, &mut p);
    }
    if let Some((k, v)) = value("amphora_agent", "agent_request_read_timeout") {
        raw.request_timeout = as_uint(&k, &v, 1, 3600, &mut p).map(Duration::from_secs);
    }
    raw.amphora_id = ini
        .get("amphora_agent", "amphora_id")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some((k, v)) = value("amphora_agent", "tenant_namespace") {
        raw.tenant_namespace = as_namespace(&k, &v, &mut p);
    }
    // An amphora serves the amphora API only, and runs Octavia's metrics proxy (its image has
    // it as a service).
    raw.apis = Some(vec![Api::Amphora]);
    raw.prometheus_proxy = Some(true);
    let mutable = mutable_of(&ini, &mut p);
    raw.debug = Some(mutable.debug);
    let syslog = syslog_of(&ini, &mut p);
    let mut cfg = raw.validate(&mut p);
    cfg.syslog = syslog;
    // The rules between keys speak of the YAML's keys: name the INI's.
    for problem in &mut p {
        let ini_key = match problem.key.as_str() {
            "bind" => key("haproxy_amphora", "bind_host"),
            "sslcrt" | "sslkey" => key("amphora_agent", "agent_server_cert"),
            "client_ca" => key("amphora_agent", "agent_server_ca"),
            _ => continue,
        };
        problem.key = ini_key;
    }
    cfg.mutable = mutable;
    cfg.agent_conf = Some(path.to_path_buf());
    if p.is_empty() {
        Ok(cfg)
    } else {
        Err(p)
    }
}

/// `[DEFAULT] use_syslog`: the application log to the image's rsyslog socket (or
/// `[amphora_agent] syslog_socket`, lbagent's own key) with the facility
/// `local<[haproxy_amphora] administrative_log_facility>`, as Octavia's agent logs.
fn syslog_of(ini: &Ini, p: &mut Vec<Problem>) -> Option<syslog::Target> {
    let on = ini.get("DEFAULT", "use_syslog").and_then(|v| {
        let b = ini::boolean(v);
        if b.is_none() {
            p.push(Problem::new(
                &key("DEFAULT", "use_syslog"),
                v,
                "must be true or false",
            ));
        }
        b
    });
    if on != Some(true) {
        return None;
    }
    let admin = match ini.get("haproxy_amphora", "administrative_log_facility") {
        Some(v) => {
            let k = key("haproxy_amphora", "administrative_log_facility");
            as_uint(&k, &Value::String(v.to_string()), 0, 7, p)? as u8
        }
        None => ADMIN_LOG_FACILITY,
    };
    let socket = ini
        .get("amphora_agent", "syslog_socket")
        .unwrap_or(SYSLOG_SOCKET);
    Some(syslog::Target {
        socket: PathBuf::from(socket),
        facility: 16 + admin,
    })
}

/// The settings a `PUT /1.0/config` applies at once (the rest waits for the next start).
pub fn parse_mutable(text: &str) -> Result<Mutable, Vec<Problem>> {
    let ini = read_ini(text)?;
    let mut p = Vec::new();
    let m = mutable_of(&ini, &mut p);
    if p.is_empty() {
        Ok(m)
    } else {
        Err(p)
    }
}

fn mutable_of(ini: &Ini, p: &mut Vec<Problem>) -> Mutable {
    let d = Mutable::default();
    let destinations = ini
        .get("health_manager", "controller_ip_port_list")
        .map_or_else(Vec::new, |v| destinations(v, p));
    let interval = match ini.get("health_manager", "heartbeat_interval") {
        Some(v) => as_uint(
            &key("health_manager", "heartbeat_interval"),
            &Value::String(v.to_string()),
            1,
            3600,
            p,
        )
        .map_or(d.heartbeat.interval, Duration::from_secs),
        None => d.heartbeat.interval,
    };
    let heartbeat_key = ini
        .get("health_manager", "heartbeat_key")
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let topology = match ini.get("controller_worker", "loadbalancer_topology") {
        None | Some("SINGLE") => LbTopology::Single,
        Some("ACTIVE_STANDBY") => LbTopology::ActiveStandby,
        Some(other) => {
            p.push(Problem::new(
                &key("controller_worker", "loadbalancer_topology"),
                other,
                "must be SINGLE or ACTIVE_STANDBY",
            ));
            d.topology
        }
    };
    let debug = match ini.get("DEFAULT", "debug") {
        Some(v) => ini::boolean(v).unwrap_or_else(|| {
            as_bool(&key("DEFAULT", "debug"), &Value::String(v.to_string()), p);
            false
        }),
        None => false,
    };
    Mutable {
        heartbeat: Heartbeat {
            destinations,
            interval,
            key: heartbeat_key,
        },
        topology,
        debug,
    }
}

/// `ip:port`, `[v6]:port` or `name:port`, comma-separated; split at the last `:` as Octavia does.
fn destinations(list: &str, p: &mut Vec<Problem>) -> Vec<Destination> {
    let k = key("health_manager", "controller_ip_port_list");
    let mut out = Vec::new();
    for item in ini::list(list) {
        let parsed = item.rsplit_once(':').and_then(|(host, port)| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
            let ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
            ok.then(|| Destination {
                host: host.to_string(),
                port,
            })
        });
        match parsed {
            Some(d) => out.push(d),
            None => p.push(Problem::new(&k, item, "must be ip:port or [ipv6]:port")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "[DEFAULT]\ndebug = False\nuse_syslog = True\n\
[haproxy_amphora]\nbase_cert_dir = /var/lib/octavia/certs\nbase_path = /var/lib/octavia\n\
bind_host = ::\nbind_port = 9443\nhaproxy_cmd = /usr/sbin/haproxy\n\
[health_manager]\ncontroller_ip_port_list = 192.0.2.10:5555, [2001:db8::10]:5555\n\
heartbeat_interval = 10\nheartbeat_key = insecure\n\
[amphora_agent]\nagent_server_ca = /etc/octavia/certs/client_ca.pem\n\
agent_server_cert = /etc/octavia/certs/server.pem\nagent_request_read_timeout = 180\n\
amphora_id = aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa\n\
[controller_worker]\nloadbalancer_topology = ACTIVE_STANDBY\n";

    #[test]
    fn octavias_rendering_is_a_config() {
        let c = parse(EXAMPLE, Path::new("/etc/octavia/amphora-agent.conf")).unwrap();
        assert_eq!(c.bind.to_string(), "::");
        assert_eq!(c.port, 9443);
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/octavia/certs/server.pem"));
        assert_eq!(tls.key, tls.cert);
        assert_eq!(
            tls.client_ca,
            Some(PathBuf::from("/etc/octavia/certs/client_ca.pem"))
        );
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/octavia"));
        assert_eq!(c.cert_dir, PathBuf::from("/var/lib/octavia/certs"));
        assert_eq!(c.request_timeout, Duration::from_secs(180));
        assert_eq!(
            c.amphora_id.as_deref(),
            Some("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa")
        );
        assert_eq!(c.apis, [Api::Amphora]);
        assert!(c.prometheus_proxy, "an amphora runs the metrics proxy");
        let hb = &c.mutable.heartbeat;
        assert_eq!(
            hb.destinations,
            [
                Destination {
                    host: "192.0.2.10".into(),
                    port: 5555
                },
                Destination {
                    host: "2001:db8::10".into(),
                    port: 5555
                }
            ]
        );
        assert_eq!(hb.interval, Duration::from_secs(10));
        assert_eq!(hb.key.as_deref(), Some("insecure"));
        assert_eq!(c.mutable.topology, LbTopology::ActiveStandby);
        assert_eq!(
            c.agent_conf.as_deref(),
            Some(Path::new("/etc/octavia/amphora-agent.conf"))
        );
    }

    #[test]
    fn every_bad_setting_is_named() {
        let text = "[haproxy_amphora]\nbind_port = 99999\n[health_manager]\n\
controller_ip_port_list = 192.0.2.10, nope:x\nheartbeat_interval = 0\n\
[controller_worker]\nloadbalancer_topology = MESH\n[DEFAULT]\ndebug = perhaps\n";
        let p = parse(text, Path::new("a.conf")).unwrap_err();
        let mut keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "[DEFAULT] debug",
                "[controller_worker] loadbalancer_topology",
                // No certificate and no client CA on a public address.
                "[haproxy_amphora] bind_host",
                "[haproxy_amphora] bind_port",
                "[health_manager] controller_ip_port_list",
                "[health_manager] controller_ip_port_list",
                "[health_manager] heartbeat_interval",
            ],
            "{p:?}"
        );
    }

    #[test]
    fn the_run_time_settings_alone() {
        let m = parse_mutable("[health_manager]\ncontroller_ip_port_list = 127.0.0.1:5555\nheartbeat_interval = 1\nheartbeat_key = k\n").unwrap();
        assert_eq!(m.heartbeat.interval, Duration::from_secs(1));
        assert_eq!(m.heartbeat.key.as_deref(), Some("k"));
        assert_eq!(m.topology, LbTopology::Single);
        assert!(!m.debug);
        assert!(parse_mutable("not ini at all\n").is_err());
    }
}
