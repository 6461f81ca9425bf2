//! Runs one HAProxy per listener in master-worker mode (DESIGN section 5): check, start, stop,
//! verified seamless reload over the master CLI, liveness, adoption of a master left running by
//! an earlier agent, and certificates handed to a running HAProxy. Knows files and processes,
//! not the listener store.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::haproxy::{self, AdminState, CertFile, Command as Cli, Proc, Runtime, ServerState};
use crate::pools::{self, Pool};

use super::{ListenerError, LiveCert};
use crate::names::ProxyName;
use crate::process::{self, Daemon};
use crate::{logs, netns, store};

/// Longest a `haproxy -c` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
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

/// One `show info` on the stats socket of the listener at `paths`, within `timeout`.
pub fn probe(paths: &Paths, timeout: Duration) -> Result<(), haproxy::HaproxyError> {
    Runtime::new(&paths.stats, timeout)
        .raw(&Cli::ShowInfo)
        .map(|_| ())
}

/// One listener's HAProxy: its files and the binary that runs them. Owns the check, start,
/// stop, reload (with servers' state kept) and live certificate updates.
pub struct ListenerProc<'a> {
    haproxy: &'a Path,
    /// `-L`: this host's name in the configs' `peers` sections.
    peer: Option<&'a str>,
    /// The agent's state directory: the only place it writes a server-state file.
    state_root: &'a Path,
    pub paths: Paths,
}

/// Servers' runtime state before a reload or restart, and whether HAProxy will read it back
/// itself (the config names a server-state file and it was written).
pub struct Kept {
    servers: Vec<ServerState>,
    in_file: bool,
}

impl<'a> ListenerProc<'a> {
    pub fn new(haproxy: &'a Path, peer: Option<&'a str>, state_root: &'a Path, dir: &Path) -> Self {
        ListenerProc {
            haproxy,
            peer,
            state_root,
            paths: Paths::new(dir),
        }
    }

    /// `haproxy -c` on `cfg`: Ok(output) or Invalid(output). Without the agent's section, whose
    /// admin socket HAProxy counts as a listener: a config that would serve nothing (exit 2,
    /// "no listener") is refused in HAProxy's words.
    pub fn check(&self, cfg: &Path) -> Result<String, ListenerError> {
        let mut args = vec![OsStr::new("-c"), OsStr::new("-f"), cfg.as_os_str()];
        if let Some(peer) = self.peer {
            args.extend([OsStr::new("-L"), OsStr::new(peer)]);
        }
        let (program, args) = netns::wrap(self.haproxy.as_os_str(), &args);
        // In the run directory, where HAProxy runs: relative paths mean the same to both.
        let out = process::run(&program, &args, Some(&self.paths.run), CHECK_TIMEOUT)
            .map_err(|e| ListenerError::Unavailable(format!("{}: {e}", self.haproxy.display())))?;
        if out.success {
            Ok(out.text)
        } else {
            Err(ListenerError::Invalid(out.text))
        }
    }

    /// A seamless reload that keeps servers' runtime state: maintenance, drain and weights
    /// set through the stats socket, and health (a member found down stays down). Returns the
    /// new worker's pid, or HAProxy's messages.
    pub fn reload(&self, timeout: Duration) -> Result<u32, String> {
        let kept = self.keep_servers();
        let worker = self.reload_master(timeout)?;
        self.restore_servers(&kept);
        Ok(worker)
    }

    /// The server-state file the config names (global `server-state-file`, relative to
    /// `server-state-base` or to the run directory), when it lies in the agent's state
    /// directory: the agent writes nowhere else an uploaded config points it.
    fn state_file(&self) -> Option<PathBuf> {
        let cfg = fs::read_to_string(&self.paths.cfg).ok()?;
        let (mut file, mut base) = (None, None);
        let mut in_global = false;
        for line in cfg.lines() {
            let text = line.split('#').next().unwrap_or("");
            let words: Vec<&str> = text.split_whitespace().collect();
            if !line.starts_with([' ', '\t']) && !words.is_empty() {
                in_global = words[0] == "global";
                continue;
            }
            match (in_global, words.as_slice()) {
                (true, ["server-state-file", f]) => file = Some(PathBuf::from(f)),
                (true, ["server-state-base", b]) => base = Some(PathBuf::from(b)),
                _ => {}
            }
        }
        let file = file?;
        let path = match (file.is_absolute(), base) {
            (true, _) => file,
            (false, Some(b)) => b.join(file),
            (false, None) => self.paths.run.join(file),
        };
        let inside = path.starts_with(self.state_root)
            && path
                .components()
                .all(|c| c != std::path::Component::ParentDir);
        if !inside {
            logs::debug(&format!(
                "server-state file {} is outside the state directory: health kept through the runtime API",
                path.display()
            ));
        }
        inside.then_some(path)
    }

