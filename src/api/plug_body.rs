//! The bodies of `POST /v0.1/plug/vip/<ip>` and `POST /v0.1/plug/network` (API 1.0 takes the
//! same): read as sent, then validated into the typed requests `netplug` acts on. Messages as the
//! amphora API spec words them.

use std::net::IpAddr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::ApiError;
use crate::netplug::{Cidr, ExtraVip, FixedIp, HostRoute, Mac, NetworkPlug, PlugRequest, VipPlug};

pub const INVALID_VIP: &str = "Invalid VIP";
const INVALID_REQUEST: &str = "Invalid request";
const INVALID_SUBNET: &str = "Invalid subnet information";
const MAC_FORMAT: &str = "mac_address must look like aa:bb:cc:dd:ee:ff";

// The wire structs read every field leniently: a value of another JSON type than expected counts
// as absent (then refused as missing, or ignored where optional), never as a JSON error. The
// agent has always answered so; the texts of its refusals depend on it.

/// A VIP plug's body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VipBody {
    #[serde(deserialize_with = "text")]
    subnet_cidr: Option<String>,
    #[serde(deserialize_with = "text")]
    gateway: Option<String>,
    #[serde(deserialize_with = "text")]
    mac_address: Option<String>,
    #[serde(deserialize_with = "text")]
    vrrp_ip: Option<String>,
    #[serde(deserialize_with = "list")]
    host_routes: Vec<RouteBody>,
    /// Any JSON type: a wrong one is refused, not ignored.
    mtu: Option<Value>,
    #[serde(deserialize_with = "list")]
    additional_vips: Vec<ExtraVipBody>,
}

/// One of `additional_vips`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExtraVipBody {
    #[serde(deserialize_with = "text")]
    ip_address: Option<String>,
    #[serde(deserialize_with = "text")]
    subnet_cidr: Option<String>,
    #[serde(deserialize_with = "text")]
    gateway: Option<String>,
    #[serde(deserialize_with = "list")]
    host_routes: Vec<RouteBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RouteBody {
    #[serde(deserialize_with = "text")]
    destination: Option<String>,
    #[serde(deserialize_with = "text")]
    nexthop: Option<String>,
}

/// A network plug's body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NetworkBody {
    #[serde(deserialize_with = "text")]
    mac_address: Option<String>,
    #[serde(deserialize_with = "list")]
    fixed_ips: Vec<FixedIpBody>,
    mtu: Option<Value>,
    /// For the VIP port: the `plug/vip` body with the VIP as `vip`.
    vip_net_info: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FixedIpBody {
    #[serde(deserialize_with = "text")]
    ip_address: Option<String>,
    #[serde(deserialize_with = "text")]
    subnet_cidr: Option<String>,
    #[serde(deserialize_with = "list")]
    host_routes: Vec<RouteBody>,
}

/// A string, or absent.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// A list of objects (anything else: empty); an item that is no object has no fields.
fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .map(object)
            .collect::<Result<_, _>>()
            .map_err(D::Error::custom),
        _ => Ok(Vec::new()),
    }
}

/// An object's fields; JSON that is no object has none.
fn object<T: DeserializeOwned + Default>(v: Value) -> Result<T, serde_json::Error> {
    if v.is_object() {
        serde_json::from_value(v)
    } else {
        Ok(T::default())
    }
}

fn read<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    let not_json = |e: serde_json::Error| invalid_request(format!("body is not JSON: {e}"));
    object(serde_json::from_slice(body).map_err(not_json)?).map_err(not_json)
}

fn invalid_request(details: impl Into<String>) -> ApiError {
    ApiError::new(400, INVALID_REQUEST).with_details(details)
}

fn invalid_subnet(details: impl Into<String>) -> ApiError {
    ApiError::new(400, INVALID_SUBNET).with_details(details)
}

/// The VIP's subnet, and its text as sent (refusals quote it).
struct Subnet<'a> {
    cidr: Cidr,
    text: &'a str,
}

