//! Octavia amphora API v0.1 listener routes (spec/amphora-api-v0.1.rst), `/v0.1/listeners...`:
//! the request parsed into an `Op`, the outcome rendered in the spec's words. Status codes and
//! message texts are the spec's.

use serde_json::json;

use crate::api::ops::{
    CertApply, CertPolicy, CertVerb, DomainError, Need, Op, Outcome, PemCheck, StoreOp,
};
use crate::api::{held, words, ApiRoute, Endpoint, Reply};
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::listeners::Origin;
use crate::names::{CertName, ListenerId};
use crate::process::Action;

const INVALID: &str = "Invalid request";
const VALID: &str = "Configuration file is valid";
const NOT_FOUND: &str = "Listener Not Found";
/// An unknown action word (the spec capitalises this one).
const INVALID_ACTION: &str = "Invalid Request";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Cert(CertVerb),
    Upload,
    GetConfig,
    Act,
    List,
    Get,
    Delete,
}

/// Certificates belong to a listener that exists; a key bundle is checked, and a running
/// HAProxy that serves the file gets it at once.
const CERTS: CertPolicy = CertPolicy {
    put_needs: Need::Listener,
    read_needs: Need::Listener,
    check: PemCheck::Bundle,
    apply: CertApply::Live,
};

pub fn routes() -> Vec<ApiRoute> {
    let r = |method, pattern, key| held(method, pattern, Endpoint::Amphora(key));
    const CERT: &str = "/v0.1/listeners/{listener}/certificates/{filename}";
    vec![
        // Before the upload route: both have five segments.
        r(Method::Put, CERT, Key::Cert(CertVerb::Put)),
        r(Method::Get, CERT, Key::Cert(CertVerb::Sum)),
        r(Method::Delete, CERT, Key::Cert(CertVerb::Delete)),
        r(
            Method::Put,
            "/v0.1/listeners/{amphora_id}/{listener}/haproxy",
            Key::Upload,
        ),
        r(
            Method::Get,
            "/v0.1/listeners/{listener}/haproxy",
            Key::GetConfig,
        ),
        r(Method::Put, "/v0.1/listeners/{listener}/{action}", Key::Act),
        r(Method::Get, "/v0.1/listeners", Key::List),
        r(Method::Get, "/v0.1/listeners/{listener}", Key::Get),
        r(Method::Delete, "/v0.1/listeners/{listener}", Key::Delete),
    ]
}

pub fn parse(key: Key, p: &Params, body: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Store(match key {
        Key::Cert(verb) => {
            let name = cert_name(p)?;
            StoreOp::cert(verb, listener(p)?, name, body, CERTS)
        }
        Key::Upload => {
            let raw = p.get("listener")?;
            let id = ListenerId::parse(raw).map_err(|_| {
                ApiError::new(400, INVALID).with_details(format!("Invalid listener id: {raw}"))
            })?;
            StoreOp::Upload {
                id,
                config: body,
                origin: Origin::Other,
            }
        }
        Key::GetConfig => StoreOp::Config(listener(p)?),
        Key::Act => {
            let action = action_word(p.get("action")?)?;
            StoreOp::Act {
                id: listener(p)?,
                action,
            }
        }
        Key::List => StoreOp::Listeners,
        Key::Get => StoreOp::Listener(listener(p)?),
        Key::Delete => StoreOp::Delete {
            id: listener(p)?,
            need: Need::Listener,
        },
    }))
}

pub fn render(_: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    let ok = |status| Reply::json(status, &json!({ "message": "OK" }));
    let details =
        |status, d: String| Reply::json(status, &json!({ "message": "OK", "details": d }));
    Ok(
        match r.map_err(|e| words::amphora_error(e, listener_not_found))? {
            Outcome::Summaries(all) => Reply::json(200, &json!(all)),
            Outcome::Listener { summary, pools } => {
                let mut v = json!(summary);
                v["pools"] = json!(pools);
                Reply::json(200, &v)
            }
            Outcome::Config(bytes) => Reply::bytes(200, bytes),
            Outcome::Uploaded { .. } => details(201, VALID.to_string()),
            Outcome::Ran { id, ran } => details(202, words::ran(&id, &ran)),
            Outcome::Deleted { .. } | Outcome::Done => ok(200),
            Outcome::CertStored { id, applied, .. } => match words::applied(&id, &applied) {
                Some(d) => details(201, d),
                None => ok(201),
            },
            Outcome::CertSum(sum) => Reply::json(200, &json!({ "md5sum": sum })),
            other => return Err(words::unexpected(&other)),
        },
    )
}

fn listener_not_found(id: &ListenerId) -> ApiError {
    not_found(id.as_str())
}

fn not_found(raw: &str) -> ApiError {
    ApiError::new(404, NOT_FOUND).with_details(format!("No listener with UUID: {raw}"))
}

/// The listener id from the path. An id that is not valid names no listener: 404.
fn listener(p: &Params) -> Result<ListenerId, ApiError> {
    let raw = p.get("listener")?;
    ListenerId::parse(raw).map_err(|_| not_found(raw))
}

