//! The legacy appliance API (spec/appliance-api-legacy.md): `/instances...`, over the same
//! listener store as the amphora API. Bodies are plain text; bad PUT data is 409; an unknown
//! method or URL on these paths is 403 (see `owns`).

use serde_json::json;

use crate::api::ops::{
    CertApply, CertPolicy, CertVerb, Details, DomainError, HostOp, Need, Op, Outcome, PemCheck,
    StoreOp,
};
use crate::api::{held, words, ApiRoute, Endpoint, Reply};
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::listeners::{ListenerError, Status};
use crate::names::{CertName, ListenerId};

// The spec's texts (bodies are plain text).
const NOT_FOUND: &str = "Not Found";
const INVALID_CONFIG: &str = "Invalid configuration";
const BAD_CERT_NAME: &str = "Invalid certificate file name";
const UNAVAILABLE: &str = "HAProxy unavailable";
const INTERNAL: &str = "Internal Server Error";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Status,
    ServiceStatus,
    List,
    Exists,
    Delete,
    PutConfig,
    GetConfig,
    DeleteConfig,
    Cert(CertVerb),
}

/// A certificate creates its instance; a running one is reloaded to read the file.
const CERTS: CertPolicy = CertPolicy {
    put_needs: Need::Nothing,
    read_needs: Need::Listener,
    check: PemCheck::Bundle,
    apply: CertApply::Reload,
};

pub fn routes() -> Vec<ApiRoute> {
    let r = |method, pattern, key| held(method, pattern, Endpoint::Legacy(key));
    const INSTANCE: &str = "/instances/{instance}";
    const CONFIG: &str = "/instances/{instance}/haproxy";
    const CERT: &str = "/instances/{instance}/certificates/{filename}";
    vec![
        r(Method::Get, "/status", Key::Status),
        r(Method::Get, "/service_status", Key::ServiceStatus),
        r(Method::Get, "/instances", Key::List),
        r(Method::Get, INSTANCE, Key::Exists),
        r(Method::Delete, INSTANCE, Key::Delete),
        r(Method::Put, CONFIG, Key::PutConfig),
        r(Method::Get, CONFIG, Key::GetConfig),
        r(Method::Delete, CONFIG, Key::DeleteConfig),
        r(Method::Put, CERT, Key::Cert(CertVerb::Put)),
        r(Method::Get, CERT, Key::Cert(CertVerb::Sum)),
        r(Method::Delete, CERT, Key::Cert(CertVerb::Delete)),
    ]
}

/// The paths whose unknown methods and sub-paths answer 403, as the legacy spec says.
pub fn owns(path: &str) -> bool {
    path == "/instances"
        || path.starts_with("/instances/")
        || path == "/status"
        || path == "/service_status"
}

/// Instance ids and certificate names are checked before any file is looked at: a bad name
/// is a 409 even for an instance that does not exist.
pub fn parse(key: Key, p: &Params, body: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Store(match key {
        // Appliance statistics: the host's figures.
        Key::Status => return Ok(Op::Host(HostOp::Details { frontends: false })),
        Key::ServiceStatus => StoreOp::Services,
        Key::List => StoreOp::Instances,
        Key::Exists => StoreOp::Exists(instance(p)?),
        Key::Delete => StoreOp::Delete {
            id: instance(p)?,
            need: Need::Listener,
        },
        Key::PutConfig => StoreOp::UploadAndRun {
            id: instance(p)?,
            config: body,
        },
        Key::GetConfig => StoreOp::Config(instance(p)?),
        Key::DeleteConfig => StoreOp::DeleteConfig(instance(p)?),
        Key::Cert(verb) => {
            let id = instance(p)?;
            StoreOp::cert(verb, id, cert_name(p)?, body, CERTS)
        }
    }))
}

pub fn render(_: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    Ok(match r.map_err(error)? {
        Outcome::Details(d) => Reply::json(200, &status(&d)),
        Outcome::Services(all) => {
            let mut text = String::new();
            for s in all {
                let state = match s.status {
                    Status::Error => "ERROR",
                    Status::Active | Status::Stopped => "OK",
                };
                let haproxy = match s.pid {
                    Some(pid) => format!("running (pid {pid})"),
                    None => "stopped".to_string(),
                };
                text.push_str(&format!(
                    "{:<52}{state}\n  {:<17}{haproxy}\n",
                    s.id, "haproxy"
                ));
            }
            Reply::text(200, text)
        }
        Outcome::Ids(ids) => Reply::text(
            200,
            ids.iter().map(|id| format!("{id}\n")).collect::<String>(),
        ),
        Outcome::Done => ok(200, None),
        Outcome::Deleted { id, was_running } => ok(200, Some(words::deleted(&id, was_running))),
        Outcome::Ran { id, ran } => ok(201, Some(words::ran(&id, &ran))),
        Outcome::Config(bytes) => Reply::bytes(200, bytes),
        Outcome::CertStored { id, applied, .. } => ok(201, words::applied(&id, &applied)),
        Outcome::CertSum(sum) => Reply::text(200, sum),
        other => return Err(words::unexpected(&other)),
    })
}

fn ok(status: u16, details: Option<String>) -> Reply {
    match details {
        Some(d) => Reply::text(status, format!("OK\n{d}")),
        None => Reply::text(status, "OK"),
    }
}

fn not_found() -> ApiError {
    ApiError::plain(404, NOT_FOUND)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::plain(500, INTERNAL).with_details(e.to_string())
}

