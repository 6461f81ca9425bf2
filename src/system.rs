//! The amphora host as the details/status endpoints report it: CPU, memory, disk, load and
//! network rates from /proc, /sys and statvfs; installed versions; interface lookup by address.
//! Parsers are pure; a sampler thread keeps a 30-second window for rates.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::netplug::Cidr;
use crate::process;

/// The window the spec's rates are averaged over.
const WINDOW: Duration = Duration::from_secs(30);
/// How often the sampler reads the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Cumulative CPU time counters (first `cpu` line of /proc/stat), in jiffies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub system: u64,
    pub softirq: u64,
    pub busy: u64,
    pub total: u64,
}

fn parse_cpu(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    let idle = get(3) + get(4);
    Some(CpuTimes {
        user: get(0) + get(1),
        system: get(2),
        softirq: get(6),
        busy: total.saturating_sub(idle),
        total,
    })
}

/// CPU use between two readings, in percent: (total, user, system, soft_irq).
fn cpu_percent(a: &CpuTimes, b: &CpuTimes) -> (f64, f64, f64, f64) {
    let dt = b.total.saturating_sub(a.total) as f64;
    if dt <= 0.0 {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let pct = |x: u64, y: u64| round2(100.0 * y.saturating_sub(x) as f64 / dt);
    (
        pct(a.busy, b.busy),
        pct(a.user, b.user),
        pct(a.system, b.system),
        pct(a.softirq, b.softirq),
    )
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// /proc/meminfo in kB, by field name.
pub fn parse_meminfo(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse().ok()?;
            Some((k.trim().to_string(), n))
        })
        .collect()
}

/// The three load averages of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// (used, available) kB of the file system holding `path`.
pub fn disk_kb(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above: a valid C string and a struct we own.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    let used = (s.f_blocks as u64).saturating_sub(s.f_bfree as u64) * frsize / 1024;
    Some((used, s.f_bavail as u64 * frsize / 1024))
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Per-interface (tx, rx) byte counters from /sys/class/net.
fn net_counters() -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let read = |f: &str| {
            std::fs::read_to_string(e.path().join("statistics").join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        if let (Some(tx), Some(rx)) = (read("tx_bytes"), read("rx_bytes")) {
            out.insert(name, (tx, rx));
        }
    }
    out
}

struct Sample {
    at: Instant,
    cpu: CpuTimes,
    net: BTreeMap<String, (u64, u64)>,
}

fn take_sample() -> Sample {
    Sample {
        at: Instant::now(),
        cpu: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_cpu(&s))
            .unwrap_or_default(),
        net: net_counters(),
    }
}

/// Rates over the sampler's window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// (total, user, system, soft_irq) percent.
    pub cpu: (f64, f64, f64, f64),
    /// Interface -> (tx, rx) bytes per second.
    pub net: BTreeMap<String, (f64, f64)>,
}

/// Keeps the last `WINDOW` of samples.
#[derive(Default)]
pub struct Sampler(Mutex<VecDeque<Sample>>);

impl Sampler {
    /// Takes a sample and drops those older than the window.
    pub fn tick(&self) {
        let s = take_sample();
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(s);
        while q.len() > 2 && q.front().is_some_and(|f| f.at.elapsed() > WINDOW) {
            q.pop_front();
        }
    }

    /// Rates between the oldest sample in the window and now.
    pub fn rates(&self) -> Rates {
        let now = take_sample();
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(first) = q.front() else {
            return Rates::default();
        };
        let secs = now.at.duration_since(first.at).as_secs_f64();
        let mut net = BTreeMap::new();
        for (name, (tx, rx)) in &now.net {
            if let (Some((tx0, rx0)), true) = (first.net.get(name), secs > 0.0) {
                let rate = |a: u64, b: u64| round2(b.saturating_sub(a) as f64 / secs);
                net.insert(name.clone(), (rate(*tx0, *tx), rate(*rx0, *rx)));
            }
        }
        Rates {
            cpu: cpu_percent(&first.cpu, &now.cpu),
            net,
        }
    }
}

