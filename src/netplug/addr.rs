//! Addresses as plugs take them: a network prefix (`Cidr`) and a MAC address, read from and
//! written as text (the plug record has always held them as strings).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A network prefix: address and length, e.g. `203.0.113.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = s.trim().split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let len: u8 = l.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(())?;
        // Host bits are dropped (`203.0.113.7/24` is the network `203.0.113.0/24`): `ip route`
        // refuses them.
        let keep = |bits: u32| {
            if len == 0 {
                0
            } else {
                u128::MAX << (bits - u32::from(len))
            }
        };
        let addr = match addr {
            IpAddr::V4(v) => IpAddr::from((u32::from(v) & keep(32) as u32).to_be_bytes()),
            IpAddr::V6(v) => IpAddr::from((u128::from(v) & keep(128)).to_be_bytes()),
        };
        Some(Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |x: IpAddr| -> u128 {
            match x {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        // IPv4 sits in the top 32 bits, so one prefix mask serves both families.
        if self.len == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - u32::from(self.len));
        bits(self.addr) & mask == bits(ip) & mask
    }

    /// `ip` with this prefix's length, the form `ip addr` takes: `203.0.113.2/24`.
    pub(super) fn host(&self, ip: IpAddr) -> String {
        format!("{ip}/{}", self.len)
    }
}

/// The network, `203.0.113.0/24`.
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        Cidr::parse(s).ok_or_else(|| format!("not a network: {s:?}"))
    }
}

/// A MAC address, lower case, `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac(String);

impl Mac {
    pub fn parse(s: &str) -> Option<Mac> {
        let s = s.trim();
        let parts: Vec<&str> = s.split(':').collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        ok.then(|| Mac(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        Mac::parse(s).ok_or_else(|| format!("not a MAC address: {s:?}"))
    }
}

/// Serde through the text form: the plug record has always held these as strings.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(Cidr);
serde_as_text!(Mac);

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn cidrs_and_macs() {
        let c = cidr("203.0.113.0/24");
        assert!(c.contains(ip("203.0.113.2")));
        assert!(!c.contains(ip("203.0.114.2")));
        assert!(!c.contains(ip("2001:db8::1")));
        let c6 = cidr("2001:db8::/64");
        assert!(c6.contains(ip("2001:db8::5")));
        assert!(!c6.contains(ip("2001:db9::5")));
        assert!(Cidr::parse("1.2.3.0/33").is_none());
        assert!(Cidr::parse("1.2.3.0").is_none());
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert_eq!(cidr(" 203.0.113.7/24 ").to_string(), "203.0.113.0/24");
        assert_eq!(cidr("2001:db8:5::7/64").to_string(), "2001:db8:5::/64");
        assert_eq!(mac("78:31:C1:ce:0b:3c").as_str(), "78:31:c1:ce:0b:3c");
        for bad in [
            "78:31:c1:ce:0b",
            "78-31-c1-ce-0b-3c",
            "zz:31:c1:ce:0b:3c",
            "78:31:c1:ce:0b:3c:00",
        ] {
            assert!(Mac::parse(bad).is_none(), "{bad}");
        }
    }
}