/// This family's rendering of what the domain refused: plain text, bad data is 409.
fn error(e: DomainError) -> ApiError {
    match e {
        DomainError::Listener(ListenerError::NotFound(_)) | DomainError::CertNotFound(_) => {
            not_found()
        }
        DomainError::Listener(ListenerError::Invalid(out)) => {
            ApiError::plain(409, INVALID_CONFIG).with_details(out)
        }
        DomainError::Listener(ListenerError::Unavailable(why)) => {
            ApiError::plain(503, UNAVAILABLE).with_details(why)
        }
        DomainError::Listener(ListenerError::Failed(action, out)) => {
            ApiError::plain(500, format!("Error {} haproxy", words::gerund(action)))
                .with_details(out)
        }
        DomainError::Listener(ListenerError::Io(e)) | DomainError::Io(e) => internal(e),
        DomainError::Cert(e) => ApiError::plain(409, words::cert_refused(&e)),
        other => internal(format!("{other:?}")),
    }
}

/// An id that is not valid can name no instance: Not Found, before any file access.
fn instance(p: &Params) -> Result<ListenerId, ApiError> {
    ListenerId::parse(p.get("instance")?).map_err(|_| not_found())
}

fn cert_name(p: &Params) -> Result<CertName, ApiError> {
    CertName::parse(p.get("filename")?).map_err(|_| {
        ApiError::plain(409, BAD_CERT_NAME)
            .with_details("letters, digits, '_', '.', '-', ending in .pem")
    })
}

/// Appliance statistics, with the legacy key names and value types (counts and loads as text).
fn status(d: &Details) -> serde_json::Value {
    let (tx, rx) = d
        .rates
        .net
        .values()
        .fold((0.0, 0.0), |(t, r), (a, b)| (t + a, r + b));
    let (_, user, system_cpu, soft_irq) = d.rates.cpu;
    let load: Vec<&str> = d.loadavg.split_whitespace().take(3).collect();
    json!({
        "network_tx": tx,
        "network_rx": rx,
        "active_node": u8::from(d.topology.is_active()),
        "haproxy_count": d.running.to_string(),
        "stunnel_count": "0",
        "hostname": d.identity.hostname,
        // No fencing daemon is part of this agent.
        "fencing_daemon_status": "NONE",
        "user_cpu": user,
        "system_cpu": system_cpu,
        "software_irq": soft_irq,
        "load": load,
    })
}

#[cfg(test)]
mod tests {
    use crate::api::ops::{CertApply, CertPut, HostOp, Need, Op, PemCheck, StoreOp};
    use crate::api::{parse_request as parse, refusal};
    use crate::names::{CertName, ListenerId};

    fn id() -> ListenerId {
        ListenerId::parse("i1").unwrap()
    }

    fn cert() -> CertName {
        CertName::parse("c.pem").unwrap()
    }

    #[test]
    fn every_route_parses() {
        let cases = [
            ("GET", "/service_status", "", StoreOp::Services),
            ("GET", "/instances", "", StoreOp::Instances),
            ("GET", "/instances/i1", "", StoreOp::Exists(id())),
            (
                "DELETE",
                "/instances/i1",
                "",
                StoreOp::Delete {
                    id: id(),
                    need: Need::Listener,
                },
            ),
            (
                "PUT",
                "/instances/i1/haproxy",
                "cfg",
                StoreOp::UploadAndRun {
                    id: id(),
                    config: b"cfg".to_vec(),
                },
            ),
            ("GET", "/instances/i1/haproxy", "", StoreOp::Config(id())),
            (
                "DELETE",
                "/instances/i1/haproxy",
                "",
                StoreOp::DeleteConfig(id()),
            ),
            (
                "PUT",
                "/instances/i1/certificates/c.pem",
                "pem",
                StoreOp::PutCert(CertPut {
                    id: id(),
                    name: cert(),
                    pem: b"pem".to_vec(),
                    need: Need::Nothing,
                    check: PemCheck::Bundle,
                    apply: CertApply::Reload,
                }),
            ),
            (
                "GET",
                "/instances/i1/certificates/c.pem",
                "",
                StoreOp::CertSum {
                    id: id(),
                    name: cert(),
                    need: Need::Listener,
                },
            ),
            (
                "DELETE",
                "/instances/i1/certificates/c.pem",
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
        assert_eq!(
            parse("GET", "/status", "").unwrap(),
            Op::Host(HostOp::Details { frontends: false })
        );
    }

    #[test]
    fn bad_ids_are_not_found_and_bad_names_conflict() {
        let nf = (404, "Not Found".to_string(), None);
        let bad_name = (
            409,
            "Invalid certificate file name".to_string(),
            Some("letters, digits, '_', '.', '-', ending in .pem".to_string()),
        );
        let cases = [
            ("GET", "/instances/a.b", nf.clone()),
            ("DELETE", "/instances/a.b", nf.clone()),
            ("PUT", "/instances/a.b/haproxy", nf.clone()),
            ("GET", "/instances/a.b/haproxy", nf.clone()),
            ("DELETE", "/instances/a.b/haproxy", nf.clone()),
            ("PUT", "/instances/a.b/certificates/c.pem", nf.clone()),
            ("GET", "/instances/a.b/certificates/c.txt", nf.clone()),
            ("DELETE", "/instances/a.b/certificates/c.pem", nf),
            ("PUT", "/instances/i1/certificates/c.txt", bad_name.clone()),
            // Checked before the instance is looked up (before this layer: 404 when the
            // instance did not exist).
            ("GET", "/instances/i1/certificates/c.txt", bad_name.clone()),
            ("DELETE", "/instances/i1/certificates/c.txt", bad_name),
        ];
        for (method, path, want) in cases {
            assert_eq!(refusal(parse(method, path, "")), want, "{method} {path}");
        }
    }
}
