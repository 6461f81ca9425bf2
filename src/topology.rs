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

use md5::Digest;
use serde::{Deserialize, Serialize};

use crate::keepalived::{Keepalived, KeepalivedError};
use crate::process::Action;
use crate::{logs, netns, store, vrrp_check};

/// How long a transition waits for keepalived to hold its addresses.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

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
    state_dir: PathBuf,
    current: Mutex<Topology>,
    changing: Arc<AtomicBool>,
    /// Why the last change's background work failed, until the next change.
    failed: Arc<Mutex<Option<String>>>,
}

/// What a POST did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Recorded; nothing to do.
    Done,
    /// Recorded; work runs in the background.
    Started,
}

#[derive(Debug)]
pub enum TopologyError {
    /// Another change is under way.
    InTransition,
    /// This host cannot enact it; why.
    Refused(String),
    /// keepalived refused the config the agent wrote for it.
    Keepalived(KeepalivedError),
    Store(io::Error),
}

/// Where the last change stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Changing,
    Failed(String),
}

impl TopologyState {
    /// Loads `<state_dir>/topology.json` (missing: SINGLE). One that does not parse stops the
    /// agent rather than being replaced.
    pub fn open(state_dir: &Path) -> Result<TopologyState, String> {
        let path = state_dir.join("topology.json");
        let current = store::load_json(&path, "topology", Topology::default)?;
        Ok(TopologyState {
            path,
            state_dir: state_dir.to_path_buf(),
            current: Mutex::new(current),
            changing: Arc::new(AtomicBool::new(false)),
            failed: Arc::new(Mutex::new(None)),
        })
    }

    /// The topology as recorded.
    pub fn get(&self) -> Topology {
        lock(&self.current).clone()
    }

    /// The topology with the role keepalived actually plays: in ACTIVE-STANDBY with keepalived
    /// running, ACTIVE exactly while this host holds its addresses (a failover changes it).
    pub fn live(&self, ka: &Keepalived) -> Topology {
        let mut t = self.get();
        if t.topology == Kind::ActiveStandby && ka.is_running() {
            let held = vips(&ka.config_text());
            if !held.is_empty() {
                let holds = held.iter().any(|ip| netns::interface_of(*ip).is_some());
                t.role = if holds { Role::Active } else { Role::Standby };
            }
        }
        t
    }

    pub fn in_transition(&self) -> bool {
        self.changing.load(Ordering::SeqCst)
    }

    pub fn status(&self) -> Status {
        if self.in_transition() {
            return Status::Changing;
        }
        match lock(&self.failed).clone() {
            Some(why) => Status::Failed(why),
            None => Status::Ok,
        }
    }

