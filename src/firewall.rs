//! The VIP firewall Octavia sets on SR-IOV VIPs (its `set_interface_rules`): a list of allow
//! rules rendered into one nftables file, `<state_dir>/nftables-vip.rules`, in the layout of
//! Octavia's agent (`nftable_utils.py`), and loaded with `nft -o -f` as one transaction. The
//! file is loaded again when the agent starts, so the rules outlive an agent restart. With a
//! tenant namespace the rules are loaded there, as Octavia loads them in `amphora-haproxy`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::netplug::Cidr;
use crate::{logs, netns, process, store};

/// Octavia's `NFT_CMD`.
const NFT: &str = "/usr/sbin/nft";
const NFT_TIMEOUT: Duration = Duration::from_secs(30);
const FILE: &str = "nftables-vip.rules";
/// The file names the table, so nothing but the agent should read or change it.
const FILE_MODE: u32 = 0o600;
/// Octavia's `ip protocol 112`.
const VRRP_PROTOCOL: u8 = 112;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Vrrp,
}

impl Protocol {
    /// Octavia's words, in its case.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            "VRRP" => Some(Protocol::Vrrp),
            _ => None,
        }
    }
}

/// One allow rule: traffic of `protocol` to `port` (VRRP has none) from `source`, or from
/// anywhere when `source` is None.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub protocol: Protocol,
    pub source: Option<Cidr>,
    pub port: u16,
}

/// A rule's source from the `cidr` Octavia's controller sends: None (any source) for
/// `0.0.0.0/0`, as Octavia's agent reads it; a bare address is that one host. None when `text`
/// is no network.
pub fn source(text: &str) -> Option<Option<Cidr>> {
    let cidr = if text.contains('/') {
        Cidr::parse(text)?
    } else {
        let addr: IpAddr = text.trim().parse().ok()?;
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, len }
    };
    let any_v4 = cidr.addr.is_ipv4() && cidr.len == 0;
    Some((!any_v4).then_some(cidr))
}

impl Rule {
    /// The rule's line in `amphora_vip_chain`, built from typed values only.
    fn line(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.source {
            let family = if c.addr.is_ipv4() { "ip" } else { "ip6" };
            let _ = write!(s, "{family} saddr {c} ");
        }
        let v6 = self.source.is_some_and(|c| !c.addr.is_ipv4());
        let _ = match self.protocol {
            Protocol::Tcp => write!(s, "tcp dport {} accept", self.port),
            Protocol::Udp => write!(s, "udp dport {} accept", self.port),
            Protocol::Sctp => write!(s, "sctp dport {} accept", self.port),
            // Octavia writes `ip protocol 112` after an `ip6 saddr` too, which nft refuses
            // ("conflicting protocols"), failing the whole file: IPv6 says it by l4proto.
            Protocol::Vrrp if v6 => write!(s, "meta l4proto {VRRP_PROTOCOL} accept"),
            Protocol::Vrrp => write!(s, "ip protocol {VRRP_PROTOCOL} accept"),
        };
        s
    }
}

#[derive(Debug)]
pub enum FirewallError {
    /// An interface name the agent does not put into nft's text.
    BadInterface(String),
    /// nft could not be run (not installed); why.
    Unavailable(String),
    /// nft refused the rules; its output.
    Refused(String),
    Io(io::Error),
}

