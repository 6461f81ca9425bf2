//! HApi routes (spec/hapi.md): `/loadBalancer/...` on the main HAProxy's admin socket.

use serde_json::{json, Map, Value};

use crate::api::{free, ApiRoute, Ctx, Endpoint, Reply, Request};
use crate::error::ApiError;
use crate::hapi::{self, Action, NodeStatus};
use crate::haproxy::HaproxyError;
use crate::http::{Method, Params};

pub fn routes() -> Vec<ApiRoute> {
    vec![
        free(
            Method::Get,
            "/loadBalancer/status",
            Endpoint::Handler(status),
        ),
        free(
            Method::Get,
            "/loadBalancer/nodes/{status}",
            Endpoint::Handler(nodes),
        ),
        free(
            Method::Post,
            "/loadBalancer/poolManager/{frontend}/{action}/{node}",
            Endpoint::Handler(pool_manager),
        ),
    ]
}

impl From<HaproxyError> for ApiError {
    fn from(e: HaproxyError) -> Self {
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
}

/// `[{...}]`: every `show info` field, as strings.
fn status(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let mut info: Map<String, Value> = ctx
        .main_haproxy
        .show_info()?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    // HApi always showed these two; HAProxy 2.x leaves them out while they are empty.
    for key in ["node", "description"] {
        info.entry(key)
            .or_insert_with(|| Value::String(String::new()));
    }
    Ok(Reply::json(200, &json!([info])))
}

fn nodes(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let word = p.get("status")?;
    let status = NodeStatus::parse(word).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Unknown node status: {word} (use up, down or maint)"
        ))
    })?;
    let rows = ctx.main_haproxy.show_stat()?;
    let found = hapi::nodes(&rows, status, ctx.config.server_prefix.as_deref());
    let flag = if found.is_empty() { "False" } else { "True" };
    Ok(Reply::json(
        200,
        &json!([{ "found": flag }, { "Nodes": found }]),
    ))
}

fn pool_manager(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let (frontend, word, node) = (p.get("frontend")?, p.get("action")?, p.get("node")?);
    let action = Action::parse(word).ok_or_else(|| {
        ApiError::bad_request(format!("Unknown action: {word} (use enable or disable)"))
    })?;
    let backends = ctx.config.frontends.get(frontend).ok_or_else(|| {
        ApiError::not_found(format!("No frontend named {frontend} in the config"))
    })?;
    let server = hapi::server_name(ctx.config.server_prefix.as_deref(), node)
        .map_err(|e| ApiError::bad_request(format!("Invalid node {node}: {e}")))?;
    hapi::set_server(&ctx.main_haproxy, backends, &server, action).map_err(|e| {
        let mut err = ApiError::from(e.cause);
        let done = if e.done.is_empty() {
            String::new()
        } else {
            format!(" (already done in {})", hapi::python_list(&e.done))
        };
        let what = format!("backend {}, server {}", e.backend, e.server);
        err.details = Some(match err.details.take() {
            Some(d) => format!("{what}: {d}{done}"),
            None => format!("{what}{done}"),
        });
        err
    })?;
    let names: Vec<&str> = backends.iter().map(|b| b.as_str()).collect();
    Ok(Reply::json(
        200,
        &json!({
            "action": action.as_str(),
            "backend": hapi::python_list(backends),
            "backends": names,
            "node": node,
        }),
    ))
}
