//! Plugging the amphora into networks (amphora API `/v0.1/plug/...`): find the interface a port
//! was attached as (by MAC, while still down), give it the VIP or fixed IPs, bring it up and
//! route replies from the VIP out of it (its own routing table). Takes typed, validated requests
//! (`api::plug_body` reads the HTTP bodies); runs the `ip` binary with argument vectors built
//! from those values; undoes partial work when a step fails.
//! Plugs are kept in `<state_dir>/plugs.json` and applied again when the agent starts.
//! Grouped by job: `addr` (prefixes and MACs), `plug` (requests and the record), `steps` (the
//! `ip` commands); this file finds interfaces, keeps the record and serializes plugs.

mod addr;
#[cfg(test)]
mod fixtures;
mod plug;
mod steps;

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{logs, store};

pub use addr::{Cidr, Mac};
pub use plug::{FixedIp, HostRoute, NetworkPlug, Plug, PlugRequest, VipHolder, VipPlug};
pub use steps::StepFailed;
use steps::{apply, reapply_steps, steps, undo};

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
    use super::fixtures::*;
    use super::*;

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
}
