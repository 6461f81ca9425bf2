//! Plugging the amphora into networks (amphora API `/v0.1/plug/...`): find the interface a port
//! was attached as (by MAC, while still down), give it the VIP or fixed IPs, bring it up and
//! route replies from the VIP out of it (its own routing table). Takes typed, validated requests
//! (`api::plug_body` reads the HTTP bodies); runs the `ip` binary with argument vectors built
//! from those values; undoes partial work when a step fails.
//! Plugs are kept in `<state_dir>/plugs.json` and applied again when the agent starts.
//! Grouped by job: `addr` (prefixes and MACs), `plug` (requests and the record), `steps` (the
//! `ip` commands); this file finds interfaces, keeps the record and serializes plugs.

mod addr;
mod current;
#[cfg(test)]
mod fixtures;
mod plug;
mod steps;

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{logs, netns, store};

pub use addr::{Cidr, Mac};
pub use plug::{ExtraVip, FixedIp, HostRoute, NetworkPlug, Plug, PlugRequest, VipHolder, VipPlug};
pub use steps::StepFailed;
use steps::{apply, reapply_steps, reconcile, reconcile_ips, steps, undo, Side};

/// Routing tables for plugged VIPs start here (one per plug).
const TABLE_BASE: u32 = 100;
const TABLE_END: u32 = 253;

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

/// What a plug did, and on which interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plugged {
    New(String),
    /// A member port plugged before, brought to new fixed IPs.
    Updated(String),
}

/// Brings a port's fixed IPs to the plug's: what it holds is read, then changed where it
/// differs (a VIP port's own addresses are left alone).
fn converge(p: &Plug, dev: &str) -> Result<(), StepFailed> {
    let have = current::read(dev)?;
    let steps = match p {
        Plug::Network(n) => reconcile(n, &have, dev),
        Plug::Vip { plug, .. } => {
            reconcile_ips(&plug.fixed_ips, plug.mtu, &plug.managed(), &have, dev)
        }
    };
    apply(&steps)
}

/// The VIP port `old` with the fixed IPs of `v` (a `plug/network` with `vip_net_info`); None
/// when `v` names another VIP, which is not re-plugged here. The rest of the VIP plug stays
/// as plugged: Octavia sends `additional_vips` empty there.
fn vip_port(old: &Plug, v: VipPlug) -> Option<Plug> {
    let Plug::Vip {
        plug,
        table,
        extra_tables,
        holder,
    } = old
    else {
        return None;
    };
    if v.vip != plug.vip || v.subnet != plug.subnet {
        return None;
    }
    let mut plug = plug.clone();
    plug.fixed_ips = v.fixed_ips;
    Some(Plug::Vip {
        plug,
        table: *table,
        extra_tables: extra_tables.clone(),
        holder: *holder,
    })
}

/// A port's interface as found: its name, whether it is up, and whether it is still beside
/// the agent though ports belong in the tenant namespace.
struct Port {
    dev: String,
    up: bool,
    outside: bool,
}

impl Port {
    /// Moves it into the tenant namespace if it is not there yet; its name.
    fn bring_in(&self) -> Result<String, PlugError> {
        if self.outside {
            netns::move_in(&self.dev).map_err(|output| {
                PlugError::Failed(StepFailed {
                    argv: vec!["link".into(), "set".into(), "dev".into(), self.dev.clone()],
                    output,
                })
            })?;
        }
        Ok(self.dev.clone())
    }

    /// Undoes `bring_in` (a plug that failed).
    fn send_back(&self) {
        if self.outside {
            if let Err(e) = netns::move_out(&self.dev) {
                logs::error(&format!("{}: {e}", self.dev));
            }
        }
    }
}

/// The port with `mac`: in the tenant namespace, or beside the agent.
fn find_port(mac: &Mac) -> Option<Port> {
    if let Some((dev, up)) = netns::link_by_mac(mac.as_str()) {
        return Some(Port {
            dev,
            up,
            outside: false,
        });
    }
    let (dev, up) = interface_by_mac(mac)?;
    Some(Port {
        dev,
        up,
        outside: netns::tenant().is_some(),
    })
}

