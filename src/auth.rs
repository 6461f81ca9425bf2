//! HTTP basic auth (client certificates are checked earlier, in the TLS handshake).

use base64::Engine;

use crate::config::Credentials;
use crate::error::ApiError;

/// Checks an `Authorization` header against the configured credentials. Returns the user
/// name when auth is on and passes, None when auth is off.
pub fn check(
    creds: Option<&Credentials>,
    header: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let Some(creds) = creds else {
        return Ok(None);
    };
    let deny = |why: &str| {
        ApiError::new(401, "Unauthorized")
            .with_details(why.to_string())
            .with_header("WWW-Authenticate", "Basic realm=\"lbagent\"")
    };
    let header = header.ok_or_else(|| deny("credentials required"))?;
    let (scheme, b64) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(deny("basic auth required"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| deny("malformed credentials"))?;
    let (user, password) = match decoded.iter().position(|&b| b == b':') {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => return Err(deny("malformed credentials")),
    };
    // Evaluate both comparisons so timing does not tell which part was wrong.
    let user_ok = ct_eq(user, creds.user.as_bytes());
    let pass_ok = ct_eq(password, creds.password.as_bytes());
    if user_ok & pass_ok {
        Ok(Some(creds.user.clone()))
    } else {
        Err(deny("invalid credentials"))
    }
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            user: "yourUser".into(),
            password: "yourPass".into(),
        }
    }

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn off_means_open() {
        assert_eq!(check(None, None), Ok(None));
    }

    #[test]
    fn right_and_wrong() {
        let c = creds();
        assert_eq!(
            check(Some(&c), Some(&basic("yourUser:yourPass"))),
            Ok(Some("yourUser".into()))
        );
        for bad in [
            None,
            Some(basic("yourUser:wrong")),
            Some(basic("other:yourPass")),
            Some(basic("yourUser:yourPass2")),
            Some(basic("yourUser")),
            Some("Bearer abc".to_string()),
            Some("Basic !!!".to_string()),
        ] {
            let e = check(Some(&c), bad.as_deref()).unwrap_err();
            assert_eq!(e.status, 401);
            assert_eq!(e.headers[0].0, "WWW-Authenticate");
        }
        // Passwords may hold ':'.
        let c2 = Credentials {
            user: "u".into(),
            password: "a:b".into(),
        };
        assert!(check(Some(&c2), Some(&basic("u:a:b"))).is_ok());
    }

    #[test]
    fn ct_eq_works() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }
}
