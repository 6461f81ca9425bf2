//! The `ip` commands that realise a plug, each with the one that takes it back: built as
//! argument vectors from typed values, run in order, undone newest first on a failure.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::process;

use super::{Cidr, Plug, VipHolder, VipPlug};

const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// An `ip` command that failed, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub argv: Vec<String>,
    pub output: String,
}

impl fmt::Display for StepFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip {}: {}", self.argv.join(" "), self.output)
    }
}

/// `ip argv...`.
fn run_ip(argv: &[String]) -> Result<(), StepFailed> {
    let output = match process::run("ip".as_ref(), argv, None, IP_TIMEOUT) {
        Ok(out) if out.success => return Ok(()),
        Ok(out) => out.text.trim().to_string(),
        Err(e) => e.to_string(),
    };
    Err(StepFailed {
        argv: argv.to_vec(),
        output,
    })
}

/// An argument vector, one argument per word or typed value.
macro_rules! argv {
    ($($arg:expr),* $(,)?) => {
        vec![$($arg.to_string()),*]
    };
}

/// An `ip` command and the one that takes it back; none where a later step's undo covers it
/// (flushing the VIP's table removes all its routes).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Step {
    run: Vec<String>,
    undo: Option<Vec<String>>,
}

/// Runs steps in order; on a failure, runs the undo steps of those that succeeded, newest
/// first.
pub(super) fn apply(steps: &[Step]) -> Result<(), StepFailed> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = run_ip(&step.run) {
            undo(&steps[..i]);
            return Err(e);
        }
    }
    Ok(())
}

/// Undoes steps, newest first.
pub(super) fn undo(steps: &[Step]) {
    for back in steps.iter().rev().filter_map(|s| s.undo.as_ref()) {
        let _ = run_ip(back);
    }
}

/// Re-applies steps after a restart: what is already there stays, nothing is undone (a
/// working VIP must not be taken down because one step failed). Returns the failures.
pub(super) fn reapply_steps(steps: &[Step]) -> Vec<StepFailed> {
    steps
        .iter()
        .filter_map(|s| run_ip(&s.run).err())
        .filter(|e| !e.output.contains("File exists"))
        .collect()
}

/// Gives `dev` the address `ip` in `subnet`. IPv6 addresses skip duplicate address detection:
/// a tentative address cannot be a route's source, and the port is ours alone.
fn address(ip: IpAddr, subnet: &Cidr, dev: &str) -> Step {
    let addr = subnet.host(ip);
    let mut run = argv!["addr", "add", addr, "dev", dev];
    if ip.is_ipv6() {
        run.push("nodad".to_string());
    }
    Step {
        run,
        undo: Some(argv!["addr", "del", addr, "dev", dev]),
    }
}

fn link_up(dev: &str, mtu: Option<u32>) -> Step {
    let mut run = argv!["link", "set", "dev", dev, "up"];
    if let Some(mtu) = mtu {
        run.extend(argv!["mtu", mtu]);
    }
    Step {
        run,
        undo: Some(argv!["link", "set", "dev", dev, "down"]),
    }
}

/// The `ip` steps (with their undo) that realise a plug on `dev`.
pub(super) fn steps(p: &Plug, dev: &str) -> Vec<Step> {
    match p {
        Plug::Vip {
            plug,
            table,
            holder,
        } => vip_steps(plug, *table, *holder, dev),
        Plug::Network(n) => {
            let mut s: Vec<Step> = n
                .fixed_ips
                .iter()
                .map(|f| address(f.ip, &f.subnet, dev))
                .collect();
            s.push(link_up(dev, n.mtu));
            s
        }
    }
}

