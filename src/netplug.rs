//! Plugging the amphora into networks (amphora API `/v0.1/plug/...`): find the interface a port
//! was attached as (by MAC, while still down), give it the VIP or fixed IPs, bring it up and
//! route replies from the VIP out of it (its own routing table). Takes typed, validated requests
//! (`api::plug_body` reads the HTTP bodies); runs the `ip` binary with argument vectors built
//! from those values; undoes partial work when a step fails.
//! Plugs are kept in `<state_dir>/plugs.json` and applied again when the agent starts.

use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{logs, process, store};

const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// Routing tables for plugged VIPs start here (one per plug).
const TABLE_BASE: u32 = 100;
const TABLE_END: u32 = 253;

/// A network prefix: address and length, e.g. `203.0.113.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = s.trim().split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let len: u8 = l.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(())?;
        // Host bits are dropped (`203.0.113.7/24` is the network `203.0.113.0/24`): `ip route`
        // refuses them.
        let keep = |bits: u32| {
            if len == 0 {
                0
            } else {
                u128::MAX << (bits - u32::from(len))
            }
        };
        let addr = match addr {
            IpAddr::V4(v) => IpAddr::from((u32::from(v) & keep(32) as u32).to_be_bytes()),
            IpAddr::V6(v) => IpAddr::from((u128::from(v) & keep(128)).to_be_bytes()),
        };
        Some(Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |x: IpAddr| -> u128 {
            match x {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        // IPv4 sits in the top 32 bits, so one prefix mask serves both families.
        if self.len == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - u32::from(self.len));
        bits(self.addr) & mask == bits(ip) & mask
    }

    /// `ip` with this prefix's length, the form `ip addr` takes: `203.0.113.2/24`.
    fn host(&self, ip: IpAddr) -> String {
        format!("{ip}/{}", self.len)
    }
}

/// The network, `203.0.113.0/24`.
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s).ok_or_else(|| format!("not a network: {s:?}"))
    }
}

/// A MAC address, lower case, `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac(String);

impl Mac {
    pub fn parse(s: &str) -> Option<Mac> {
        let s = s.trim();
        let parts: Vec<&str> = s.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        ok.then(|| Mac(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        Mac::parse(s).ok_or_else(|| format!("not a MAC address: {s:?}"))
    }
}

/// Serde through the text form: the plug record has always held these as strings.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(Cidr);
serde_as_text!(Mac);

/// A route a VIP's table gets besides its subnet and default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: Cidr,
    pub nexthop: IpAddr,
}

/// An address of a member network's port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(rename = "ip_address")]
    pub ip: IpAddr,
    #[serde(rename = "subnet_cidr")]
    pub subnet: Cidr,
}

/// A VIP to plug. The caller has checked that the VIP, `gateway`, `vrrp_ip` and the next hops
/// lie in `subnet`, and that neither `gateway` nor `vrrp_ip` is the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipPlug {
    pub vip: IpAddr,
    pub subnet: Cidr,
    pub gateway: Option<IpAddr>,
    pub mac: Mac,
    /// The amphora's own address on the VIP's network (keepalived speaks from it).
    pub vrrp_ip: Option<IpAddr>,
    pub host_routes: Vec<HostRoute>,
    pub mtu: Option<u32>,
}

/// A member network's port to plug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlug {
    pub mac: Mac,
    pub fixed_ips: Vec<FixedIp>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlugRequest {
    Vip(VipPlug),
    Network(NetworkPlug),
}

impl PlugRequest {
    fn mac(&self) -> &Mac {
        match self {
            PlugRequest::Vip(p) => &p.mac,
            PlugRequest::Network(n) => &n.mac,
        }
    }
}

/// Who puts a VIP on its interface: the plug itself (SINGLE), or keepalived, so that only the
/// MASTER of an ACTIVE_STANDBY pair holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VipHolder {
    #[default]
    Plug,
    Keepalived,
}

