//! The listeners (DESIGN sections 4 and 5): one directory per listener holding its uploaded
//! haproxy.cfg (byte for byte), the last config that ran (`haproxy.cfg.lkg`), the generated
//! agent.cfg, its desired state and its run directory; and one HAProxy per listener, started,
//! stopped, reloaded and supervised here.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::certs::{self, remove_tree, CertStore};
use crate::haproxy::{self, CertFile, Command as HaCommand};
use crate::launcher::{self, Master, Paths};
use crate::names::ListenerId;
use crate::pools::{self, ListenerType, Pool};
use crate::process::Action;
use crate::{logs, process, store};

/// What `haproxy -c` says of a good config.
const VALID: &str = "Configuration file is valid";
/// Longest a `haproxy -c` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a start or a reload may take to show a serving worker.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping HAProxy may take to finish its connections before harder signals.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Restart back-off after crashes: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

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

/// The HAProxy of one listener that should run: its master while there is one, and the
/// record of failed (re)starts.
struct Running {
    master: Option<Master>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Supervision passes that found the master without workers.
    idle: u32,
}

impl Running {
    /// Should run, does not.
    fn down() -> Self {
        Running {
            master: None,
            failures: 0,
            retry_at: None,
            idle: 0,
        }
    }
}

pub struct Listeners {
    root: PathBuf,
    haproxy: PathBuf,
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
    pub fn new(state_dir: &Path, cert_dir: &Path, haproxy: &Path) -> Self {
        Listeners {
            root: state_dir.join("listeners"),
            haproxy: haproxy.to_path_buf(),
            certs: CertStore::new(cert_dir),
            ops: Mutex::new(()),
            running: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
        }
    }

