//! One route table: method + path pattern -> handler. Patterns are literal segments and
//! `{name}` parameters; parameters are percent-decoded before handlers see them.

use crate::api::{Ctx, Reply, Request};
use crate::error::ApiError;

pub type Handler = fn(&Ctx, &Request, &Params) -> Result<Reply, ApiError>;

pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub handler: Handler,
}

/// Path parameters by name, decoded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// A parameter the route's pattern declares; empty if the pattern has no such name.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

pub enum Match<'a> {
    Found(&'a Route, Params),
    /// The path is known, the method is not: the methods that are.
    WrongMethod(Vec<&'static str>),
    NotFound,
}

pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Router { routes }
    }

    /// The route for a method and path. `HEAD` is served by the `GET` route (RFC 9110 9.3.2;
    /// tiny_http leaves the body out).
    pub fn find(&self, method: &str, path: &str) -> Match<'_> {
        let wanted = if method == "HEAD" { "GET" } else { method };
        let mut allowed = Vec::new();
        for r in &self.routes {
            if let Some(params) = match_pattern(r.pattern, path) {
                if r.method == wanted {
                    return Match::Found(r, params);
                }
                let also = (r.method == "GET").then_some("HEAD");
                for m in std::iter::once(r.method).chain(also) {
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
            (None, None) => return Some(Params(params)),
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

    fn h(_: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
        Ok(Reply::json(200, &serde_json::json!({})))
    }

    fn router() -> Router {
        Router::new(vec![
            Route {
                method: "GET",
                pattern: "/a/{x}",
                handler: h,
            },
            Route {
                method: "POST",
                pattern: "/a/{x}/{y}",
                handler: h,
            },
            Route {
                method: "PUT",
                pattern: "/a/{x}/{y}",
                handler: h,
            },
            Route {
                method: "GET",
                pattern: "/b",
                handler: h,
            },
        ])
    }

    #[test]
    fn matches_and_decodes() {
        let r = router();
        match r.find("GET", "/a/hello%20there") {
            Match::Found(route, p) => {
                assert_eq!(route.pattern, "/a/{x}");
                assert_eq!(p.get("x"), "hello there");
                assert_eq!(p.get("nope"), "");
            }
            _ => panic!("no match"),
        }
        match r.find("POST", "/a/%2e%2e%2f/2") {
            Match::Found(_, p) => assert_eq!(p.get("x"), "../"),
            _ => panic!("no match"),
        }
    }

    #[test]
    fn wrong_method_and_not_found() {
        let r = router();
        match r.find("DELETE", "/a/1/2") {
            Match::WrongMethod(m) => assert_eq!(m, ["POST", "PUT"]),
            _ => panic!(),
        }
        for p in [
            "/", "/a", "/a/", "/a/1/2/3", "/b/", "/c", "", "/a/%zz", "/a/%ff",
        ] {
            assert!(matches!(r.find("GET", p), Match::NotFound), "{p}");
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
