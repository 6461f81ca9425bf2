//! Plugging the amphora into networks (amphora API `/v0.1/plug/...`): find the interface a port
//! was attached as (by MAC, while still down), give it the VIP or fixed IPs, bring it up and
//! route replies from the VIP out of it (its own routing table). Runs the `ip` binary with
//! argument vectors built from validated values; undoes partial work when a step fails.
//! Plugs are kept in `<state_dir>/plugs.json` and applied again when the agent starts.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

    pub fn network(&self) -> String {
        format!("{}/{}", self.addr, self.len)
    }
}

/// A MAC address, lower case, `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| s.trim().to_ascii_lowercase())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub ip_address: String,
    pub subnet_cidr: String,
}

/// One plug, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plug {
    pub mac_address: String,
    /// Set for a VIP plug.
    pub vip: Option<String>,
    pub subnet_cidr: Option<String>,
    pub gateway: Option<String>,
    /// The amphora's own address on the VIP's network (keepalived speaks from it).
    #[serde(default)]
    pub vrrp_ip: Option<String>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    pub mtu: Option<u32>,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// The VIP's routing table.
    pub table: Option<u32>,
}

#[derive(Debug)]
pub enum PlugError {
    /// Bad input; (message, details) as the spec words them.
    Invalid(&'static str, String),
    NoInterface,
    AlreadyPlugged(String),
    /// A step failed (and was rolled back); `ip`'s output.
    Failed(&'static str, String),
    Io(io::Error),
}

/// Finds the interface with `mac`; returns its name and whether it is up.
/// VLANs, bonds and macvlans can share a MAC with the port: a down one is preferred.
fn interface_by_mac(mac: &str) -> Option<(String, bool)> {
    let mut found: Vec<(String, bool)> = Vec::new();
    for e in fs::read_dir("/sys/class/net").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let addr = fs::read_to_string(e.path().join("address")).unwrap_or_default();
        if addr.trim().eq_ignore_ascii_case(mac) {
            let flags = fs::read_to_string(e.path().join("flags")).unwrap_or_default();
            let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
            // IFF_UP.
            found.push((name, flags & 1 != 0));
        }
    }
    found.sort_by_key(|(_, up)| *up);
    found.into_iter().next()
}

/// `ip args...`; Err(output) when it fails.
fn ip(args: &[String]) -> Result<(), String> {
    match process::run("ip".as_ref(), args, None, IP_TIMEOUT) {
        Ok(out) if out.success => Ok(()),
        Ok(out) => Err(format!("ip {}: {}", args.join(" "), out.text.trim())),
        Err(e) => Err(format!("ip {}: {e}", args.join(" "))),
    }
}

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Runs steps in order; on a failure, runs the undo steps of those that succeeded, newest
/// first.
fn apply(steps: &[(Vec<String>, Vec<String>)]) -> Result<(), String> {
    for (i, (doit, _)) in steps.iter().enumerate() {
        if let Err(e) = ip(doit) {
            undo(&steps[..i]);
            return Err(e);
        }
    }
    Ok(())
}

/// Undoes steps, newest first.
fn undo(steps: &[(Vec<String>, Vec<String>)]) {
    for (_, back) in steps.iter().rev() {
        if !back.is_empty() {
            let _ = ip(back);
        }
    }
}

/// Re-applies steps after a restart: what is already there stays, nothing is undone (a
/// working VIP must not be taken down because one step failed). Returns the failures.
fn reapply_steps(steps: &[(Vec<String>, Vec<String>)]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|(doit, _)| ip(doit).err())
        .filter(|e| !e.contains("File exists"))
        .collect()
}

/// IPv6 addresses skip duplicate address detection: a tentative address cannot be a route's
/// source, and the port is ours alone.
fn nodad(addr: &str) -> &'static str {
    if addr.contains(':') {
        " nodad"
    } else {
        ""
    }
}

