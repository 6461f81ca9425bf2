//! The listeners (DESIGN sections 4 and 5): one HAProxy per listener, over its files. Grouped
//! by job: `store` (the files and the desired state), `proc` (one listener's HAProxy process),
//! `supervise` (running masters, recovery at start, restarts with back-off); this file is the
//! face the API uses and keeps changes serialized.

mod proc;
mod store;
mod supervise;

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::certs::{self, CertStore};
use crate::metrics::AGENT;
use crate::names::ListenerId;
use crate::pools::{self, ListenerType, Pool};
use crate::process::Action;

use proc::ListenerProc;
use store::{Desired, Store};

pub use store::Origin;
use supervise::Running;

/// What `haproxy -c` says of a good config.
const VALID: &str = "Configuration file is valid";
/// Longest a start or a reload may take to show a serving worker.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping HAProxy may take to finish its connections before harder signals.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum ListenerError {
    NotFound(ListenerId),
    /// HAProxy rejected the configuration; its own output.
    Invalid(String),
    /// The HAProxy binary could not be run.
    Unavailable(String),
    /// An action failed; HAProxy's own output.
    Failed(Action, String),
    Io(io::Error),
}

/// What a start, stop or reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// `check` is `haproxy -c`'s verdict line.
    Started {
        pid: u32,
        check: String,
    },
    AlreadyRunning {
        pid: u32,
    },
    Stopped,
    NotRunning,
    Reloaded {
        worker: u32,
        check: String,
    },
}

/// What became of a certificate handed to the running HAProxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveCert {
    Applied,
    /// Stored, but the running HAProxy refused it (its words): a reload applies it.
    Refused(String),
}

impl From<io::Error> for ListenerError {
    fn from(e: io::Error) -> Self {
        ListenerError::Io(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "ACTIVE")]
    Active,
    #[serde(rename = "STOPPED")]
    Stopped,
    #[serde(rename = "ERROR")]
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub status: Status,
    pub uuid: String,
    #[serde(rename = "type")]
    pub kind: ListenerType,
}

/// This amphora's name in the `peers` sections of Octavia's configs (HAProxy's `-L`), as
/// Octavia computes it: SHA-1 of the amphora id in base64 with `_` and `-` for `+` and `/`,
/// unpadded, a leading `-` made `x` (HAProxy would read it as an option).
pub fn peer_name(amphora_id: &str) -> String {
    use base64::Engine;
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        amphora_id.as_bytes(),
    );
    let text: String = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(digest.as_ref())
        .chars()
        .map(|c| match c {
            '+' => '_',
            '/' => '-',
            c => c,
        })
        .collect();
    match text.strip_prefix('-') {
        Some(rest) => format!("x{rest}"),
        None => text,
    }
}

/// VRRP's health check (`lbagent --vrrp-check`): every listener meant to run answers on its
/// stats socket within `timeout`. Ok with how many answered; Err names the first that did not,
/// or says no listener has a config (an amphora serving nothing must not hold the VIP, as
/// Octavia's agent has it; listeners stopped through the API are not probed, as there).
pub fn probe_all(state_dir: &Path, timeout: Duration) -> Result<usize, String> {
    let store = Store::new(state_dir);
    let ids = store
        .ids()
        .map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let configured: Vec<&ListenerId> = ids.iter().filter(|id| store.has_config(id)).collect();
    if configured.is_empty() {
        return Err("no listener is configured".into());
    }
    let mut answered = 0;
    for id in configured.into_iter().filter(|id| store.should_run(id)) {
        proc::probe(&store.paths(id), timeout).map_err(|e| format!("listener {id}: {e}"))?;
        answered += 1;
    }
    Ok(answered)
}

