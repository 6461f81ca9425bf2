//! Runs one HAProxy per listener in master-worker mode (DESIGN section 5): start, stop, verified
//! seamless reload over the master CLI, liveness, and adoption of a master left running by an
//! earlier agent. Knows files and processes, not listeners' API.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::haproxy::{self, AdminState, Command as Cli, Proc, Runtime, ServerState};
use crate::names::ProxyName;

/// Timeout of one command on a listener's sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a start or reload looks for its outcome: small, as it is the latency callers see.
const POLL: Duration = Duration::from_millis(2);

/// The sockets' names inside the run directory (HAProxy takes them as `unix@<name>`).
pub const STATS_SOCK: &str = "stats.sock";
pub const MASTER_SOCK: &str = "master.sock";

/// Where one listener's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub cfg: PathBuf,
    pub agent_cfg: PathBuf,
    /// HAProxy runs here and names its sockets relative to it: socket paths are limited to
    /// about 100 bytes, state directories are not.
    pub run: PathBuf,
    pub stats: PathBuf,
    pub master: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        let run = dir.join("run");
        Paths {
            cfg: dir.join("haproxy.cfg"),
            agent_cfg: dir.join("agent.cfg"),
            stats: run.join(STATS_SOCK),
            master: run.join(MASTER_SOCK),
            pidfile: run.join("haproxy.pid"),
            log: run.join("haproxy.log"),
            run,
        }
    }

    pub fn stats_rt(&self) -> Runtime {
        Runtime::new(&self.stats, SOCKET_TIMEOUT)
    }

    fn master_rt(&self) -> Runtime {
        Runtime::new(&self.master, SOCKET_TIMEOUT)
    }

    fn proc(&self) -> Option<Proc> {
        self.master_rt()
            .raw(&Cli::ShowProc)
            .ok()
            .and_then(|r| haproxy::parse_proc(&r))
    }
}

/// A running HAProxy master: our child, or one adopted from an earlier agent.
#[derive(Debug)]
pub enum Master {
    Child(Child),
    Adopted(u32),
}

impl Master {
    pub fn pid(&self) -> u32 {
        match self {
            Master::Child(c) => c.id(),
            Master::Adopted(pid) => *pid,
        }
    }

    /// Whether the master still runs (reaping it if it was our child and has exited).
    pub fn alive(&mut self) -> bool {
        match self {
            Master::Child(c) => matches!(c.try_wait(), Ok(None)),
            Master::Adopted(pid) => process_alive(*pid),
        }
    }
}

pub fn process_alive(pid: u32) -> bool {
    // A zombie still answers kill(0); /proc tells it apart.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a positive pid and a valid signal number has no memory effects.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The log text written since `offset`, for error reports.
fn log_since(p: &Paths, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(&p.log) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.take(64 * 1024).read_to_string(&mut text);
        }
    }
    text
}

fn log_len(p: &Paths) -> u64 {
    fs::metadata(&p.log).map_or(0, |m| m.len())
}

/// Starts a master with the listener's config and waits until it has a worker serving its
/// stats socket. On failure, HAProxy's own output.
pub fn start(haproxy: &Path, p: &Paths, timeout: Duration) -> Result<Master, String> {
    let log = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&p.log)
        .map_err(|e| format!("{}: {e}", p.log.display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", p.log.display()))?;
    let _ = fs::remove_file(&p.pidfile);
    let mut child = Command::new(haproxy)
        .current_dir(&p.run)
        // Foreground, whatever the config says (`daemon` would fork away from the agent).
        .arg("-db")
        .arg("-W")
        .arg("-S")
        .arg(format!("unix@{MASTER_SOCK}"))
        .arg("-p")
        .arg(&p.pidfile)
        .arg("-f")
        .arg(&p.cfg)
        .arg("-f")
        .arg(&p.agent_cfg)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: a signal meant for the agent's group does not reach it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{}: {e}", haproxy.display()))?;
    let end = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{}haproxy exited ({status})", log_since(p, 0)));
        }
        if p.proc().is_some_and(|pr| !pr.workers.is_empty())
            && p.stats_rt().raw(&Cli::ShowInfo).is_ok()
        {
            return Ok(Master::Child(child));
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{}haproxy did not become ready within {timeout:?}",
                log_since(p, 0)
            ));
        }
        thread::sleep(POLL);
    }
}

