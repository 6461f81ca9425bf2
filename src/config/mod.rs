//! The YAML config file (DESIGN section 2): parsing, defaults and every check that needs no I/O.
//! An HApi config file is a valid config: unknown keys whose value is a list of strings are HApi
//! frontends (frontend name -> backends).

use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::names::ProxyName;
use crate::syslog;

/// The syslog facility of a YAML config that names none.
const DAEMON: u8 = 3;

mod octavia;

pub use octavia::{parse_mutable, Destination, Heartbeat, LbTopology, Mutable};

pub const DEFAULT_PATH: &str = "/etc/lbagent/lbagent.yaml";

/// The API families one port can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    Hapi,
    Amphora,
    Appliance,
    Devices,
}

impl Api {
    pub const ALL: [Api; 4] = [Api::Hapi, Api::Amphora, Api::Appliance, Api::Devices];

    fn parse(s: &str) -> Option<Api> {
        match s {
            "hapi" => Some(Api::Hapi),
            "amphora" => Some(Api::Amphora),
            "appliance" => Some(Api::Appliance),
            "devices" => Some(Api::Devices),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub tls: Option<TlsFiles>,
    pub basic_auth: Option<Credentials>,
    /// HApi's `socat`: the main HAProxy's admin socket.
    pub socat: PathBuf,
    /// HApi's `server`: node N means server `<server>N`.
    pub server_prefix: Option<String>,
    /// HApi frontends: name -> the backends it serves.
    pub frontends: BTreeMap<String, Vec<ProxyName>>,
    pub accesslog: Option<PathBuf>,
    pub logfile: Option<PathBuf>,
    pub debug: bool,
    pub state_dir: PathBuf,
    pub cert_dir: PathBuf,
    pub haproxy: PathBuf,
    pub keepalived: PathBuf,
    pub workers: usize,
    pub max_body: u64,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub amphora_id: Option<String>,
    pub apis: Vec<Api>,
    /// What Octavia's controller may change at run time (heartbeats, topology, debug).
    pub mutable: Mutable,
    /// The Octavia agent config the agent was started on: `PUT /1.0/config` replaces it.
    pub agent_conf: Option<PathBuf>,
    /// The network namespace VIP and member ports, HAProxy and keepalived live in (Octavia's
    /// `amphora-haproxy`); none: the agent's own.
    pub tenant_namespace: Option<String>,
    /// The application log's syslog socket and facility; none: `logfile` or stderr only.
    pub syslog: Option<syslog::Target>,
    /// Octavia's metrics proxy on 127.0.0.1:9102 (`promproxy`): on for an Octavia agent
    /// config, off by default with the YAML.
    pub prometheus_proxy: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 6000,
            tls: None,
            basic_auth: None,
            socat: PathBuf::from("/var/run/haproxy.stat"),
            server_prefix: None,
            frontends: BTreeMap::new(),
            accesslog: None,
            logfile: None,
            debug: false,
            state_dir: PathBuf::from("/var/lib/lbagent"),
            cert_dir: PathBuf::from("/run/lbagent/certs"),
            haproxy: PathBuf::from("/usr/sbin/haproxy"),
            keepalived: PathBuf::from("/usr/sbin/keepalived"),
            workers: 8,
            max_body: 4 * 1024 * 1024,
            max_connections: 64,
            request_timeout: Duration::from_secs(30),
            amphora_id: None,
            apis: Api::ALL.to_vec(),
            mutable: Mutable::default(),
            agent_conf: None,
            tenant_namespace: None,
            syslog: None,
            prometheus_proxy: false,
        }
    }
}

/// One thing wrong with a config: which key, its value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub why: String,
}

impl Problem {
    pub fn new(key: &str, value: impl Into<String>, why: impl Into<String>) -> Self {
        Problem {
            key: key.to_string(),
            value: value.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}: {}", self.key, self.value, self.why)
    }
}

/// Renders a YAML value for a problem report (scalars as written, others abbreviated).
fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(_) => "[list]".into(),
        Value::Mapping(_) => "{mapping}".into(),
        Value::Tagged(t) => show(&t.value),
    }
}

fn as_string(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // PyYAML (HApi) would hand numbers over as-is; a user or password of digits is still text.
        Value::Number(n) => Some(n.to_string()),
        _ => {
            problems.push(Problem::new(key, show(v), "must be a string"));
            None
        }
    }
}

