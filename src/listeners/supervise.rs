//! Supervision of the listeners' HAProxies: the masters that run, their adoption from an
//! earlier agent, recovery at start and restarts with back-off.

use std::time::{Duration, Instant};

use crate::logs;
use crate::names::ListenerId;
use crate::process::{Action, Daemon};

use super::{lock, proc, Listeners, READY_TIMEOUT, STOP_GRACE};

/// Restart back-off after crashes: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// The HAProxy of one listener that should run: its master while there is one, and the
/// record of failed (re)starts.
pub struct Running {
    pub master: Option<Daemon>,
    failures: u32,
    retry_at: Option<Instant>,
    /// Supervision passes that found the master without workers.
    idle: u32,
}

impl Running {
    /// Should run, does not.
    pub fn down() -> Self {
        Running {
            master: None,
            failures: 0,
            retry_at: None,
            idle: 0,
        }
    }
}

impl Listeners {
    /// Remembers a listener's (new) master, with a clean crash record.
    pub(super) fn track(&self, id: ListenerId, master: Daemon) {
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
    pub(super) fn adopt_untracked(&self, id: &ListenerId) {
        if self.running_pid(id).is_some() {
            return;
        }
        if let Some(master) = self.proc(id).adopt() {
            logs::info(&format!(
                "listener {id}: adopted haproxy (pid {})",
                master.pid()
            ));
            self.track(id.clone(), master);
        }
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
        for id in ids.into_iter().filter(|id| self.store.should_run(id)) {
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
            if !self.store.should_run(&id) {
                continue;
            }
            if self.running_pid(&id).is_some() {
                if self.proc(&id).has_workers() {
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
                    proc::stop(&mut m, STOP_GRACE);
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
            // Nothing answers now to say how its servers fared: a config that names a
            // server-state file starts from the one its last reload wrote.
            match self.proc(&id).start(READY_TIMEOUT) {
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

fn backoff(failures: u32) -> Duration {
    let (first, max) = BACKOFF;
    first.saturating_mul(1 << failures.min(5)).min(max)
}
