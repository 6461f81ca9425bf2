//! What a plug is: the typed requests (`VipPlug`, `NetworkPlug`), and a plug as done and
//! recorded in `plugs.json` (`Plug`, written in the flat shape the agent has always written).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Cidr, Mac};

/// A route a VIP's table gets besides its subnet and default route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: Cidr,
    pub nexthop: IpAddr,
}

/// An address of a member network's port, and the routes it brings (into the main table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    #[serde(rename = "ip_address")]
    pub ip: IpAddr,
    #[serde(rename = "subnet_cidr")]
    pub subnet: Cidr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_routes: Vec<HostRoute>,
}

/// A VIP on the same port besides the first (Octavia's `additional_vips`: several VIPs, IPv4 and
/// IPv6 together), with its own subnet, gateway and host routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraVip {
    #[serde(rename = "ip_address")]
    pub ip: IpAddr,
    #[serde(rename = "subnet_cidr")]
    pub subnet: Cidr,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
}

/// A VIP to plug. The caller has checked that the VIP, `gateway`, `vrrp_ip` and the next hops
/// lie in `subnet`, and that neither `gateway` nor `vrrp_ip` is the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipPlug {
    pub vip: IpAddr,
    pub subnet: Cidr,
    pub gateway: Option<IpAddr>,
    pub mac: Mac,
    /// The amphora's own address on the VIP's network (keepalived speaks from it).
    pub vrrp_ip: Option<IpAddr>,
    pub host_routes: Vec<HostRoute>,
    pub mtu: Option<u32>,
    pub additional: Vec<ExtraVip>,
    /// Further addresses of the VIP port (member subnets on the VIP network), which re-plugs
    /// of the port through `plug/network` bring; empty from `plug/vip`.
    pub fixed_ips: Vec<FixedIp>,
}

impl VipPlug {
    /// The port as a member port: what a first plug through `plug/network` makes of it, as
    /// Octavia's agent does.
    pub(super) fn into_network(self) -> NetworkPlug {
        NetworkPlug {
            mac: self.mac,
            fixed_ips: self.fixed_ips,
            mtu: self.mtu,
        }
    }

    /// The addresses the VIP plug and keepalived manage on the port, as distinct from its
    /// `fixed_ips`.
    pub(super) fn managed(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self.vrrp_ip.into_iter().collect();
        ips.push(self.vip);
        ips.extend(self.additional.iter().map(|x| x.ip));
        ips
    }
}

/// A member network's port to plug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlug {
    pub mac: Mac,
    pub fixed_ips: Vec<FixedIp>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlugRequest {
    Vip(VipPlug),
    Network(NetworkPlug),
    /// `plug/network` for the VIP port (with `vip_net_info`): the port's fixed IPs change.
    VipPort(VipPlug),
}

impl PlugRequest {
    pub(super) fn mac(&self) -> &Mac {
        match self {
            PlugRequest::Vip(p) | PlugRequest::VipPort(p) => &p.mac,
            PlugRequest::Network(n) => &n.mac,
        }
    }
}

/// Who puts a VIP on its interface: the plug itself (SINGLE), or keepalived, so that only the
/// MASTER of an ACTIVE_STANDBY pair holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VipHolder {
    #[default]
    Plug,
    Keepalived,
}

/// One plug, as done and recorded: each VIP the plug holds has its own routing table
/// (`extra_tables` for `plug.additional`, in order; none when keepalived holds them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlugRecord", into = "PlugRecord")]
pub enum Plug {
    Vip {
        plug: VipPlug,
        table: u32,
        extra_tables: Vec<u32>,
        holder: VipHolder,
    },
    Network(NetworkPlug),
}

impl Plug {
    pub(super) fn mac(&self) -> &Mac {
        match self {
            Plug::Vip { plug, .. } => &plug.mac,
            Plug::Network(n) => &n.mac,
        }
    }

    /// The routing tables the plug uses.
    pub(super) fn tables(&self) -> Vec<u32> {
        match self {
            Plug::Vip {
                table,
                extra_tables,
                ..
            } => std::iter::once(*table)
                .chain(extra_tables.iter().copied())
                .collect(),
            Plug::Network(_) => Vec::new(),
        }
    }
}

