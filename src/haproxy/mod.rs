//! The HAProxy runtime client (DESIGN section 6) and parsers for what its admin socket prints.
//! One command per connection, read to EOF, with timeouts; the one departure from DESIGN's
//! contract is HApi's `show info`/`show stat`, asked on `kept` sessions for speed. Commands are
//! built only from validated names, and a reply that says HAProxy refused is an error.

mod kept;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::names::ProxyName;

/// Everything that may be sent to the socket; free text never is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowInfo,
    ShowStat,
    EnableServer(ProxyName, ProxyName),
    DisableServer(ProxyName, ProxyName),
    ShowServersState,
    SetState(ProxyName, ProxyName, AdminState),
    SetWeight(ProxyName, ProxyName, u32),
    /// `set server <b>/<s> health down`: what its checks found before a reload.
    SetHealthDown(ProxyName, ProxyName),
    ShowSslCert,
    /// `set ssl cert <file> <<` with a validated PEM payload.
    SetSslCert(CertFile, String),
    CommitSslCert(CertFile),
    AbortSslCert(CertFile),
    /// Master CLI.
    ShowProc,
    /// Master CLI.
    Reload,
}

/// A certificate file name as HAProxy's CLI takes it: an absolute path of
/// `A-Z a-z 0-9 _ . / -`, nothing that could split or end a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile(String);

impl CertFile {
    pub fn parse(path: &Path) -> Option<CertFile> {
        let s = path.to_str()?;
        let ok = s.starts_with('/')
            && !s.contains("..")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
        ok.then(|| CertFile(s.to_string()))
    }
}

impl fmt::Display for CertFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A PEM text as a CLI payload: no CRs, no empty lines (an empty line ends the payload).
pub fn pem_payload(pem: &[u8]) -> String {
    String::from_utf8_lossy(pem)
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Server administrative states that `set server ... state` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    Maint,
    Drain,
}

