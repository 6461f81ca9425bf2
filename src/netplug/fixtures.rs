//! Plugs the unit tests share.

use std::net::IpAddr;

use super::{Cidr, FixedIp, HostRoute, Mac, NetworkPlug, VipPlug};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn cidr(s: &str) -> Cidr {
    Cidr::parse(s).unwrap()
}

pub fn mac(s: &str) -> Mac {
    Mac::parse(s).unwrap()
}

pub fn vip_plug() -> VipPlug {
    VipPlug {
        vip: ip("203.0.113.2"),
        subnet: cidr("203.0.113.0/24"),
        gateway: Some(ip("203.0.113.1")),
        mac: mac("02:00:5e:00:00:01"),
        vrrp_ip: Some(ip("203.0.113.3")),
        host_routes: vec![HostRoute {
            destination: cidr("192.0.2.0/24"),
            nexthop: ip("203.0.113.1"),
        }],
        mtu: Some(1450),
        additional: Vec::new(),
        fixed_ips: Vec::new(),
    }
}

pub fn network_plug() -> NetworkPlug {
    NetworkPlug {
        mac: mac("02:00:5e:00:00:02"),
        fixed_ips: vec![FixedIp {
            ip: ip("198.51.100.9"),
            subnet: cidr("198.51.100.0/24"),
            host_routes: Vec::new(),
        }],
        mtu: None,
    }
}