fn as_path(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<PathBuf> {
    let s = as_string(key, v, problems)?;
    if s.is_empty() || s.contains('\0') {
        problems.push(Problem::new(key, s, "must be a non-empty path"));
        return None;
    }
    Some(PathBuf::from(s))
}

fn as_uint(key: &str, v: &Value, min: u64, max: u64, problems: &mut Vec<Problem>) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            problems.push(Problem::new(
                key,
                show(v),
                format!("must be a whole number from {min} to {max}"),
            ));
            None
        }
    }
}

fn as_bool(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<bool> {
    // YAML 1.1 spellings too, since HApi's configs were read by PyYAML.
    let b = match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    if b.is_none() {
        problems.push(Problem::new(key, show(v), "must be true or false"));
    }
    b
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn as_ip(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<IpAddr> {
    let s = as_string(key, v, problems)?;
    match s.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            problems.push(Problem::new(key, s, "must be an IPv4 or IPv6 address"));
            None
        }
    }
}

/// HApi's `server`; an empty one is kept (not a problem) and means no prefix.
fn as_server(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<String> {
    let s = as_string(key, v, problems)?;
    if s.is_empty() || ProxyName::parse(&s).is_ok() {
        Some(s)
    } else {
        problems.push(Problem::new(key, s, "may only hold A-Z a-z 0-9 _ . : -"));
        None
    }
}

/// The API families named, sorted and without repeats; the known ones still count when others
/// are unknown, so that each unknown name is its own problem.
/// A syslog facility: `daemon`, `local1`, `LOG_LOCAL1` or its number.
fn as_facility(k: &str, v: &Value, p: &mut Vec<Problem>) -> Option<u8> {
    let name = as_string(k, v, p)?;
    let f = syslog::facility(&name);
    if f.is_none() {
        p.push(Problem::new(
            k,
            name,
            "a syslog facility: kern, user, daemon, ..., local0-local7, or 0-23",
        ));
    }
    f
}

/// A network namespace's name (a file under /run/netns).
fn as_namespace(k: &str, v: &Value, p: &mut Vec<Problem>) -> Option<String> {
    let name = as_string(k, v, p)?;
    if crate::netns::valid_name(&name) {
        Some(name)
    } else {
        p.push(Problem::new(
            k,
            name,
            "a namespace name: letters, digits, '-', '_' and '.', at most 64",
        ));
        None
    }
}

fn as_apis(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<Vec<Api>> {
    let Some(list) = string_list(v) else {
        problems.push(Problem::new(
            key,
            show(v),
            "must be a list of API family names",
        ));
        return None;
    };
    let mut apis = Vec::new();
    for name in list {
        match Api::parse(&name) {
            Some(a) if !apis.contains(&a) => apis.push(a),
            Some(_) => {}
            None => problems.push(Problem::new(
                key,
                name,
                "unknown API family (hapi, amphora, appliance, devices)",
            )),
        }
    }
    apis.sort();
    Some(apis)
}

/// A key the agent does not know: an HApi frontend if its value is a list of strings (its
/// backends; each bad name is reported and the good ones kept), otherwise an unknown key.
fn as_frontend(key: &str, v: &Value, problems: &mut Vec<Problem>) -> Option<Vec<ProxyName>> {
    match (v, string_list(v)) {
        (_, Some(backends)) => {
            let mut names = Vec::new();
            for b in backends {
                match ProxyName::parse(&b) {
                    Ok(n) => names.push(n),
                    Err(_) => problems.push(Problem::new(
                        key,
                        b,
                        "backend names may only hold A-Z a-z 0-9 _ . : -",
                    )),
                }
            }
            Some(names)
        }
        (Value::Sequence(_), None) => {
            problems.push(Problem::new(
                key,
                show(v),
                "a frontend's backends must all be strings",
            ));
            None
        }
        _ => {
            problems.push(Problem::new(key, show(v), "unknown key"));
            None
        }
    }
}

/// The config file's keys as written, each checked on its own: `None` where a key is absent or
/// its value was refused. Defaults and the rules between keys are [`RawConfig::validate`]'s job,
/// so that reading can go on past a bad key and report every problem in file order.
/// YAML refuses a repeated key, so each field is set at most once.
#[derive(Debug, Default)]
struct RawConfig {
    bind: Option<IpAddr>,
    port: Option<u16>,
    sslcrt: Option<PathBuf>,
    sslkey: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    user: Option<String>,
    password: Option<String>,
    socat: Option<PathBuf>,
    server: Option<String>,
    accesslog: Option<PathBuf>,
    logfile: Option<PathBuf>,
    debug: Option<bool>,
    state_dir: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    haproxy: Option<PathBuf>,
    keepalived: Option<PathBuf>,
    workers: Option<usize>,
    max_body: Option<u64>,
    max_connections: Option<usize>,
    request_timeout: Option<Duration>,
    amphora_id: Option<String>,
    apis: Option<Vec<Api>>,
    tenant_namespace: Option<String>,
    syslog: Option<PathBuf>,
    syslog_facility: Option<u8>,
    prometheus_proxy: Option<bool>,
    /// HApi frontends (unknown keys holding string lists); no such key leaves it empty.
    frontends: BTreeMap<String, Vec<ProxyName>>,
}

impl RawConfig {
    /// Reads every key of the file, collecting each key's problems in file order.
    fn read(map: &Mapping, p: &mut Vec<Problem>) -> RawConfig {
        let mut raw = RawConfig::default();
        for (k, v) in map {
            match k {
                Value::String(k) => raw.read_key(k, v, p),
                other => p.push(Problem::new(&show(other), show(v), "keys must be strings")),
            }
        }
        raw
    }

    fn read_key(&mut self, k: &str, v: &Value, p: &mut Vec<Problem>) {
        // The ranges are checked before the casts, so none of them truncates.
        let uint = |min, max, p: &mut Vec<Problem>| as_uint(k, v, min, max, p);
        match k {
            "bind" => self.bind = as_ip(k, v, p),
            "port" => self.port = uint(0, 65535, p).map(|n| n as u16),
            "sslcrt" => self.sslcrt = as_path(k, v, p),
            "sslkey" => self.sslkey = as_path(k, v, p),
            "client_ca" => self.client_ca = as_path(k, v, p),
            "user" => self.user = as_string(k, v, p),
            "password" => self.password = as_string(k, v, p),
            "socat" => self.socat = as_path(k, v, p),
            "server" => self.server = as_server(k, v, p),
            "accesslog" => self.accesslog = as_path(k, v, p),
            "logfile" => self.logfile = as_path(k, v, p),
            "debug" => self.debug = as_bool(k, v, p),
            "state_dir" => self.state_dir = as_path(k, v, p),
            "cert_dir" => self.cert_dir = as_path(k, v, p),
            "haproxy" => self.haproxy = as_path(k, v, p),
            "keepalived" => self.keepalived = as_path(k, v, p),
            "workers" => self.workers = uint(1, 256, p).map(|n| n as usize),
            "max_body" => self.max_body = uint(1024, 1 << 30, p),
            "max_connections" => self.max_connections = uint(1, 10_000, p).map(|n| n as usize),
            "request_timeout" => self.request_timeout = uint(1, 3600, p).map(Duration::from_secs),
            "amphora_id" => self.amphora_id = as_string(k, v, p),
            "apis" => self.apis = as_apis(k, v, p),
            "tenant_namespace" => self.tenant_namespace = as_namespace(k, v, p),
            "syslog" => self.syslog = as_path(k, v, p),
            "syslog_facility" => self.syslog_facility = as_facility(k, v, p),
            "prometheus_proxy" => self.prometheus_proxy = as_bool(k, v, p),
            _ => {
                if let Some(backends) = as_frontend(k, v, p) {
                    self.frontends.insert(k.to_string(), backends);
                }
            }
        }
    }

    /// The one `Config` these keys mean: defaults for what is absent, then the rules between
    /// keys, whose problems follow the per-key ones.
    fn validate(self, p: &mut Vec<Problem>) -> Config {
        let d = Config::default();
        let tls = tls_files(self.sslcrt, self.sslkey, self.client_ca, p);
        let basic_auth = credentials(self.user, self.password, p);
        let c = Config {
            bind: self.bind.unwrap_or(d.bind),
            port: self.port.unwrap_or(d.port),
            tls,
            basic_auth,
            socat: self.socat.unwrap_or(d.socat),
            server_prefix: self.server.filter(|s| !s.is_empty()),
            frontends: self.frontends,
            accesslog: self.accesslog,
            logfile: self.logfile,
            debug: self.debug.unwrap_or(d.debug),
            state_dir: self.state_dir.unwrap_or(d.state_dir),
            cert_dir: self.cert_dir.unwrap_or(d.cert_dir),
            haproxy: self.haproxy.unwrap_or(d.haproxy),
            keepalived: self.keepalived.unwrap_or(d.keepalived),
            workers: self.workers.unwrap_or(d.workers),
            max_body: self.max_body.unwrap_or(d.max_body),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            request_timeout: self.request_timeout.unwrap_or(d.request_timeout),
            amphora_id: self.amphora_id,
            apis: self.apis.unwrap_or(d.apis),
            mutable: Mutable {
                debug: self.debug.unwrap_or(d.debug),
                ..Mutable::default()
            },
            agent_conf: None,
            tenant_namespace: self.tenant_namespace,
            syslog: self.syslog.map(|socket| syslog::Target {
                socket,
                facility: self.syslog_facility.unwrap_or(DAEMON),
            }),
            prometheus_proxy: self.prometheus_proxy.unwrap_or(d.prometheus_proxy),
        };
        check_security(&c, p);
        c
    }
}

/// TLS needs both the certificate and its key; a client CA only makes sense with TLS.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    p: &mut Vec<Problem>,
) -> Option<TlsFiles> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            return Some(TlsFiles {
                cert,
                key,
                client_ca,
            })
        }
        (None, None) => {
            if let Some(ca) = client_ca {
                p.push(Problem::new(
                    "client_ca",
                    ca.display().to_string(),
                    "needs sslcrt and sslkey (client certificates need TLS)",
                ));
            }
        }
        (Some(cert), None) => p.push(Problem::new(
            "sslkey",
            "",
            format!("missing: sslcrt ({}) needs a key", cert.display()),
        )),
        (None, Some(key)) => p.push(Problem::new(
            "sslcrt",
            "",
            format!("missing: sslkey ({}) needs a certificate", key.display()),
        )),
    }
    None
}