impl Command {
    fn line(&self) -> String {
        match self {
            Command::ShowInfo => "show info".into(),
            Command::ShowStat => "show stat".into(),
            Command::EnableServer(b, s) => format!("enable server {b}/{s}"),
            Command::DisableServer(b, s) => format!("disable server {b}/{s}"),
            Command::ShowServersState => "show servers state".into(),
            Command::SetState(b, s, AdminState::Maint) => format!("set server {b}/{s} state maint"),
            Command::SetState(b, s, AdminState::Drain) => format!("set server {b}/{s} state drain"),
            Command::SetWeight(b, s, w) => format!("set weight {b}/{s} {w}"),
            Command::SetHealthDown(b, s) => format!("set server {b}/{s} health down"),
            Command::ShowSslCert => "show ssl cert".into(),
            // The payload ends at the first empty line, so it holds none.
            Command::SetSslCert(f, pem) => format!("set ssl cert {f} <<\n{pem}\n"),
            Command::CommitSslCert(f) => format!("commit ssl cert {f}"),
            Command::AbortSslCert(f) => format!("abort ssl cert {f}"),
            Command::ShowProc => "show proc".into(),
            Command::Reload => "reload".into(),
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
    /// Interactive sessions kept for `show info` and `show stat`, in a client that lives long.
    kept: Option<kept::Kept>,
}

impl Runtime {
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        Runtime {
            path: path.into(),
            timeout,
            kept: None,
        }
    }

    /// A client that keeps sessions open for its queries (see `kept`): for the agent's whole
    /// life, not for one call, which would pay the switch to interactive mode each time.
    pub fn long_lived(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        Runtime {
            kept: Some(kept::Kept::default()),
            ..Runtime::new(path, timeout)
        }
    }

    /// Closes kept sessions not used for `idle` (see `kept`); nothing for a one-shot client.
    pub fn close_idle(&self, idle: Duration) {
        if let Some(kept) = &self.kept {
            kept.close_idle(idle);
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
        let mut out = Vec::with_capacity(4 << 10);
        self.raw_into(cmd, &mut out)?;
        Ok(String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Sends one command and reads HAProxy's whole reply into `out` (cleared first), whose
    /// memory a caller that asks often keeps.
    pub fn raw_into(&self, cmd: &Command, out: &mut Vec<u8>) -> Result<(), HaproxyError> {
        out.clear();
        if let (Some(kept), Command::ShowInfo | Command::ShowStat) = (&self.kept, cmd) {
            return kept
                .ask(&self.path, self.timeout, &cmd.line(), out)
                .map_err(|e| self.unavailable(e));
        }
        let mut s = connect(&self.path).map_err(|e| self.unavailable(e))?;
        s.set_read_timeout(Some(self.timeout))
            .and_then(|_| s.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.unavailable(e))?;
        s.write_all(format!("{}\n", cmd.line()).as_bytes())
            .map_err(|e| self.unavailable(e))?;
        // The master CLI keeps a connection open until the client is done sending.
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The reply is small; cap it anyway so a confused peer cannot exhaust memory.
        s.take(64 << 20)
            .read_to_end(out)
            .map_err(|e| self.unavailable(e))?;
        Ok(())
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

    /// A command whose success HAProxy announces with `marker` in its reply.
    pub fn expect_reply(&self, cmd: &Command, marker: &str) -> Result<String, HaproxyError> {
        let reply = self.raw(cmd)?;
        if reply.contains(marker) {
            Ok(reply)
        } else {
            Err(HaproxyError::Refused(reply.trim().to_string()))
        }
    }

    /// A command whose success is an empty reply (enable/disable server, ...).
    pub fn execute(&self, cmd: &Command) -> Result<(), HaproxyError> {
        let reply = self.raw(cmd)?;
        refusal(&reply, false).map_or(Ok(()), Err)
    }
}

/// Connects to a Unix socket, also when its path is longer than `sun_path` allows (deep state
/// directories): then through `/proc/self/fd/<dir>/<name>`, which resolves to the same socket.
fn connect(path: &Path) -> std::io::Result<UnixStream> {
    match UnixStream::connect(path) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(e);
            };
            let dir = std::fs::File::open(dir)?;
            let short = Path::new("/proc/self/fd")
                .join(dir.as_raw_fd().to_string())
                .join(name);
            UnixStream::connect(short)
        }
        other => other,
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

/// The master process as `show proc` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub master_pid: u32,
    pub reloads: u32,
    pub failed_reloads: u32,
    /// Current workers' pids (old workers still finishing are not listed here).
    pub workers: Vec<u32>,
}

/// Parses the master CLI's `show proc` (HAProxy 2.6 layout:
/// `<pid> master <reloads> [failed: <n>] <uptime> <version>`, then `# workers`).
/// How long a metrics scrape waits on each HAProxy: one that does not answer costs its own
/// series, and must not cost the scrape its deadline (Prometheus's default is 10 s).
pub const FIGURES_TIMEOUT: Duration = Duration::from_secs(1);

/// `show info` and `show stat` for a metrics scrape, each None when HAProxy did not answer; no
/// `show stat` is asked of one that did not answer `show info`.
pub fn figures(rt: &Runtime) -> (Option<String>, Option<String>) {
    match rt.raw(&Command::ShowInfo) {
        Ok(info) => (Some(info), rt.raw(&Command::ShowStat).ok()),
        Err(_) => (None, None),
    }
}

pub fn parse_proc(reply: &str) -> Option<Proc> {
    let mut proc: Option<Proc> = None;
    let mut section = "";
    for line in reply.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            section = name.trim();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match (f.first().and_then(|p| p.parse::<u32>().ok()), f.get(1)) {
            (Some(pid), Some(&"master")) => {
                let failed = line
                    .split("[failed: ")
                    .nth(1)
                    .and_then(|r| r.split(']').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                proc = Some(Proc {
                    master_pid: pid,
                    reloads: f.get(2).and_then(|n| n.parse().ok()).unwrap_or(0),
                    failed_reloads: failed,
                    workers: Vec::new(),
                });
            }
            (Some(pid), Some(&"worker")) if section == "workers" => {
                if let Some(p) = proc.as_mut() {
                    p.workers.push(pid);
                }
            }
            _ => {}
        }
    }
    proc
}

/// A server's runtime state from `show servers state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub backend: String,
    pub server: String,
    /// HAProxy's admin flags: 0x01 forced maintenance, 0x08 forced drain.
    pub admin: u32,
    pub user_weight: u32,
    pub initial_weight: u32,
    /// The operational state: 0 stopped (down), 1 starting, 2 running, 3 stopping.
    pub op_state: u32,
}

/// Parses `show servers state` by its header names.
pub fn parse_servers_state(reply: &str) -> Vec<ServerState> {
    let mut names: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for line in reply.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            names = h.split_whitespace().collect();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if names.is_empty() || f.len() < names.len() {
            continue;
        }
        let get = |n: &str| names.iter().position(|x| *x == n).map(|i| f[i]);
        let num = |n: &str| get(n).and_then(|v| v.parse::<u32>().ok());
        if let (Some(b), Some(s), Some(a), Some(u), Some(i), Some(o)) = (
            get("be_name"),
            get("srv_name"),
            num("srv_admin_state"),
            num("srv_uweight"),
            num("srv_iweight"),
            num("srv_op_state"),
        ) {
            out.push(ServerState {
                backend: b.to_string(),
                server: s.to_string(),
                admin: a,
                user_weight: u,
                initial_weight: i,
                op_state: o,
            });
        }
    }
    out
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
    info_fields(reply)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `show info`'s `Name: value` lines as borrowed pairs, in HAProxy's order.
pub fn info_fields(reply: &str) -> impl Iterator<Item = (&str, &str)> {
    reply.lines().filter_map(|l| {
        let (k, v) = l.split_once(':')?;
        (!k.is_empty()).then(|| (k, v.strip_prefix(' ').unwrap_or(v)))
    })
}

/// The first word of a `show stat` status: `UP 1/3` -> `UP`, `MAINT (resolution)` -> `MAINT`.
pub fn status_word(status: &str) -> &str {
    status.split([' ', '(']).next().unwrap_or("")
}

/// One `show stat` row: column name -> value.
pub type StatRow = BTreeMap<String, String>;

/// `show stat` CSV split at its header line (`# pxname,svname,...`): the column names, and the
/// data lines. None if there is no header.
pub fn stat_lines(reply: &str) -> Option<(Vec<&str>, impl Iterator<Item = &str>)> {
    let mut lines = reply.lines();
    let header = lines.find(|l| !l.trim().is_empty())?.strip_prefix("# ")?;
    let rows = lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    Some((header.split(',').collect(), rows))
}

/// `show stat` read by the named columns only, borrowed from the reply (a column the header
/// lacks, or a field that is not UTF-8, reads as empty): each row is split at its commas only
/// up to the last column wanted, and the rest of it skipped to the line's end. Thousands of
/// rows of some 100 fields each, without a map or a vector per row, and only the fields
/// wanted checked as text. None without a header.
pub fn stat_columns<'a, const N: usize>(
    reply: &'a [u8],
    wanted: [&str; N],
) -> Option<impl Iterator<Item = [&'a str; N]> + 'a> {
    let start = reply.iter().position(|b| !b.is_ascii_whitespace())?;
    let (header, mut rest) = match memchr::memchr(b'\n', &reply[start..]) {
        Some(i) => (&reply[start..start + i], &reply[start + i + 1..]),
        None => (&reply[start..], &reply[reply.len()..]),
    };
    // For each field up to the last one wanted, which wanted column it is, if any.
    let mut slot: Vec<Option<usize>> = Vec::new();
    for (i, name) in header
        .strip_prefix(b"# ")?
        .split(|b| *b == b',')
        .enumerate()
    {
        if let Some(k) = wanted.iter().position(|w| w.as_bytes() == name) {
            slot.resize(i + 1, None);
            slot[i] = Some(k);
        }
    }
    if slot.is_empty() {
        return None;
    }
    // Consecutive rows of a proxy begin with the same name, which is compared, not scanned.
    let mut name: &[u8] = b"";
    Some(std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or(b"");
        if !line.trim_ascii().is_empty() && !line.starts_with(b"#") {
            return Some(split_row(line, &slot, &mut name));
        }
    }))
}