/// A plug in `plugs.json`, in the flat shape the agent has always written: the VIP fields are
/// null for a network plug, `fixed_ips` is empty for a VIP.
#[derive(Serialize, Deserialize)]
struct PlugRecord {
    mac_address: Mac,
    vip: Option<IpAddr>,
    subnet_cidr: Option<Cidr>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    vrrp_ip: Option<IpAddr>,
    #[serde(default)]
    host_routes: Vec<HostRoute>,
    mtu: Option<u32>,
    #[serde(default)]
    fixed_ips: Vec<FixedIp>,
    table: Option<u32>,
    /// Absent in records written before ACTIVE_STANDBY plugs: the plug held the VIP.
    #[serde(default, skip_serializing_if = "is_default")]
    vip_holder: VipHolder,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    additional_vips: Vec<ExtraVipRecord>,
}

/// An additional VIP in the record, with its table when the plug holds it.
#[derive(Serialize, Deserialize)]
struct ExtraVipRecord {
    #[serde(flatten)]
    vip: ExtraVip,
    table: Option<u32>,
}

fn is_default(h: &VipHolder) -> bool {
    *h == VipHolder::default()
}

impl From<Plug> for PlugRecord {
    fn from(p: Plug) -> PlugRecord {
        match p {
            Plug::Vip {
                plug,
                table,
                extra_tables,
                holder,
            } => PlugRecord {
                mac_address: plug.mac,
                vip: Some(plug.vip),
                subnet_cidr: Some(plug.subnet),
                gateway: plug.gateway,
                vrrp_ip: plug.vrrp_ip,
                host_routes: plug.host_routes,
                mtu: plug.mtu,
                fixed_ips: plug.fixed_ips,
                table: Some(table),
                vip_holder: holder,
                additional_vips: plug
                    .additional
                    .into_iter()
                    .enumerate()
                    .map(|(i, vip)| ExtraVipRecord {
                        vip,
                        table: extra_tables.get(i).copied(),
                    })
                    .collect(),
            },
            Plug::Network(n) => PlugRecord {
                mac_address: n.mac,
                vip: None,
                subnet_cidr: None,
                gateway: None,
                vrrp_ip: None,
                host_routes: Vec::new(),
                mtu: n.mtu,
                fixed_ips: n.fixed_ips,
                table: None,
                vip_holder: VipHolder::Plug,
                additional_vips: Vec::new(),
            },
        }
    }
}