    /// Servers' state now: written to the config's server-state file when it names one, for
    /// HAProxy to read back, and kept for the runtime API.
    fn keep_servers(&self) -> Kept {
        let Ok(reply) = self.paths.stats_rt().raw(&Cli::ShowServersState) else {
            return Kept {
                servers: Vec::new(),
                in_file: false,
            };
        };
        let in_file = self.state_file().is_some_and(|f| {
            let written = f
                .parent()
                .map_or(Ok(()), |d| store::ensure_dir(d, 0o750))
                .and_then(|_| store::write_atomic(&f, reply.as_bytes(), 0o640));
            if let Err(e) = &written {
                logs::warn(&format!("cannot write {}: {e}", f.display()));
            }
            written.is_ok()
        });
        Kept {
            servers: haproxy::parse_servers_state(&reply),
            in_file,
        }
    }

    /// Whether a worker answers on the stats socket.
    pub fn answers(&self) -> bool {
        self.paths.stats_rt().raw(&Cli::ShowInfo).is_ok()
    }

    /// `show stat` into `buf`, as HAProxy replied; false when the stats socket does not answer.
    pub fn stats_into(&self, buf: &mut Vec<u8>) -> bool {
        self.paths.stats_rt().raw_into(&Cli::ShowStat, buf).is_ok()
    }

    /// `show info` and `show stat` as HAProxy replied, each None when it did not answer.
    pub fn figures(&self) -> (Option<String>, Option<String>) {
        haproxy::figures(&Runtime::new(&self.paths.stats, haproxy::FIGURES_TIMEOUT))
    }

    /// Pools and members, from the stats socket.
    pub fn pools(&self) -> Vec<Pool> {
        self.paths
            .stats_rt()
            .show_stat()
            .map(|rows| pools::pools(&rows))
            .unwrap_or_default()
    }

    /// Hands a new certificate to the running HAProxy without a reload (`set ssl cert` +
    /// `commit ssl cert`), when it serves `file`; None when it does not.
    pub fn update_cert(&self, file: &Path, pem: &[u8]) -> Option<LiveCert> {
        let cert = CertFile::parse(file)?;
        let rt = self.paths.stats_rt();
        let loaded = rt.raw(&Cli::ShowSslCert).ok()?;
        if !loaded.lines().any(|l| l.trim() == cert.to_string()) {
            return None;
        }
        let applied = rt
            .expect_reply(
                &Cli::SetSslCert(cert.clone(), haproxy::pem_payload(pem)),
                "Transaction",
            )
            .and_then(|_| rt.expect_reply(&Cli::CommitSslCert(cert.clone()), "Success!"));
        if applied.is_err() {
            // An open transaction would block the next update of this file.
            let _ = rt.raw(&Cli::AbortSslCert(cert));
        }
        Some(match applied {
            Ok(_) => LiveCert::Applied,
            Err(e) => LiveCert::Refused(e.to_string()),
        })
    }