impl Subnet<'_> {
    /// An address that must lie in the subnet; `what` names it in the refusal.
    fn member(&self, what: &str, s: &str) -> Result<IpAddr, ApiError> {
        match s.parse::<IpAddr>() {
            Ok(ip) if self.cidr.contains(ip) => Ok(ip),
            _ => Err(invalid_subnet(format!(
                "{what} {s} is not an address in {}",
                self.text
            ))),
        }
    }

    fn gateway(&self, g: Option<&str>) -> Result<Option<IpAddr>, ApiError> {
        let Some(g) = g.map(str::trim).filter(|g| !g.is_empty()) else {
            return Ok(None);
        };
        let gw: IpAddr = g
            .parse()
            .map_err(|_| invalid_subnet(format!("bad gateway: {g}")))?;
        if !self.cidr.contains(gw) {
            return Err(invalid_subnet(format!(
                "gateway {g} is not in {}",
                self.text
            )));
        }
        Ok(Some(gw))
    }

    fn host_route(&self, r: &RouteBody) -> Result<HostRoute, ApiError> {
        let dest = r.destination.as_deref().unwrap_or("");
        let destination = Cidr::parse(dest)
            .filter(|d| d.addr.is_ipv4() == self.cidr.addr.is_ipv4())
            .ok_or_else(|| invalid_subnet(format!("bad host route destination {dest:?}")))?;
        let nexthop = self.member("host route nexthop", r.nexthop.as_deref().unwrap_or(""))?;
        Ok(HostRoute {
            destination,
            nexthop,
        })
    }
}

/// A VIP plug from its URL address and body.
pub fn vip_plug(vip: &str, body: &[u8]) -> Result<VipPlug, ApiError> {
    let vip_ip: IpAddr = vip.parse().map_err(|_| {
        ApiError::new(400, INVALID_VIP).with_details(format!("not an IP address: {vip}"))
    })?;
    let b: VipBody = read(body)?;
    let text = b
        .subnet_cidr
        .as_deref()
        .map(str::trim)
        .ok_or_else(|| invalid_subnet("subnet_cidr is required"))?;
    let cidr =
        Cidr::parse(text).ok_or_else(|| invalid_subnet(format!("bad subnet_cidr: {text}")))?;
    if !cidr.contains(vip_ip) {
        return Err(invalid_subnet(format!("VIP {vip} is not in {text}")));
    }
    let subnet = Subnet { cidr, text };
    let gateway = subnet.gateway(b.gateway.as_deref())?;
    let mac = b
        .mac_address
        .as_deref()
        .and_then(Mac::parse)
        .ok_or_else(|| invalid_subnet(MAC_FORMAT))?;
    let vrrp_ip = match b.vrrp_ip.as_deref().map(str::trim) {
        Some(ip) if !ip.is_empty() => Some(subnet.member("vrrp_ip", ip)?),
        _ => None,
    };
    if vrrp_ip == Some(vip_ip) || gateway == Some(vip_ip) {
        return Err(invalid_subnet(
            "vrrp_ip and gateway must differ from the VIP",
        ));
    }
    let host_routes = b
        .host_routes
        .iter()
        .map(|r| subnet.host_route(r))
        .collect::<Result<_, _>>()?;
    let additional: Vec<ExtraVip> = b
        .additional_vips
        .iter()
        .map(extra_vip)
        .collect::<Result<_, _>>()?;
    let mut seen = vec![vip_ip];
    seen.extend(vrrp_ip);
    for x in &additional {
        if seen.contains(&x.ip) {
            return Err(
                ApiError::new(400, INVALID_VIP).with_details(format!("{} is given twice", x.ip))
            );
        }
        seen.push(x.ip);
    }
    Ok(VipPlug {
        vip: vip_ip,
        subnet: cidr,
        gateway,
        mac,
        vrrp_ip,
        host_routes,
        mtu: mtu(b.mtu)?,
        additional,
        fixed_ips: Vec::new(),
    })
}

/// An additional VIP: an address in its own subnet, with that subnet's gateway and routes.
fn extra_vip(x: &ExtraVipBody) -> Result<ExtraVip, ApiError> {
    let ip = x.ip_address.as_deref().map(str::trim).unwrap_or("");
    let ip: IpAddr = ip.parse().map_err(|_| {
        ApiError::new(400, INVALID_VIP)
            .with_details(format!("additional VIP {ip:?} is not an IP address"))
    })?;
    let text = x.subnet_cidr.as_deref().map(str::trim).unwrap_or("");
    let cidr = Cidr::parse(text)
        .ok_or_else(|| invalid_subnet(format!("additional VIP {ip}: bad subnet_cidr {text:?}")))?;
    let subnet = Subnet { cidr, text };
    subnet.member("additional VIP", &ip.to_string())?;
    let gateway = subnet.gateway(x.gateway.as_deref())?;
    if gateway == Some(ip) {
        return Err(invalid_subnet(format!(
            "additional VIP {ip} is its own gateway"
        )));
    }
    let host_routes = x
        .host_routes
        .iter()
        .map(|r| subnet.host_route(r))
        .collect::<Result<_, _>>()?;
    Ok(ExtraVip {
        ip,
        subnet: cidr,
        gateway,
        host_routes,
    })
}