/// The first line of a program's version output, e.g. `HAProxy version 2.6.12-1+deb12u4 ...`.
fn version_line(program: &Path, arg: &str) -> Option<String> {
    let out = process::run(program.as_os_str(), &[arg], None, Duration::from_secs(5)).ok()?;
    out.text
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// The version word of a version line: the first word holding a digit, without a leading `v`.
fn version_of(line: &str) -> Option<String> {
    line.split_whitespace()
        .map(|w| w.strip_prefix('v').unwrap_or(w))
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
}

/// Versions of the load-balancing packages found (asked of the binaries once, then cached).
pub fn packages(haproxy: &Path, keepalived: &Path) -> &'static [(String, String)] {
    static CACHE: OnceLock<Vec<(String, String)>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let mut out = Vec::new();
        for (name, bin, arg) in [
            ("haproxy", haproxy, "-v"),
            ("keepalived", keepalived, "-v"),
            ("openssl", Path::new("openssl"), "version"),
        ] {
            if let Some(v) = version_line(bin, arg).as_deref().and_then(version_of) {
                out.push((name.to_string(), v));
            }
        }
        out
    })
}

/// An address of an interface, with its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub interface: String,
    pub ip: IpAddr,
    pub network: Cidr,
}

/// Every IPv4 and IPv6 address of every interface.
pub fn addresses() -> Vec<IfAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free exactly once below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned and is not yet freed.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_addr and ifa_netmask are null or sockaddrs of their family, owned by
        // the list.
        let (addr, mask) = unsafe { (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask)) };
        if let (Some(ip), false) = (addr, ifa.ifa_name.is_null()) {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            let len = mask.map_or(0, prefix_len);
            if let Some(network) = Cidr::parse(&format!("{ip}/{len}")) {
                found.push(IfAddr {
                    interface: name.to_string_lossy().into_owned(),
                    ip,
                    network,
                });
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// The prefix length of a netmask (its leading one bits).
fn prefix_len(mask: IpAddr) -> u8 {
    let ones = match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    };
    u8::try_from(ones).unwrap_or(0)
}

/// The address in a sockaddr of family AF_INET or AF_INET6.
///
/// # Safety
/// `sa` must be null or point to a valid sockaddr of the size its family implies.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let v4 = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            let v6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::from(v6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_with_its_network() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let a = addresses().into_iter().find(|a| a.ip == lo).unwrap();
        assert_eq!(a.network, Cidr::parse("127.0.0.0/8").unwrap());
        assert_eq!(a.interface, "lo");
        assert_eq!(prefix_len("255.255.254.0".parse().unwrap()), 23);
        assert_eq!(prefix_len("ffff:ffff:ffff:ffff::".parse().unwrap()), 64);
    }

    #[test]
    fn cpu() {
        let a = parse_cpu("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = parse_cpu("cpu  130 0 60 850 50 0 10 0 0 0\n").unwrap();
        assert_eq!(a.total, 1000);
        assert_eq!(cpu_percent(&a, &b), (50.0, 30.0, 10.0, 10.0));
        assert_eq!(cpu_percent(&a, &a), (0.0, 0.0, 0.0, 0.0));
        assert!(parse_cpu("nothing").is_none());
    }

    #[test]
    fn meminfo_loadavg_versions() {
        let m = parse_meminfo(
            "MemTotal:       24684096 kB\nSwapFree:  0 kB\nHugePages_Total:       0\n",
        );
        assert_eq!(m["MemTotal"], 24_684_096);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(
            parse_loadavg("1.71 1.09 0.60 1/94 31850\n"),
            [1.71, 1.09, 0.60]
        );
        assert_eq!(
            version_of("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/")
                .as_deref(),
            Some("2.6.12-1+deb12u4")
        );
        assert_eq!(
            version_of("Keepalived v2.2.7 (01/16,2022)").as_deref(),
            Some("2.2.7")
        );
        assert_eq!(
            version_of("OpenSSL 3.0.22 25 Aug 2026").as_deref(),
            Some("3.0.22")
        );
        assert_eq!(version_of("no version here"), None);
    }

    #[test]
    fn disk_and_hostname() {
        let (used, avail) = disk_kb(Path::new("/")).unwrap();
        assert!(used > 0 && avail > 0);
        assert!(!hostname().is_empty());
    }
}