/// Basic auth needs both halves, and a user that fits before the ':' of `user:password`.
fn credentials(
    user: Option<String>,
    password: Option<String>,
    p: &mut Vec<Problem>,
) -> Option<Credentials> {
    match (user, password) {
        (Some(user), Some(password)) if !user.is_empty() && !user.contains(':') => {
            return Some(Credentials { user, password })
        }
        (Some(user), Some(_)) => p.push(Problem::new(
            "user",
            user,
            "must be non-empty and hold no ':' (basic auth)",
        )),
        (Some(_), None) => p.push(Problem::new(
            "password",
            "",
            "missing: user needs a password",
        )),
        (None, Some(_)) => p.push(Problem::new("user", "", "missing: password needs a user")),
        (None, None) => {}
    }
    None
}

/// DESIGN's security defaults: off loopback, callers must authenticate, and passwords need TLS.
fn check_security(c: &Config, p: &mut Vec<Problem>) {
    if c.bind.is_loopback() {
        return;
    }
    let mtls = c.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if c.basic_auth.is_none() && !mtls {
        p.push(Problem::new(
            "bind",
            c.bind.to_string(),
            "a non-loopback address needs authentication: set user/password or client_ca",
        ));
    }
    if c.basic_auth.is_some() && c.tls.is_none() {
        p.push(Problem::new(
            "bind",
            c.bind.to_string(),
            "basic auth on a non-loopback address needs TLS: set sslcrt and sslkey",
        ));
    }
}

