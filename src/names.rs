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
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