/// The `ip` steps (with their undo) that realise a plug on `dev`.
fn steps(p: &Plug, dev: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut s = Vec::new();
    if let (Some(ip), Some(cidr)) = (&p.vrrp_ip, p.subnet_cidr.as_deref().and_then(Cidr::parse)) {
        let addr = format!("{ip}/{}", cidr.len);
        s.push((
            argv(&format!("addr add {addr} dev {dev}{}", nodad(&addr))),
            argv(&format!("addr del {addr} dev {dev}")),
        ));
    }
    if let (Some(vip), Some(cidr)) = (&p.vip, p.subnet_cidr.as_deref().and_then(Cidr::parse)) {
        let addr = format!("{vip}/{}", cidr.len);
        s.push((
            argv(&format!("addr add {addr} dev {dev}{}", nodad(&addr))),
            argv(&format!("addr del {addr} dev {dev}")),
        ));
    }
    for f in &p.fixed_ips {
        if let Some(c) = Cidr::parse(&f.subnet_cidr) {
            let addr = format!("{}/{}", f.ip_address, c.len);
            s.push((
                argv(&format!("addr add {addr} dev {dev}{}", nodad(&addr))),
                argv(&format!("addr del {addr} dev {dev}")),
            ));
        }
    }
    let mut up = format!("link set dev {dev} up");
    if let Some(mtu) = p.mtu {
        up.push_str(&format!(" mtu {mtu}"));
    }
    s.push((argv(&up), argv(&format!("link set dev {dev} down"))));
    if let (Some(vip), Some(cidr), Some(table)) = (
        &p.vip,
        p.subnet_cidr.as_deref().and_then(Cidr::parse),
        p.table,
    ) {
        let fam = if cidr.addr.is_ipv4() { "-4" } else { "-6" };
        s.push((
            argv(&format!(
                "{fam} route add {} dev {dev} src {vip} table {table}",
                cidr.network()
            )),
            argv(&format!("{fam} route flush table {table}")),
        ));
        if let Some(gw) = &p.gateway {
            s.push((
                argv(&format!(
                    "{fam} route add default via {gw} dev {dev} table {table}"
                )),
                Vec::new(),
            ));
        }
        for r in &p.host_routes {
            let route = format!("{} via {}", r.destination, r.nexthop);
            s.push((
                argv(&format!("{fam} route add {route} dev {dev} table {table}")),
                Vec::new(),
            ));
        }
        s.push((
            argv(&format!(
                "{fam} rule add from {vip} table {table} priority {table}"
            )),
            argv(&format!(
                "{fam} rule del from {vip} table {table} priority {table}"
            )),
        ));
    }
    s
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
    pub fn plug(&self, mut p: Plug, action: &'static str) -> Result<String, PlugError> {
        let mut list = self.lock();
        if list.iter().any(|q| q.mac_address == p.mac_address) {
            return Err(PlugError::AlreadyPlugged(p.mac_address));
        }
        let (dev, up) = interface_by_mac(&p.mac_address).ok_or(PlugError::NoInterface)?;
        if up {
            return Err(PlugError::NoInterface);
        }
        if p.vip.is_some() {
            let used: Vec<u32> = list.iter().filter_map(|q| q.table).collect();
            // Below 253: 253-255 are the kernel's default, main and local tables.
            p.table = Some(
                (TABLE_BASE..TABLE_END)
                    .find(|t| !used.contains(t))
                    .ok_or(PlugError::Failed(action, "no free routing table".into()))?,
            );
        }
        let done = steps(&p, &dev);
        apply(&done).map_err(|e| PlugError::Failed(action, e))?;
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

    /// At agent start: every recorded plug is applied again where its interface is found.
    pub fn reapply(&self) {
        for p in self.lock().iter() {
            match interface_by_mac(&p.mac_address) {
                Some((dev, _)) => {
                    let failed = reapply_steps(&steps(p, &dev));
                    if failed.is_empty() {
                        logs::info(&format!("plug {} re-applied on {dev}", p.mac_address));
                    }
                    for e in failed {
                        logs::error(&format!("plug {} on {dev}: {e}", p.mac_address));
                    }
                }
                None => logs::warn(&format!(
                    "plug {}: no interface with that MAC",
                    p.mac_address
                )),
            }
        }
    }
}

/// A VIP plug from its URL address and JSON body, validated.
pub fn vip_plug(vip: &str, body: &[u8]) -> Result<Plug, PlugError> {
    let vip_ip: IpAddr = vip
        .parse()
        .map_err(|_| PlugError::Invalid("Invalid VIP", format!("not an IP address: {vip}")))?;
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| PlugError::Invalid("Invalid request", format!("body is not JSON: {e}")))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .map(str::trim)
            .map(str::to_string)
    };
    let subnet = |why: String| PlugError::Invalid("Invalid subnet information", why);
    let cidr_text = text("subnet_cidr").ok_or_else(|| subnet("subnet_cidr is required".into()))?;
    let cidr =
        Cidr::parse(&cidr_text).ok_or_else(|| subnet(format!("bad subnet_cidr: {cidr_text}")))?;
    if !cidr.contains(vip_ip) {
        return Err(subnet(format!("VIP {vip} is not in {cidr_text}")));
    }
    let gateway = match text("gateway") {
        Some(g) if !g.is_empty() => {
            let gw: IpAddr = g.parse().map_err(|_| subnet(format!("bad gateway: {g}")))?;
            if !cidr.contains(gw) {
                return Err(subnet(format!("gateway {g} is not in {cidr_text}")));
            }
            Some(gw.to_string())
        }
        _ => None,
    };
    let mac = text("mac_address")
        .and_then(|m| parse_mac(&m))
        .ok_or_else(|| subnet("mac_address must look like aa:bb:cc:dd:ee:ff".into()))?;
    let in_subnet = |what: &str, s: &str| -> Result<String, PlugError> {
        match s.parse::<IpAddr>() {
            Ok(ip) if cidr.contains(ip) => Ok(ip.to_string()),
            _ => Err(subnet(format!(
                "{what} {s} is not an address in {cidr_text}"
            ))),
        }
    };
    let vrrp_ip = match text("vrrp_ip") {
        Some(ip) if !ip.is_empty() => Some(in_subnet("vrrp_ip", &ip)?),
        _ => None,
    };
    let vip_text = vip_ip.to_string();
    if vrrp_ip.as_deref() == Some(vip_text.as_str())
        || gateway.as_deref() == Some(vip_text.as_str())
    {
        return Err(subnet(
            "vrrp_ip and gateway must differ from the VIP".into(),
        ));
    }
    let mut host_routes = Vec::new();
    for r in v
        .get("host_routes")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let dest = r.get("destination").and_then(|x| x.as_str()).unwrap_or("");
        let hop = r.get("nexthop").and_then(|x| x.as_str()).unwrap_or("");
        let dest = Cidr::parse(dest)
            .filter(|d| d.addr.is_ipv4() == cidr.addr.is_ipv4())
            .ok_or_else(|| subnet(format!("bad host route destination {dest:?}")))?;
        host_routes.push(HostRoute {
            destination: dest.network(),
            nexthop: in_subnet("host route nexthop", hop)?,
        });
    }
    Ok(Plug {
        mac_address: mac,
        vip: Some(vip_ip.to_string()),
        subnet_cidr: Some(cidr.network()),
        gateway,
        vrrp_ip,
        host_routes,
        mtu: mtu(&v)?,
        fixed_ips: Vec::new(),
        table: None,
    })
}

