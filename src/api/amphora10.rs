//! Octavia amphora API 1.0, the version Octavia's controllers speak today: `/` (and `//`, which
//! is what their client asks) and `/1.0/...`. The same domain calls as v0.1 (`amphora.rs`,
//! `host.rs`); only paths, status codes and bodies differ, as Octavia 19's own agent gives them.
//! A 1.0 "load balancer" is one listener-store entry: one HAProxy whose config holds a
//! frontend per listener.

use serde_json::{json, Value};

use crate::api::host::{self, Version};
use crate::api::ops::{
    CertApply, CertPolicy, CertVerb, DomainError, Need, Op, Outcome, PemCheck, StoreOp,
};
use crate::api::{amphora, held, words, ApiRoute, Endpoint, Reply};
use crate::config::{self, Problem};
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::listeners::Origin;
use crate::names::{CertName, ListenerId};

const API_VERSION: &str = "1.0";
const NOT_FOUND: &str = "Loadbalancer Not Found";
const CERT_NOT_FOUND: &str = "Certificate Not Found";
const INVALID: &str = "Invalid request";
const BAD_FILENAME: &str = "Filename has wrong format";
const AGENT_CONFIG_FAILED: &str = "Unable to update amphora-agent configuration.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Version,
    Listeners,
    DeleteLb,
    Cert(CertVerb),
    Upload,
    GetConfig,
    Act,
    AgentConfig,
}

/// Octavia's controller uploads certificates before the config that names them, and CA
/// bundles, CRLs and crt-lists besides key bundles.
const CERTS: CertPolicy = CertPolicy {
    put_needs: Need::Nothing,
    read_needs: Need::Nothing,
    check: PemCheck::KeyIfPresent,
    apply: CertApply::Live,
};

pub fn routes() -> Vec<ApiRoute> {
    let r = |method, pattern, key| held(method, pattern, Endpoint::Amphora10(key));
    let h = |method, pattern, key| held(method, pattern, Endpoint::Host(key));
    const CERT: &str = "/1.0/loadbalancer/{lb}/certificates/{filename}";
    vec![
        r(Method::Get, "/", Key::Version),
        r(Method::Get, "//", Key::Version),
        h(Method::Get, "/1.0/info", host::Key::Info(Version::V10)),
        h(
            Method::Get,
            "/1.0/details",
            host::Key::Details(Version::V10),
        ),
        r(Method::Get, "/1.0/listeners", Key::Listeners),
        r(Method::Delete, "/1.0/listeners/{lb}", Key::DeleteLb),
        // Before the upload route: both have five segments.
        r(Method::Put, CERT, Key::Cert(CertVerb::Put)),
        r(Method::Get, CERT, Key::Cert(CertVerb::Sum)),
        r(Method::Delete, CERT, Key::Cert(CertVerb::Delete)),
        r(
            Method::Put,
            "/1.0/loadbalancer/{amphora_id}/{lb}/haproxy",
            Key::Upload,
        ),
        r(
            Method::Get,
            "/1.0/loadbalancer/{lb}/haproxy",
            Key::GetConfig,
        ),
        r(Method::Put, "/1.0/loadbalancer/{lb}/{action}", Key::Act),
        h(Method::Post, "/1.0/plug/vip/{ip}", host::Key::PlugVip),
        h(Method::Post, "/1.0/plug/network", host::Key::PlugNetwork),
        h(Method::Put, "/1.0/certificate", host::Key::Certificate),
        h(Method::Put, "/1.0/vrrp/upload", host::Key::VrrpUpload),
        h(Method::Put, "/1.0/vrrp/{action}", host::Key::VrrpAction),
        h(Method::Get, "/1.0/interface/{ip}", host::Key::Interface),
        h(Method::Put, "/1.0/interface/{ip}/rules", host::Key::Rules),
        r(Method::Put, "/1.0/config", Key::AgentConfig),
    ]
}