/// One plug, as done and recorded: a VIP has its own routing table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlugRecord", into = "PlugRecord")]
pub enum Plug {
    Vip {
        plug: VipPlug,
        table: u32,
        holder: VipHolder,
    },
    Network(NetworkPlug),
}

impl Plug {
    fn mac(&self) -> &Mac {
        match self {
            Plug::Vip { plug, .. } => &plug.mac,
            Plug::Network(n) => &n.mac,
        }
    }

    fn table(&self) -> Option<u32> {
        match self {
            Plug::Vip { table, .. } => Some(*table),
            Plug::Network(_) => None,
        }
    }
}

/// A plug in `plugs.json`, in the flat shape the agent has always written: the VIP fields are
/// null for a network plug, `fixed_ips` is empty for a VIP.
#[derive(Serialize, Deserialize)]
struct PlugRecord {
    mac_address: Mac,
    vip: Option<IpAddr>,
    subnet_cidr: Option<Cidr>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    vrrp_ip: Option<IpAddr>,
    #[serde(default)]
    host_routes: Vec<HostRoute>,
    mtu: Option<u32>,
    #[serde(default)]
    fixed_ips: Vec<FixedIp>,
    table: Option<u32>,
    /// Absent in records written before ACTIVE_STANDBY plugs: the plug held the VIP.
    #[serde(default, skip_serializing_if = "is_default")]
    vip_holder: VipHolder,
}

fn is_default(h: &VipHolder) -> bool {
    *h == VipHolder::default()
}

impl From<Plug> for PlugRecord {
    fn from(p: Plug) -> PlugRecord {
        match p {
            Plug::Vip {
                plug,
                table,
                holder,
            } => PlugRecord {
                mac_address: plug.mac,
                vip: Some(plug.vip),
                subnet_cidr: Some(plug.subnet),
                gateway: plug.gateway,
                vrrp_ip: plug.vrrp_ip,
                host_routes: plug.host_routes,
                mtu: plug.mtu,
                fixed_ips: Vec::new(),
                table: Some(table),
                vip_holder: holder,
            },
            Plug::Network(n) => PlugRecord {
                mac_address: n.mac,
                vip: None,
                subnet_cidr: None,
                gateway: None,
                vrrp_ip: None,
                host_routes: Vec::new(),
                mtu: n.mtu,
                fixed_ips: n.fixed_ips,
                table: None,
                vip_holder: VipHolder::Plug,
            },
        }
    }
}

impl TryFrom<PlugRecord> for Plug {
    type Error = String;
    fn try_from(r: PlugRecord) -> Result<Plug, String> {
        let network_only = r.gateway.is_none() && r.vrrp_ip.is_none() && r.host_routes.is_empty();
        match (r.vip, r.subnet_cidr, r.table) {
            (Some(vip), Some(subnet), Some(table)) if r.fixed_ips.is_empty() => Ok(Plug::Vip {
                plug: VipPlug {
                    vip,
                    subnet,
                    gateway: r.gateway,
                    mac: r.mac_address,
                    vrrp_ip: r.vrrp_ip,
                    host_routes: r.host_routes,
                    mtu: r.mtu,
                },
                table,
                holder: r.vip_holder,
            }),
            (None, None, None) if network_only => Ok(Plug::Network(NetworkPlug {
                mac: r.mac_address,
                fixed_ips: r.fixed_ips,
                mtu: r.mtu,
            })),
            _ => Err(format!(
                "plug {}: neither a VIP (vip, subnet_cidr, table) nor a network plug (fixed_ips)",
                r.mac_address
            )),
        }
    }
}

#[derive(Debug)]
pub enum PlugError {
    /// No interface has the port's MAC, or only one already up (not a fresh port).
    NoInterface,
    AlreadyPlugged(Mac),
    /// keepalived is to hold the VIP, but the plug gives no `vrrp_ip` to speak VRRP from.
    NoVrrpIp,
    /// Every routing table kept for VIPs is taken.
    NoFreeTable,
    /// A step failed (and the plug was rolled back).
    Failed(StepFailed),
    Io(io::Error),
}