impl TryFrom<PlugRecord> for Plug {
    type Error = String;
    fn try_from(r: PlugRecord) -> Result<Plug, String> {
        let network_only = r.gateway.is_none()
            && r.vrrp_ip.is_none()
            && r.host_routes.is_empty()
            && r.additional_vips.is_empty();
        // The plug holds each additional VIP in a table of its own; keepalived needs none.
        let extra_tables: Option<Vec<u32>> = match r.vip_holder {
            VipHolder::Plug => r.additional_vips.iter().map(|v| v.table).collect(),
            VipHolder::Keepalived => Some(Vec::new()),
        };
        match (r.vip, r.subnet_cidr, r.table, extra_tables) {
            (Some(vip), Some(subnet), Some(table), Some(extra_tables)) => Ok(Plug::Vip {
                plug: VipPlug {
                    vip,
                    subnet,
                    gateway: r.gateway,
                    mac: r.mac_address,
                    vrrp_ip: r.vrrp_ip,
                    host_routes: r.host_routes,
                    mtu: r.mtu,
                    additional: r.additional_vips.into_iter().map(|v| v.vip).collect(),
                    fixed_ips: r.fixed_ips,
                },
                table,
                extra_tables,
                holder: r.vip_holder,
            }),
            (None, None, None, _) if network_only => Ok(Plug::Network(NetworkPlug {
                mac: r.mac_address,
                fixed_ips: r.fixed_ips,
                mtu: r.mtu,
            })),
            _ => Err(format!(
                "plug {}: neither a VIP (vip, subnet_cidr, table) nor a network plug (fixed_ips)",
                r.mac_address
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    /// `plugs.json` as the agent wrote it before plugs were typed (a VIP with every field,
    /// a network plug, an IPv6 VIP).
    const RECORD_BEFORE_TYPES: &str = r#"[
  {
    "mac_address": "02:00:5e:00:00:01",
    "vip": "203.0.113.2",
    "subnet_cidr": "203.0.113.0/24",
    "gateway": "203.0.113.1",
    "vrrp_ip": "203.0.113.3",
    "host_routes": [
      {
        "destination": "192.0.2.0/24",
        "nexthop": "203.0.113.1"
      }
    ],
    "mtu": 1450,
    "fixed_ips": [],
    "table": 100
  },
  {
    "mac_address": "02:00:5e:00:00:02",
    "vip": null,
    "subnet_cidr": null,
    "gateway": null,
    "vrrp_ip": null,
    "host_routes": [],
    "mtu": null,
    "fixed_ips": [
      {
        "ip_address": "198.51.100.9",
        "subnet_cidr": "198.51.100.0/24"
      }
    ],
    "table": null
  },
  {
    "mac_address": "02:00:5e:00:00:03",
    "vip": "2001:db8:5::2",
    "subnet_cidr": "2001:db8:5::/64",
    "gateway": "2001:db8:5::1",
    "vrrp_ip": null,
    "host_routes": [],
    "mtu": null,
    "fixed_ips": [],
    "table": 101
  }
]"#;

    #[test]
    fn a_record_written_before_plugs_were_typed_loads_and_is_written_the_same() {
        let plugs: Vec<Plug> = serde_json::from_str(RECORD_BEFORE_TYPES).unwrap();
        let v6 = VipPlug {
            vip: ip("2001:db8:5::2"),
            subnet: cidr("2001:db8:5::/64"),
            gateway: Some(ip("2001:db8:5::1")),
            mac: mac("02:00:5e:00:00:03"),
            vrrp_ip: None,
            host_routes: Vec::new(),
            mtu: None,
            additional: Vec::new(),
            fixed_ips: Vec::new(),
        };
        assert_eq!(
            plugs,
            [
                Plug::Vip {
                    plug: vip_plug(),
                    table: 100,
                    extra_tables: Vec::new(),
                    holder: VipHolder::Plug,
                },
                Plug::Network(network_plug()),
                Plug::Vip {
                    plug: v6,
                    table: 101,
                    extra_tables: Vec::new(),
                    holder: VipHolder::Plug,
                },
            ]
        );
        let again = serde_json::to_vec_pretty(&plugs).unwrap();
        assert_eq!(String::from_utf8(again).unwrap(), RECORD_BEFORE_TYPES);
        // `vrrp_ip`, `host_routes` and `fixed_ips` may be absent.
        let oldest = r#"[{"mac_address":"02:00:5e:00:00:02","vip":null,"subnet_cidr":null,
            "gateway":null,"mtu":null,"table":null}]"#;
        let plugs: Vec<Plug> = serde_json::from_str(oldest).unwrap();
        assert!(plugs[0].tables().is_empty());
        // A VIP keepalived holds says so; one the plug holds is written as before.
        let held = Plug::Vip {
            plug: vip_plug(),
            table: 100,
            extra_tables: Vec::new(),
            holder: VipHolder::Keepalived,
        };
        let text = serde_json::to_string(&held).unwrap();
        assert!(text.contains(r#""vip_holder":"keepalived""#), "{text}");
        assert_eq!(serde_json::from_str::<Plug>(&text).unwrap(), held);
    }

    #[test]
    fn a_record_that_is_neither_vip_nor_network_plug_is_refused() {
        for bad in [
            // A VIP without its table.
            r#"[{"mac_address":"02:00:5e:00:00:01","vip":"203.0.113.2","subnet_cidr":"203.0.113.0/24"}]"#,
            // A network plug with a gateway.
            r#"[{"mac_address":"02:00:5e:00:00:01","gateway":"203.0.113.1"}]"#,
            r#"[{"mac_address":"nope"}]"#,
            r#"[{"mac_address":"02:00:5e:00:00:01","fixed_ips":[{"ip_address":"x","subnet_cidr":"198.51.100.0/24"}]}]"#,
        ] {
            assert!(serde_json::from_str::<Vec<Plug>>(bad).is_err(), "{bad}");
        }
    }
}
