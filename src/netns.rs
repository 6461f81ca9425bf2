//! The tenant network namespace (Octavia's `amphora-haproxy`), when the config names one: VIP and
//! member ports are moved into it, HAProxy and keepalived run in it, while the agent and its
//! heartbeats stay in the namespace it was started in (the management side). Set once at start;
//! without it everything runs where the agent runs.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use crate::netplug::Cidr;
use crate::system::IfAddr;
use crate::{logs, process, system};

const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Kernel settings inside the namespace, as Octavia's image makes them: HAProxy binds VIPs this
/// host does not hold (the standby's), and the namespace routes.
const SYSCTLS: &[&str] = &[
    "net.ipv4.ip_nonlocal_bind=1",
    "net.ipv6.ip_nonlocal_bind=1",
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
];

static TENANT: OnceLock<Option<String>> = OnceLock::new();

/// Names the tenant namespace for the life of the process (the first call wins).
pub fn set(name: Option<String>) {
    let _ = TENANT.set(name);
}

/// The tenant namespace's name, if there is one.
pub fn tenant() -> Option<&'static str> {
    TENANT.get().and_then(|n| n.as_deref())
}

/// Moves the calling thread, and only it (setns acts per thread), into the network namespace
/// `name`: the sockets it opens from then on live there.
pub fn enter(name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(std::path::Path::new("/run/netns").join(name))?;
    // SAFETY: setns gets a descriptor that `ns` keeps open for the call.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `s` can name a namespace (a file under /run/netns).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `ip args...` in the agent's own namespace.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = process::run("ip".as_ref(), args, None, IP_TIMEOUT)
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.success {
        Ok(out.text)
    } else {
        Err(format!("ip {}: {}", args.join(" "), out.text.trim()))
    }
}

/// Makes the tenant namespace if it is missing (after a reboot it is), with its loopback up and
/// its kernel settings.
pub fn ensure() -> Result<(), String> {
    let Some(ns) = tenant() else {
        return Ok(());
    };
    if !std::path::Path::new("/run/netns").join(ns).exists() {
        ip(&["netns", "add", ns])?;
        logs::info(&format!("made the tenant network namespace {ns}"));
    }
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    for setting in SYSCTLS {
        let args = ["netns", "exec", ns, "sysctl", "-q", "-w", setting];
        if let Err(e) = ip(&args) {
            logs::warn(&format!("tenant namespace {ns}: {e}"));
        }
    }
    Ok(())
}

/// `ip` arguments that act where the ports live: `-n <ns>` first when there is a tenant
/// namespace.
pub fn ip_argv(argv: &[String]) -> Vec<String> {
    match tenant() {
        Some(ns) => ["-n", ns]
            .iter()
            .map(|s| s.to_string())
            .chain(argv.iter().cloned())
            .collect(),
        None => argv.to_vec(),
    }
}

/// Moves the interface `dev` from the agent's namespace into the tenant namespace.
pub fn move_in(dev: &str) -> Result<(), String> {
    match tenant() {
        Some(ns) => ip(&["link", "set", "dev", dev, "netns", ns]).map(|_| ()),
        None => Ok(()),
    }
}

/// Moves `dev` back from the tenant namespace to the agent's (a plug that failed).
pub fn move_out(dev: &str) -> Result<(), String> {
    match tenant() {
        Some(ns) => {
            let me = std::process::id().to_string();
            ip(&["-n", ns, "link", "set", "dev", dev, "netns", &me]).map(|_| ())
        }
        None => Ok(()),
    }
}

/// `program args` as run inside the tenant namespace: `ip netns exec <ns> program args`
/// (it execs the program, so the pid is the program's).
pub fn wrap(program: &OsStr, args: &[&OsStr]) -> (OsString, Vec<OsString>) {
    match tenant() {
        None => (
            program.to_os_string(),
            args.iter().map(|a| a.to_os_string()).collect(),
        ),
        Some(ns) => {
            let mut all: Vec<OsString> = ["netns", "exec", ns].iter().map(OsString::from).collect();
            all.push(program.to_os_string());
            all.extend(args.iter().map(|a| a.to_os_string()));
            (OsString::from("ip"), all)
        }
    }
}

/// One address of `ip -j addr show`.
#[derive(Deserialize)]
struct LinkJson {
    ifname: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    addr_info: Vec<AddrJson>,
}

#[derive(Deserialize)]
struct AddrJson {
    local: IpAddr,
    prefixlen: u8,
}

fn links(ns: &str) -> Vec<LinkJson> {
    ip(&["-n", ns, "-j", "addr", "show"])
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Every address where HAProxy runs: the tenant namespace's, or the agent's own.
pub fn addresses() -> Vec<IfAddr> {
    let Some(ns) = tenant() else {
        return system::addresses();
    };
    links(ns)
        .into_iter()
        .flat_map(|l| {
            l.addr_info.into_iter().filter_map(move |a| {
                Some(IfAddr {
                    interface: l.ifname.clone(),
                    ip: a.local,
                    network: Cidr::parse(&format!("{}/{}", a.local, a.prefixlen))?,
                })
            })
        })
        .collect()
}

/// The interface holding `ip` where HAProxy runs.
pub fn interface_of(ip: IpAddr) -> Option<String> {
    addresses()
        .into_iter()
        .find(|a| a.ip == ip)
        .map(|a| a.interface)
}

/// An interface holding another address on `ip`'s network, where HAProxy runs: where VRRP for
/// `ip` runs.
pub fn interface_on_network_of(ip: IpAddr) -> Option<IfAddr> {
    addresses()
        .into_iter()
        .find(|a| a.ip != ip && a.network.contains(ip) && !a.ip.is_loopback())
}

/// The interface inside the tenant namespace with `mac`, and whether it is up.
pub fn link_by_mac(mac: &str) -> Option<(String, bool)> {
    let ns = tenant()?;
    links(ns)
        .into_iter()
        .find(|l| l.address.eq_ignore_ascii_case(mac))
        .map(|l| {
            let up = l.flags.iter().any(|f| f == "UP");
            (l.ifname, up)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        for good in ["amphora-haproxy", "lbt-tenant-12_3.x"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn without_a_tenant_namespace_programs_run_as_they_are() {
        let (program, args) = wrap("haproxy".as_ref(), &["-c".as_ref()]);
        assert_eq!(
            (program.as_os_str(), args),
            ("haproxy".as_ref(), vec![OsString::from("-c")])
        );
    }
}