/// An `ip` command that failed, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub argv: Vec<String>,
    pub output: String,
}

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip {}: {}", self.argv.join(" "), self.output)
    }
}

/// Finds the interface with `mac`; returns its name and whether it is up.
/// VLANs, bonds and macvlans can share a MAC with the port: a down one is preferred.
fn interface_by_mac(mac: &Mac) -> Option<(String, bool)> {
    let mut found: Vec<(String, bool)> = Vec::new();
    for e in fs::read_dir("/sys/class/net").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let addr = fs::read_to_string(e.path().join("address")).unwrap_or_default();
        if addr.trim().eq_ignore_ascii_case(mac.as_str()) {
            let flags = fs::read_to_string(e.path().join("flags")).unwrap_or_default();
            let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
            // IFF_UP.
            found.push((name, flags & 1 != 0));
        }
    }
    found.sort_by_key(|(_, up)| *up);
    found.into_iter().next()
}

/// `ip argv...`.
fn ip(argv: &[String]) -> Result<(), StepFailed> {
    let output = match process::run("ip".as_ref(), argv, None, IP_TIMEOUT) {
        Ok(out) if out.success => return Ok(()),
        Ok(out) => out.text.trim().to_string(),
        Err(e) => e.to_string(),
    };
    Err(StepFailed {
        argv: argv.to_vec(),
        output,
    })
}

/// An argument vector, one argument per word or typed value.
macro_rules! argv {
    ($($arg:expr),* $(,)?) => {
        vec![$($arg.to_string()),*]
    };
}

/// An `ip` command and the one that takes it back; none where a later step's undo covers it
/// (flushing the VIP's table removes all its routes).
#[derive(Debug, PartialEq, Eq)]
struct Step {
    run: Vec<String>,
    undo: Option<Vec<String>>,
}

/// Runs steps in order; on a failure, runs the undo steps of those that succeeded, newest
/// first.
fn apply(steps: &[Step]) -> Result<(), StepFailed> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = ip(&step.run) {
            undo(&steps[..i]);
            return Err(e);
        }
    }
    Ok(())
}

/// Undoes steps, newest first.
fn undo(steps: &[Step]) {
    for back in steps.iter().rev().filter_map(|s| s.undo.as_ref()) {
        let _ = ip(back);
    }
}

/// Re-applies steps after a restart: what is already there stays, nothing is undone (a
/// working VIP must not be taken down because one step failed). Returns the failures.
fn reapply_steps(steps: &[Step]) -> Vec<StepFailed> {
    steps
        .iter()
        .filter_map(|s| ip(&s.run).err())
        .filter(|e| !e.output.contains("File exists"))
        .collect()
}

/// Gives `dev` the address `ip` in `subnet`. IPv6 addresses skip duplicate address detection:
/// a tentative address cannot be a route's source, and the port is ours alone.
fn address(ip: IpAddr, subnet: &Cidr, dev: &str) -> Step {
    let addr = subnet.host(ip);
    let mut run = argv!["addr", "add", addr, "dev", dev];
    if ip.is_ipv6() {
        run.push("nodad".to_string());
    }
    Step {
        run,
        undo: Some(argv!["addr", "del", addr, "dev", dev]),
    }
}

fn link_up(dev: &str, mtu: Option<u32>) -> Step {
    let mut run = argv!["link", "set", "dev", dev, "up"];
    if let Some(mtu) = mtu {
        run.extend(argv!["mtu", mtu]);
    }
    Step {
        run,
        undo: Some(argv!["link", "set", "dev", dev, "down"]),
    }
}

