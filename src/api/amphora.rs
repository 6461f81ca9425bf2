//! Octavia amphora API v0.1 routes (spec/amphora-api-v0.1.rst), `/v0.1/...`. Status codes and
//! message texts are the spec's.

use serde_json::json;

use crate::api::{held, ApiRoute, Ctx, Reply, Request};
use crate::certs::{self, CertError};
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::listeners::{Action, ListenerError};
use crate::names::{CertName, ListenerId};

pub fn routes() -> Vec<ApiRoute> {
    vec![
        // Before the upload route: both have five segments.
        held(
            Method::Put,
            "/v0.1/listeners/{listener}/certificates/{filename}",
            put_certificate,
        ),
        held(
            Method::Get,
            "/v0.1/listeners/{listener}/certificates/{filename}",
            get_certificate,
        ),
        held(
            Method::Delete,
            "/v0.1/listeners/{listener}/certificates/{filename}",
            delete_certificate,
        ),
        held(
            Method::Put,
            "/v0.1/listeners/{amphora_id}/{listener}/haproxy",
            upload_config,
        ),
        held(
            Method::Get,
            "/v0.1/listeners/{listener}/haproxy",
            get_config,
        ),
        held(Method::Put, "/v0.1/listeners/{listener}/{action}", act),
        held(Method::Get, "/v0.1/listeners", list_listeners),
        held(Method::Get, "/v0.1/listeners/{listener}", get_listener),
        held(
            Method::Delete,
            "/v0.1/listeners/{listener}",
            delete_listener,
        ),
    ]
}

fn ok(status: u16) -> Reply {
    Reply::json(status, &json!({ "message": "OK" }))
}

fn invalid(details: impl Into<String>) -> ApiError {
    ApiError::new(400, "Invalid request").with_details(details)
}

fn listener_not_found(id: &str) -> ApiError {
    ApiError::new(404, "Listener Not Found").with_details(format!("No listener with UUID: {id}"))
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

/// The listener id from the path; must name an existing listener unless `may_be_new`.
/// An id that is not valid names no listener: 404, except for an upload, which would create
/// one (400).
fn listener(ctx: &Ctx, p: &Params, may_be_new: bool) -> Result<ListenerId, ApiError> {
    let raw = p.get("listener")?;
    let id = ListenerId::parse(raw).map_err(|_| {
        if may_be_new {
            invalid(format!("Invalid listener id: {raw}"))
        } else {
            listener_not_found(raw)
        }
    })?;
    if !may_be_new && !ctx.listeners.exists(&id) {
        return Err(listener_not_found(raw));
    }
    Ok(id)
}

fn cert_name(p: &Params) -> Result<CertName, ApiError> {
    let raw = p.get("filename")?;
    CertName::parse(raw).map_err(|_| {
        invalid(format!(
            "Invalid certificate file name: {raw:?} (letters, digits, '_', '.', '-', ending in .pem)"
        ))
    })
}

impl From<ListenerError> for ApiError {
    fn from(e: ListenerError) -> Self {
        match e {
            ListenerError::NotFound => ApiError::new(404, "Listener Not Found"),
            ListenerError::Invalid(out) => invalid(out),
            ListenerError::Unavailable(why) => {
                ApiError::new(503, "HAProxy unavailable").with_details(why)
            }
            ListenerError::Failed(action, out) => {
                ApiError::new(500, format!("Error {} haproxy", action.gerund())).with_details(out)
            }
            ListenerError::Io(e) => internal(e),
        }
    }
}

/// The spec's 400s for a PEM bundle, with the key's problem as details when there is one.
impl From<CertError> for ApiError {
    fn from(e: CertError) -> Self {
        let err = ApiError::new(400, e.message());
        match e {
            CertError::NoKey(Some(why)) => err.with_details(why),
            _ => err,
        }
    }
}

/// `PUT /v0.1/listeners/<id>/<start|stop|reload>`; the action word is checked first.
fn act(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let action = action_word(p.get("action")?)?;
    let id = listener(ctx, p, false)?;
    act_on(ctx, &id, action, listener_not_found)
}

/// An action route's word (start, stop, reload), checked before anything else.
pub(super) fn action_word(word: &str) -> Result<Action, ApiError> {
    Action::parse(word).ok_or_else(|| {
        ApiError::new(400, "Invalid Request").with_details(format!("Unknown action: {word}"))
    })
}

/// Runs `action`: 202 with what happened; `not_found` says the id names nothing.
pub(super) fn act_on(
    ctx: &Ctx,
    id: &ListenerId,
    action: Action,
    not_found: fn(&str) -> ApiError,
) -> Result<Reply, ApiError> {
    match ctx.listeners.act(id, action) {
        Ok(details) => Ok(Reply::json(
            202,
            &json!({ "message": "OK", "details": details }),
        )),
        Err(ListenerError::NotFound) => Err(not_found(id.as_str())),
        Err(e) => Err(e.into()),
    }
}

fn list_listeners(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let ids = ctx.listeners.list_ids().map_err(internal)?;
    let all: Vec<_> = ids.iter().map(|id| ctx.listeners.summary(id)).collect();
    Ok(Reply::json(200, &json!(all)))
}

fn get_listener(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = listener(ctx, p, false)?;
    let mut v = json!(ctx.listeners.summary(&id));
    v["pools"] = json!(ctx.listeners.pools(&id));
    Ok(Reply::json(200, &v))
}

fn upload_config(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = listener(ctx, p, true)?;
    ctx.listeners.upload(&id, &req.body)?;
    Ok(Reply::json(
        201,
        &json!({ "message": "OK", "details": "Configuration file is valid" }),
    ))
}

fn get_config(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = listener(ctx, p, false)?;
    match ctx.listeners.config(&id) {
        Ok(bytes) => Ok(Reply {
            body: bytes,
            ..Reply::text(200, "")
        }),
        Err(ListenerError::NotFound) => Err(listener_not_found(id.as_str())),
        Err(e) => Err(e.into()),
    }
}

fn delete_listener(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = listener(ctx, p, false)?;
    match ctx.listeners.delete(&id) {
        Ok(_) => Ok(ok(200)),
        Err(ListenerError::NotFound) => Err(listener_not_found(id.as_str())),
        Err(e) => Err(e.into()),
    }
}

fn put_certificate(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let name = cert_name(p)?;
    let id = listener(ctx, p, false)?;
    certs::validate(&req.body)?;
    let file = ctx
        .listeners
        .locked(|certs| certs.put(&id, &name, &req.body))
        .map_err(internal)?;
    Ok(match ctx.listeners.apply_cert_live(&id, &file, &req.body) {
        Some(details) => Reply::json(201, &json!({ "message": "OK", "details": details })),
        None => ok(201),
    })
}

fn cert_not_found(name: &CertName) -> ApiError {
    ApiError::new(404, "Certificate Not Found")
        .with_details(format!("No certificate with file name: {name}"))
}

fn get_certificate(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let name = cert_name(p)?;
    let id = listener(ctx, p, false)?;
    match ctx
        .listeners
        .locked(|certs| certs.md5(&id, &name))
        .map_err(internal)?
    {
        Some(sum) => Ok(Reply::json(200, &json!({ "md5sum": sum }))),
        None => Err(cert_not_found(&name)),
    }
}

fn delete_certificate(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let name = cert_name(p)?;
    let id = listener(ctx, p, false)?;
    if ctx
        .listeners
        .locked(|certs| certs.delete(&id, &name))
        .map_err(internal)?
    {
        Ok(ok(200))
    } else {
        Err(cert_not_found(&name))
    }
}
