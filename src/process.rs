//! Runs programs by argument vector (never a shell), with a timeout, capturing their output.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub success: bool,
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
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let readers = [
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        let closed = closed_tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            // Bounded: a runaway program cannot fill the agent's memory.
            let _ = r.by_ref().take(1 << 20).read_to_end(&mut buf);
            let _ = closed.send(());
            buf
        })
    })
    .collect::<Vec<_>>();
    let end = Instant::now() + timeout;
    // Its output ends when the program exits: wait for that, not in polling steps (a check
    // before every upload and start would lose half a step each time).
    for _ in 0..readers.len() {
        if closed_rx
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
        text,
    })
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