/// The `ip` steps (with their undo) that realise a plug on `dev`.
fn steps(p: &Plug, dev: &str) -> Vec<Step> {
    match p {
        Plug::Vip {
            plug,
            table,
            holder,
        } => vip_steps(plug, *table, *holder, dev),
        Plug::Network(n) => {
            let mut s: Vec<Step> = n
                .fixed_ips
                .iter()
                .map(|f| address(f.ip, &f.subnet, dev))
                .collect();
            s.push(link_up(dev, n.mtu));
            s
        }
    }
}

/// A VIP's steps: its addresses, the link, then its table (subnet, default and host routes)
/// and the rule that sends replies from the VIP through that table. When keepalived holds the
/// VIP (it adds the VIP's own table and rule), the port gets only `vrrp_ip`, and the table
/// and rule serve traffic from `vrrp_ip`.
fn vip_steps(p: &VipPlug, table: u32, holder: VipHolder, dev: &str) -> Vec<Step> {
    let mut s = Vec::new();
    if let Some(vrrp_ip) = p.vrrp_ip {
        s.push(address(vrrp_ip, &p.subnet, dev));
    }
    let source = match (holder, p.vrrp_ip) {
        (VipHolder::Keepalived, Some(vrrp_ip)) => vrrp_ip,
        _ => {
            s.push(address(p.vip, &p.subnet, dev));
            p.vip
        }
    };
    s.push(link_up(dev, p.mtu));
    let fam = if p.subnet.addr.is_ipv4() { "-4" } else { "-6" };
    let route = |to: Vec<String>| -> Step {
        let mut run = argv![fam, "route", "add"];
        run.extend(to);
        run.extend(argv!["dev", dev, "table", table]);
        Step { run, undo: None }
    };
    s.push(Step {
        run: argv![fam, "route", "add", p.subnet, "dev", dev, "src", source, "table", table],
        undo: Some(argv![fam, "route", "flush", "table", table]),
    });
    if let Some(gw) = p.gateway {
        s.push(route(argv!["default", "via", gw]));
    }
    for r in &p.host_routes {
        s.push(route(argv![r.destination, "via", r.nexthop]));
    }
    s.push(Step {
        run: argv![fam, "rule", "add", "from", source, "table", table, "priority", table],
        undo: Some(argv![
            fam, "rule", "del", "from", source, "table", table, "priority", table
        ]),
    });
    s
}

/// The lowest routing table no VIP uses. Below 253: 253-255 are the kernel's default, main
/// and local tables.
fn free_table(list: &[Plug]) -> Result<u32, PlugError> {
    (TABLE_BASE..TABLE_END)
        .find(|t| !list.iter().any(|q| q.table() == Some(*t)))
        .ok_or(PlugError::NoFreeTable)
}

pub struct Plugs {
    path: PathBuf,
    list: Mutex<Vec<Plug>>,
}

