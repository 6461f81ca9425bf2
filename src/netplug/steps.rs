//! The `ip` commands that realise a plug, each with the one that takes it back: built as
//! argument vectors from typed values, run in order, undone newest first on a failure.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::{netns, process};

use super::current::Current;
use super::{Cidr, FixedIp, HostRoute, NetworkPlug, Plug, VipHolder, VipPlug};

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

/// `ip argv...`, where the ports live (the tenant namespace, if there is one).
pub(super) fn run_ip(argv: &[String]) -> Result<String, StepFailed> {
    let output = match process::run("ip".as_ref(), &netns::ip_argv(argv), None, IP_TIMEOUT) {
        Ok(out) if out.success => return Ok(out.text),
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
        if let Err(e) = run_ip(&step.run).map(drop) {
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
        // Already there: IPv4 and routes say "File exists", IPv6 addresses "already assigned".
        .filter(|e| !e.output.contains("File exists") && !e.output.contains("already assigned"))
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

/// Where a plug's port lives: in the tenant namespace, whose main table routes through the VIP
/// subnet's gateway (HAProxy reaches members beyond it that way), or beside the agent, whose
/// main table is the management side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Agent,
    Tenant,
}

/// The `ip` steps (with their undo) that realise a plug on `dev`.
pub(super) fn steps(p: &Plug, dev: &str, side: Side) -> Vec<Step> {
    match p {
        Plug::Vip {
            plug,
            table,
            extra_tables,
            holder,
        } => {
            let mut s = vip_steps(plug, *table, extra_tables, *holder, dev);
            s.extend(port_ips(plug, dev));
            if side == Side::Tenant {
                s.extend(default_routes(plug, dev));
            }
            s
        }
        Plug::Network(n) => {
            let mut s: Vec<Step> = n
                .fixed_ips
                .iter()
                .map(|f| address(f.ip, &f.subnet, dev))
                .collect();
            s.push(link_up(dev, n.mtu));
            s.extend(
                n.fixed_ips
                    .iter()
                    .flat_map(|f| &f.host_routes)
                    .map(|r| host_route(r, dev)),
            );
            s
        }
    }
}

/// The steps that bring `dev` from what it holds (`have`) to the network plug `want`: addresses
/// and host routes it should not hold go, missing ones come, the link is up with the MTU.
pub(super) fn reconcile(want: &NetworkPlug, have: &Current, dev: &str) -> Vec<Step> {
    reconcile_ips(&want.fixed_ips, want.mtu, &[], have, dev)
}

/// The same for the fixed IPs of a port, leaving alone the addresses in `keep` (a VIP port's
/// own, which its plug or keepalived manage).
pub(super) fn reconcile_ips(
    fixed_ips: &[FixedIp],
    mtu: Option<u32>,
    keep: &[IpAddr],
    have: &Current,
    dev: &str,
) -> Vec<Step> {
    let wanted: Vec<(IpAddr, u8)> = fixed_ips.iter().map(|f| (f.ip, f.subnet.len)).collect();
    let routes: Vec<&HostRoute> = fixed_ips.iter().flat_map(|f| &f.host_routes).collect();
    let mut s = Vec::new();
    for r in have.routes.iter().filter(|r| !routes.contains(r)) {
        s.extend(host_route(r, dev).undo.map(|run| Step { run, undo: None }));
    }
    let stray = |a: &&(IpAddr, u8)| !wanted.contains(a) && !keep.contains(&a.0);
    for (ip, len) in have.addresses.iter().filter(stray) {
        s.push(Step {
            run: argv!["addr", "del", format!("{ip}/{len}"), "dev", dev],
            undo: None,
        });
    }
    for f in fixed_ips {
        if !have.addresses.contains(&(f.ip, f.subnet.len)) {
            s.push(address(f.ip, &f.subnet, dev));
        }
    }
    s.push(link_up(dev, mtu));
    for r in routes.into_iter().filter(|r| !have.routes.contains(r)) {
        s.push(host_route(r, dev));
    }
    s
}

/// A member network's route, in the main table: members behind that network's router.
pub(super) fn host_route(r: &HostRoute, dev: &str) -> Step {
    let fam = family(&r.destination);
    let route = argv![r.destination, "via", r.nexthop, "dev", dev];
    let with = |verb: &str| {
        let mut v = argv![fam, "route", verb];
        v.extend(route.iter().cloned());
        v
    };
    Step {
        run: with("add"),
        undo: Some(with("del")),
    }
}

fn family(c: &Cidr) -> &'static str {
    if c.addr.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

/// A VIP's steps: its addresses (the first VIP's, then each additional one's), the link, then
/// for each VIP its table (subnet, default and host routes) and the rule that sends replies
/// from it through that table. When keepalived holds the VIPs (it adds them, with its own
/// table and rules), the port gets only `vrrp_ip`, and one table and rule serve traffic from
/// `vrrp_ip`.
fn vip_steps(
    p: &VipPlug,
    table: u32,
    extra_tables: &[u32],
    holder: VipHolder,
    dev: &str,
) -> Vec<Step> {
    let mut s = Vec::new();
    if let Some(vrrp_ip) = p.vrrp_ip {
        s.push(address(vrrp_ip, &p.subnet, dev));
    }
    let source = match (holder, p.vrrp_ip) {
        (VipHolder::Keepalived, Some(vrrp_ip)) => vrrp_ip,
        _ => {
            s.push(address(p.vip, &p.subnet, dev));
            s.extend(p.additional.iter().map(|x| address(x.ip, &x.subnet, dev)));
            p.vip
        }
    };
    s.push(link_up(dev, p.mtu));
    let first = Source {
        ip: source,
        subnet: &p.subnet,
        gateway: p.gateway,
        host_routes: &p.host_routes,
    };
    s.extend(source_table(&first, table, dev));
    if holder == VipHolder::Plug {
        for (x, t) in p.additional.iter().zip(extra_tables) {
            let extra = Source {
                ip: x.ip,
                subnet: &x.subnet,
                gateway: x.gateway,
                host_routes: &x.host_routes,
            };
            s.extend(source_table(&extra, *t, dev));
        }
    }
    s
}

/// A VIP port's further fixed IPs and their routes (those that are not its VIPs or vrrp_ip).
fn port_ips(p: &VipPlug, dev: &str) -> Vec<Step> {
    let managed = p.managed();
    let extra = p.fixed_ips.iter().filter(|f| !managed.contains(&f.ip));
    let mut s: Vec<Step> = extra
        .clone()
        .map(|f| address(f.ip, &f.subnet, dev))
        .collect();
    s.extend(
        extra
            .flat_map(|f| &f.host_routes)
            .map(|r| host_route(r, dev)),
    );
    s
}

/// The tenant namespace's default routes: through the first gateway of each address family
/// among the VIPs.
fn default_routes(p: &VipPlug, dev: &str) -> Vec<Step> {
    let gateways = std::iter::once(p.gateway)
        .chain(p.additional.iter().map(|x| x.gateway))
        .flatten();
    let mut seen_v4 = false;
    let mut seen_v6 = false;
    let mut s = Vec::new();
    for gw in gateways {
        let seen = if gw.is_ipv4() {
            &mut seen_v4
        } else {
            &mut seen_v6
        };
        if std::mem::replace(seen, true) {
            continue;
        }
        let fam = if gw.is_ipv4() { "-4" } else { "-6" };
        s.push(Step {
            run: argv![fam, "route", "replace", "default", "via", gw, "dev", dev],
            undo: Some(argv![fam, "route", "del", "default", "via", gw, "dev", dev]),
        });
    }
    s
}

/// An address that replies leave from through a table of its own.
struct Source<'a> {
    ip: IpAddr,
    subnet: &'a Cidr,
    gateway: Option<IpAddr>,
    host_routes: &'a [HostRoute],
}

/// `src`'s table (its subnet, default route and host routes) and the rule that sends traffic
/// from it there.
fn source_table(src: &Source, table: u32, dev: &str) -> Vec<Step> {
    let fam = family(src.subnet);
    let route = |to: Vec<String>| -> Step {
        let mut run = argv![fam, "route", "add"];
        run.extend(to);
        run.extend(argv!["dev", dev, "table", table]);
        Step { run, undo: None }
    };
    let mut s = vec![Step {
        run: argv![fam, "route", "add", src.subnet, "dev", dev, "src", src.ip, "table", table],
        undo: Some(argv![fam, "route", "flush", "table", table]),
    }];
    if let Some(gw) = src.gateway {
        s.push(route(argv!["default", "via", gw]));
    }
    for r in src.host_routes {
        s.push(route(argv![r.destination, "via", r.nexthop]));
    }
    s.push(Step {
        run: argv![fam, "rule", "add", "from", src.ip, "table", table, "priority", table],
        undo: Some(argv![
            fam, "rule", "del", "from", src.ip, "table", table, "priority", table
        ]),
    });
    s
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::netplug::{ExtraVip, FixedIp};

    fn runs(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.run.join(" ")).collect()
    }

    #[test]
    fn the_steps_of_a_vip_plug() {
        let s = steps(
            &Plug::Vip {
                plug: vip_plug(),
                table: 100,
                extra_tables: Vec::new(),
                holder: VipHolder::Plug,
            },
            "eth1",
            Side::Agent,
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

    /// Multi-VIP, dual stack: every VIP on the port, each with a table and rule of its own.
    #[test]
    fn the_steps_of_additional_vips() {
        let mut plug = vip_plug();
        plug.host_routes.clear();
        plug.additional = vec![
            ExtraVip {
                ip: ip("2001:db8:5::2"),
                subnet: cidr("2001:db8:5::/64"),
                gateway: Some(ip("2001:db8:5::1")),
                host_routes: Vec::new(),
            },
            ExtraVip {
                ip: ip("198.51.100.2"),
                subnet: cidr("198.51.100.0/24"),
                gateway: None,
                host_routes: vec![HostRoute {
                    destination: cidr("192.0.2.0/24"),
                    nexthop: ip("198.51.100.1"),
                }],
            },
        ];
        let vip = |holder, extra_tables| Plug::Vip {
            plug: plug.clone(),
            table: 100,
            extra_tables,
            holder,
        };
        assert_eq!(
            runs(&steps(
                &vip(VipHolder::Plug, vec![101, 102]),
                "eth1",
                Side::Agent
            )),
            [
                "addr add 203.0.113.3/24 dev eth1",
                "addr add 203.0.113.2/24 dev eth1",
                "addr add 2001:db8:5::2/64 dev eth1 nodad",
                "addr add 198.51.100.2/24 dev eth1",
                "link set dev eth1 up mtu 1450",
                "-4 route add 203.0.113.0/24 dev eth1 src 203.0.113.2 table 100",
                "-4 route add default via 203.0.113.1 dev eth1 table 100",
                "-4 rule add from 203.0.113.2 table 100 priority 100",
                "-6 route add 2001:db8:5::/64 dev eth1 src 2001:db8:5::2 table 101",
                "-6 route add default via 2001:db8:5::1 dev eth1 table 101",
                "-6 rule add from 2001:db8:5::2 table 101 priority 101",
                "-4 route add 198.51.100.0/24 dev eth1 src 198.51.100.2 table 102",
                "-4 route add 192.0.2.0/24 via 198.51.100.1 dev eth1 table 102",
                "-4 rule add from 198.51.100.2 table 102 priority 102",
            ]
        );
        // keepalived holds them all: only vrrp_ip's table.
        assert_eq!(
            runs(&steps(
                &vip(VipHolder::Keepalived, Vec::new()),
                "eth1",
                Side::Agent
            ))
            .len(),
            5
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
                extra_tables: Vec::new(),
                holder: VipHolder::Keepalived,
            },
            "eth1",
            Side::Agent,
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
            host_routes: vec![HostRoute {
                destination: cidr("2001:db8:7::/48"),
                nexthop: ip("2001:db8::1"),
            }],
        });
        n.mtu = Some(9000);
        let s = steps(&Plug::Network(n), "eth2", Side::Agent);
        assert_eq!(
            runs(&s),
            [
                "addr add 198.51.100.9/24 dev eth2",
                "addr add 2001:db8::9/64 dev eth2 nodad",
                "link set dev eth2 up mtu 9000",
                "-6 route add 2001:db8:7::/48 via 2001:db8::1 dev eth2",
            ]
        );
        assert_eq!(
            s[3].undo.as_ref().map(|u| u.join(" ")).as_deref(),
            Some("-6 route del 2001:db8:7::/48 via 2001:db8::1 dev eth2")
        );
    }

    /// Re-plugging: what differs goes or comes; what is the same is left alone.
    #[test]
    fn a_member_port_is_brought_to_its_new_fixed_ips() {
        let route = |d: &str, v: &str| HostRoute {
            destination: cidr(d),
            nexthop: ip(v),
        };
        let have = Current {
            addresses: vec![(ip("198.51.100.9"), 24), (ip("2001:db8::9"), 64)],
            routes: vec![route("192.0.2.0/24", "198.51.100.1")],
        };
        let mut want = network_plug();
        want.fixed_ips[0].host_routes = vec![route("192.0.2.0/24", "198.51.100.1")];
        want.fixed_ips.push(FixedIp {
            ip: ip("198.51.100.10"),
            subnet: cidr("198.51.100.0/24"),
            host_routes: vec![route("198.18.0.0/15", "198.51.100.1")],
        });
        assert_eq!(
            runs(&reconcile(&want, &have, "eth2")),
            [
                "addr del 2001:db8::9/64 dev eth2",
                "addr add 198.51.100.10/24 dev eth2",
                "link set dev eth2 up",
                "-4 route add 198.18.0.0/15 via 198.51.100.1 dev eth2",
            ]
        );
        want.fixed_ips.clear();
        assert_eq!(
            runs(&reconcile(&want, &have, "eth2")),
            [
                "-4 route del 192.0.2.0/24 via 198.51.100.1 dev eth2",
                "addr del 198.51.100.9/24 dev eth2",
                "addr del 2001:db8::9/64 dev eth2",
                "link set dev eth2 up",
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