fn mtu(v: &serde_json::Value) -> Result<Option<u32>, PlugError> {
    match v.get("mtu") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(m) => m
            .as_u64()
            .filter(|m| (68..=65535).contains(m))
            .map(|m| Some(m as u32))
            .ok_or_else(|| PlugError::Invalid("Invalid request", "mtu must be 68-65535".into())),
    }
}

/// A network plug from its JSON body, validated.
pub fn network_plug(body: &[u8]) -> Result<Plug, PlugError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| PlugError::Invalid("Invalid request", format!("body is not JSON: {e}")))?;
    let bad = |why: String| PlugError::Invalid("Invalid request", why);
    let mac = v
        .get("mac_address")
        .and_then(|m| m.as_str())
        .and_then(parse_mac)
        .ok_or_else(|| bad("mac_address must look like aa:bb:cc:dd:ee:ff".into()))?;
    let mut fixed_ips = Vec::new();
    for f in v
        .get("fixed_ips")
        .and_then(|f| f.as_array())
        .into_iter()
        .flatten()
    {
        let ip = f.get("ip_address").and_then(|x| x.as_str()).unwrap_or("");
        let cidr = f.get("subnet_cidr").and_then(|x| x.as_str()).unwrap_or("");
        let (Ok(addr), Some(c)) = (ip.parse::<IpAddr>(), Cidr::parse(cidr)) else {
            return Err(bad(format!("bad fixed IP {ip:?} / {cidr:?}")));
        };
        if !c.contains(addr) {
            return Err(bad(format!("{ip} is not in {cidr}")));
        }
        fixed_ips.push(FixedIp {
            ip_address: addr.to_string(),
            subnet_cidr: c.network(),
        });
    }
    Ok(Plug {
        mac_address: mac,
        vip: None,
        subnet_cidr: None,
        gateway: None,
        vrrp_ip: None,
        host_routes: Vec::new(),
        mtu: mtu(&v)?,
        fixed_ips,
        table: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_macs() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains("203.0.113.2".parse().unwrap()));
        assert!(!c.contains("203.0.114.2".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        let c6 = Cidr::parse("2001:db8::/64").unwrap();
        assert!(c6.contains("2001:db8::5".parse().unwrap()));
        assert!(!c6.contains("2001:db9::5".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.0/33").is_none());
        assert!(Cidr::parse("1.2.3.0").is_none());
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert_eq!(
            parse_mac("78:31:C1:ce:0b:3c").as_deref(),
            Some("78:31:c1:ce:0b:3c")
        );
        for bad in [
            "78:31:c1:ce:0b",
            "78-31-c1-ce-0b-3c",
            "zz:31:c1:ce:0b:3c",
            "78:31:c1:ce:0b:3c:00",
        ] {
            assert!(parse_mac(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn plug_bodies() {
        let p = vip_plug("203.0.113.2", br#"{"subnet_cidr":"203.0.113.0/24","gateway":"203.0.113.1","mac_address":"78:31:c1:ce:0b:3c"}"#).unwrap();
        assert_eq!(p.gateway.as_deref(), Some("203.0.113.1"));
        let msg = |r: Result<Plug, PlugError>| match r {
            Err(PlugError::Invalid(m, _)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg(vip_plug("203.0.113.300", b"{}")), "Invalid VIP");
        assert_eq!(
            msg(vip_plug(
                "198.51.100.2",
                br#"{"subnet_cidr":"203.0.113.0/24","mac_address":"78:31:c1:ce:0b:3c"}"#
            )),
            "Invalid subnet information"
        );
        assert_eq!(
            msg(vip_plug(
                "203.0.113.2",
                br#"{"subnet_cidr":"203.0.113.0/99","mac_address":"78:31:c1:ce:0b:3c"}"#
            )),
            "Invalid subnet information"
        );
        assert_eq!(
            msg(vip_plug(
                "203.0.113.2",
                br#"{"subnet_cidr":"203.0.113.0/24","mac_address":"nope"}"#
            )),
            "Invalid subnet information"
        );
        assert_eq!(
            msg(network_plug(br#"{"mac_address":"x"}"#)),
            "Invalid request"
        );
        let n = network_plug(br#"{"mac_address":"02:00:00:00:00:01","fixed_ips":[{"ip_address":"198.51.100.9","subnet_cidr":"198.51.100.0/24"}]}"#).unwrap();
        assert_eq!(n.fixed_ips.len(), 1);
        let s = steps(
            &Plug {
                table: Some(100),
                ..p
            },
            "eth1",
        );
        let first: Vec<&str> = s[0].0.iter().map(String::as_str).collect();
        assert_eq!(first, ["addr", "add", "203.0.113.2/24", "dev", "eth1"]);
    }
}
