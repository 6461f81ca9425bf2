//! Validated names (DESIGN sections 4 and 6): a value of these types has been checked once, at the
//! edge, so anything that reaches the HAProxy socket or the filesystem is valid by type.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName(pub String);

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid name: {:?}", self.0)
    }
}

/// A backend, frontend or server name that may be put into an HAProxy CLI command:
/// `^[A-Za-z0-9_.:-]+$`, at most 127 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyName(String);

impl ProxyName {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if ok {
            Ok(ProxyName(s.to_string()))
        } else {
            Err(InvalidName(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProxyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A listener (= legacy instance) id: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$` (UUIDs pass). Safe as a
/// single path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(String);

impl ListenerId {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
        if ok {
            Ok(ListenerId(s.to_string()))
        } else {
            Err(InvalidName(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A certificate file name: `^[A-Za-z0-9_][A-Za-z0-9_.-]*\.pem$`, no `..`, at most 255 bytes.
/// A wildcard name `*.example.com.pem` becomes `WILDCARD.example.com.pem`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertName(String);

impl CertName {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let name = match s.strip_prefix("*.") {
            Some(rest) if rest.ends_with(".pem") => format!("WILDCARD.{rest}"),
            Some(_) => return Err(InvalidName(s.to_string())),
            None => s.to_string(),
        };
        let b = name.as_bytes();
        let ok = b.len() <= 255
            && name.len() > ".pem".len()
            && name.ends_with(".pem")
            && !name.contains("..")
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
        if ok {
            Ok(CertName(name))
        } else {
            Err(InvalidName(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_ids() {
        for ok in ["04bff5c3-5862-4a13-b9e3-9b440d0ed50a", "a", "L_1-x"] {
            assert!(ListenerId::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "-a",
            "_a",
            "a/b",
            "..",
            "a.b",
            "a b",
            "a\0",
            long.as_str(),
        ] {
            assert!(ListenerId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cert_names() {
        assert_eq!(
            CertName::parse("www.example.com.pem").unwrap().as_str(),
            "www.example.com.pem"
        );
        assert_eq!(
            CertName::parse("*.example.com.pem").unwrap().as_str(),
            "WILDCARD.example.com.pem"
        );
        let long = format!("{}.pem", "a".repeat(252));
        for bad in [
            "",
            ".pem",
            "a.crt",
            "a",
            "../a.pem",
            "a/b.pem",
            "a..b.pem",
            ".hidden.pem",
            "a\0.pem",
            "-a.pem",
            "a b.pem",
            "*.pem",
            long.as_str(),
        ] {
            assert!(CertName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CertName::parse(&format!("{}.pem", "a".repeat(251))).is_ok());
    }

    #[test]
    fn proxy_names() {
        for ok in ["wwwbackend", "lamp1", "a.b:c-d_e", "0"] {
            assert!(ProxyName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(128);
        for bad in ["", "a b", "a/b", "a\nshow info", "a;b", "é", long.as_str()] {
            assert!(ProxyName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
