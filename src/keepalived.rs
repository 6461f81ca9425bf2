//! keepalived for VRRP (amphora API `/v0.1/vrrp/...`): its config under
//! `<state_dir>/keepalived/`, checked with `keepalived -t` before it replaces the live one, and
//! the real keepalived, started in the foreground with its own pidfiles in its own process
//! group (it outlives the agent, which adopts it again by pidfile).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use crate::process::{self, Action, Daemon};
use crate::{logs, store, vrrp_check};

const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// `keepalived -t`'s exit code when the config has security problems (scripts run as root
/// without `script_security`, as in every config Octavia renders). keepalived runs such a
/// config, but gives this code even when there are real errors besides: see `warnings_only`.
const SECURITY_PROBLEMS: i32 = 6;

#[derive(Debug)]
pub enum KeepalivedError {
    /// `keepalived -t` refused the config; its output.
    Invalid(String),
    /// No config has been uploaded.
    NoConfig,
    /// The keepalived binary could not be run.
    Unavailable(String),
    Failed(Action, String),
    Io(std::io::Error),
}

/// What a start, stop or reload of keepalived did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Started,
    Reloaded,
    Stopped,
    NotRunning,
}

pub struct Keepalived {
    bin: PathBuf,
    state_dir: PathBuf,
    dir: PathBuf,
    running: Mutex<Option<Daemon>>,
}