impl Plugs {
    /// Loads `<state_dir>/plugs.json` (missing: none); a file that does not parse stops the
    /// agent rather than being replaced.
    pub fn open(state_dir: &Path) -> Result<Plugs, String> {
        let path = state_dir.join("plugs.json");
        let list = store::load_json(&path, "plug list", Vec::new)?;
        Ok(Plugs {
            path,
            list: Mutex::new(list),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Plug>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plugs a port: finds its interface (down), applies, records. Returns the interface name.
    /// `holder` says who puts a VIP on it.
    pub fn plug(&self, req: PlugRequest, holder: VipHolder) -> Result<String, PlugError> {
        let mut list = self.lock();
        let mac = req.mac();
        if list.iter().any(|q| q.mac() == mac) {
            return Err(PlugError::AlreadyPlugged(mac.clone()));
        }
        let (dev, up) = interface_by_mac(mac).ok_or(PlugError::NoInterface)?;
        if up {
            return Err(PlugError::NoInterface);
        }
        let p = match req {
            PlugRequest::Vip(plug) => {
                if holder == VipHolder::Keepalived && plug.vrrp_ip.is_none() {
                    return Err(PlugError::NoVrrpIp);
                }
                Plug::Vip {
                    plug,
                    table: free_table(&list)?,
                    holder,
                }
            }
            PlugRequest::Network(n) => Plug::Network(n),
        };
        let done = steps(&p, &dev);
        apply(&done).map_err(PlugError::Failed)?;
        let mut next = list.clone();
        next.push(p);
        let recorded = serde_json::to_vec_pretty(&next)
            .map_err(io::Error::other)
            .and_then(|bytes| store::write_atomic(&self.path, &bytes, 0o640));
        if let Err(e) = recorded {
            // Unrecorded, it would not come back after a reboot: better not plugged at all.
            undo(&done);
            return Err(PlugError::Io(e));
        }
        *list = next;
        Ok(dev)
    }

    /// Whether `ip` is a VIP a plug put on its interface itself (not left to keepalived).
    pub fn holds_static(&self, ip: IpAddr) -> bool {
        self.lock()
            .iter()
            .any(|p| matches!(p, Plug::Vip { plug, holder: VipHolder::Plug, .. } if plug.vip == ip))
    }

    /// At agent start: every recorded plug is applied again where its interface is found.
    pub fn reapply(&self) {
        for p in self.lock().iter() {
            let mac = p.mac();
            match interface_by_mac(mac) {
                Some((dev, _)) => {
                    let failed = reapply_steps(&steps(p, &dev));
                    if failed.is_empty() {
                        logs::info(&format!("plug {mac} re-applied on {dev}"));
                    }
                    for e in failed {
                        logs::error(&format!("plug {mac} on {dev}: {e}"));
                    }
                }
                None => logs::warn(&format!("plug {mac}: no interface with that MAC")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plugs.json` as the agent wrote it before plugs were typed (a VIP with every field,
    /// a network plug, an IPv6 VIP).
    const RECORD_BEFORE_TYPES: &str = r#"[
  {
    "mac_address": "02:00:5e:00:00:01",
    "vip": "203.0.113.2",
    "subnet_cidr": "203.0.113.0/24",
    "gateway": "203.0.113.1",
    "vrrp_ip": "203.0.113.3",
    "host_routes": [
      {
        "destination": "192.0.2.0/24",
        "nexthop": "203.0.113.1"
      }
    ],
    "mtu": 1450,
    "fixed_ips": [],
    "table": 100
  },
  {
    "mac_address": "02:00:5e:00:00:02",
    "vip": null,
    "subnet_cidr": null,
    "gateway": null,
    "vrrp_ip": null,
    "host_routes": [],
    "mtu": null,
    "fixed_ips": [
      {
        "ip_address": "198.51.100.9",
        "subnet_cidr": "198.51.100.0/24"
      }
    ],
    "table": null
  },
  {
    "mac_address": "02:00:5e:00:00:03",
    "vip": "2001:db8:5::2",
    "subnet_cidr": "2001:db8:5::/64",
    "gateway": "2001:db8:5::1",
    "vrrp_ip": null,
    "host_routes": [],
    "mtu": null,
    "fixed_ips": [],
    "table": 101
  }
]"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    fn mac(s: &str) -> Mac {
        Mac::parse(s).unwrap()
    }

    fn vip_plug() -> VipPlug {
        VipPlug {
            vip: ip("203.0.113.2"),
            subnet: cidr("203.0.113.0/24"),
            gateway: Some(ip("203.0.113.1")),
            mac: mac("02:00:5e:00:00:01"),
            vrrp_ip: Some(ip("203.0.113.3")),
            host_routes: vec![HostRoute {
                destination: cidr("192.0.2.0/24"),
                nexthop: ip("203.0.113.1"),
            }],
            mtu: Some(1450),
        }
    }

    fn network_plug() -> NetworkPlug {
        NetworkPlug {
            mac: mac("02:00:5e:00:00:02"),
            fixed_ips: vec![FixedIp {
                ip: ip("198.51.100.9"),
                subnet: cidr("198.51.100.0/24"),
            }],
            mtu: None,
        }
    }

    #[test]
    fn cidrs_and_macs() {
        let c = cidr("203.0.113.0/24");
        assert!(c.contains(ip("203.0.113.2")));
        assert!(!c.contains(ip("203.0.114.2")));
        assert!(!c.contains(ip("2001:db8::1")));
        let c6 = cidr("2001:db8::/64");
        assert!(c6.contains(ip("2001:db8::5")));
        assert!(!c6.contains(ip("2001:db9::5")));
        assert!(Cidr::parse("1.2.3.0/33").is_none());
        assert!(Cidr::parse("1.2.3.0").is_none());
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert_eq!(cidr(" 203.0.113.7/24 ").to_string(), "203.0.113.0/24");
        assert_eq!(cidr("2001:db8:5::7/64").to_string(), "2001:db8:5::/64");
        assert_eq!(mac("78:31:C1:ce:0b:3c").as_str(), "78:31:c1:ce:0b:3c");
        for bad in [
            "78:31:c1:ce:0b",
            "78-31-c1-ce-0b-3c",
            "zz:31:c1:ce:0b:3c",
            "78:31:c1:ce:0b:3c:00",
        ] {
            assert!(Mac::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_record_written_before_plugs_were_typed_loads_and_is_written_the_same() {
        let plugs: Vec<Plug> = serde_json::from_str(RECORD_BEFORE_TYPES).unwrap();
        let v6 = VipPlug {
            vip: ip("2001:db8:5::2"),
            subnet: cidr("2001:db8:5::/64"),
            gateway: Some(ip("2001:db8:5::1")),
            mac: mac("02:00:5e:00:00:03"),
            vrrp_ip: None,
            host_routes: Vec::new(),
            mtu: None,
        };
        assert_eq!(
            plugs,
            [
                Plug::Vip {
                    plug: vip_plug(),
                    table: 100,
                    holder: VipHolder::Plug,
                },
                Plug::Network(network_plug()),
                Plug::Vip {
                    plug: v6,
                    table: 101,
                    holder: VipHolder::Plug,
                },
            ]
        );
        let again = serde_json::to_vec_pretty(&plugs).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), RECORD_BEFORE_TYPES);
        // `vrrp_ip`, `host_routes` and `fixed_ips` may be absent.
        let oldest = r#"[{"mac_address":"02:00:5e:00:00:02","vip":null,"subnet_cidr":null,
            "gateway":null,"mtu":null,"table":null}]"#;
        let plugs: Vec<Plug> = serde_json::from_str(oldest).unwrap();
        assert_eq!(plugs[0].table(), None);
        // A VIP keepalived holds says so; one the plug holds is written as before.
        let held = Plug::Vip {
            plug: vip_plug(),
            table: 100,
            holder: VipHolder::Keepalived,
        };
        let text = serde_json::to_string(&held).unwrap();
        assert!(text.contains(r#""vip_holder":"keepalived""#), "{text}");
        assert_eq!(serde_json::from_str::<Plug>(&text).unwrap(), held);
    }

    #[test]
    fn a_record_that_is_neither_vip_nor_network_plug_is_refused() {
        for bad in [
            // A VIP without its table.
            r#"[{"mac_address":"02:00:5e:00:00:01","vip":"203.0.113.2","subnet_cidr":"203.0.113.0/24"}]"#,
            // A network plug with a gateway.
            r#"[{"mac_address":"02:00:5e:00:00:01","gateway":"203.0.113.1"}]"#,
            r#"[{"mac_address":"nope"}]"#,
            r#"[{"mac_address":"02:00:5e:00:00:01","fixed_ips":[{"ip_address":"x","subnet_cidr":"198.51.100.0/24"}]}]"#,
        ] {
            assert!(serde_json::from_str::<Vec<Plug>>(bad).is_err(), "{bad}");
        }
    }

    fn runs(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.run.join(" ")).collect()
    }

    #[test]
    fn the_steps_of_a_vip_plug() {
        let s = steps(
            &Plug::Vip {
                plug: vip_plug(),
                table: 100,
                holder: VipHolder::Plug,
            },
            "eth1",
        );
        assert_eq!(
            runs(&s),
            [
                "addr add 203.0.113.3/24 dev eth1",
                "addr add 203.0.113.2/24 dev eth1",
                "link set dev eth1 up mtu 1450",
                "-4 route add 203.0.113.0/24 dev eth1 src 203.0.113.2 table 100",
                "-4 route add default via 203.0.113.1 dev eth1 table 100",
                "-4 route add 192.0.2.0/24 via 203.0.113.1 dev eth1 table 100",
                "-4 rule add from 203.0.113.2 table 100 priority 100",
            ]
        );
        assert_eq!(
            s[1].run,
            ["addr", "add", "203.0.113.2/24", "dev", "eth1"],
            "one argument per value"
        );
        let undos: Vec<String> = s
            .iter()
            .filter_map(|s| s.undo.as_ref().map(|u| u.join(" ")))
            .collect();
        assert_eq!(
            undos,
            [
                "addr del 203.0.113.3/24 dev eth1",
                "addr del 203.0.113.2/24 dev eth1",
                "link set dev eth1 down",
                "-4 route flush table 100",
                "-4 rule del from 203.0.113.2 table 100 priority 100",
            ]
        );
    }

    /// ACTIVE_STANDBY: keepalived adds the VIP on the MASTER only; the port gets `vrrp_ip`,
    /// and traffic from it leaves by the gateway.
    #[test]
    fn the_steps_of_a_vip_keepalived_holds() {
        let s = steps(
            &Plug::Vip {
                plug: vip_plug(),
                table: 100,
                holder: VipHolder::Keepalived,
            },
            "eth1",
        );
        assert_eq!(
            runs(&s),
            [
                "addr add 203.0.113.3/24 dev eth1",
                "link set dev eth1 up mtu 1450",
                "-4 route add 203.0.113.0/24 dev eth1 src 203.0.113.3 table 100",
                "-4 route add default via 203.0.113.1 dev eth1 table 100",
                "-4 route add 192.0.2.0/24 via 203.0.113.1 dev eth1 table 100",
                "-4 rule add from 203.0.113.3 table 100 priority 100",
            ]
        );
    }

    #[test]
    fn the_steps_of_a_network_plug_and_an_ipv6_address() {
        let mut n = network_plug();
        n.fixed_ips.push(FixedIp {
            ip: ip("2001:db8::9"),
            subnet: cidr("2001:db8::/64"),
        });
        n.mtu = Some(9000);
        assert_eq!(
            runs(&steps(&Plug::Network(n), "eth2")),
            [
                "addr add 198.51.100.9/24 dev eth2",
                "addr add 2001:db8::9/64 dev eth2 nodad",
                "link set dev eth2 up mtu 9000",
            ]
        );
    }

    #[test]
    fn tables_are_taken_lowest_first() {
        let vip = |table| Plug::Vip {
            plug: vip_plug(),
            table,
            holder: VipHolder::Plug,
        };
        assert_eq!(free_table(&[]).unwrap(), 100);
        assert_eq!(
            free_table(&[vip(100), Plug::Network(network_plug()), vip(102)]).unwrap(),
            101
        );
        let all: Vec<Plug> = (TABLE_BASE..TABLE_END).map(vip).collect();
        assert!(matches!(free_table(&all), Err(PlugError::NoFreeTable)));
    }

    #[test]
    fn a_failed_step_says_which_command_and_what_ip_said() {
        let f = StepFailed {
            argv: argv!["-4", "route", "add", "default", "via", ip("203.0.113.1")],
            output: "RTNETLINK answers: File exists".into(),
        };
        assert_eq!(
            f.to_string(),
            "ip -4 route add default via 203.0.113.1: RTNETLINK answers: File exists"
        );
    }
}
