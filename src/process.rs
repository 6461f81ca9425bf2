//! Programs and daemons by argument vector (never a shell): a run with a timeout that captures
//! the output, and the daemons the agent supervises (HAProxy masters, keepalived): liveness,
//! signals, a bounded stop.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::{Duration, Instant};

/// start / stop / reload, for listeners' HAProxies and for keepalived alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Reload,
}

impl Action {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            "reload" => Some(Action::Reload),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Reload => "reload",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub success: bool,
    /// The exit code; None when a signal ended it.
    pub code: Option<i32>,
    /// stderr, then stdout, as text.
    pub text: String,
}

/// Runs `program args...` (in `cwd`, if given) and waits at most `timeout`; a program still
/// running then is killed and the call fails with `TimedOut`.
pub fn run<S: AsRef<OsStr>>(
    program: &OsStr,
    args: &[S],
    cwd: Option<&Path>,
    timeout: Duration,
) -> io::Result<Output> {
    let mut cmd = Command::new(program);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (readers, closed) = read_output(&mut child);
    let end = Instant::now() + timeout;
    // Its output ends when the program exits: wait for that, not in polling steps (a check
    // before every upload and start would lose half a step each time).
    for _ in 0..readers.len() {
        if closed
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .is_err()
        {
            break;
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} did not finish within {timeout:?}",
                    program.to_string_lossy()
                ),
            ));
        }
        thread::sleep(Duration::from_millis(1));
    };
    let mut text = String::new();
    for r in readers {
        let bytes = r.join().unwrap_or_default();
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    Ok(Output {
        success: status.success(),
        code: status.code(),
        text,
    })
}

type Reader = thread::JoinHandle<Vec<u8>>;

/// Threads reading the child's stderr and stdout (each bounded: a runaway program cannot fill
/// the agent's memory), and a channel that says when each has reached its end.
fn read_output(child: &mut Child) -> (Vec<Reader>, Receiver<()>) {
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let streams = [
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ];
    let readers = streams
        .into_iter()
        .flatten()
        .map(|mut r| {
            let closed = closed_tx.clone();
            thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.by_ref().take(1 << 20).read_to_end(&mut buf);
                let _ = closed.send(());
                buf
            })
        })
        .collect();
    (readers, closed_rx)
}

/// A daemon the agent supervises: its child, or one adopted from an earlier agent.
#[derive(Debug)]
pub enum Daemon {
    Child(Child),
    Adopted(u32),
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        match self {
            Daemon::Child(c) => c.id(),
            Daemon::Adopted(pid) => *pid,
        }
    }

    /// Whether it still runs (reaping it if it was our child and has exited).
    pub fn alive(&mut self) -> bool {
        match self {
            Daemon::Child(c) => matches!(c.try_wait(), Ok(None)),
            Daemon::Adopted(pid) => alive(*pid),
        }
    }

    /// Sends `first`, then SIGTERM, then SIGKILL, each followed by a bounded wait for the
    /// exit. Returns whether the process is gone.
    pub fn stop(&mut self, first: libc::c_int, grace: Duration) -> bool {
        let pid = self.pid();
        for (sig, wait) in [
            (first, grace),
            (libc::SIGTERM, Duration::from_secs(2)),
            (libc::SIGKILL, Duration::from_secs(2)),
        ] {
            signal(pid, sig);
            let end = Instant::now() + wait;
            while Instant::now() < end {
                if !self.alive() {
                    return true;
                }
                thread::sleep(STOP_POLL);
            }
        }
        !self.alive()
    }
}

/// How often a stop looks whether the process has gone.
const STOP_POLL: Duration = Duration::from_millis(2);

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = run(
            OsStr::new("ls"),
            &["/nonexistent-lbagent"],
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(!out.success);
        assert!(out.text.contains("nonexistent-lbagent"));
        let out = run(
            OsStr::new("pwd"),
            &[] as &[&str],
            Some(Path::new("/tmp")),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(out.success);
        assert_eq!(out.text.trim(), "/tmp");
    }

    #[test]
    fn times_out_and_kills() {
        let t = Instant::now();
        let e = run(
            OsStr::new("sleep"),
            &["5"],
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn missing_program_is_an_error() {
        assert!(run(
            OsStr::new("/nonexistent/prog"),
            &[] as &[&str],
            None,
            Duration::from_secs(1)
        )
        .is_err());
    }
}