/// A network plug from its body: a member port, or the VIP port when `vip_net_info` (an
/// object) comes with it.
pub fn network_plug(body: &[u8]) -> Result<PlugRequest, ApiError> {
    let b: NetworkBody = read(body)?;
    let mac = b
        .mac_address
        .as_deref()
        .and_then(Mac::parse)
        .ok_or_else(|| invalid_request(MAC_FORMAT))?;
    let fixed_ips = b.fixed_ips.iter().map(fixed_ip).collect::<Result<_, _>>()?;
    let mtu = mtu(b.mtu)?;
    match b.vip_net_info.filter(Value::is_object) {
        Some(info) => {
            let vip = info.get("vip").and_then(Value::as_str).unwrap_or("").trim();
            let mut v = vip_plug(vip, info.to_string().as_bytes())?;
            if v.mac != mac {
                return Err(invalid_request("vip_net_info names another port's MAC"));
            }
            v.fixed_ips = fixed_ips;
            v.mtu = mtu.or(v.mtu);
            Ok(PlugRequest::VipPort(v))
        }
        None => Ok(PlugRequest::Network(NetworkPlug {
            mac,
            fixed_ips,
            mtu,
        })),
    }
}

fn fixed_ip(f: &FixedIpBody) -> Result<FixedIp, ApiError> {
    let ip = f.ip_address.as_deref().unwrap_or("");
    let cidr = f.subnet_cidr.as_deref().unwrap_or("");
    let (Ok(addr), Some(subnet)) = (ip.parse::<IpAddr>(), Cidr::parse(cidr)) else {
        return Err(invalid_request(format!("bad fixed IP {ip:?} / {cidr:?}")));
    };
    if !subnet.contains(addr) {
        return Err(invalid_request(format!("{ip} is not in {cidr}")));
    }
    let within = Subnet {
        cidr: subnet,
        text: cidr,
    };
    let host_routes = f
        .host_routes
        .iter()
        .map(|r| within.host_route(r))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid_request(e.details.unwrap_or_default()))?;
    Ok(FixedIp {
        ip: addr,
        subnet,
        host_routes,
    })
}

