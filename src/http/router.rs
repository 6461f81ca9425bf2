//! One route table: method + path pattern -> a target (whatever the caller dispatches on).
//! Patterns are literal segments and `{name}` parameters; parameters are percent-decoded at
//! match time.

use super::Method;
use crate::error::ApiError;

pub struct Route<T> {
    pub method: Method,
    pub pattern: &'static str,
    pub target: T,
    /// Held (503) while the appliance changes topology: the route changes what a transition
    /// changes (listeners, certificates, keepalived, networks, the topology itself).
    pub held: bool,
}

/// Path parameters by name, decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    pattern: &'static str,
    values: Vec<(&'static str, String)>,
}

impl Params {
    /// A parameter the route's pattern declares. A name the pattern lacks is a bug in the
    /// route table (the parse tables of every family would show it): an internal error,
    /// never an empty value that would read as "not found".
    pub fn get(&self, name: &str) -> Result<&str, ApiError> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                ApiError::internal(format!("route {} has no parameter {name}", self.pattern))
            })
    }
}

pub enum Match<'a, T> {
    Found(&'a Route<T>, Params),
    /// The path is known, the method is not: the methods that are.
    WrongMethod(Vec<&'a str>),
    NotFound,
}

pub struct Router<T> {
    routes: Vec<Route<T>>,
}

impl<T> Router<T> {
    pub fn new(routes: Vec<Route<T>>) -> Self {
        Router { routes }
    }

    /// The route for a method and path. `HEAD` is served by the `GET` route (RFC 9110 9.3.2;
    /// tiny_http leaves the body out).
    pub fn find(&self, method: &Method, path: &str) -> Match<'_, T> {
        let wanted = if *method == Method::Head {
            &Method::Get
        } else {
            method
        };
        let mut allowed = Vec::new();
        for r in &self.routes {
            if let Some(params) = match_pattern(r.pattern, path) {
                if r.method == *wanted {
                    return Match::Found(r, params);
                }
                let also = (r.method == Method::Get).then_some("HEAD");
                for m in std::iter::once(r.method.as_str()).chain(also) {
                    if !allowed.contains(&m) {
                        allowed.push(m);
                    }
                }
            }
        }
        if allowed.is_empty() {
            Match::NotFound
        } else {
            Match::WrongMethod(allowed)
        }
    }
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<Params> {
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => {
                return Some(Params {
                    pattern,
                    values: params,
                })
            }
            (Some(p), Some(s)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    let v = percent_decode(s)?;
                    if v.is_empty() {
                        return None;
                    }
                    params.push((name, v));
                } else if p != s {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// Decodes `%XX` escapes; None for a malformed escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<u8> {
        let r = |method, pattern, target| Route {
            method,
            pattern,
            target,
            held: false,
        };
        Router::new(vec![
            r(Method::Get, "/a/{x}", 1),
            r(Method::Post, "/a/{x}/{y}", 2),
            r(Method::Put, "/a/{x}/{y}", 3),
            r(Method::Get, "/b", 4),
        ])
    }

    #[test]
    fn matches_and_decodes() {
        let r = router();
        match r.find(&Method::Get, "/a/hello%20there") {
            Match::Found(route, p) => {
                assert_eq!(route.target, 1);
                assert_eq!(p.get("x").unwrap(), "hello there");
                let e = p.get("nope").unwrap_err();
                assert_eq!(
                    (e.status, e.details.as_deref()),
                    (500, Some("route /a/{x} has no parameter nope"))
                );
            }
            _ => panic!("no match"),
        }
        match r.find(&Method::Post, "/a/%2e%2e%2f/2") {
            Match::Found(_, p) => assert_eq!(p.get("x").unwrap(), "../"),
            _ => panic!("no match"),
        }
        assert!(matches!(r.find(&Method::Head, "/b"), Match::Found(route, _) if route.target == 4));
    }

    #[test]
    fn wrong_method_and_not_found() {
        let r = router();
        match r.find(&Method::Delete, "/a/1/2") {
            Match::WrongMethod(m) => assert_eq!(m, ["POST", "PUT"]),
            _ => panic!(),
        }
        match r.find(&Method::parse("PATCH"), "/b") {
            Match::WrongMethod(m) => assert_eq!(m, ["GET", "HEAD"]),
            _ => panic!(),
        }
        for p in [
            "/", "/a", "/a/", "/a/1/2/3", "/b/", "/c", "", "/a/%zz", "/a/%ff",
        ] {
            assert!(matches!(r.find(&Method::Get, p), Match::NotFound), "{p}");
        }
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%c3%a9").as_deref(), Some("é"));
    }
}