fn cert_name(p: &Params) -> Result<CertName, ApiError> {
    let raw = p.get("filename")?;
    CertName::parse(raw).map_err(|_| {
        ApiError::new(400, INVALID).with_details(format!(
            "Invalid certificate file name: {raw:?} (letters, digits, '_', '.', '-', ending in .pem)"
        ))
    })
}

/// An action route's word (start, stop, reload), checked before anything else.
pub(super) fn action_word(word: &str) -> Result<Action, ApiError> {
    Action::parse(word).ok_or_else(|| {
        ApiError::new(400, INVALID_ACTION).with_details(format!("Unknown action: {word}"))
    })
}

#[cfg(test)]
mod tests {
    use crate::api::ops::{CertApply, CertPut, Need, PemCheck, StoreOp};
    use crate::api::{parse_request as parse, refusal};
    use crate::listeners::Origin;
    use crate::names::{CertName, ListenerId};
    use crate::process::Action;

    fn id() -> ListenerId {
        ListenerId::parse("l1").unwrap()
    }

    fn cert() -> CertName {
        CertName::parse("c.pem").unwrap()
    }

    #[test]
    fn every_route_parses() {
        let cases = [
            ("GET", "/v0.1/listeners", "", StoreOp::Listeners),
            ("GET", "/v0.1/listeners/l1", "", StoreOp::Listener(id())),
            (
                "DELETE",
                "/v0.1/listeners/l1",
                "",
                StoreOp::Delete {
                    id: id(),
                    need: Need::Listener,
                },
            ),
            (
                "PUT",
                "/v0.1/listeners/amp/l1/haproxy",
                "cfg",
                StoreOp::Upload {
                    id: id(),
                    config: b"cfg".to_vec(),
                    origin: Origin::Other,
                },
            ),
            (
                "GET",
                "/v0.1/listeners/l1/haproxy",
                "",
                StoreOp::Config(id()),
            ),
            (
                "PUT",
                "/v0.1/listeners/l1/reload",
                "",
                StoreOp::Act {
                    id: id(),
                    action: Action::Reload,
                },
            ),
            (
                "PUT",
                "/v0.1/listeners/l1/certificates/c.pem",
                "pem",
                StoreOp::PutCert(CertPut {
                    id: id(),
                    name: cert(),
                    pem: b"pem".to_vec(),
                    need: Need::Listener,
                    check: PemCheck::Bundle,
                    apply: CertApply::Live,
                }),
            ),
            (
                "GET",
                "/v0.1/listeners/l1/certificates/c.pem",
                "",
                StoreOp::CertSum {
                    id: id(),
                    name: cert(),
                    need: Need::Listener,
                },
            ),
            (
                "DELETE",
                "/v0.1/listeners/l1/certificates/c.pem",
                "",
                StoreOp::DeleteCert {
                    id: id(),
                    name: cert(),
                    need: Need::Listener,
                },
            ),
        ];
        for (method, path, body, op) in cases {
            assert_eq!(
                parse(method, path, body).unwrap(),
                op.into(),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn bad_words_ids_and_names_are_refused_first() {
        let nf = |id: &str| {
            (
                404,
                "Listener Not Found".to_string(),
                Some(format!("No listener with UUID: {id}")),
            )
        };
        let bad_cert = (
            400,
            "Invalid request".to_string(),
            Some(
                "Invalid certificate file name: \"c.txt\" (letters, digits, '_', '.', '-', \
                 ending in .pem)"
                    .to_string(),
            ),
        );
        let cases = [
            (
                "PUT",
                "/v0.1/listeners/a.b/jump",
                (
                    400,
                    "Invalid Request".to_string(),
                    Some("Unknown action: jump".to_string()),
                ),
            ),
            ("PUT", "/v0.1/listeners/a.b/start", nf("a.b")),
            ("GET", "/v0.1/listeners/a.b", nf("a.b")),
            ("DELETE", "/v0.1/listeners/a.b", nf("a.b")),
            ("GET", "/v0.1/listeners/a.b/haproxy", nf("a.b")),
            (
                "PUT",
                "/v0.1/listeners/amp/a.b/haproxy",
                (
                    400,
                    "Invalid request".to_string(),
                    Some("Invalid listener id: a.b".to_string()),
                ),
            ),
            ("PUT", "/v0.1/listeners/a.b/certificates/c.pem", nf("a.b")),
            ("GET", "/v0.1/listeners/a.b/certificates/c.pem", nf("a.b")),
            (
                "DELETE",
                "/v0.1/listeners/a.b/certificates/c.pem",
                nf("a.b"),
            ),
            // The file name before the listener.
            (
                "PUT",
                "/v0.1/listeners/a.b/certificates/c.txt",
                bad_cert.clone(),
            ),
            (
                "GET",
                "/v0.1/listeners/l1/certificates/c.txt",
                bad_cert.clone(),
            ),
            ("DELETE", "/v0.1/listeners/l1/certificates/c.txt", bad_cert),
        ];
        for (method, path, want) in cases {
            assert_eq!(refusal(parse(method, path, "")), want, "{method} {path}");
        }
    }
}