pub struct Listeners {
    store: Store,
    haproxy: PathBuf,
    /// This host's peer name (`-L`), from the amphora id.
    peer: Option<String>,
    certs: CertStore,
    /// Serializes changes (uploads, actions, supervision), so they never interleave.
    ops: Mutex<()>,
    running: Mutex<HashMap<ListenerId, Running>>,
    /// md5 of the config bytes that last passed `haproxy -c`, per listener.
    checked: Mutex<HashMap<ListenerId, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Listeners {
    pub fn new(
        state_dir: &Path,
        cert_dir: &Path,
        haproxy: &Path,
        amphora_id: Option<&str>,
    ) -> Self {
        Listeners {
            store: Store::new(state_dir),
            haproxy: haproxy.to_path_buf(),
            peer: amphora_id.map(peer_name),
            certs: CertStore::new(cert_dir),
            ops: Mutex::new(()),
            running: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
        }
    }

    fn proc(&self, id: &ListenerId) -> ListenerProc<'_> {
        ListenerProc::new(
            &self.haproxy,
            self.peer.as_deref(),
            self.store.state_dir(),
            &self.store.dir(id),
        )
    }

    /// Runs `f` (a certificate change) serialized with every other change to listeners, so it
    /// cannot interleave with a delete.
    pub fn locked<T>(&self, f: impl FnOnce(&CertStore) -> T) -> T {
        let _g = lock(&self.ops);
        f(&self.certs)
    }

    /// A listener exists when any file of it exists.
    pub fn exists(&self, id: &ListenerId) -> bool {
        self.store.dir(id).exists() || self.certs.dir(id).exists()
    }

    /// Every listener with a state directory, sorted.
    pub fn list_ids(&self) -> io::Result<Vec<ListenerId>> {
        self.store.ids()
    }