/// The wanted fields of one line, cut at commas only as far as the last field wanted; `name`
/// is the previous line's first field, and becomes this one's. The part of the line read is
/// checked as UTF-8 once, not field by field; a field that is not UTF-8 reads as empty.
fn split_row<'a, const N: usize>(
    line: &'a [u8],
    slot: &[Option<usize>],
    name: &mut &'a [u8],
) -> [&'a str; N] {
    let mut spans = [(0, 0); N];
    let same_name = line.starts_with(name) && line.get(name.len()) == Some(&b',');
    let (mut from, mut read) = (0, 0);
    for (field, k) in slot.iter().enumerate() {
        let stop = if field == 0 && same_name {
            name.len()
        } else {
            // Most fields are a few bytes: a plain loop beats memchr's setup on each.
            line[from..]
                .iter()
                .position(|b| *b == b',')
                .map_or(line.len(), |i| from + i)
        };
        if field == 0 {
            *name = &line[..stop];
        }
        if let Some(k) = k {
            spans[*k] = (from, stop);
        }
        read = stop;
        if stop == line.len() {
            break;
        }
        from = stop + 1;
    }
    // Commas are ASCII, so in valid UTF-8 every span starts and ends on a char boundary.
    match std::str::from_utf8(&line[..read]) {
        Ok(text) => spans.map(|(a, b)| text.get(a..b).unwrap_or("")),
        Err(_) => spans.map(|(a, b)| std::str::from_utf8(&line[a..b]).unwrap_or("")),
    }
}