/// `mtu`, absent or null for none.
fn mtu(m: Option<Value>) -> Result<Option<u32>, ApiError> {
    let Some(m) = m else {
        return Ok(None);
    };
    m.as_u64()
        .and_then(|m| u32::try_from(m).ok())
        .filter(|m| (68..=65535).contains(m))
        .map(Some)
        .ok_or_else(|| invalid_request("mtu must be 68-65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    /// The refusal as (status, message, details).
    fn refusal<T: std::fmt::Debug>(r: Result<T, ApiError>) -> (u16, String, String) {
        let e = r.unwrap_err();
        (e.status, e.message, e.details.unwrap_or_default())
    }

    fn invalid(message: &str, details: &str) -> (u16, String, String) {
        (400, message.to_string(), details.to_string())
    }

    /// Octavia's multi-VIP body: a VIP of each family besides the first.
    #[test]
    fn additional_vips_and_their_refusals() {
        let body = |extra: &str| {
            format!(
                r#"{{"subnet_cidr":"203.0.113.0/24","gateway":"203.0.113.1",
                "mac_address":"02:00:5e:00:00:01","vrrp_ip":"203.0.113.3","additional_vips":[{extra}]}}"#
            )
        };
        let good = body(
            r#"{"ip_address":"2001:db8:5::2","subnet_cidr":"2001:db8:5::/64","gateway":"2001:db8:5::1",
                "host_routes":[{"destination":"2001:db8:9::/48","nexthop":"2001:db8:5::1"}]},
               {"ip_address":"198.51.100.2","subnet_cidr":"198.51.100.0/24","gateway":null}"#,
        );
        let p = vip_plug("203.0.113.2", good.as_bytes()).unwrap();
        assert_eq!(
            p.additional,
            [
                ExtraVip {
                    ip: ip("2001:db8:5::2"),
                    subnet: cidr("2001:db8:5::/64"),
                    gateway: Some(ip("2001:db8:5::1")),
                    host_routes: vec![HostRoute {
                        destination: cidr("2001:db8:9::/48"),
                        nexthop: ip("2001:db8:5::1"),
                    }],
                },
                ExtraVip {
                    ip: ip("198.51.100.2"),
                    subnet: cidr("198.51.100.0/24"),
                    gateway: None,
                    host_routes: Vec::new(),
                },
            ]
        );
        for (extra, message, details) in [
            (
                r#"{"ip_address":"nope","subnet_cidr":"198.51.100.0/24"}"#,
                INVALID_VIP,
                "additional VIP \"nope\" is not an IP address",
            ),
            (
                r#"{"ip_address":"198.51.100.2","subnet_cidr":"198.51.100.0/33"}"#,
                INVALID_SUBNET,
                "additional VIP 198.51.100.2: bad subnet_cidr \"198.51.100.0/33\"",
            ),
            (
                r#"{"ip_address":"198.51.100.2","subnet_cidr":"192.0.2.0/24"}"#,
                INVALID_SUBNET,
                "additional VIP 198.51.100.2 is not an address in 192.0.2.0/24",
            ),
            (
                r#"{"ip_address":"198.51.100.2","subnet_cidr":"198.51.100.0/24","gateway":"192.0.2.1"}"#,
                INVALID_SUBNET,
                "gateway 192.0.2.1 is not in 198.51.100.0/24",
            ),
            (
                r#"{"ip_address":"203.0.113.3","subnet_cidr":"203.0.113.0/24"}"#,
                INVALID_VIP,
                "203.0.113.3 is given twice",
            ),
        ] {
            assert_eq!(
                refusal(vip_plug("203.0.113.2", body(extra).as_bytes())),
                invalid(message, details),
                "{extra}"
            );
        }
    }

    #[test]
    fn a_fixed_ip_brings_its_host_routes() {
        let body = br#"{"mac_address":"02:00:5e:00:00:02","fixed_ips":[{"ip_address":"198.51.100.9",
            "subnet_cidr":"198.51.100.0/24","host_routes":[{"destination":"192.0.2.0/24","nexthop":"198.51.100.1"}]}]}"#;
        let Ok(PlugRequest::Network(n)) = network_plug(body) else {
            panic!("a member port");
        };
        assert_eq!(
            n.fixed_ips[0].host_routes,
            [HostRoute {
                destination: cidr("192.0.2.0/24"),
                nexthop: ip("198.51.100.1"),
            }]
        );
        let off = String::from_utf8_lossy(body).replace("\"198.51.100.1\"", "\"203.0.113.1\"");
        assert_eq!(
            refusal(network_plug(off.as_bytes())),
            invalid(
                INVALID_REQUEST,
                "host route nexthop 203.0.113.1 is not an address in 198.51.100.0/24"
            )
        );
    }

    #[test]
    fn a_vip_plug_with_every_field() {
        let body = br#"{"subnet_cidr":" 203.0.113.7/24 ","gateway":"203.0.113.1",
            "mac_address":"02:00:5E:00:00:01","vrrp_ip":"203.0.113.3","mtu":1450,
            "host_routes":[{"destination":"192.0.2.9/24","nexthop":"203.0.113.1"}]}"#;
        assert_eq!(
            vip_plug("203.0.113.2", body).unwrap(),
            VipPlug {
                vip: ip("203.0.113.2"),
                subnet: cidr("203.0.113.0/24"),
                gateway: Some(ip("203.0.113.1")),
                mac: Mac::parse("02:00:5e:00:00:01").unwrap(),
                vrrp_ip: Some(ip("203.0.113.3")),
                host_routes: vec![HostRoute {
                    destination: cidr("192.0.2.0/24"),
                    nexthop: ip("203.0.113.1"),
                }],
                mtu: Some(1450),
                additional: Vec::new(),
                fixed_ips: Vec::new(),
            }
        );
    }

    #[test]
    fn optional_vip_fields_empty_null_or_of_another_type_are_absent() {
        let body = r#"{"subnet_cidr":"2001:db8:5::/64","mac_address":"02:00:5e:00:00:03",
            "gateway":"","vrrp_ip":null,"host_routes":"none","mtu":null}"#;
        let p = vip_plug("2001:DB8:5::2", body.as_bytes()).unwrap();
        assert_eq!(
            (p.vip, p.gateway, p.vrrp_ip, p.host_routes, p.mtu),
            (ip("2001:db8:5::2"), None, None, Vec::new(), None)
        );
        let p = vip_plug("2001:db8:5::2", body.replace(r#""""#, "5").as_bytes()).unwrap();
        assert_eq!(p.gateway, None);
    }

    const WITH_SUBNET: &str = r#""subnet_cidr":"203.0.113.0/24","mac_address":"02:00:5e:00:00:01""#;

    /// (VIP, body, message, details); a body opening with `{{}` starts with a good subnet and MAC.
    const VIP_REFUSALS: &[(&str, &str, &str, &str)] = &[
        (
            "203.0.113.300",
            "{}",
            INVALID_VIP,
            "not an IP address: 203.0.113.300",
        ),
        (
            "203.0.113.2",
            "nope",
            INVALID_REQUEST,
            "body is not JSON: expected ident at line 1 column 2",
        ),
        (
            "203.0.113.2",
            "[]",
            INVALID_SUBNET,
            "subnet_cidr is required",
        ),
        (
            "203.0.113.2",
            r#"{"subnet_cidr":24}"#,
            INVALID_SUBNET,
            "subnet_cidr is required",
        ),
        (
            "203.0.113.2",
            r#"{"subnet_cidr":"203.0.113.0/40"}"#,
            INVALID_SUBNET,
            "bad subnet_cidr: 203.0.113.0/40",
        ),
        (
            "198.51.100.7",
            "{{}}",
            INVALID_SUBNET,
            "VIP 198.51.100.7 is not in 203.0.113.0/24",
        ),
        (
            "203.0.113.2",
            r#"{{},"gateway":"gw"}"#,
            INVALID_SUBNET,
            "bad gateway: gw",
        ),
        (
            "203.0.113.2",
            r#"{{},"gateway":"203.0.114.1"}"#,
            INVALID_SUBNET,
            "gateway 203.0.114.1 is not in 203.0.113.0/24",
        ),
        (
            "203.0.113.2",
            r#"{"subnet_cidr":"203.0.113.0/24","mac_address":"02:00:5e"}"#,
            INVALID_SUBNET,
            MAC_FORMAT,
        ),
        (
            "203.0.113.2",
            r#"{{},"vrrp_ip":"203.0.114.3"}"#,
            INVALID_SUBNET,
            "vrrp_ip 203.0.114.3 is not an address in 203.0.113.0/24",
        ),
        (
            "203.0.113.2",
            r#"{{},"vrrp_ip":"203.0.113.2"}"#,
            INVALID_SUBNET,
            "vrrp_ip and gateway must differ from the VIP",
        ),
        (
            "203.0.113.2",
            r#"{{},"gateway":"203.0.113.2"}"#,
            INVALID_SUBNET,
            "vrrp_ip and gateway must differ from the VIP",
        ),
        (
            "203.0.113.2",
            r#"{{},"host_routes":[{"destination":"2001:db8::/64","nexthop":"203.0.113.1"}]}"#,
            INVALID_SUBNET,
            r#"bad host route destination "2001:db8::/64""#,
        ),
        (
            "203.0.113.2",
            r#"{{},"host_routes":[7]}"#,
            INVALID_SUBNET,
            r#"bad host route destination """#,
        ),
        (
            "203.0.113.2",
            r#"{{},"host_routes":[{"destination":"192.0.2.0/24","nexthop":" 203.0.113.1"}]}"#,
            INVALID_SUBNET,
            "host route nexthop  203.0.113.1 is not an address in 203.0.113.0/24",
        ),
        (
            "203.0.113.2",
            r#"{{},"mtu":67}"#,
            INVALID_REQUEST,
            "mtu must be 68-65535",
        ),
        (
            "203.0.113.2",
            r#"{{},"mtu":"1500"}"#,
            INVALID_REQUEST,
            "mtu must be 68-65535",
        ),
    ];

    #[test]
    fn vip_plug_refusals() {
        for (vip, body, message, details) in VIP_REFUSALS {
            let body = body.replace("{{}", &format!("{{{WITH_SUBNET}"));
            assert_eq!(
                refusal(vip_plug(vip, body.as_bytes())),
                invalid(message, details),
                "{vip} {body}"
            );
        }
    }

    #[test]
    fn a_network_plug() {
        let body = br#"{"mac_address":" 02:00:5E:00:00:02 ","mtu":9000,"fixed_ips":[
            {"ip_address":"198.51.100.9","subnet_cidr":"198.51.100.7/24"},
            {"ip_address":"2001:DB8::9","subnet_cidr":"2001:db8::/64"}]}"#;
        assert_eq!(
            network_plug(body).unwrap(),
            PlugRequest::Network(NetworkPlug {
                mac: Mac::parse("02:00:5e:00:00:02").unwrap(),
                fixed_ips: vec![
                    FixedIp {
                        ip: ip("198.51.100.9"),
                        subnet: cidr("198.51.100.0/24"),
                        host_routes: Vec::new(),
                    },
                    FixedIp {
                        ip: ip("2001:db8::9"),
                        subnet: cidr("2001:db8::/64"),
                        host_routes: Vec::new(),
                    },
                ],
                mtu: Some(9000),
            })
        );
        let bare = network_plug(br#"{"mac_address":"02:00:5e:00:00:02","fixed_ips":{}}"#);
        assert!(matches!(bare, Ok(PlugRequest::Network(n)) if n.fixed_ips.is_empty()));
    }

    /// Octavia's body for the VIP port (rest_api_driver post_network_plug): vip_net_info is the
    /// plug/vip body with the VIP, and fixed_ips are the port's.
    #[test]
    fn a_vip_port_plugged_through_plug_network() {
        let body = br#"{"mac_address":"02:00:5e:00:00:01","mtu":1500,"is_sriov":false,
            "fixed_ips":[{"ip_address":"203.0.113.3","subnet_cidr":"203.0.113.0/24","host_routes":[],"gateway":"203.0.113.1"},
                         {"ip_address":"198.51.100.3","subnet_cidr":"198.51.100.0/24","host_routes":[],"gateway":null}],
            "vip_net_info":{"subnet_cidr":"203.0.113.0/24","gateway":"203.0.113.1","mac_address":"02:00:5e:00:00:01",
                "vrrp_ip":"203.0.113.3","mtu":1500,"host_routes":[],"additional_vips":[],"is_sriov":false,"vip":"203.0.113.2"}}"#;
        let Ok(PlugRequest::VipPort(v)) = network_plug(body) else {
            panic!("the VIP port");
        };
        assert_eq!(
            (v.vip, v.vrrp_ip),
            (ip("203.0.113.2"), Some(ip("203.0.113.3")))
        );
        assert_eq!(v.fixed_ips.len(), 2);
        let other = String::from_utf8_lossy(body).replace(
            r#""gateway":"203.0.113.1","mac_address":"02:00:5e:00:00:01""#,
            r#""gateway":"203.0.113.1","mac_address":"02:00:5e:00:00:09""#,
        );
        assert_eq!(
            refusal(network_plug(other.as_bytes())),
            invalid(INVALID_REQUEST, "vip_net_info names another port's MAC")
        );
    }

    #[test]
    fn network_plug_refusals() {
        for (body, details) in [
            (
                "",
                "body is not JSON: EOF while parsing a value at line 1 column 0",
            ),
            (r#"{"mac_address":"x"}"#, MAC_FORMAT),
            (
                r#"{"mac_address":"02:00:5e:00:00:02","fixed_ips":[{"ip_address":"198.51.100.9"}]}"#,
                r#"bad fixed IP "198.51.100.9" / """#,
            ),
            (
                r#"{"mac_address":"02:00:5e:00:00:02","fixed_ips":[{"ip_address":"198.51.101.9","subnet_cidr":"198.51.100.0/24"}]}"#,
                "198.51.101.9 is not in 198.51.100.0/24",
            ),
            (
                r#"{"mac_address":"02:00:5e:00:00:02","mtu":1500.0}"#,
                "mtu must be 68-65535",
            ),
        ] {
            assert_eq!(
                refusal(network_plug(body.as_bytes())),
                invalid(INVALID_REQUEST, details),
                "{body}"
            );
        }
    }
}