    /// Every listener with any file (state or certificates): the legacy API's instances.
    pub fn instance_ids(&self) -> io::Result<Vec<ListenerId>> {
        let mut ids = self.store.ids()?;
        ids.extend(store::ids_in(self.certs.root())?);
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Checks `config` with `haproxy -c` and, if valid, makes it the listener's config (a
    /// running HAProxy keeps its config until reloaded). On failure the live config is
    /// untouched, and a listener that did not exist before does not exist after.
    pub fn upload(
        &self,
        id: &ListenerId,
        config: &[u8],
        origin: Origin,
    ) -> Result<String, ListenerError> {
        let _g = lock(&self.ops);
        // Only the state directory counts: certificates alone do not make a config.
        let existed = self.store.make(id)?;
        let result = self
            .check_and_install(id, config)
            .and_then(|out| Ok(self.store.set_origin(id, origin).map(|_| out)?));
        if result.is_err() && !existed {
            let _ = self.store.remove(id);
        }
        result
    }

    fn check_and_install(&self, id: &ListenerId, config: &[u8]) -> Result<String, ListenerError> {
        let p = self.proc(id);
        self.store.write_agent_cfg(id)?;
        let candidate = self.store.dir(id).join("haproxy.cfg.new");
        crate::store::write_atomic(&candidate, config, 0o640)?;
        let checked = p.check(&candidate);
        if checked.is_err() {
            let _ = std::fs::remove_file(&candidate);
        }
        let out = checked?;
        crate::store::rename_durable(&candidate, &p.paths.cfg)?;
        lock(&self.checked).insert(id.clone(), certs::md5_hex(config));
        Ok(out)
    }

    /// `haproxy -c` on the live config, unless these very bytes already passed it since the
    /// agent started (an upload checks them; starting right after need not check again).
    fn check_live(&self, id: &ListenerId) -> Result<String, ListenerError> {
        let p = self.proc(id);
        self.store.write_agent_cfg(id)?;
        let sum = certs::md5_hex(&self.store.config(id)?);
        if lock(&self.checked).get(id) == Some(&sum) {
            return Ok(VALID.to_string());
        }
        let out = p.check(&p.paths.cfg)?;
        lock(&self.checked).insert(id.clone(), sum);
        Ok(out)
    }

    /// The stored config, byte for byte.
    pub fn config(&self, id: &ListenerId) -> Result<Vec<u8>, ListenerError> {
        match self.store.config(id) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ListenerError::NotFound(id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// start / stop / reload.
    pub fn act(&self, id: &ListenerId, action: Action) -> Result<Ran, ListenerError> {
        let _g = lock(&self.ops);
        if !self.store.has_config(id) {
            return Err(ListenerError::NotFound(id.clone()));
        }
        self.adopt_untracked(id);
        let ran = match (action, self.running_pid(id)) {
            (Action::Start, Some(pid)) => Ok(Ran::AlreadyRunning { pid }),
            (Action::Start, None) | (Action::Reload, None) => self.start_locked(id, action),
            (Action::Stop, None) => {
                self.store.set_desired(id, Desired::Stopped)?;
                lock(&self.running).remove(id);
                Ok(Ran::NotRunning)
            }
            (Action::Stop, Some(_)) => {
                self.store.set_desired(id, Desired::Stopped)?;
                self.stop_locked(id);
                Ok(Ran::Stopped)
            }
            (Action::Reload, Some(_)) => self.reload_locked(id),
        };
        AGENT.listener_action(action.as_str(), ran.is_ok());
        ran
    }

    /// When the listener's running HAProxy serves `file`, hands it the new certificate without
    /// a reload. None when there was nothing to update.
    pub fn apply_cert_live(&self, id: &ListenerId, file: &Path, pem: &[u8]) -> Option<LiveCert> {
        let _g = lock(&self.ops);
        self.running_pid(id)?;
        self.proc(id).update_cert(file, pem)
    }

    /// Reloads a running listener (so it reads new certificate files); None if not running.
    pub fn reload_if_running(&self, id: &ListenerId) -> Result<Option<Ran>, ListenerError> {
        let _g = lock(&self.ops);
        if self.running_pid(id).is_none() {
            return Ok(None);
        }
        let ran = self.reload_locked(id);
        AGENT.listener_action(Action::Reload.as_str(), ran.is_ok());
        ran.map(Some)
    }

    fn start_locked(&self, id: &ListenerId, action: Action) -> Result<Ran, ListenerError> {
        let checked = self.check_live(id).map_err(|e| match e {
            ListenerError::Invalid(out) => ListenerError::Failed(action, out),
            other => other,
        })?;
        self.store.set_desired(id, Desired::Started)?;
        let master = self
            .proc(id)
            .start(READY_TIMEOUT)
            .map_err(|out| ListenerError::Failed(action, out))?;
        let pid = master.pid();
        self.store.remember_good(id);
        self.track(id.clone(), master);
        Ok(Ran::Started {
            pid,
            check: summary_line(&checked).to_string(),
        })
    }

    fn stop_locked(&self, id: &ListenerId) {
        let entry = lock(&self.running).remove(id);
        if let Some(mut m) = entry.and_then(|r| r.master) {
            proc::stop(&mut m, STOP_GRACE);
        }
    }

    /// A reload HAProxy refuses leaves the old workers serving and puts the last good config
    /// back in place.
    fn reload_locked(&self, id: &ListenerId) -> Result<Ran, ListenerError> {
        let checked = match self.check_live(id) {
            Ok(out) => out,
            Err(ListenerError::Invalid(out)) => {
                self.store.restore_good(id);
                return Err(ListenerError::Failed(Action::Reload, out));
            }
            Err(e) => return Err(e),
        };
        match self.proc(id).reload(READY_TIMEOUT) {
            Ok(worker) => {
                self.store.remember_good(id);
                Ok(Ran::Reloaded {
                    worker,
                    check: summary_line(&checked).to_string(),
                })
            }
            Err(out) => {
                self.store.restore_good(id);
                Err(ListenerError::Failed(Action::Reload, out))
            }
        }
    }

    /// Stops its HAProxy and removes every file of a listener: state, run dir, certificates.
    /// Returns whether its HAProxy was running.
    pub fn delete(&self, id: &ListenerId) -> Result<bool, ListenerError> {
        let _g = lock(&self.ops);
        if !self.exists(id) {
            return Err(ListenerError::NotFound(id.clone()));
        }
        let stopped = self.stop_and_remove_state(id)?;
        self.certs.delete_all(id)?;
        Ok(stopped)
    }

    /// Stops its HAProxy and removes its config and state, keeping its certificates (the
    /// legacy `DELETE /instances/<id>/haproxy`).
    pub fn delete_config(&self, id: &ListenerId) -> Result<bool, ListenerError> {
        let _g = lock(&self.ops);
        if !self.store.has_config(id) {
            return Err(ListenerError::NotFound(id.clone()));
        }
        self.stop_and_remove_state(id)
    }

    fn stop_and_remove_state(&self, id: &ListenerId) -> Result<bool, ListenerError> {
        let mut was_running = self.running_pid(id).is_some();
        self.stop_locked(id);
        // An adopted or unknown master for this listener goes too.
        if let Some(mut m) = self.proc(id).adopt() {
            proc::stop(&mut m, STOP_GRACE);
            was_running = true;
        }
        self.store.remove(id)?;
        lock(&self.checked).remove(id);
        Ok(was_running)
    }

    /// ACTIVE (running, socket answers), STOPPED (not meant to run), ERROR (meant to run, but
    /// its HAProxy is gone or does not answer).
    pub fn status(&self, id: &ListenerId) -> Status {
        let answers = self.running_pid(id).is_some() && self.proc(id).answers();
        match (answers, self.store.should_run(id)) {
            (true, _) => Status::Active,
            (false, true) => Status::Error,
            (false, false) => Status::Stopped,
        }
    }

    pub fn summary(&self, id: &ListenerId) -> Summary {
        let cfg = self.store.config(id).unwrap_or_default();
        Summary {
            status: self.status(id),
            uuid: id.to_string(),
            kind: pools::listener_type(&String::from_utf8_lossy(&cfg)),
        }
    }

    /// `show stat` of every running load balancer uploaded through Octavia's API 1.0, each
    /// read into `buf` and handed to `each` as HAProxy replied (bytes: a reader checks only
    /// the fields it uses as text).
    pub fn octavia_stats(&self, buf: &mut Vec<u8>, each: &mut dyn FnMut(&[u8])) {
        for id in self.store.ids().unwrap_or_default() {
            if self.store.origin(&id) != Origin::Octavia || self.running_pid(&id).is_none() {
                continue;
            }
            if self.proc(&id).stats_into(buf) {
                each(buf);
            }
        }
    }

    /// Each listener whose HAProxy runs or should: its `show info` and `show stat` replies,
    /// None where it did not answer.
    pub fn figures(&self) -> Vec<(ListenerId, Option<String>, Option<String>)> {
        let ids = self.store.ids().unwrap_or_default();
        ids.into_iter()
            .filter(|id| self.store.should_run(id) || self.running_pid(id).is_some())
            .map(|id| {
                let (info, stat) = self.proc(&id).figures();
                (id, info, stat)
            })
            .collect()
    }

    /// Pools and members from the listener's own stats socket; empty when it is not running.
    pub fn pools(&self, id: &ListenerId) -> Vec<Pool> {
        if self.running_pid(id).is_none() {
            return Vec::new();
        }
        self.proc(id).pools()
    }
}

/// `haproxy -c`'s verdict line ("Configuration file is valid"), without its notices.
fn summary_line(check_output: &str) -> &str {
    check_output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or(VALID, str::trim)
}

#[cfg(test)]
mod tests {
    use super::peer_name;

    /// Figures from Octavia 19.0.0's own `base64_sha1_string(...).rstrip('=')`.
    #[test]
    fn peer_names_as_octavia_computes_them() {
        assert_eq!(
            peer_name("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"),
            "XP1OSBmSNGclyuMSJbQNK23nd7c"
        );
        // Its hash starts with `-`.
        assert_eq!(
            peer_name("00000000-0000-0000-0000-000000000064"),
            "xC19DVJPYsH2CtfDhTe91ykairA"
        );
    }
}