    /// The log text written since `offset`, for error reports.
    fn log_since(&self, offset: u64) -> String {
        let p = &self.paths;
        let mut text = String::new();
        if let Ok(mut f) = File::open(&p.log) {
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let _ = f.take(64 * 1024).read_to_string(&mut text);
            }
        }
        text
    }

    fn log_len(&self) -> u64 {
        let p = &self.paths;
        fs::metadata(&p.log).map_or(0, |m| m.len())
    }

    /// Starts a master with the listener's config and waits until it has a worker serving its
    /// stats socket. On failure, HAProxy's own output.
    pub fn start(&self, timeout: Duration) -> Result<Daemon, String> {
        let (haproxy, p) = (self.haproxy, &self.paths);
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
        let master = format!("unix@{MASTER_SOCK}");
        let mut args: Vec<&OsStr> = vec![
            // Foreground, whatever the config says (`daemon` would fork away from the agent).
            "-db".as_ref(),
            "-W".as_ref(),
            "-S".as_ref(),
            master.as_ref(),
            "-p".as_ref(),
            p.pidfile.as_os_str(),
            "-f".as_ref(),
            p.cfg.as_os_str(),
            "-f".as_ref(),
            p.agent_cfg.as_os_str(),
        ];
        // A reload re-executes the master with these same arguments, -L included.
        if let Some(peer) = self.peer {
            args.extend([OsStr::new("-L"), OsStr::new(peer)]);
        }
        let (program, args) = netns::wrap(haproxy.as_os_str(), &args);
        let mut child = Command::new(program)
            .current_dir(&p.run)
            .args(args)
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
                return Err(format!("{}haproxy exited ({status})", self.log_since(0)));
            }
            if p.proc().is_some_and(|pr| !pr.workers.is_empty())
                && p.stats_rt().raw(&Cli::ShowInfo).is_ok()
            {
                return Ok(Daemon::Child(child));
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{}haproxy did not become ready within {timeout:?}",
                    self.log_since(0)
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Reloads through the master CLI and verifies the outcome: a new worker is listed (success)
    /// or the master counts a failed reload (the old workers keep serving). Returns the new
    /// worker's pid, or HAProxy's messages.
    fn reload_master(&self, timeout: Duration) -> Result<u32, String> {
        let p = &self.paths;
        let before = p
            .proc()
            .ok_or_else(|| format!("master socket {} does not answer", p.master.display()))?;
        let offset = self.log_len();
        // The master re-executes itself: the connection may drop before it answers.
        let _ = p.master_rt().raw(&Cli::Reload);
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            thread::sleep(POLL);
            let Some(now) = p.proc() else { continue };
            if now.failed_reloads > before.failed_reloads {
                return Err(self.log_since(offset));
            }
            let new = now.workers.iter().find(|w| !before.workers.contains(w));
            // Listed is not yet serving: the worker still sets up (chroot, user) after its fork.
            // It serves once it answers on the stats socket, which the old workers have let go.
            if let (true, Some(&pid)) = (now.reloads > before.reloads, new) {
                if self.serving_pid() == Some(pid) {
                    return Ok(pid);
                }
            }
        }
        Err(format!(
            "{}reload not confirmed within {timeout:?}",
            self.log_since(offset)
        ))
    }

    /// The pid of the worker answering on the stats socket.
    fn serving_pid(&self) -> Option<u32> {
        let p = &self.paths;
        haproxy::parse_info(&p.stats_rt().raw(&Cli::ShowInfo).ok()?)
            .into_iter()
            .find(|(k, _)| k == "Pid")
            .and_then(|(_, v)| v.trim().parse().ok())
    }

    /// Whether the master has at least one worker.
    pub fn has_workers(&self) -> bool {
        let p = &self.paths;
        p.proc().is_some_and(|pr| !pr.workers.is_empty())
    }

    /// A master left running by an earlier agent for these paths, if there is one.
    pub fn adopt(&self) -> Option<Daemon> {
        let p = &self.paths;
        let pid: u32 = fs::read_to_string(&p.pidfile).ok()?.trim().parse().ok()?;
        // The pid may have been reused: it must be a master running in this listener's run dir.
        let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_master = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| a == format!("unix@{MASTER_SOCK}"));
        if cwd != p.run || !is_master || !process::alive(pid) {
            return None;
        }
        (p.proc()?.master_pid == pid).then_some(Daemon::Adopted(pid))
    }

    /// Puts saved maintenance/drain states and changed weights back (on the new worker), and,
    /// where HAProxy read no server-state file, the health of members found down: the new
    /// worker would send them traffic until their checks fail again. Servers the new config no
    /// longer has are skipped.
    fn restore_servers(&self, kept: &Kept) {
        let p = &self.paths;
        let rt = p.stats_rt();
        for s in &kept.servers {
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
            if !kept.in_file && s.op_state == 0 {
                let _ = rt.execute(&Cli::SetHealthDown(b.clone(), n.clone()));
            }
            if s.user_weight != s.initial_weight {
                let _ = rt.execute(&Cli::SetWeight(b, n, s.user_weight));
            }
        }
    }
}

/// Stops a master: soft stop first (connections finish), then harder, each step bounded.
pub fn stop(master: &mut Daemon, grace: Duration) {
    master.stop(libc::SIGUSR1, grace);
}