/// `show stat` CSV as rows of (column, value), by its header line. None if there is no header.
pub fn parse_stat(reply: &str) -> Option<Vec<StatRow>> {
    let (names, rows) = stat_lines(reply)?;
    Some(
        rows.map(|l| {
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
    fn stat_columns_agree_with_whole_rows() {
        let wanted = ["status", "svname", "nosuch", "bck", "pxname"];
        let rows: Vec<_> = stat_columns(STAT.as_bytes(), wanted).unwrap().collect();
        let whole = parse_stat(STAT).unwrap();
        assert_eq!(rows.len(), whole.len());
        for (row, w) in rows.iter().zip(&whole) {
            for (i, name) in wanted.iter().enumerate() {
                assert_eq!(row[i], w.get(*name).map_or("", |v| v.as_str()), "{name}");
            }
        }
        // Short rows, blank and comment lines, no final newline.
        let text = b"\n# a,b,c\nx\n\n# again\n1,2,3,4\n,,\n5,6\n\xff,\xfe,ok";
        let got: Vec<_> = stat_columns(text, ["c", "a"]).unwrap().collect();
        assert_eq!(
            got,
            [["", "x"], ["3", "1"], ["", ""], ["", "5"], ["ok", ""]]
        );
        assert!(stat_columns(b"# a,b\n1,2\n", ["z"]).is_none());
        assert!(stat_columns(b"Unknown command.\n", ["a"]).is_none());
        assert!(stat_columns(b"", ["a"]).is_none());
    }

    #[test]
    fn proc_and_servers_state() {
        // Captured from HAProxy 2.6.12's master CLI after one good and one failed reload.
        let reply =
            "#<PID>          <type>          <reloads>       <uptime>        <version>      \n\
4551            master          2 [failed: 1]   0d00h11m02s     2.6.12-1+deb12u4\n\
# workers\n\
4658            worker          1               0d00h10m58s     2.6.12-1+deb12u4\n\
# old workers\n\
4552            worker          2               0d00h11m02s     2.6.12-1+deb12u4\n\
# programs\n\n";
        assert_eq!(
            parse_proc(reply),
            Some(Proc {
                master_pid: 4551,
                reloads: 2,
                failed_reloads: 1,
                workers: vec![4658]
            })
        );
        assert_eq!(parse_proc("Unknown command\n"), None);
        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change\n\
2 be 1 s1 127.0.0.1 0 1 7 1 1\n2 be 2 s2 127.0.0.1 2 0 1 1 1\n\n";
        let s = parse_servers_state(state);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].server.as_str(), s[0].admin, s[0].user_weight),
            ("s1", 1, 7)
        );
        assert_eq!(s[1].admin, 0);
        assert_eq!((s[0].op_state, s[1].op_state), (0, 2));
        assert!(parse_servers_state("garbage").is_empty());
    }

    #[test]
    fn ssl_cert_commands_are_safe() {
        let f = CertFile::parse(Path::new("/run/lbagent/certs/L1/www.example.com.pem")).unwrap();
        let cmd = Command::SetSslCert(
            f.clone(),
            pem_payload(b"-----BEGIN X-----\r\nAAA\r\n\r\n-----END X-----\n\n"),
        );
        assert_eq!(
            cmd.line(),
            "set ssl cert /run/lbagent/certs/L1/www.example.com.pem <<\n-----BEGIN X-----\nAAA\n-----END X-----\n"
        );
        assert_eq!(
            Command::CommitSslCert(f).line(),
            "commit ssl cert /run/lbagent/certs/L1/www.example.com.pem"
        );
        for bad in [
            "relative.pem",
            "/a b.pem",
            "/a/../b.pem",
            "/a;b.pem",
            "/a\nb.pem",
        ] {
            assert!(CertFile::parse(Path::new(bad)).is_none(), "{bad:?}");
        }
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
