//! What an interface holds now: its addresses and the routes added through it by hand (`ip
//! route add` with a next hop, protocol boot), which re-plugging and recovery bring in line
//! with the record.

use std::net::IpAddr;

use serde::Deserialize;

use crate::netns;

use super::steps::run_ip;
use super::{Cidr, HostRoute, StepFailed};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Current {
    /// Each address with its prefix length; IPv6 link-local ones are the kernel's and left out.
    pub addresses: Vec<(IpAddr, u8)>,
    pub routes: Vec<HostRoute>,
}

/// One route of `ip -j route show`.
#[derive(Deserialize)]
struct RouteJson {
    dst: String,
    gateway: Option<IpAddr>,
    /// Absent for routes added by `ip route add` (protocol boot).
    protocol: Option<String>,
}

pub fn read(dev: &str) -> Result<Current, StepFailed> {
    let addresses = netns::addresses()
        .into_iter()
        .filter(|a| a.interface == dev && !is_link_local(a.ip))
        .map(|a| (a.ip, a.network.len))
        .collect();
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        let argv: Vec<String> = [fam, "-j", "route", "show", "dev", dev]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let text = run_ip(&argv)?;
        let failed = |output: String| StepFailed {
            argv: argv.clone(),
            output,
        };
        routes.extend(parse_routes(&text).map_err(failed)?);
    }
    Ok(Current { addresses, routes })
}

fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

/// The routes with a next hop that were added by hand; default routes are not host routes.
fn parse_routes(json: &str) -> Result<Vec<HostRoute>, String> {
    let all: Vec<RouteJson> =
        serde_json::from_str(json).map_err(|e| format!("ip -j route: {e}"))?;
    Ok(all
        .into_iter()
        .filter(|r| r.protocol.is_none())
        .filter_map(|r| {
            Some(HostRoute {
                destination: Cidr::parse(&r.dst)?,
                nexthop: r.gateway?,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    /// As iproute2 6.1 prints them.
    #[test]
    fn host_routes_from_ip_json() {
        let v4 = r#"[{"dst":"192.0.2.0/24","gateway":"198.51.100.1","flags":[]},{"dst":"198.51.100.0/24","protocol":"kernel","scope":"link","prefsrc":"198.51.100.9","flags":[]},{"dst":"default","gateway":"198.51.100.1","flags":[]}]"#;
        assert_eq!(
            parse_routes(v4).unwrap(),
            [HostRoute {
                destination: cidr("192.0.2.0/24"),
                nexthop: ip("198.51.100.1"),
            }]
        );
        let v6 = r#"[{"dst":"2001:db8::/64","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},{"dst":"2001:db8:7::/48","gateway":"2001:db8::1","metric":1024,"flags":[],"pref":"medium"},{"dst":"fe80::/64","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]"#;
        assert_eq!(parse_routes(v6).unwrap().len(), 1);
        assert_eq!(parse_routes("[]").unwrap(), []);
        assert!(parse_routes("nope").is_err());
        assert!(is_link_local(ip("fe80::1")) && !is_link_local(ip("2001:db8::1")));
    }
}
