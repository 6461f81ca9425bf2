//! HApi routes (spec/hapi.md): `/loadBalancer/...` on the main HAProxy's admin socket.

use std::collections::BTreeMap;

use serde_json::json;

use crate::api::ops::{DomainError, HapiOp, Op, Outcome};
use crate::api::{free, words, ApiRoute, Endpoint, Reply};
use crate::error::ApiError;
use crate::hapi::{Action, NodeStatus};
use crate::haproxy::HaproxyError;
use crate::http::{Method, Params};
use crate::names::ProxyName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Status,
    Nodes,
    PoolManager,
}

pub fn routes() -> Vec<ApiRoute> {
    let r = |method, pattern, key| free(method, pattern, Endpoint::Hapi(key));
    vec![
        r(Method::Get, "/loadBalancer/status", Key::Status),
        r(Method::Get, "/loadBalancer/nodes/{status}", Key::Nodes),
        r(
            Method::Post,
            "/loadBalancer/poolManager/{frontend}/{action}/{node}",
            Key::PoolManager,
        ),
    ]
}

pub fn parse(key: Key, p: &Params, _: Vec<u8>) -> Result<Op, ApiError> {
    Ok(Op::Hapi(match key {
        Key::Status => HapiOp::Status,
        Key::Nodes => {
            let word = p.get("status")?;
            HapiOp::Nodes(NodeStatus::parse(word).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Unknown node status: {word} (use up, down or maint)"
                ))
            })?)
        }
        Key::PoolManager => {
            let word = p.get("action")?;
            let action = Action::parse(word).ok_or_else(|| {
                ApiError::bad_request(format!("Unknown action: {word} (use enable or disable)"))
            })?;
            HapiOp::SetNode {
                frontend: p.get("frontend")?.to_string(),
                action,
                node: p.get("node")?.to_string(),
            }
        }
    }))
}

pub fn render(_: Key, r: Result<Outcome, DomainError>) -> Result<Reply, ApiError> {
    Ok(match r.map_err(error)? {
        // `[{...}]`: every `show info` field, as strings.
        Outcome::Info(fields) => {
            // Sorted by name as a JSON object map would be, borrowed rather than copied.
            let mut info: BTreeMap<&str, &str> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            // HApi always showed these two; HAProxy 2.x leaves them out while they are empty.
            for key in ["node", "description"] {
                info.entry(key).or_insert("");
            }
            Reply::json(200, &[info])
        }
        Outcome::Nodes(found) => {
            let flag = if found.is_empty() { "False" } else { "True" };
            Reply::json(200, &json!([{ "found": flag }, { "Nodes": found }]))
        }
        Outcome::NodeSet {
            action,
            backends,
            node,
        } => {
            let names: Vec<&str> = backends.iter().map(|b| b.as_str()).collect();
            Reply::json(
                200,
                &json!({
                    "action": action.as_str(),
                    "backend": python_list(&backends),
                    "backends": names,
                    "node": node,
                }),
            )
        }
        other => return Err(words::unexpected(&other)),
    })
}

/// Python's repr of a list of strings, which HApi put in its `backend` field.
fn python_list(names: &[ProxyName]) -> String {
    let items: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", items.join(", "))
}

fn haproxy_error(e: HaproxyError) -> ApiError {
    match e {
        HaproxyError::Unavailable { path, reason } => ApiError::new(503, "HAProxy unavailable")
            .with_details(format!("{}: {reason}", path.display())),
        HaproxyError::Refused(msg) if msg.starts_with("No such") => {
            ApiError::new(404, msg.trim_end_matches('.').to_string()).with_details(msg)
        }
        HaproxyError::Refused(msg) => {
            ApiError::new(409, "HAProxy refused the command").with_details(msg)
        }
    }
}

fn error(e: DomainError) -> ApiError {
    match e {
        DomainError::Haproxy(e) => haproxy_error(e),
        DomainError::NoFrontend(f) => {
            ApiError::not_found(format!("No frontend named {f} in the config"))
        }
        DomainError::BadNode(node, e) => ApiError::bad_request(format!("Invalid node {node}: {e}")),
        // Which backend refused, and which were already changed.
        DomainError::Pool(e) => {
            let mut err = haproxy_error(e.cause);
            let done = if e.done.is_empty() {
                String::new()
            } else {
                format!(" (already done in {})", python_list(&e.done))
            };
            let what = format!("backend {}, server {}", e.backend, e.server);
            err.details = Some(match err.details.take() {
                Some(d) => format!("{what}: {d}{done}"),
                None => format!("{what}{done}"),
            });
            err
        }
        other => words::unexpected(&other),
    }
}

#[cfg(test)]
mod tests {
    use crate::api::ops::{HapiOp, Op};
    use crate::api::{parse_request as parse, refusal};
    use crate::hapi::{Action, NodeStatus};
    use crate::names::ProxyName;

    #[test]
    fn every_route_parses() {
        let cases = [
            ("GET", "/loadBalancer/status", HapiOp::Status),
            (
                "GET",
                "/loadBalancer/nodes/maint",
                HapiOp::Nodes(NodeStatus::Maint),
            ),
            (
                "POST",
                "/loadBalancer/poolManager/www/disable/1",
                HapiOp::SetNode {
                    frontend: "www".into(),
                    action: Action::Disable,
                    node: "1".into(),
                },
            ),
        ];
        for (method, path, op) in cases {
            assert_eq!(
                parse(method, path, "").unwrap(),
                Op::Hapi(op),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn backends_as_python_lists() {
        let names = [
            ProxyName::parse("a").unwrap(),
            ProxyName::parse("b").unwrap(),
        ];
        assert_eq!(super::python_list(&names), "['a', 'b']");
        assert_eq!(super::python_list(&names[..1]), "['a']");
    }

    #[test]
    fn unknown_words_are_bad_requests() {
        let bad = |d: &str| (400, "Bad Request".to_string(), Some(d.to_string()));
        let cases = [
            (
                "GET",
                "/loadBalancer/nodes/sideways",
                bad("Unknown node status: sideways (use up, down or maint)"),
            ),
            (
                "POST",
                "/loadBalancer/poolManager/www/drain/1",
                bad("Unknown action: drain (use enable or disable)"),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(refusal(parse(method, path, "")), want, "{method} {path}");
        }
    }
}
