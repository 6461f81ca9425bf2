//! The HAProxy runtime client (DESIGN section 6) and parsers for what its admin socket prints.
//! One command per connection, read to EOF, with timeouts; commands are built only from
//! validated names, and a reply that says HAProxy refused is an error.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::names::ProxyName;

/// Everything that may be sent to the socket; free text never is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowInfo,
    ShowStat,
    EnableServer(ProxyName, ProxyName),
    DisableServer(ProxyName, ProxyName),
}

impl Command {
    fn line(&self) -> String {
        match self {
            Command::ShowInfo => "show info".into(),
            Command::ShowStat => "show stat".into(),
            Command::EnableServer(b, s) => format!("enable server {b}/{s}"),
            Command::DisableServer(b, s) => format!("disable server {b}/{s}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaproxyError {
    /// The socket is missing or nobody accepts on it.
    Unavailable { path: PathBuf, reason: String },
    /// HAProxy answered, but refused the command; its own words.
    Refused(String),
}

impl fmt::Display for HaproxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HaproxyError::Unavailable { path, reason } => {
                write!(f, "HAProxy socket {}: {reason}", path.display())
            }
            HaproxyError::Refused(msg) => write!(f, "HAProxy refused: {msg}"),
        }
    }
}

/// A client for one admin socket.
#[derive(Debug, Clone)]
pub struct Runtime {
    path: PathBuf,
    timeout: Duration,
}