pub fn parse(key: Key, p: &Params, body: Vec<u8>) -> Result<Op, ApiError> {
    let op = match key {
        Key::Version => return Ok(Op::Nothing),
        Key::AgentConfig => {
            let text = String::from_utf8_lossy(&body);
            let settings = config::parse_mutable(&text).map_err(|p| bad_agent_config(&p))?;
            return Ok(Op::AgentConfig {
                text: body,
                settings,
            });
        }
        Key::Listeners => StoreOp::Frontends,
        Key::DeleteLb => StoreOp::Delete {
            id: lb_id(p)?,
            need: Need::Nothing,
        },
        Key::Cert(verb) => {
            let name = cert_name(p)?;
            StoreOp::cert(verb, lb_id(p)?, name, body, CERTS)
        }
        // Its load balancers are the ones heartbeats report.
        Key::Upload => StoreOp::Upload {
            id: lb_id(p)?,
            config: body,
            origin: Origin::Octavia,
        },
        Key::GetConfig => StoreOp::Config(existing_lb(p)?),
        // The action word first, in any case.
        Key::Act => {
            let action = amphora::action_word(&p.get("action")?.to_ascii_lowercase())?;
            StoreOp::Act {
                id: existing_lb(p)?,
                action,
            }
        }
    };
    Ok(Op::Store(op))
}

pub fn render(key: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    let ok = |status| Reply::json(status, &json!({ "message": "OK" }));
    let outcome = match (key, r) {
        (_, Ok(outcome)) => outcome,
        // Already gone is gone: Octavia's controller retries deletes.
        (Key::Cert(CertVerb::Delete), Err(DomainError::CertNotFound(_))) => return Ok(ok(200)),
        (_, Err(DomainError::CertNotFound(name))) => {
            return Err(ApiError::new(404, CERT_NOT_FOUND)
                .with_details(format!("No certificate with filename: {name}")))
        }
        (Key::AgentConfig, Err(DomainError::BadAgentConfig(p))) => {
            return Err(bad_agent_config(&p))
        }
        (Key::AgentConfig, Err(DomainError::Io(e))) => {
            return Err(ApiError::new(500, AGENT_CONFIG_FAILED).with_details(e.to_string()))
        }
        (_, Err(e)) => return Err(words::amphora_error(e, lb_not_found)),
    };
    Ok(match (key, outcome) {
        (Key::Version, _) => Reply::json(200, &json!({ "api_version": API_VERSION })),
        (_, Outcome::Frontends(all)) => {
            // Octavia's agent always says ACTIVE; this one says whether its HAProxy runs.
            let all: Vec<Value> = all
                .into_iter()
                .map(|f| json!({ "status": f.status, "uuid": f.name, "type": f.kind }))
                .collect();
            Reply::json(200, &json!(all))
        }
        (_, Outcome::Uploaded { md5 }) => ok(202).with_header("ETag", md5),
        (_, Outcome::CertStored { md5, .. }) => ok(200).with_header("ETag", md5),
        (_, Outcome::CertSum(sum)) => {
            Reply::json(200, &json!({ "md5sum": sum })).with_header("ETag", sum)
        }
        (_, Outcome::Config(bytes)) => {
            let etag = crate::certs::md5_hex(&bytes);
            Reply::bytes(200, bytes).with_header("ETag", etag)
        }
        (_, Outcome::Ran { id, ran }) => Reply::json(
            202,
            &json!({ "message": "OK", "details": words::ran(&id, &ran) }),
        ),
        (Key::AgentConfig, Outcome::Done) => ok(202),
        (_, Outcome::Deleted { .. } | Outcome::Done) => ok(200),
        (_, other) => return Err(words::unexpected(&other)),
    })
}

/// Octavia's agent answers a config it cannot take with this message; the problems say why.
fn bad_agent_config(problems: &[Problem]) -> ApiError {
    let why: Vec<String> = problems.iter().map(Problem::to_string).collect();
    ApiError::new(400, AGENT_CONFIG_FAILED).with_details(why.join("; "))
}

fn lb_not_found(id: &ListenerId) -> ApiError {
    not_found(id.as_str())
}

fn not_found(raw: &str) -> ApiError {
    ApiError::new(404, NOT_FOUND).with_details(format!("No loadbalancer with UUID: {raw}"))
}

/// The load balancer id from the path; one that is not valid names none (404).
fn existing_lb(p: &Params) -> Result<ListenerId, ApiError> {
    let raw = p.get("lb")?;
    ListenerId::parse(raw).map_err(|_| not_found(raw))
}

fn lb_id(p: &Params) -> Result<ListenerId, ApiError> {
    let raw = p.get("lb")?;
    ListenerId::parse(raw).map_err(|_| {
        ApiError::new(400, INVALID).with_details(format!("Invalid load balancer id: {raw}"))
    })
}

fn cert_name(p: &Params) -> Result<CertName, ApiError> {
    CertName::parse(p.get("filename")?).map_err(|_| ApiError::new(400, BAD_FILENAME))
}

#[cfg(test)]
mod tests {
    use crate::api::ops::{CertApply, CertPut, Need, Op, PemCheck, StoreOp};
    use crate::api::{parse_request as parse, refusal};
    use crate::listeners::Origin;
    use crate::names::{CertName, ListenerId};
    use crate::process::Action;