/// Interface names go into the rules quoted; the kernel allows almost any byte in one, the
/// agent only these (every name `ip` and cloud images give).
fn interface_ok(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The whole file: the table is created and deleted first so that loading it replaces the
/// old rules in the same transaction (no moment without a firewall), even the first time.
/// `others_open`: traffic on other interfaces than `interface` is accepted.
pub fn render(interface: &str, rules: &[Rule], others_open: bool) -> String {
    let mut s = String::from(
        "# Written by lbagent (PUT /1.0/interface/<ip>/rules); loaded with nft -o -f.\n\
         table inet amphora_table {}\n\
         delete table inet amphora_table\n\
         table inet amphora_table {\n\
         \x20 chain amphora_chain {\n\
         \x20   type filter hook input priority filter; policy drop;\n\
         \x20   ct state vmap { established : accept, related : accept, invalid : drop }\n\
         \x20   iif lo accept\n\
         \x20   ip saddr 127.0.0.0/8 drop\n\
         \x20   ip6 saddr ::1 drop\n\
         \x20   icmp type destination-unreachable accept\n\
         \x20   icmpv6 type { nd-neighbor-solicit, nd-router-advert, nd-neighbor-advert, \
         packet-too-big, destination-unreachable } accept\n\
         \x20   udp sport 67 udp dport 68 accept\n\
         \x20   udp sport 547 udp dport 546 accept\n",
    );
    let _ = writeln!(s, "    iifname \"{interface}\" goto amphora_vip_chain");
    // Octavia loads this in its tenant namespace, where no management port lives. Without one
    // the management port shares the agent's namespace: it stays open, or the controller
    // would lock itself out of the agent.
    if others_open {
        s.push_str("    accept\n");
    }
    s.push_str("  }\n  chain amphora_vip_chain {\n");
    for rule in rules {
        let _ = writeln!(s, "    {}", rule.line());
    }
    s.push_str("  }\n}\n");
    s
}

/// The rules file and the one lock that keeps its write and its load together.
pub struct Firewall {
    file: PathBuf,
    lock: Mutex<()>,
}

impl Firewall {
    pub fn new(state_dir: &Path) -> Firewall {
        Firewall {
            file: state_dir.join(FILE),
            lock: Mutex::new(()),
        }
    }

    /// Replaces the rules: only `rules` reach the VIP interface `interface`. When nft
    /// refuses them the file goes back to what it was, so a restart loads the rules in force.
    pub fn apply(&self, interface: &str, rules: &[Rule]) -> Result<(), FirewallError> {
        if !interface_ok(interface) {
            return Err(FirewallError::BadInterface(interface.to_string()));
        }
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let before = match std::fs::read(&self.file) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(FirewallError::Io(e)),
        };
        let text = render(interface, rules, netns::tenant().is_none());
        store::write_atomic(&self.file, text.as_bytes(), FILE_MODE).map_err(FirewallError::Io)?;
        let loaded = load(&self.file);
        if loaded.is_err() {
            let undone = match &before {
                Some(bytes) => store::write_atomic(&self.file, bytes, FILE_MODE),
                None => std::fs::remove_file(&self.file),
            };
            if let Err(e) = undone {
                logs::error(&format!("{}: cannot restore: {e}", self.file.display()));
            }
        }
        loaded
    }

    /// At start-up: the rules of the last `apply`, if any, are put back (nft's tables do not
    /// outlive a reboot). A failure is logged: the agent serves on.
    pub fn restore(&self) {
        if !self.file.exists() {
            return;
        }
        match load(&self.file) {
            Ok(()) => logs::info(&format!(
                "firewall rules loaded from {}",
                self.file.display()
            )),
            Err(e) => logs::error(&format!(
                "cannot load the firewall rules {}: {e:?}",
                self.file.display()
            )),
        }
    }
}

