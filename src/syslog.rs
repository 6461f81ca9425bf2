//! The application log sent to a syslog socket (`/dev/log`, or Octavia's
//! `/run/rsyslog/octavia/log`): one datagram a line, as glibc's syslog(3) writes them
//! (`<PRI>Mmm dd hh:mm:ss lbagent[pid]: message`), with the configured facility.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::timefmt::Utc;

/// Where the lines go, and with which facility (0-23: kern ... local7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub socket: PathBuf,
    pub facility: u8,
}

/// Facility names as syslog.conf spells them (`LOG_LOCAL1` and plain numbers too).
pub fn facility(name: &str) -> Option<u8> {
    const NAMES: [&str; 12] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp",
    ];
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("log_").unwrap_or(&n);
    if let Ok(num) = n.parse::<u8>() {
        return (num <= 23).then_some(num);
    }
    if let Some(i) = n.strip_prefix("local").and_then(|d| d.parse::<u8>().ok()) {
        return (i <= 7).then_some(16 + i);
    }
    NAMES.iter().position(|x| *x == n).map(|i| i as u8)
}

/// Severities of the application log's levels.
pub fn severity(level: &str) -> u8 {
    match level {
        "ERROR" => 3,
        "WARN" => 4,
        "INFO" => 6,
        _ => 7,
    }
}

pub struct Sender {
    target: Target,
    sock: Option<UnixDatagram>,
}

impl Sender {
    pub fn new(target: Target) -> Sender {
        Sender {
            sock: UnixDatagram::unbound().ok(),
            target,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.target.socket
    }

    /// Sends one line; false when the socket is not there or refuses it (the caller keeps the
    /// line elsewhere).
    pub fn send(&self, level: &str, msg: &str) -> bool {
        let Some(sock) = &self.sock else {
            return false;
        };
        let line = format_line(&self.target, level, msg, &Utc::now());
        sock.send_to(line.as_bytes(), &self.target.socket).is_ok()
    }
}

fn format_line(t: &Target, level: &str, msg: &str, now: &Utc) -> String {
    let pri = u16::from(t.facility) * 8 + u16::from(severity(level));
    format!(
        "<{pri}>{} lbagent[{}]: {level} {msg}",
        now.rfc3164(),
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_by_name_and_number() {
        assert_eq!(facility("daemon"), Some(3));
        assert_eq!(facility("local1"), Some(17));
        assert_eq!(facility("LOG_LOCAL7"), Some(23));
        assert_eq!(facility("0"), Some(0));
        for bad in ["local8", "24", "nope", ""] {
            assert_eq!(facility(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_line_as_syslog3_writes_it() {
        let t = Target {
            socket: PathBuf::from("/dev/log"),
            facility: 17,
        };
        let line = format_line(&t, "WARN", "disk low", &Utc::from_unix(1_351_538_508));
        let pid = std::process::id();
        // local1.warning = 17 * 8 + 4.
        assert_eq!(
            line,
            format!("<140>Oct 29 19:21:48 lbagent[{pid}]: WARN disk low")
        );
    }
}