    fn lb() -> ListenerId {
        ListenerId::parse("lb1").unwrap()
    }

    fn cert() -> CertName {
        CertName::parse("c.pem").unwrap()
    }

    #[test]
    fn every_route_parses() {
        let cases = [
            ("GET", "/1.0/listeners", "", StoreOp::Frontends),
            (
                "DELETE",
                "/1.0/listeners/lb1",
                "",
                StoreOp::Delete {
                    id: lb(),
                    need: Need::Nothing,
                },
            ),
            (
                "PUT",
                "/1.0/loadbalancer/amp/lb1/haproxy",
                "cfg",
                StoreOp::Upload {
                    id: lb(),
                    config: b"cfg".to_vec(),
                    origin: Origin::Octavia,
                },
            ),
            (
                "GET",
                "/1.0/loadbalancer/lb1/haproxy",
                "",
                StoreOp::Config(lb()),
            ),
            (
                "PUT",
                "/1.0/loadbalancer/lb1/START",
                "",
                StoreOp::Act {
                    id: lb(),
                    action: Action::Start,
                },
            ),
            (
                "PUT",
                "/1.0/loadbalancer/lb1/certificates/c.pem",
                "ca",
                StoreOp::PutCert(CertPut {
                    id: lb(),
                    name: cert(),
                    pem: b"ca".to_vec(),
                    need: Need::Nothing,
                    check: PemCheck::KeyIfPresent,
                    apply: CertApply::Live,
                }),
            ),
            (
                "GET",
                "/1.0/loadbalancer/lb1/certificates/c.pem",
                "",
                StoreOp::CertSum {
                    id: lb(),
                    name: cert(),
                    need: Need::Nothing,
                },
            ),
            (
                "DELETE",
                "/1.0/loadbalancer/lb1/certificates/c.pem",
                "",
                StoreOp::DeleteCert {
                    id: lb(),
                    name: cert(),
                    need: Need::Nothing,
                },
            ),
        ];
        for (method, path, body, op) in cases {
            assert_eq!(
                parse(method, path, body).unwrap(),
                Op::Store(op),
                "{method} {path}"
            );
        }
        assert_eq!(parse("GET", "/", "").unwrap(), Op::Nothing);
        assert_eq!(parse("GET", "//", "").unwrap(), Op::Nothing);
        assert_eq!(
            parse("PUT", "/1.0/config", "[health_manager]").unwrap(),
            Op::AgentConfig {
                text: b"[health_manager]".to_vec(),
                settings: crate::config::Mutable::default(),
            }
        );
    }

    #[test]
    fn bad_words_ids_and_names_are_refused_first() {
        let s = |t: &str| t.to_string();
        let nf = (
            404,
            s("Loadbalancer Not Found"),
            Some(s("No loadbalancer with UUID: a.b")),
        );
        let bad_id = (
            400,
            s("Invalid request"),
            Some(s("Invalid load balancer id: a.b")),
        );
        let bad_name = (400, s("Filename has wrong format"), None);
        let cases = [
            (
                "PUT",
                "/1.0/loadbalancer/a.b/Jump",
                (400, s("Invalid Request"), Some(s("Unknown action: jump"))),
            ),
            ("PUT", "/1.0/loadbalancer/a.b/stop", nf.clone()),
            ("GET", "/1.0/loadbalancer/a.b/haproxy", nf),
            ("PUT", "/1.0/loadbalancer/amp/a.b/haproxy", bad_id.clone()),
            ("DELETE", "/1.0/listeners/a.b", bad_id.clone()),
            (
                "PUT",
                "/1.0/loadbalancer/a.b/certificates/c.pem",
                bad_id.clone(),
            ),
            (
                "GET",
                "/1.0/loadbalancer/a.b/certificates/c.pem",
                bad_id.clone(),
            ),
            ("DELETE", "/1.0/loadbalancer/a.b/certificates/c.pem", bad_id),
            // The file name before the load balancer.
            (
                "PUT",
                "/1.0/loadbalancer/a.b/certificates/c.txt",
                bad_name.clone(),
            ),
            (
                "GET",
                "/1.0/loadbalancer/lb1/certificates/c.txt",
                bad_name.clone(),
            ),
            (
                "DELETE",
                "/1.0/loadbalancer/lb1/certificates/c.txt",
                bad_name,
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(refusal(parse(method, path, "")), want, "{method} {path}");
        }
    }
}