/// Stops a master: soft stop first (connections finish), then harder, each step bounded.
pub fn stop(master: &mut Master, grace: Duration) {
    stop_with(master, libc::SIGUSR1, grace);
}

/// Sends `first`, then SIGTERM, then SIGKILL, each followed by a bounded wait for the exit.
/// Returns whether the process is gone.
pub fn stop_with(master: &mut Master, first: libc::c_int, grace: Duration) -> bool {
    let pid = master.pid();
    for (sig, wait) in [
        (first, grace),
        (libc::SIGTERM, Duration::from_secs(2)),
        (libc::SIGKILL, Duration::from_secs(2)),
    ] {
        signal(pid, sig);
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if !master.alive() {
                return true;
            }
            thread::sleep(POLL);
        }
    }
    !master.alive()
}

/// Reloads through the master CLI and verifies the outcome: a new worker is listed (success)
/// or the master counts a failed reload (the old workers keep serving). Returns the new
/// worker's pid, or HAProxy's messages.
pub fn reload(p: &Paths, timeout: Duration) -> Result<u32, String> {
    let before = p
        .proc()
        .ok_or_else(|| format!("master socket {} does not answer", p.master.display()))?;
    let offset = log_len(p);
    // The master re-executes itself: the connection may drop before it answers.
    let _ = p.master_rt().raw(&Cli::Reload);
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        thread::sleep(POLL);
        let Some(now) = p.proc() else { continue };
        if now.failed_reloads > before.failed_reloads {
            return Err(log_since(p, offset));
        }
        let new = now.workers.iter().find(|w| !before.workers.contains(w));
        // Listed is not yet serving: the worker still sets up (chroot, user) after its fork.
        // It serves once it answers on the stats socket, which the old workers have let go.
        if let (true, Some(&pid)) = (now.reloads > before.reloads, new) {
            if serving_pid(p) == Some(pid) {
                return Ok(pid);
            }
        }
    }
    Err(format!(
        "{}reload not confirmed within {timeout:?}",
        log_since(p, offset)
    ))
}

/// The pid of the worker answering on the stats socket.
fn serving_pid(p: &Paths) -> Option<u32> {
    haproxy::parse_info(&p.stats_rt().raw(&Cli::ShowInfo).ok()?)
        .into_iter()
        .find(|(k, _)| k == "Pid")
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Whether the master has at least one worker.
pub fn has_workers(p: &Paths) -> bool {
    p.proc().is_some_and(|pr| !pr.workers.is_empty())
}

/// A master left running by an earlier agent for these paths, if there is one.
pub fn adopt(p: &Paths) -> Option<Master> {
    let pid: u32 = fs::read_to_string(&p.pidfile).ok()?.trim().parse().ok()?;
    // The pid may have been reused: it must be a master running in this listener's run dir.
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_master = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .any(|a| a == format!("unix@{MASTER_SOCK}"));
    if cwd != p.run || !is_master || !process_alive(pid) {
        return None;
    }
    (p.proc()?.master_pid == pid).then_some(Master::Adopted(pid))
}

/// Servers' runtime state worth keeping across a reload.
pub fn save_servers(p: &Paths) -> Vec<ServerState> {
    p.stats_rt()
        .raw(&Cli::ShowServersState)
        .map(|r| haproxy::parse_servers_state(&r))
        .unwrap_or_default()
}

/// Puts saved maintenance/drain states and changed weights back (on the new worker). Servers
/// the new config no longer has are skipped.
pub fn restore_servers(p: &Paths, saved: &[ServerState]) {
    let rt = p.stats_rt();
    for s in saved {
        let (Ok(b), Ok(n)) = (ProxyName::parse(&s.backend), ProxyName::parse(&s.server)) else {
            continue;
        };
        let state = if s.admin & 0x01 != 0 {
            Some(AdminState::Maint)
        } else if s.admin & 0x08 != 0 {
            Some(AdminState::Drain)
        } else {
            None
        };
        if let Some(st) = state {
            let _ = rt.execute(&Cli::SetState(b.clone(), n.clone(), st));
        }
        if s.user_weight != s.initial_weight {
            let _ = rt.execute(&Cli::SetWeight(b, n, s.user_weight));
        }
    }
}