/// A VIP's steps: its addresses, the link, then its table (subnet, default and host routes)
/// and the rule that sends replies from the VIP through that table. When keepalived holds the
/// VIP (it adds the VIP's own table and rule), the port gets only `vrrp_ip`, and the table
/// and rule serve traffic from `vrrp_ip`.
fn vip_steps(p: &VipPlug, table: u32, holder: VipHolder, dev: &str) -> Vec<Step> {
    let mut s = Vec::new();
    if let Some(vrrp_ip) = p.vrrp_ip {
        s.push(address(vrrp_ip, &p.subnet, dev));
    }
    let source = match (holder, p.vrrp_ip) {
        (VipHolder::Keepalived, Some(vrrp_ip)) => vrrp_ip,
        _ => {
            s.push(address(p.vip, &p.subnet, dev));
            p.vip
        }
    };
    s.push(link_up(dev, p.mtu));
    let fam = if p.subnet.addr.is_ipv4() { "-4" } else { "-6" };
    let route = |to: Vec<String>| -> Step {
        let mut run = argv![fam, "route", "add"];
        run.extend(to);
        run.extend(argv!["dev", dev, "table", table]);
        Step { run, undo: None }
    };
    s.push(Step {
        run: argv![fam, "route", "add", p.subnet, "dev", dev, "src", source, "table", table],
        undo: Some(argv![fam, "route", "flush", "table", table]),
    });
    if let Some(gw) = p.gateway {
        s.push(route(argv!["default", "via", gw]));
    }
    for r in &p.host_routes {
        s.push(route(argv![r.destination, "via", r.nexthop]));
    }
    s.push(Step {
        run: argv![fam, "rule", "add", "from", source, "table", table, "priority", table],
        undo: Some(argv![
            fam, "rule", "del", "from", source, "table", table, "priority", table
        ]),
    });
    s
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::netplug::FixedIp;

    fn runs(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.run.join(" ")).collect()
    }

    #[test]
    fn the_steps_of_a_vip_plug() {
        let s = steps(
            &Plug::Vip {
                plug: vip_plug(),
                table: 100,
                holder: VipHolder::Plug,
            },
            "eth1",
        );
        assert_eq!(
            runs(&s),
            [
                "addr add 203.0.113.3/24 dev eth1",
                "addr add 203.0.113.2/24 dev eth1",
                "link set dev eth1 up mtu 1450",
                "-4 route add 203.0.113.0/24 dev eth1 src 203.0.113.2 table 100",
                "-4 route add default via 203.0.113.1 dev eth1 table 100",
                "-4 route add 192.0.2.0/24 via 203.0.113.1 dev eth1 table 100",
                "-4 rule add from 203.0.113.2 table 100 priority 100",
            ]
        );
        assert_eq!(
            s[1].run,
            ["addr", "add", "203.0.113.2/24", "dev", "eth1"],
            "one argument per value"
        );
        let undos: Vec<String> = s
            .iter()
            .filter_map(|s| s.undo.as_ref().map(|u| u.join(" ")))
            .collect();
        assert_eq!(
            undos,
            [
                "addr del 203.0.113.3/24 dev eth1",
                "addr del 203.0.113.2/24 dev eth1",
                "link set dev eth1 down",
                "-4 route flush table 100",
                "-4 rule del from 203.0.113.2 table 100 priority 100",
            ]
        );
    }

    /// ACTIVE_STANDBY: keepalived adds the VIP on the MASTER only; the port gets `vrrp_ip`,
    /// and traffic from it leaves by the gateway.
    #[test]
    fn the_steps_of_a_vip_keepalived_holds() {
        let s = steps(
            &Plug::Vip {
                plug: vip_plug(),
                table: 100,
                holder: VipHolder::Keepalived,
            },
            "eth1",
        );
        assert_eq!(
            runs(&s),
            [
                "addr add 203.0.113.3/24 dev eth1",
                "link set dev eth1 up mtu 1450",
                "-4 route add 203.0.113.0/24 dev eth1 src 203.0.113.3 table 100",
                "-4 route add default via 203.0.113.1 dev eth1 table 100",
                "-4 route add 192.0.2.0/24 via 203.0.113.1 dev eth1 table 100",
                "-4 rule add from 203.0.113.3 table 100 priority 100",
            ]
        );
    }

    #[test]
    fn the_steps_of_a_network_plug_and_an_ipv6_address() {
        let mut n = network_plug();
        n.fixed_ips.push(FixedIp {
            ip: ip("2001:db8::9"),
            subnet: cidr("2001:db8::/64"),
        });
        n.mtu = Some(9000);
        assert_eq!(
            runs(&steps(&Plug::Network(n), "eth2")),
            [
                "addr add 198.51.100.9/24 dev eth2",
                "addr add 2001:db8::9/64 dev eth2 nodad",
                "link set dev eth2 up mtu 9000",
            ]
        );
    }

    #[test]
    fn a_failed_step_says_which_command_and_what_ip_said() {
        let f = StepFailed {
            argv: argv!["-4", "route", "add", "default", "via", ip("203.0.113.1")],
            output: "RTNETLINK answers: File exists".into(),
        };
        assert_eq!(
            f.to_string(),
            "ip -4 route add default via 203.0.113.1: RTNETLINK answers: File exists"
        );
    }
}