    fn dir(&self, id: &ListenerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    fn paths(&self, id: &ListenerId) -> Paths {
        Paths::new(&self.dir(id))
    }

    /// Runs `f` (a certificate change) serialized with every other change to listeners, so it
    /// cannot interleave with a delete.
    pub fn locked<T>(&self, f: impl FnOnce(&CertStore) -> T) -> T {
        let _g = lock(&self.ops);
        f(&self.certs)
    }

    /// A listener exists when any file of it exists.
    pub fn exists(&self, id: &ListenerId) -> bool {
        self.dir(id).exists() || self.certs.dir(id).exists()
    }

    /// Every listener with a state directory, sorted.
    pub fn list_ids(&self) -> io::Result<Vec<ListenerId>> {
        ids_in(&self.root)
    }

    /// Every listener with any file (state or certificates): the legacy API's instances.
    pub fn instance_ids(&self) -> io::Result<Vec<ListenerId>> {
        let mut ids = ids_in(&self.root)?;
        ids.extend(ids_in(self.certs.root())?);
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// The generated global section: the agent's own admin socket for this listener.
    fn agent_cfg(&self, id: &ListenerId) -> String {
        // Relative: HAProxy runs in the listener's run directory (see launcher::Paths).
        format!(
            "# Generated by lbagent for listener {id}; not part of the uploaded config.\n\
global\n    stats socket unix@{} mode 600 level admin\n",
            launcher::STATS_SOCK
        )
    }

    /// `haproxy -c` on `cfg`: Ok(output) or Invalid(output). Without the agent's section, whose
    /// admin socket HAProxy counts as a listener: a config that would serve nothing (exit 2,
    /// "no listener") is refused in HAProxy's words.
    fn check(&self, cfg: &Path) -> Result<String, ListenerError> {
        let args = ["-c".as_ref(), "-f".as_ref(), cfg.as_os_str()];
        // In the run directory, where HAProxy runs: relative paths mean the same to both.
        let run = cfg.parent().map(|dir| dir.join("run"));
        let out = process::run(
            self.haproxy.as_os_str(),
            &args,
            run.as_deref(),
            CHECK_TIMEOUT,
        )
        .map_err(|e| ListenerError::Unavailable(format!("{}: {e}", self.haproxy.display())))?;
        if out.success {
            Ok(out.text)
        } else {
            Err(ListenerError::Invalid(out.text))
        }
    }

    /// Checks `config` with `haproxy -c` and, if valid, makes it the listener's config (a
    /// running HAProxy keeps its config until reloaded). On failure the live config is
    /// untouched, and a listener that did not exist before does not exist after.
    pub fn upload(&self, id: &ListenerId, config: &[u8]) -> Result<String, ListenerError> {
        let _g = lock(&self.ops);
        let dir = self.dir(id);
        // Only the state directory counts: certificates alone do not make a config.
        let existed = dir.exists();
        store::ensure_dir(&self.root, 0o750)?;
        store::ensure_dir(&dir, 0o750)?;
        store::ensure_dir(&dir.join("run"), 0o700)?;
        let result = self.check_and_install(id, &dir, config);
        if result.is_err() && !existed {
            let _ = remove_tree(&dir);
        }
        result
    }

    fn check_and_install(
        &self,
        id: &ListenerId,
        dir: &Path,
        config: &[u8],
    ) -> Result<String, ListenerError> {
        let p = self.paths(id);
        self.write_agent_cfg(id)?;
        let candidate = dir.join("haproxy.cfg.new");
        store::write_atomic(&candidate, config, 0o640)?;
        let checked = self.check(&candidate);
        if checked.is_err() {
            let _ = fs::remove_file(&candidate);
        }
        let out = checked?;
        store::rename_durable(&candidate, &p.cfg)?;
        lock(&self.checked).insert(id.clone(), certs::md5_hex(config));
        Ok(out)
    }

    /// `haproxy -c` on the live config, unless these very bytes already passed it since the
    /// agent started (an upload checks them; starting right after need not check again).
    fn check_live(&self, id: &ListenerId) -> Result<String, ListenerError> {
        let p = self.paths(id);
        self.write_agent_cfg(id)?;
        let sum = certs::md5_hex(&fs::read(&p.cfg)?);
        if lock(&self.checked).get(id) == Some(&sum) {
            return Ok(VALID.to_string());
        }
        let out = self.check(&p.cfg)?;
        lock(&self.checked).insert(id.clone(), sum);
        Ok(out)
    }

    /// Writes agent.cfg when it is missing or differs (it holds nothing that changes).
    fn write_agent_cfg(&self, id: &ListenerId) -> io::Result<()> {
        let p = self.paths(id);
        let want = self.agent_cfg(id);
        if fs::read(&p.agent_cfg).ok().as_deref() != Some(want.as_bytes()) {
            store::write_atomic(&p.agent_cfg, want.as_bytes(), 0o640)?;
        }
        Ok(())
    }

    /// The stored config, byte for byte.
    pub fn config(&self, id: &ListenerId) -> Result<Vec<u8>, ListenerError> {
        match fs::read(self.paths(id).cfg) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ListenerError::NotFound(id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn desired_path(&self, id: &ListenerId) -> PathBuf {
        self.dir(id).join("state.json")
    }

    fn should_run(&self, id: &ListenerId) -> bool {
        fs::read(self.desired_path(id))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["desired"] == "started")
    }

    fn set_desired(&self, id: &ListenerId, started: bool) -> io::Result<()> {
        let word = if started { "started" } else { "stopped" };
        let body = serde_json::json!({ "desired": word }).to_string();
        store::write_atomic(&self.desired_path(id), body.as_bytes(), 0o640)
    }

    /// Remembers a listener's (new) master, with a clean crash record.
    fn track(&self, id: ListenerId, master: Master) {
        lock(&self.running).insert(
            id,
            Running {
                master: Some(master),
                ..Running::down()
            },
        );
    }

    /// The pid of a listener's running master, reaping it if it died.
    pub fn running_pid(&self, id: &ListenerId) -> Option<u32> {
        let mut running = lock(&self.running);
        let m = running.get_mut(id)?.master.as_mut()?;
        m.alive().then(|| m.pid())
    }

    /// How many listeners' HAProxies run now.
    pub fn running_count(&self) -> usize {
        lock(&self.running)
            .values_mut()
            .filter_map(|r| r.master.as_mut())
            .filter_map(|m| m.alive().then_some(()))
            .count()
    }

    /// Takes over a master an earlier agent left running for this listener, if untracked.
    fn adopt_untracked(&self, id: &ListenerId) {
        if self.running_pid(id).is_some() {
            return;
        }
        if let Some(master) = launcher::adopt(&self.paths(id)) {
            logs::info(&format!(
                "listener {id}: adopted haproxy (pid {})",
                master.pid()
            ));
            self.track(id.clone(), master);
        }
    }

    /// start / stop / reload.
    pub fn act(&self, id: &ListenerId, action: Action) -> Result<Ran, ListenerError> {
        let _g = lock(&self.ops);
        if !self.paths(id).cfg.exists() {
            return Err(ListenerError::NotFound(id.clone()));
        }
        self.adopt_untracked(id);
        match (action, self.running_pid(id)) {
            (Action::Start, Some(pid)) => Ok(Ran::AlreadyRunning { pid }),
            (Action::Start, None) | (Action::Reload, None) => self.start_locked(id, action),
            (Action::Stop, None) => {
                self.set_desired(id, false)?;
                lock(&self.running).remove(id);
                Ok(Ran::NotRunning)
            }
            (Action::Stop, Some(_)) => {
                self.set_desired(id, false)?;
                self.stop_locked(id);
                Ok(Ran::Stopped)
            }
            (Action::Reload, Some(_)) => self.reload_locked(id),
        }
    }

    /// When the listener's running HAProxy serves `file`, hands it the new certificate without
    /// a reload (`set ssl cert` + `commit ssl cert`). None when there was nothing to update.
    pub fn apply_cert_live(&self, id: &ListenerId, file: &Path, pem: &[u8]) -> Option<LiveCert> {
        let _g = lock(&self.ops);
        self.running_pid(id)?;
        let cert = CertFile::parse(file)?;
        let rt = self.paths(id).stats_rt();
        let loaded = rt.raw(&HaCommand::ShowSslCert).ok()?;
        if !loaded.lines().any(|l| l.trim() == cert.to_string()) {
            return None;
        }
        let applied = rt
            .expect_reply(
                &HaCommand::SetSslCert(cert.clone(), haproxy::pem_payload(pem)),
                "Transaction",
            )
            .and_then(|_| rt.expect_reply(&HaCommand::CommitSslCert(cert.clone()), "Success!"));
        if applied.is_err() {
            // An open transaction would block the next update of this file.
            let _ = rt.raw(&HaCommand::AbortSslCert(cert));
        }
        Some(match applied {
            Ok(_) => LiveCert::Applied,
            Err(e) => LiveCert::Refused(e.to_string()),
        })
    }

    /// Reloads a running listener (so it reads new certificate files); None if not running.
    pub fn reload_if_running(&self, id: &ListenerId) -> Result<Option<Ran>, ListenerError> {
        let _g = lock(&self.ops);
        match self.running_pid(id) {
            Some(_) => self.reload_locked(id).map(Some),
            None => Ok(None),
        }
    }

    fn start_locked(&self, id: &ListenerId, action: Action) -> Result<Ran, ListenerError> {
        let p = self.paths(id);
        let checked = self.check_live(id).map_err(|e| match e {
            ListenerError::Invalid(out) => ListenerError::Failed(action, out),
            other => other,
        })?;
        self.set_desired(id, true)?;
        let master = launcher::start(&self.haproxy, &p, READY_TIMEOUT)
            .map_err(|out| ListenerError::Failed(action, out))?;
        let pid = master.pid();
        self.remember_good(id);
        self.track(id.clone(), master);
        Ok(Ran::Started {
            pid,
            check: summary_line(&checked).to_string(),
        })
    }

    fn stop_locked(&self, id: &ListenerId) {
        let entry = lock(&self.running).remove(id);
        if let Some(mut m) = entry.and_then(|r| r.master) {
            launcher::stop(&mut m, STOP_GRACE);
        }
    }

    fn reload_locked(&self, id: &ListenerId) -> Result<Ran, ListenerError> {
        let p = self.paths(id);
        let restore_last_good = || {
            if let Ok(good) = fs::read(self.lkg_path(id)) {
                let _ = store::write_atomic(&p.cfg, &good, 0o640);
            }
        };
        let checked = match self.check_live(id) {
            Ok(out) => out,
            Err(ListenerError::Invalid(out)) => {
                restore_last_good();
                return Err(ListenerError::Failed(Action::Reload, out));
            }
            Err(e) => return Err(e),
        };
        let saved = launcher::save_servers(&p);
        match launcher::reload(&p, READY_TIMEOUT) {
            Ok(worker) => {
                launcher::restore_servers(&p, &saved);
                self.remember_good(id);
                Ok(Ran::Reloaded {
                    worker,
                    check: summary_line(&checked).to_string(),
                })
            }
            Err(out) => {
                restore_last_good();
                Err(ListenerError::Failed(Action::Reload, out))
            }
        }
    }

    fn lkg_path(&self, id: &ListenerId) -> PathBuf {
        self.dir(id).join("haproxy.cfg.lkg")
    }

    /// Records the config that just started or reloaded as the last good one.
    fn remember_good(&self, id: &ListenerId) {
        let p = self.paths(id);
        match fs::read(&p.cfg) {
            Ok(cfg) => {
                if let Err(e) = store::write_atomic(&self.lkg_path(id), &cfg, 0o640) {
                    logs::warn(&format!(
                        "listener {id}: cannot keep the last good config: {e}"
                    ));
                }
            }
            Err(e) => logs::warn(&format!("listener {id}: cannot read its config: {e}")),
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
        if !self.paths(id).cfg.exists() {
            return Err(ListenerError::NotFound(id.clone()));
        }
        self.stop_and_remove_state(id)
    }

    fn stop_and_remove_state(&self, id: &ListenerId) -> Result<bool, ListenerError> {
        let mut was_running = self.running_pid(id).is_some();
        self.stop_locked(id);
        // An adopted or unknown master for this listener goes too.
        if let Some(mut m) = launcher::adopt(&self.paths(id)) {
            launcher::stop(&mut m, STOP_GRACE);
            was_running = true;
        }
        remove_tree(&self.dir(id))?;
        lock(&self.checked).remove(id);
        Ok(was_running)
    }

    /// ACTIVE (running, socket answers), STOPPED (not meant to run), ERROR (meant to run, but
    /// its HAProxy is gone or does not answer).
    pub fn status(&self, id: &ListenerId) -> Status {
        let answers = self.running_pid(id).is_some()
            && self.paths(id).stats_rt().raw(&HaCommand::ShowInfo).is_ok();
        match (answers, self.should_run(id)) {
            (true, _) => Status::Active,
            (false, true) => Status::Error,
            (false, false) => Status::Stopped,
        }
    }

    pub fn summary(&self, id: &ListenerId) -> Summary {
        let cfg = fs::read(self.paths(id).cfg).unwrap_or_default();
        Summary {
            status: self.status(id),
            uuid: id.to_string(),
            kind: pools::listener_type(&String::from_utf8_lossy(&cfg)),
        }
    }

    /// Pools and members from the listener's own stats socket; empty when it is not running.
    pub fn pools(&self, id: &ListenerId) -> Vec<Pool> {
        if self.running_pid(id).is_none() {
            return Vec::new();
        }
        self.paths(id)
            .stats_rt()
            .show_stat()
            .map(|rows| pools::pools(&rows))
            .unwrap_or_default()
    }

    /// At agent start, before requests are served: listeners that should run are adopted if
    /// their HAProxy still runs, started otherwise.
    pub fn recover(&self) {
        let ids = match self.list_ids() {
            Ok(ids) => ids,
            Err(e) => {
                logs::error(&format!("cannot list listeners: {e}"));
                return;
            }
        };
        for id in ids.into_iter().filter(|id| self.should_run(id)) {
            let _g = lock(&self.ops);
            self.adopt_untracked(&id);
            if self.running_pid(&id).is_some() {
                continue;
            }
            match self.start_locked(&id, Action::Start) {
                Ok(ran) => logs::info(&format!("listener {id}: started at agent start: {ran:?}")),
                // The supervisor tries again, with back-off.
                Err(e) => logs::error(&format!("listener {id}: cannot start: {e:?}")),
            }
        }
    }

    /// One supervision pass over the listeners that should run: a HAProxy that died, a master
    /// left without workers, or a start that failed is (re)started, with back-off.
    pub fn supervise(&self) {
        let Ok(ids) = self.list_ids() else { return };
        for id in ids {
            let _g = lock(&self.ops);
            if !self.should_run(&id) {
                continue;
            }
            let p = self.paths(&id);
            if self.running_pid(&id).is_some() {
                if launcher::has_workers(&p) {
                    if let Some(r) = lock(&self.running).get_mut(&id) {
                        (r.failures, r.retry_at, r.idle) = (0, None, 0);
                    }
                    continue;
                }
                // A master without workers serves nothing: give it one more pass, then replace it.
                let master = {
                    let mut running = lock(&self.running);
                    let Some(r) = running.get_mut(&id) else {
                        continue;
                    };
                    r.idle += 1;
                    if r.idle < 2 {
                        continue;
                    }
                    r.master.take()
                };
                if let Some(mut m) = master {
                    logs::warn(&format!(
                        "listener {id}: haproxy (pid {}) has no workers",
                        m.pid()
                    ));
                    launcher::stop(&mut m, STOP_GRACE);
                }
            }
            let now = Instant::now();
            let due = {
                let mut running = lock(&self.running);
                let r = running.entry(id.clone()).or_insert_with(Running::down);
                match r.retry_at {
                    None => {
                        logs::warn(&format!("listener {id}: haproxy is not running"));
                        r.retry_at = Some(now + backoff(r.failures));
                        false
                    }
                    Some(t) => t <= now,
                }
            };
            if !due {
                continue;
            }
            match launcher::start(&self.haproxy, &p, READY_TIMEOUT) {
                Ok(master) => {
                    logs::info(&format!(
                        "listener {id}: haproxy restarted (pid {})",
                        master.pid()
                    ));
                    self.track(id, master);
                }
                Err(out) => {
                    if let Some(r) = lock(&self.running).get_mut(&id) {
                        r.failures += 1;
                        r.retry_at = Some(Instant::now() + backoff(r.failures));
                    }
                    logs::error(&format!("listener {id}: restart failed: {out}"));
                }
            }
        }
    }
}

/// Listener ids among a directory's entries; anything else (temp files, strays) is skipped.
fn ids_in(dir: &Path) -> io::Result<Vec<ListenerId>> {
    let mut ids = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let name = e?.file_name();
                if let Some(id) = name.to_str().and_then(|n| ListenerId::parse(n).ok()) {
                    ids.push(id);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    ids.sort();
    Ok(ids)
}

fn backoff(failures: u32) -> Duration {
    let (first, max) = BACKOFF;
    first.saturating_mul(1 << failures.min(5)).min(max)
}

/// `haproxy -c`'s verdict line ("Configuration file is valid"), without its notices.
fn summary_line(check_output: &str) -> &str {
    check_output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or(VALID, str::trim)
}
