//! The access log and the application log: files (or stderr), re-opened on SIGHUP so logrotate
//! can move them away.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::syslog;
use crate::timefmt::Utc;

struct Sink {
    path: Option<PathBuf>,
    file: Option<File>,
}

impl Sink {
    fn open(path: Option<&Path>) -> std::io::Result<Sink> {
        let file = match path {
            Some(p) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(Sink {
            path: path.map(Path::to_path_buf),
            file,
        })
    }

    fn write(&mut self, line: &str) {
        // A log that cannot be written must not take a request down with it.
        let _ = match &mut self.file {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}

pub struct Logs {
    access: Mutex<Sink>,
    app: Mutex<Sink>,
    /// The application log goes here when set; to `app` while the socket is unavailable.
    syslog: Option<syslog::Sender>,
    /// Whether the last line could not go to syslog (said once, not per line).
    syslog_down: AtomicBool,
    /// Octavia's controller turns it on and off at run time.
    debug: AtomicBool,
}

static LOGS: OnceLock<Logs> = OnceLock::new();

/// Opens both logs; on failure says which key's file could not be opened. With a syslog
/// target, application lines go there, and to `app` only while it is unavailable.
pub fn init(
    access: Option<&Path>,
    app: Option<&Path>,
    syslog: Option<&syslog::Target>,
    debug: bool,
) -> Result<(), String> {
    let open = |key: &str, p: Option<&Path>| {
        Sink::open(p).map_err(|e| {
            let shown = p.map(|p| p.display().to_string()).unwrap_or_default();
            format!("{key}: {shown:?}: cannot open: {e}")
        })
    };
    let logs = Logs {
        access: Mutex::new(open("accesslog", access)?),
        app: Mutex::new(open("logfile", app)?),
        syslog: syslog.cloned().map(syslog::Sender::new),
        syslog_down: AtomicBool::new(false),
        debug: AtomicBool::new(debug),
    };
    let _ = LOGS.set(logs);
    Ok(())
}

/// Re-opens the log files (after logrotate moved them).
pub fn reopen() {
    let Some(logs) = LOGS.get() else { return };
    for (name, sink) in [("accesslog", &logs.access), ("logfile", &logs.app)] {
        let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
        match Sink::open(s.path.as_deref()) {
            Ok(new) => *s = new,
            Err(e) => {
                let msg = format!("{} ERROR cannot reopen {name}: {e}\n", Utc::now().iso());
                s.write(&msg);
            }
        }
    }
    info("log files reopened");
}

fn app(level: &str, msg: &str) {
    let Some(l) = LOGS.get() else {
        eprintln!("{} {level} {msg}", Utc::now().iso());
        return;
    };
    let sink = |line: &str| l.app.lock().unwrap_or_else(|p| p.into_inner()).write(line);
    if let Some(s) = &l.syslog {
        let sent = s.send(level, msg);
        // Said once when it goes and once when it comes back; meanwhile the lines stay here.
        if sent == l.syslog_down.swap(!sent, Ordering::Relaxed) {
            let (how, what) = match sent {
                true => ("INFO", "is back: the application log goes there again"),
                false => (
                    "WARN",
                    "is unavailable: the application log goes here meanwhile",
                ),
            };
            let said = format!("syslog socket {} {what}", s.socket().display());
            sink(&format!("{} {how} {said}\n", Utc::now().iso()));
            if sent {
                s.send(how, &said);
            }
        }
        if sent {
            return;
        }
    }
    sink(&format!("{} {level} {msg}\n", Utc::now().iso()));
}

pub fn error(msg: &str) {
    app("ERROR", msg);
}

pub fn warn(msg: &str) {
    app("WARN", msg);
}

pub fn info(msg: &str) {
    app("INFO", msg);
}

/// Debug lines on or off from now on.
pub fn set_debug(on: bool) {
    if let Some(l) = LOGS.get() {
        l.debug.store(on, Ordering::Relaxed);
    }
}

pub fn debug(msg: &str) {
    if LOGS.get().is_some_and(|l| l.debug.load(Ordering::Relaxed)) {
        app("DEBUG", msg);
    }
}

/// One access log line (already formatted, without newline).
pub fn access(line: &str) {
    let line = format!("{line}\n");
    match LOGS.get() {
        Some(l) => l
            .access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(&line),
        None => eprint!("{line}"),
    }
}

/// Peers whose failures are counted; past this, the rest share one count.
const MAX_FAILING_PEERS: usize = 4096;

/// Failures a client can cause at will (failed logins and handshakes, connections over the
/// cap): logged at most once a second per peer address and kind, with how many there were.
pub fn failure(ip: IpAddr, what: &str, detail: &str) {
    type Seen = HashMap<(IpAddr, String), (Option<Instant>, u64)>;
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    let recent = |at: &Option<Instant>, now: Instant| {
        at.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
    };
    let now = Instant::now();
    let count = {
        let mut seen = SEEN
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_FAILING_PEERS {
            seen.retain(|_, (at, _)| recent(at, now));
        }
        let peer = if seen.len() >= MAX_FAILING_PEERS {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            ip
        };
        let (logged_at, unlogged) = seen.entry((peer, what.to_string())).or_insert((None, 0));
        *unlogged += 1;
        if recent(logged_at, now) {
            return;
        }
        *logged_at = Some(now);
        std::mem::take(unlogged)
    };
    let times = if count > 1 {
        format!(" ({count} times since the last such line)")
    } else {
        String::new()
    };
    warn(&format!("{ip}: {what}: {}{times}", escape(detail)));
}

/// Makes a client-supplied string safe inside a quoted log field: `\` and `"` escaped, control
/// and non-ASCII bytes as `\xHH`, so no client can forge a line or send terminal escapes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_nothing_that_could_end_a_field_or_a_line() {
        assert_eq!(escape("CN=a\"b\\c"), "CN=a\\\"b\\\\c");
        assert_eq!(
            escape("x\r\ny\u{1b}[31m\0é"),
            "x\\x0d\\x0ay\\x1b[31m\\x00\\xc3\\xa9"
        );
        assert_eq!(escape("plain text"), "plain text");
    }
}
