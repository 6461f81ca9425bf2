//! The amphora's topology (amphora API `/v0.1/topology`): SINGLE, ACTIVE-STANDBY or
//! ACTIVE-ACTIVE, with role, HA address and shared secret, kept in `<state_dir>/topology.json`
//! (0600: the secret is never returned). A change that needs work (keepalived started, reloaded
//! or stopped, and settled) runs in the background; while it runs the amphora is in
//! TOPOLOGY-CHANGE and changing calls are refused.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::keepalived::Keepalived;
use crate::process::Action;
use crate::{logs, store, system};

/// How long a transition waits for keepalived to hold its addresses.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The amphora's part in its load balancer; stored and shown by the spec's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "SINGLE")]
    Single,
    #[serde(rename = "ACTIVE-STANDBY")]
    ActiveStandby,
    #[serde(rename = "ACTIVE-ACTIVE")]
    ActiveActive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "ACTIVE")]
    Active,
    #[serde(rename = "STANDBY")]
    Standby,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "SINGLE" => Some(Kind::Single),
            "ACTIVE-STANDBY" => Some(Kind::ActiveStandby),
            "ACTIVE-ACTIVE" => Some(Kind::ActiveActive),
            _ => None,
        }
    }
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ACTIVE" => Some(Role::Active),
            "STANDBY" => Some(Role::Standby),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub topology: Kind,
    pub role: Role,
    /// Empty when there is none (SINGLE), as stored and shown.
    pub ha_ip: String,
    secret: String,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            topology: Kind::Single,
            role: Role::Active,
            ha_ip: String::new(),
            secret: String::new(),
        }
    }
}

impl Topology {
    /// Whether this amphora is in an active role (a standby of an ACTIVE-STANDBY pair is not).
    pub fn is_active(&self) -> bool {
        !(self.topology == Kind::ActiveStandby && self.role == Role::Standby)
    }

    pub fn new(topology: Kind, role: Role, ha_ip: String, secret: String) -> Topology {
        Topology {
            topology,
            role,
            ha_ip,
            secret,
        }
    }
}

/// The addresses of a keepalived config's `virtual_ipaddress` blocks.
fn vips(conf: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in conf.lines() {
        let line = line.split(['#', '!']).next().unwrap_or("").trim();
        if line.starts_with("virtual_ipaddress") && line.ends_with('{') {
            inside = true;
        } else if inside && line.starts_with('}') {
            inside = false;
        } else if inside {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Ok(ip) = first.split('/').next().unwrap_or("").parse() {
                out.push(ip);
            }
        }
    }
    out
}

pub struct TopologyState {
    path: PathBuf,
    current: Mutex<Topology>,
    changing: Arc<AtomicBool>,
}

/// What a POST did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Recorded; nothing to do.
    Done,
    /// Recorded; work runs in the background.
    Started,
}

impl TopologyState {
    /// Loads `<state_dir>/topology.json` (missing: SINGLE). One that does not parse stops the
    /// agent rather than being replaced.
    pub fn open(state_dir: &Path) -> Result<TopologyState, String> {
        let path = state_dir.join("topology.json");
        let current = store::load_json(&path, "topology", Topology::default)?;
        Ok(TopologyState {
            path,
            current: Mutex::new(current),
            changing: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn get(&self) -> Topology {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn in_transition(&self) -> bool {
        self.changing.load(Ordering::SeqCst)
    }

    /// Records `next` and brings keepalived in line with it: ACTIVE-STANDBY runs the uploaded
    /// keepalived config, SINGLE runs none.
    pub fn set(&self, next: Topology, ka: &Arc<Keepalived>) -> io::Result<Option<Change>> {
        // One change at a time: a second one while this runs is refused (None -> 503).
        if self
            .changing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Ok(None);
        }
        let mut flag = Transition(self.changing.clone());
        let active = next.role == Role::Active;
        let work = match next.topology {
            Kind::ActiveStandby if ka.has_config() => Some(Action::Start),
            Kind::Single if ka.is_running() => Some(Action::Stop),
            _ => None,
        };
        {
            // File and memory change together.
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            let bytes = serde_json::to_vec(&next).map_err(io::Error::other)?;
            store::write_atomic(&self.path, &bytes, 0o600)?;
            *current = next;
        }
        let Some(action) = work else {
            return Ok(Some(Change::Done));
        };
        let ka = ka.clone();
        let flag_for_thread = Transition(flag.0.clone());
        let spawned = thread::Builder::new()
            .name("topology".into())
            .spawn(move || {
                // Cleared when this ends, however it ends.
                let _flag = flag_for_thread;
                match ka.act(action) {
                    Ok(what) => {
                        logs::info(&format!("topology change: keepalived {what:?}"));
                        if action == Action::Start && active {
                            settle(&ka);
                        }
                    }
                    Err(e) => logs::error(&format!("topology change failed: {e:?}")),
                }
            });
        match spawned {
            Ok(_) => {
                // The thread clears the flag now.
                flag.0 = Arc::new(AtomicBool::new(false));
                Ok(Some(Change::Started))
            }
            Err(e) => Err(e),
        }
    }
}

/// Clears the transition flag when dropped.
struct Transition(Arc<AtomicBool>);

impl Drop for Transition {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Waits (bounded) until the addresses keepalived should hold as MASTER are on this host.
fn settle(ka: &Keepalived) {
    let want = vips(&ka.config_text());
    let end = Instant::now() + SETTLE_TIMEOUT;
    while Instant::now() < end {
        if want.iter().all(|ip| system::interface_of(*ip).is_some()) {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    logs::warn("topology change: keepalived did not take its addresses in time");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vips_from_keepalived_config() {
        let conf = "vrrp_instance VI_1 {\n  virtual_ipaddress {\n    203.0.113.50/24 dev eth1\n    2001:db8::5\n  }\n  # virtual_ipaddress { 1.1.1.1 }\n}\n";
        assert_eq!(
            vips(conf),
            [
                "203.0.113.50".parse::<IpAddr>().unwrap(),
                "2001:db8::5".parse().unwrap()
            ]
        );
        assert!(vips("").is_empty());
    }
}