/// The file as a mapping of keys to values, or the one problem that stops reading it at all.
fn mapping(text: &str) -> Result<Mapping, Problem> {
    let doc: Value = serde_norway::from_str(text)
        .map_err(|e| Problem::new("(file)", "", format!("not valid YAML: {e}")))?;
    match doc {
        Value::Mapping(m) => Ok(m),
        // An empty file is an empty mapping: all defaults.
        Value::Null => Ok(Mapping::new()),
        other => Err(Problem::new(
            "(file)",
            show(&other),
            "the config must be a mapping of keys to values",
        )),
    }
}

/// Parses config text. Returns every problem found, not just the first.
/// A config file of either kind: Octavia's INI `amphora-agent.conf` when it opens with a
/// `[section]`, the YAML otherwise.
pub fn parse_file(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    if crate::ini::Ini::looks_like(text) {
        octavia::parse(text, path)
    } else {
        parse(text)
    }
}

pub fn parse(text: &str) -> Result<Config, Vec<Problem>> {
    let map = mapping(text).map_err(|e| vec![e])?;
    let mut p = Vec::new();
    let c = RawConfig::read(&map, &mut p).validate(&mut p);
    if p.is_empty() {
        Ok(c)
    } else {
        Err(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAPI_EXAMPLE: &str = include_str!("../../conf/hapi-example.yaml");

    #[test]
    fn hapi_example_means_what_it_meant() {
        let c = parse(HAPI_EXAMPLE).unwrap();
        assert_eq!(c.socat, PathBuf::from("/var/run/haproxy.stat"));
        assert_eq!(c.server_prefix.as_deref(), Some("lamp"));
        let be: Vec<&str> = c.frontends["http-frontend"]
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(be, ["wwwbackend"]);
        assert_eq!(c.frontends.len(), 1);
        let tls = c.tls.unwrap();
        assert_eq!(tls.key, PathBuf::from("/opt/hapi/ssl/hapi.key"));
        assert_eq!(tls.cert, PathBuf::from("/opt/hapi/ssl/hapi.crt"));
        assert_eq!(c.basic_auth.unwrap().user, "yourUser");
        assert_eq!(c.bind.to_string(), "0.0.0.0");
        assert_eq!(c.port, 6000);
        assert!(c.debug);
        assert_eq!(
            c.accesslog,
            Some(PathBuf::from("/opt/hapi/log/hapi_access.log"))
        );
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    fn problems(text: &str) -> Vec<Problem> {
        parse(text).unwrap_err()
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let p = problems("port: 70000\nbogus: 1\nworkers: x\ndebug: maybe\n");
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["port", "bogus", "workers", "debug"]);
        assert_eq!(p[1].why, "unknown key");
        assert_eq!(p[0].value, "70000");
    }

    #[test]
    fn syslog_with_its_facility() {
        let c = parse("syslog: /dev/log\nsyslog_facility: local1\n").unwrap();
        let t = c.syslog.unwrap();
        assert_eq!((t.socket, t.facility), (PathBuf::from("/dev/log"), 17));
        assert_eq!(
            parse("syslog: /dev/log\n")
                .unwrap()
                .syslog
                .unwrap()
                .facility,
            DAEMON
        );
        let p = problems("syslog: /dev/log\nsyslog_facility: local9\n");
        assert_eq!(p[0].key, "syslog_facility", "{p:?}");
    }

    #[test]
    fn the_metrics_proxy_is_off_unless_asked_for() {
        assert!(!parse("").unwrap().prometheus_proxy);
        assert!(parse("prometheus_proxy: true\n").unwrap().prometheus_proxy);
        assert_eq!(
            problems("prometheus_proxy: 9102\n")[0].key,
            "prometheus_proxy"
        );
    }

    #[test]
    fn a_tenant_namespace_is_a_name() {
        let c = parse("tenant_namespace: amphora-haproxy\n").unwrap();
        assert_eq!(c.tenant_namespace.as_deref(), Some("amphora-haproxy"));
        let p = problems("tenant_namespace: ../etc\n");
        assert_eq!(p[0].key, "tenant_namespace", "{p:?}");
    }

    #[test]
    fn frontends_are_lists_of_strings() {
        let c = parse("web: ['a', 'b']\n").unwrap();
        assert_eq!(c.frontends["web"].len(), 2);
        assert_eq!(
            problems("web: [1]\n")[0].why,
            "a frontend's backends must all be strings"
        );
        assert_eq!(problems("web: ['a b']\n")[0].key, "web");
        assert_eq!(problems("web: {a: b}\n")[0].why, "unknown key");
    }

    #[test]
    fn security_defaults() {
        let p = problems("bind: 0.0.0.0\n");
        assert!(p[0].why.contains("needs authentication"), "{p:?}");
        let p = problems("bind: 0.0.0.0\nuser: u\npassword: p\n");
        assert!(p[0].why.contains("needs TLS"), "{p:?}");
        assert!(parse("bind: 0.0.0.0\nuser: u\npassword: p\nsslcrt: c\nsslkey: k\n").is_ok());
        assert!(parse("bind: '::'\nsslcrt: c\nsslkey: k\nclient_ca: ca\n").is_ok());
        assert!(parse("bind: '::1'\n").is_ok());
        assert_eq!(problems("client_ca: ca\n")[0].key, "client_ca");
        assert_eq!(problems("sslcrt: c\n")[0].key, "sslkey");
        assert_eq!(problems("user: u\n")[0].key, "password");
    }

    #[test]
    fn unquoted_credentials_keep_their_text() {
        // serde_norway reads 0123 as the string "0123" (no octal, no lost zero).
        let c = parse("user: 007\npassword: 0123\n").unwrap();
        let creds = c.basic_auth.unwrap();
        assert_eq!(
            (creds.user.as_str(), creds.password.as_str()),
            ("007", "0123")
        );
        let c = parse("user: u\npassword: 12345\n").unwrap();
        assert_eq!(c.basic_auth.unwrap().password, "12345");
    }

    #[test]
    fn yaml_1_1_booleans_and_apis() {
        assert!(parse("debug: yes\n").unwrap().debug);
        assert!(!parse("debug: False\n").unwrap().debug);
        let c = parse("apis: [devices, hapi]\n").unwrap();
        assert_eq!(c.apis, [Api::Hapi, Api::Devices]);
        assert_eq!(problems("apis: [nope]\n")[0].key, "apis");
    }

    #[test]
    fn bad_yaml_is_one_problem() {
        let p = problems("port: [\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].why.starts_with("not valid YAML"));
        assert_eq!(problems("- a\n- b\n")[0].key, "(file)");
    }
}