impl Keepalived {
    pub fn new(state_dir: &Path, bin: &Path) -> Self {
        Keepalived {
            bin: bin.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            dir: state_dir.join("keepalived"),
            running: Mutex::new(None),
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("keepalived.conf")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Daemon>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks `body` with `keepalived -t` and makes it the config (0600: it may hold VRRP
    /// passwords). A running keepalived keeps its config until reloaded. The check scripts go
    /// in place first: a config tracking a missing script fails the check.
    pub fn upload(&self, body: &[u8]) -> Result<(), KeepalivedError> {
        check_self_contained(&String::from_utf8_lossy(body)).map_err(KeepalivedError::Invalid)?;
        let _g = self.lock();
        store::ensure_dir(&self.dir, 0o700).map_err(KeepalivedError::Io)?;
        vrrp_check::install(&self.state_dir).map_err(KeepalivedError::Io)?;
        let candidate = self.file("keepalived.conf.new");
        store::write_atomic(&candidate, body, 0o600).map_err(KeepalivedError::Io)?;
        let args = ["-t".as_ref(), "-f".as_ref(), candidate.as_os_str()];
        let checked = process::run(self.bin.as_os_str(), &args, None, CHECK_TIMEOUT);
        match checked {
            Ok(out) if out.success || warnings_only(&out) => {
                if !out.success {
                    logs::warn(&format!(
                        "keepalived config accepted with warnings: {}",
                        out.text.trim()
                    ));
                }
                store::rename_durable(&candidate, &self.conf()).map_err(KeepalivedError::Io)
            }
            Ok(out) => {
                let _ = fs::remove_file(&candidate);
                Err(KeepalivedError::Invalid(out.text))
            }
            Err(e) => {
                let _ = fs::remove_file(&candidate);
                Err(KeepalivedError::Unavailable(format!(
                    "{}: {e}",
                    self.bin.display()
                )))
            }
        }
    }

    /// A keepalived an earlier agent started from this config, if one still runs.
    fn adopt(&self) -> Option<Daemon> {
        let pid: u32 = fs::read_to_string(self.file("keepalived.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let conf = self.conf();
        let ours = String::from_utf8_lossy(&cmdline)
            .split('\0')
            .any(|a| Path::new(a) == conf);
        (ours && process::alive(pid)).then_some(Daemon::Adopted(pid))
    }

    pub fn has_config(&self) -> bool {
        self.conf().exists()
    }

    pub fn config_text(&self) -> String {
        fs::read_to_string(self.conf()).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        let mut running = self.lock();
        if Self::running_pid(&mut running).is_none() {
            *running = self.adopt();
        }
        Self::running_pid(&mut running).is_some()
    }

    fn running_pid(running: &mut Option<Daemon>) -> Option<u32> {
        let m = running.as_mut()?;
        m.alive().then(|| m.pid())
    }

    pub fn act(&self, action: Action) -> Result<Ran, KeepalivedError> {
        let mut running = self.lock();
        if Self::running_pid(&mut running).is_none() {
            *running = self.adopt();
        }
        match (action, Self::running_pid(&mut running)) {
            (Action::Start | Action::Reload, Some(pid)) => {
                // Start of a running keepalived is a reload, as keepalived itself does it.
                process::signal(pid, libc::SIGHUP);
                Ok(Ran::Reloaded)
            }
            (Action::Start | Action::Reload, None) => {
                *running = Some(self.start(action)?);
                Ok(Ran::Started)
            }
            (Action::Stop, None) => Ok(Ran::NotRunning),
            (Action::Stop, Some(_)) => {
                let mut m = running.take();
                match m.as_mut().map(|m| m.stop(libc::SIGTERM, STOP_GRACE)) {
                    Some(false) => Err(KeepalivedError::Failed(
                        Action::Stop,
                        "keepalived did not exit".into(),
                    )),
                    _ => Ok(Ran::Stopped),
                }
            }
        }
    }

    fn start(&self, action: Action) -> Result<Daemon, KeepalivedError> {
        let conf = self.conf();
        if !conf.exists() {
            return Err(KeepalivedError::NoConfig);
        }
        let fail = |e: String| KeepalivedError::Failed(action, e);
        vrrp_check::install(&self.state_dir).map_err(|e| fail(e.to_string()))?;
        let log_path = self.file("keepalived.log");
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| fail(e.to_string()))?;
        let err = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let vrrp_pid = self.file("vrrp.pid");
        for f in ["keepalived.pid", "vrrp.pid", "checkers.pid"] {
            let _ = fs::remove_file(self.file(f));
        }
        let mut child = Command::new(&self.bin)
            // Foreground, logging to our file: the agent owns its lifetime and its messages.
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg("-f")
            .arg(&conf)
            .arg("-p")
            .arg(self.file("keepalived.pid"))
            .arg("-r")
            .arg(&vrrp_pid)
            .arg("-c")
            .arg(self.file("checkers.pid"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", self.bin.display())))?;
        let end = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read_to_string(&log_path).unwrap_or_default();
                return Err(fail(format!("{text}keepalived exited ({status})")));
            }
            if vrrp_pid.exists() {
                return Ok(Daemon::Child(child));
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(
                    "keepalived did not start its VRRP process in time".into(),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}
/// Whether a failed `keepalived -t` complained of script security alone: its exit code says
/// security problems, and every line it printed is one.
fn warnings_only(out: &process::Output) -> bool {
    out.code == Some(SECURITY_PROBLEMS)
        && out
            .text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| l.contains("SECURITY VIOLATION"))
}

/// Refuses what would make keepalived read another file: `include` (it would read, and echo into
/// its errors, any file on the host, secrets included) and `$NAME=` definitions (whose
/// substitution could spell an `include`). Lines may carry an `@name` condition first.
pub fn check_self_contained(text: &str) -> Result<(), String> {
    for line in text.lines() {
        let l = line.trim_start();
        let l = match l.strip_prefix('@') {
            Some(rest) => rest
                .split_once(char::is_whitespace)
                .map_or("", |x| x.1)
                .trim_start(),
            None => l,
        };
        if l.starts_with("include") {
            return Err("include is not allowed: upload one self-contained configuration".into());
        }
        if l.starts_with('$') {
            return Err("lines starting with $ (variable definitions) are not allowed".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_self_contained as check;
    use super::warnings_only;
    use crate::process::Output;

    /// keepalived 2.2.7's words: exit 6 for a config Octavia renders, and for one with an
    /// error besides.
    #[test]
    fn security_warnings_alone_pass_the_check() {
        let out = |code, text: &str| Output {
            success: code == 0,
            code: Some(code),
            text: text.into(),
        };
        let warning =
            "SECURITY VIOLATION - scripts are being executed but script_security not enabled.\n";
        assert!(warnings_only(&out(6, warning)));
        let broken = format!(
            "(k.conf: Line 7) number '999' outside range [1, 255]\n{warning}\
(lb_1) the virtual router id must be set\n"
        );
        assert!(!warnings_only(&out(6, &broken)));
        assert!(!warnings_only(&out(5, warning)));
    }

    #[test]
    fn only_self_contained_configs_pass() {
        assert!(check("vrrp_instance VI_1 {\n  state MASTER\n}\n").is_ok());
        for bad in [
            "include /etc/shadow",
            "  include /etc/shadow",
            "@node1 include /etc/shadow",
            "@^node1\tinclude /etc/shadow",
            "$X=include /etc/shadow\n$X",
            "@node1 $X=include /etc/shadow",
        ] {
            assert!(check(bad).is_err(), "{bad:?} passed");
        }
    }
}