fn side() -> Side {
    match netns::tenant() {
        Some(_) => Side::Tenant,
        None => Side::Agent,
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

/// The `n` lowest routing tables no plug uses. Below 253: 253-255 are the kernel's default,
/// main and local tables.
fn free_tables(list: &[Plug], n: usize) -> Result<Vec<u32>, PlugError> {
    let used: Vec<u32> = list.iter().flat_map(Plug::tables).collect();
    let free: Vec<u32> = (TABLE_BASE..TABLE_END)
        .filter(|t| !used.contains(t))
        .take(n)
        .collect();
    if free.len() < n {
        return Err(PlugError::NoFreeTable);
    }
    Ok(free)
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

    /// Plugs a port: finds its interface (down), applies, records. A member port plugged
    /// already is brought to the new fixed IPs instead. `holder` says who puts a VIP on it.
    pub fn plug(&self, req: PlugRequest, holder: VipHolder) -> Result<Plugged, PlugError> {
        let mut list = self.lock();
        let mac = req.mac().clone();
        if let Some(i) = list.iter().position(|q| q.mac() == &mac) {
            let next = match (&list[i], req) {
                (Plug::Network(_), PlugRequest::Network(n)) => Plug::Network(n),
                (Plug::Network(_), PlugRequest::VipPort(v)) => Plug::Network(v.into_network()),
                (old @ Plug::Vip { .. }, PlugRequest::VipPort(v)) => {
                    vip_port(old, v).ok_or(PlugError::AlreadyPlugged(mac))?
                }
                _ => return Err(PlugError::AlreadyPlugged(mac)),
            };
            return self.replug(&mut list, i, next);
        }
        let port = find_port(&mac).ok_or(PlugError::NoInterface)?;
        if port.up {
            return Err(PlugError::NoInterface);
        }
        let p = match req {
            PlugRequest::Vip(plug) => {
                if holder == VipHolder::Keepalived && plug.vrrp_ip.is_none() {
                    return Err(PlugError::NoVrrpIp);
                }
                // A table for each VIP the plug holds; keepalived holds all but vrrp_ip's.
                let n = match holder {
                    VipHolder::Plug => 1 + plug.additional.len(),
                    VipHolder::Keepalived => 1,
                };
                let mut tables = free_tables(&list, n)?;
                let table = tables.remove(0);
                Plug::Vip {
                    plug,
                    table,
                    extra_tables: tables,
                    holder,
                }
            }
            PlugRequest::Network(n) => Plug::Network(n),
            // A first plug through plug/network is a member port, VIP information or not,
            // as with Octavia's agent.
            PlugRequest::VipPort(v) => Plug::Network(v.into_network()),
        };
        let dev = port.bring_in()?;
        let done = steps(&p, &dev, side());
        let recorded = apply(&done).map_err(PlugError::Failed).and_then(|_| {
            let mut next = list.clone();
            next.push(p);
            // Unrecorded, it would not come back after a reboot: better not plugged at all.
            self.record(&next).map(|_| next).map_err(|e| {
                undo(&done);
                PlugError::Io(e)
            })
        });
        match recorded {
            Ok(next) => {
                *list = next;
                Ok(Plugged::New(dev))
            }
            Err(e) => {
                port.send_back();
                Err(e)
            }
        }
    }

    /// Writes the plug list, atomically.
    fn record(&self, list: &[Plug]) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(list).map_err(io::Error::other)?;
        store::write_atomic(&self.path, &bytes, 0o640)
    }

    /// A port plugged again (Octavia sends the whole new fixed IP list after a subnet is added
    /// or removed): the record takes the new fixed IPs first, then the interface is brought to
    /// them. A crash in between is finished when the agent starts, which brings every port's
    /// fixed IPs to its record; a step that fails puts record and interface back as they were.
    fn replug(&self, list: &mut Vec<Plug>, i: usize, p: Plug) -> Result<Plugged, PlugError> {
        let dev = find_port(p.mac())
            .ok_or(PlugError::NoInterface)?
            .bring_in()?;
        let mut next = list.clone();
        next[i] = p;
        self.record(&next).map_err(PlugError::Io)?;
        if let Err(e) = converge(&next[i], &dev) {
            let back = self.record(list).map_err(|e| e.to_string());
            if let Err(why) = back.and_then(|_| converge(&list[i], &dev).map_err(|e| e.to_string()))
            {
                logs::error(&format!(
                    "re-plug of {} on {dev}: not put back: {why}",
                    list[i].mac()
                ));
            }
            return Err(PlugError::Failed(e));
        }
        *list = next;
        Ok(Plugged::Updated(dev))
    }

    /// Whether `ip` is a VIP a plug put on its interface itself (not left to keepalived).
    pub fn holds_static(&self, ip: IpAddr) -> bool {
        self.lock().iter().any(|p| match p {
            Plug::Vip {
                plug,
                holder: VipHolder::Plug,
                ..
            } => plug.vip == ip || plug.additional.iter().any(|x| x.ip == ip),
            _ => false,
        })
    }

    /// At agent start: every recorded plug is applied again where its interface is found.
    pub fn reapply(&self) {
        for p in self.lock().iter() {
            let mac = p.mac();
            // After a reboot the port is back beside the agent: into the tenant namespace again.
            match find_port(mac).map(|port| port.bring_in()) {
                Some(Err(e)) => logs::error(&format!("plug {mac}: {e:?}")),
                Some(Ok(dev)) => {
                    let mut failed = match p {
                        Plug::Network(_) => Vec::new(),
                        Plug::Vip { .. } => reapply_steps(&steps(p, &dev, side())),
                    };
                    // A re-plug a crash cut short is finished here.
                    failed.extend(converge(p, &dev).err());
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
    use super::fixtures::*;
    use super::*;

    #[test]
    fn tables_are_taken_lowest_first() {
        let vip = |table, extra_tables| Plug::Vip {
            plug: vip_plug(),
            table,
            extra_tables,
            holder: VipHolder::Plug,
        };
        assert_eq!(free_tables(&[], 2).unwrap(), [100, 101]);
        let some = [
            vip(100, vec![103]),
            Plug::Network(network_plug()),
            vip(102, Vec::new()),
        ];
        assert_eq!(free_tables(&some, 3).unwrap(), [101, 104, 105]);
        let all: Vec<Plug> = (TABLE_BASE..TABLE_END)
            .map(|t| vip(t, Vec::new()))
            .collect();
        assert!(matches!(free_tables(&all, 1), Err(PlugError::NoFreeTable)));
        assert!(matches!(
            free_tables(&all[1..], 2),
            Err(PlugError::NoFreeTable)
        ));
    }
}
