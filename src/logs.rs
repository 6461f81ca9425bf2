//! The access log and the application log: files (or stderr), re-opened on SIGHUP so logrotate
//! can move them away.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

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
    debug: bool,
}

static LOGS: OnceLock<Logs> = OnceLock::new();

/// Opens both logs; on failure says which key's file could not be opened.
pub fn init(access: Option<&Path>, app: Option<&Path>, debug: bool) -> Result<(), String> {
    let open = |key: &str, p: Option<&Path>| {
        Sink::open(p).map_err(|e| {
            let shown = p.map(|p| p.display().to_string()).unwrap_or_default();
            format!("{key}: {shown:?}: cannot open: {e}")
        })
    };
    let logs = Logs {
        access: Mutex::new(open("accesslog", access)?),
        app: Mutex::new(open("logfile", app)?),
        debug,
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
    let line = format!("{} {level} {msg}\n", Utc::now().iso());
    match LOGS.get() {
        Some(l) => l.app.lock().unwrap_or_else(|p| p.into_inner()).write(&line),
        None => eprint!("{line}"),
    }
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

pub fn debug(msg: &str) {
    if LOGS.get().is_some_and(|l| l.debug) {
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