    /// Records `next` and brings keepalived in line with it: ACTIVE-STANDBY runs the uploaded
    /// keepalived config, or one the agent writes from `ha_ip` and `secret`; SINGLE runs none.
    /// `static_vip` says whether an address is a VIP the plug holds (keepalived cannot own it).
    pub fn set(
        &self,
        next: Topology,
        ka: &Arc<Keepalived>,
        static_vip: &dyn Fn(IpAddr) -> bool,
    ) -> Result<Change, TopologyError> {
        // One change at a time: a second one while this runs is refused (503).
        if self
            .changing
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(TopologyError::InTransition);
        }
        let flag = Transition(self.changing.clone());
        let work = self.prepare(&next, ka, static_vip)?;
        {
            // File and memory change together.
            let mut current = lock(&self.current);
            let bytes = serde_json::to_vec(&next).map_err(io::Error::other);
            bytes
                .and_then(|b| store::write_atomic(&self.path, &b, 0o600))
                .map_err(TopologyError::Store)?;
            *current = next.clone();
        }
        *lock(&self.failed) = None;
        let Some(action) = work else {
            return Ok(Change::Done);
        };
        let (ka, failed, state_dir) = (ka.clone(), self.failed.clone(), self.state_dir.clone());
        let settle_first = action == Action::Start && next.role == Role::Active;
        thread::Builder::new()
            .name("topology".into())
            .spawn(move || {
                // Cleared when this ends, however it ends.
                let _flag = flag;
                let outcome = ka
                    .act(action)
                    .map_err(|e| format!("keepalived {action:?} failed: {e:?}"))
                    .and_then(|what| {
                        logs::info(&format!("topology change: keepalived {what:?}"));
                        if action == Action::Stop {
                            ka.remove_generated().map_err(|e| format!("{e:?}"))?;
                        }
                        if settle_first {
                            settle(&ka, &state_dir)?;
                        }
                        Ok(())
                    });
                if let Err(why) = outcome {
                    logs::error(&format!("topology change failed: {why}"));
                    *lock(&failed) = Some(why);
                }
            })
            .map_err(TopologyError::Store)?;
        Ok(Change::Started)
    }

    /// What keepalived must do for `next`, after checking that this host can do it (and
    /// writing the keepalived config the agent makes for it).
    fn prepare(
        &self,
        next: &Topology,
        ka: &Keepalived,
        static_vip: &dyn Fn(IpAddr) -> bool,
    ) -> Result<Option<Action>, TopologyError> {
        match next.topology {
            Kind::ActiveStandby if ka.has_config() && !ka.is_generated() => Ok(Some(Action::Start)),
            Kind::ActiveStandby => {
                let ha_ip = next.ha_ip.parse().map_err(|_| {
                    TopologyError::Refused(format!("Invalid ha_ip: {:?}", next.ha_ip))
                })?;
                if static_vip(ha_ip) || (!ka.is_running() && netns::interface_of(ha_ip).is_some()) {
                    return Err(TopologyError::Refused(format!(
                        "ha_ip {ha_ip} is already a static address of this host; keepalived must own it"
                    )));
                }
                let on = netns::interface_on_network_of(ha_ip).ok_or_else(|| {
                    TopologyError::Refused(format!(
                        "no interface has an address on the network of ha_ip {ha_ip}: plug one first"
                    ))
                })?;
                let check = vrrp_check::script_path(&self.state_dir);
                let text = vrrp_config(next, ha_ip, &on.interface, &check)
                    .map_err(TopologyError::Refused)?;
                ka.install_generated(&text)
                    .map_err(TopologyError::Keepalived)?;
                Ok(Some(Action::Start))
            }
            Kind::ActiveActive => Err(TopologyError::Refused(
                "ACTIVE-ACTIVE is not supported: nothing on this host can enact it".into(),
            )),
            // The config the agent wrote goes with the topology (after keepalived stops).
            Kind::Single if ka.is_running() => Ok(Some(Action::Stop)),
            Kind::Single => ka
                .remove_generated()
                .map(|_| None)
                .map_err(TopologyError::Keepalived),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Clears the transition flag when dropped.
struct Transition(Arc<AtomicBool>);

impl Drop for Transition {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Waits (bounded) until the addresses keepalived should hold as MASTER are on this host; if
/// they are not, says why as far as the agent can tell.
fn settle(ka: &Keepalived, state_dir: &Path) -> Result<(), String> {
    let want = vips(&ka.config_text());
    let end = Instant::now() + SETTLE_TIMEOUT;
    while Instant::now() < end {
        if want.iter().all(|ip| netns::interface_of(*ip).is_some()) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    let why = match vrrp_check::probe(state_dir) {
        Err(e) => format!(": the VRRP health check fails: {e}"),
        Ok(_) => String::new(),
    };
    let want: Vec<String> = want.iter().map(IpAddr::to_string).collect();
    Err(format!(
        "keepalived did not take {} within {SETTLE_TIMEOUT:?}{why}",
        want.join(", ")
    ))
}

/// The characters a secret may hold: it is written into keepalived's config.
fn secret_ok(secret: &str) -> bool {
    !secret.is_empty()
        && secret
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'{}#!\\".contains(c))
}

/// The keepalived config for the v0.1 ACTIVE-STANDBY topology: one VRRP instance on
/// `interface` holding `ha_ip`, authenticated by the secret, ACTIVE preferred (it takes the
/// address back when healthy again), tracking the check script (a dead or hung HAProxy fails
/// over). Both members derive the same virtual router id from `ha_ip` and the secret.
fn vrrp_config(
    t: &Topology,
    ha_ip: IpAddr,
    interface: &str,
    check: &Path,
) -> Result<String, String> {
    if ha_ip.is_ipv6() {
        return Err(format!(
            "ha_ip {ha_ip}: the secret authenticates VRRP version 2, which is IPv4 only; \
upload a keepalived config for IPv6"
        ));
    }
    if !secret_ok(&t.secret) {
        return Err(
            "the secret may hold only printable ASCII without spaces, quotes, braces, # or !"
                .into(),
        );
    }
    // VRRP's simple authentication carries 8 bytes.
    let pass: String = t.secret.chars().take(8).collect();
    let digest = md5::Md5::digest(format!("{ha_ip} {}", t.secret).as_bytes());
    let vrid = u16::from(digest[0]) % 255 + 1;
    let (state, priority) = match t.role {
        Role::Active => ("MASTER", 100),
        Role::Standby => ("BACKUP", 90),
    };
    Ok(format!(
        "vrrp_script check_script {{\n    script \"{}\"\n    interval 1\n    fall 2\n    rise 2\n}}\n\n\
vrrp_instance lbagent {{\n    state {state}\n    interface {interface}\n    virtual_router_id {vrid}\n\
    priority {priority}\n    advert_int 1\n    authentication {{\n        auth_type PASS\n\
        auth_pass {pass}\n    }}\n    virtual_ipaddress {{\n        {ha_ip}\n    }}\n\
    track_script {{\n        check_script\n    }}\n}}\n",
        check.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_written_for_ha_ip_and_secret() {
        let t = |role| {
            Topology::new(
                Kind::ActiveStandby,
                role,
                "203.0.113.50".into(),
                "b20e06cf1abcf29c708d".into(),
            )
        };
        let ip: IpAddr = "203.0.113.50".parse().unwrap();
        let check = Path::new("/var/lib/lbagent/vrrp/check_script.sh");
        let active = vrrp_config(&t(Role::Active), ip, "eth1", check).unwrap();
        let standby = vrrp_config(&t(Role::Standby), ip, "eth1", check).unwrap();
        for (text, state, priority) in [(&active, "MASTER", 100), (&standby, "BACKUP", 90)] {
            assert!(text.contains(&format!("state {state}\n")), "{text}");
            assert!(text.contains(&format!("priority {priority}\n")), "{text}");
            assert!(text.contains("interface eth1\n"));
            assert!(
                text.contains("auth_pass b20e06cf\n"),
                "VRRP carries 8 bytes"
            );
            assert!(text.contains("script \"/var/lib/lbagent/vrrp/check_script.sh\""));
            assert_eq!(vips(text), [ip]);
        }
        // Both members derive the same router id.
        let vrid = |text: &str| {
            text.lines()
                .find(|l| l.contains("virtual_router_id"))
                .map(str::to_string)
        };
        assert_eq!(vrid(&active), vrid(&standby));
        assert!(vrid(&active).is_some());

        let refused = |t: Topology, ip: &str| {
            vrrp_config(&t, ip.parse().unwrap(), "eth1", check).unwrap_err()
        };
        let with_secret =
            |s: &str| Topology::new(Kind::ActiveStandby, Role::Active, String::new(), s.into());
        assert!(refused(t(Role::Active), "2001:db8::5").contains("IPv4 only"));
        for bad in ["two words", "x\"y", "x}y", "x#y", "tab\there", "é"] {
            assert!(
                refused(with_secret(bad), "203.0.113.50").contains("secret"),
                "{bad}"
            );
        }
    }

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