impl Runtime {
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        Runtime {
            path: path.into(),
            timeout,
        }
    }

    fn unavailable(&self, e: std::io::Error) -> HaproxyError {
        HaproxyError::Unavailable {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Sends one command and returns HAProxy's whole reply.
    pub fn raw(&self, cmd: &Command) -> Result<String, HaproxyError> {
        let mut s = UnixStream::connect(&self.path).map_err(|e| self.unavailable(e))?;
        s.set_read_timeout(Some(self.timeout))
            .and_then(|_| s.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.unavailable(e))?;
        s.write_all(format!("{}\n", cmd.line()).as_bytes())
            .map_err(|e| self.unavailable(e))?;
        let mut out = Vec::new();
        // The reply is small; cap it anyway so a confused peer cannot exhaust memory.
        s.take(64 << 20)
            .read_to_end(&mut out)
            .map_err(|e| self.unavailable(e))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `show info` as ordered (name, value) pairs.
    pub fn show_info(&self) -> Result<Vec<(String, String)>, HaproxyError> {
        let reply = self.raw(&Command::ShowInfo)?;
        refusal(&reply, true).map_or_else(|| Ok(parse_info(&reply)), Err)
    }

    /// `show stat` rows keyed by header name.
    pub fn show_stat(&self) -> Result<Vec<StatRow>, HaproxyError> {
        let reply = self.raw(&Command::ShowStat)?;
        parse_stat(&reply).ok_or_else(|| HaproxyError::Refused(first_line(&reply)))
    }

    /// A command whose success is an empty reply (enable/disable server, ...).
    pub fn execute(&self, cmd: &Command) -> Result<(), HaproxyError> {
        let reply = self.raw(cmd)?;
        refusal(&reply, false).map_or(Ok(()), Err)
    }
}

fn first_line(reply: &str) -> String {
    let line = reply.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if line.is_empty() {
        "empty reply".into()
    } else {
        line.trim().to_string()
    }
}

/// Decides whether a reply is a refusal. For commands that print data (`data_expected`), only
/// HAProxy's known error forms count; for action commands any text at all is a refusal.
fn refusal(reply: &str, data_expected: bool) -> Option<HaproxyError> {
    let text = reply.trim();
    if data_expected {
        let known = ["Unknown command", "Permission denied", "No such"];
        if text.is_empty() || known.iter().any(|k| text.starts_with(k)) {
            return Some(HaproxyError::Refused(first_line(reply)));
        }
        None
    } else if text.is_empty() {
        None
    } else {
        Some(HaproxyError::Refused(text.to_string()))
    }
}

/// Parses `show info`: `Name: value` lines. Only the first `": "` splits, so values that hold
/// `": "` stay whole.
pub fn parse_info(reply: &str) -> Vec<(String, String)> {
    reply
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let v = v.strip_prefix(' ').unwrap_or(v);
            (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// One `show stat` row: column name -> value.
pub type StatRow = BTreeMap<String, String>;

/// Parses `show stat` CSV by its header line (`# pxname,svname,...`). None if there is no header.
pub fn parse_stat(reply: &str) -> Option<Vec<StatRow>> {
    let mut lines = reply.lines();
    let header = lines.find(|l| !l.trim().is_empty())?.strip_prefix("# ")?;
    let names: Vec<&str> = header.split(',').collect();
    Some(
        lines
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                names
                    .iter()
                    .zip(l.split(','))
                    .filter(|(n, _)| !n.is_empty())
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from HAProxy 2.6.12 (Debian bookworm), trimmed.
    const INFO: &str = "Name: HAProxy\nVersion: 2.6.12-1+deb12u1\nRelease_date: 2023/12/16\n\
Nbthread: 2\nPid: 4242\nUptime: 0d 0h00m05s\nUptime_sec: 5\nnode: lb1\ndescription: \n\
Tainted: 0\nBuildinfo: a: b: c\n\n";

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck\n\
http-frontend,FRONTEND,,,0,0,2000,0,0,0,0,0,0,,,,,OPEN,,,\n\
wwwbackend,lamp1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0\n\
wwwbackend,lamp2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0\n\
wwwbackend,lamp3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0\n\
wwwbackend,lamp4,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP 1/3,1,1,0\n\
wwwbackend,BACKEND,0,0,0,0,200,0,0,0,0,0,,0,0,0,0,UP,2,2,0\n\n";

    #[test]
    fn info_keeps_values_whole() {
        let info = parse_info(INFO);
        assert_eq!(info[0], ("Name".into(), "HAProxy".into()));
        assert!(info.contains(&("description".into(), "".into())));
        assert!(info.contains(&("node".into(), "lb1".into())));
        assert!(info.contains(&("Buildinfo".into(), "a: b: c".into())));
        assert!(info.contains(&("Uptime".into(), "0d 0h00m05s".into())));
        assert!(refusal(INFO, true).is_none());
    }

    #[test]
    fn stat_by_header_name() {
        let rows = parse_stat(STAT).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[1]["svname"], "lamp1");
        assert_eq!(rows[1]["status"], "UP");
        assert_eq!(rows[4]["status"], "UP 1/3");
        assert_eq!(rows[0]["status"], "OPEN");
        assert!(parse_stat("Unknown command.\n").is_none());
        assert!(parse_stat("").is_none());
    }

    #[test]
    fn refusals() {
        assert!(refusal("\n", false).is_none());
        assert_eq!(
            refusal("No such server.\n\n", false),
            Some(HaproxyError::Refused("No such server.".into()))
        );
        assert!(refusal("Unknown command. Please enter one of...\n", true).is_some());
        assert!(refusal("", true).is_some());
    }

    #[test]
    fn command_lines_come_from_names() {
        let b = ProxyName::parse("wwwbackend").unwrap();
        let s = ProxyName::parse("lamp1").unwrap();
        assert_eq!(
            Command::DisableServer(b, s).line(),
            "disable server wwwbackend/lamp1"
        );
    }

    #[test]
    fn missing_socket_is_unavailable() {
        let rt = Runtime::new("/nonexistent/lbagent.sock", Duration::from_secs(1));
        match rt.show_info() {
            Err(HaproxyError::Unavailable { path, .. }) => {
                assert_eq!(path, PathBuf::from("/nonexistent/lbagent.sock"))
            }
            other => panic!("{other:?}"),
        }
    }
}