/// `nft -o -f <file>`, where HAProxy runs: one transaction, all or nothing.
fn load(file: &Path) -> Result<(), FirewallError> {
    // Checked first: run through `ip netns exec`, a missing nft is only ip's failure.
    if !Path::new(NFT).exists() {
        return Err(FirewallError::Unavailable(format!(
            "{NFT} is not installed"
        )));
    }
    let args = [OsStr::new("-o"), OsStr::new("-f"), file.as_os_str()];
    let (program, argv) = netns::wrap(OsStr::new(NFT), &args);
    match process::run(&program, &argv, None, NFT_TIMEOUT) {
        Ok(out) if out.success => Ok(()),
        Ok(out) => Err(FirewallError::Refused(out.text.trim().to_string())),
        Err(e) => Err(FirewallError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, cidr: Option<&str>, port: u16) -> Rule {
        let source = cidr.and_then(|c| source(c).unwrap());
        Rule {
            protocol,
            source,
            port,
        }
    }

    #[test]
    fn each_rule_is_one_accept_line() {
        let cases = [
            (rule(Protocol::Tcp, None, 80), "tcp dport 80 accept"),
            (
                rule(Protocol::Udp, Some("0.0.0.0/0"), 53),
                "udp dport 53 accept",
            ),
            (
                rule(Protocol::Tcp, Some("203.0.113.7/24"), 443),
                "ip saddr 203.0.113.0/24 tcp dport 443 accept",
            ),
            (
                rule(Protocol::Sctp, Some("2001:db8::/32"), 9),
                "ip6 saddr 2001:db8::/32 sctp dport 9 accept",
            ),
            (
                rule(Protocol::Tcp, Some("::/0"), 80),
                "ip6 saddr ::/0 tcp dport 80 accept",
            ),
            (
                rule(Protocol::Vrrp, Some("203.0.113.3/32"), 112),
                "ip saddr 203.0.113.3/32 ip protocol 112 accept",
            ),
            (
                rule(Protocol::Vrrp, Some("2001:db8::3"), 112),
                "ip6 saddr 2001:db8::3/128 meta l4proto 112 accept",
            ),
            (rule(Protocol::Vrrp, None, 112), "ip protocol 112 accept"),
        ];
        for (r, want) in cases {
            assert_eq!(r.line(), want, "{r:?}");
        }
        for bad in [
            "",
            "nope",
            "203.0.113.0/33",
            "1.2.3.4/x",
            "::/129",
            "1.2.3.4/24 x",
        ] {
            assert_eq!(source(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_file_is_octavias_layout_for_the_interface() {
        let rules = [
            rule(Protocol::Tcp, None, 80),
            rule(Protocol::Vrrp, Some("203.0.113.3/32"), 112),
        ];
        let text = render("eth1", &rules, true);
        let want = "\
table inet amphora_table {}
delete table inet amphora_table
table inet amphora_table {
  chain amphora_chain {
    type filter hook input priority filter; policy drop;
    ct state vmap { established : accept, related : accept, invalid : drop }
    iif lo accept
    ip saddr 127.0.0.0/8 drop
    ip6 saddr ::1 drop
    icmp type destination-unreachable accept
    icmpv6 type { nd-neighbor-solicit, nd-router-advert, nd-neighbor-advert, packet-too-big, destination-unreachable } accept
    udp sport 67 udp dport 68 accept
    udp sport 547 udp dport 546 accept
    iifname \"eth1\" goto amphora_vip_chain
    accept
  }
  chain amphora_vip_chain {
    tcp dport 80 accept
    ip saddr 203.0.113.3/32 ip protocol 112 accept
  }
}
";
        let (comment, rest) = text.split_once('\n').unwrap();
        assert!(comment.starts_with("# "), "{comment}");
        assert_eq!(rest, want);
        // In a tenant namespace, Octavia's exactly: other interfaces fall to the policy too.
        let tenant = render("eth1", &rules, false);
        assert_eq!(
            tenant,
            text.replace(
                "goto amphora_vip_chain\n    accept\n",
                "goto amphora_vip_chain\n"
            )
        );
        // No rules: the VIP interface takes nothing new.
        assert!(render("eth1", &[], true).ends_with("chain amphora_vip_chain {\n  }\n}\n"));
    }

    #[test]
    fn only_plain_interface_names_reach_the_text() {
        for ok in ["eth1", "ens3f0", "lbt0", "vlan.10", "a_b-c"] {
            assert!(interface_ok(ok), "{ok}");
        }
        for bad in ["", "eth1\"", "a b", "x}", "a;b", "0123456789abcdef", "é"] {
            assert!(!interface_ok(bad), "{bad}");
        }
        let fw = Firewall::new(Path::new("/nonexistent-lbagent-test"));
        assert!(matches!(
            fw.apply("a\"b", &[]),
            Err(FirewallError::BadInterface(_))
        ));
    }
}
