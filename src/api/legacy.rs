//! The legacy appliance API (spec/appliance-api-legacy.md): `/instances...`, over the same
//! listener store as the amphora API. Bodies are plain text; bad PUT data is 409; an unknown
//! method or URL on these paths is 403 (see `owns`).

use crate::api::{held, ApiRoute, Ctx, Reply, Request};
use crate::certs;
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::listeners::{Action, ListenerError, Status};
use crate::names::{CertName, ListenerId};
use crate::system;
use serde_json::json;

pub fn routes() -> Vec<ApiRoute> {
    vec![
        held(Method::Get, "/status", status),
        held(Method::Get, "/service_status", service_status),
        held(Method::Get, "/instances", list),
        held(Method::Get, "/instances/{instance}", exists),
        held(Method::Delete, "/instances/{instance}", delete),
        held(Method::Put, "/instances/{instance}/haproxy", put_config),
        held(Method::Get, "/instances/{instance}/haproxy", get_config),
        held(
            Method::Delete,
            "/instances/{instance}/haproxy",
            delete_config,
        ),
        held(
            Method::Put,
            "/instances/{instance}/certificates/{filename}",
            put_certificate,
        ),
        held(
            Method::Get,
            "/instances/{instance}/certificates/{filename}",
            get_certificate,
        ),
        held(
            Method::Delete,
            "/instances/{instance}/certificates/{filename}",
            delete_certificate,
        ),
    ]
}

/// The paths whose unknown methods and sub-paths answer 403, as the legacy spec says.
pub fn owns(path: &str) -> bool {
    path == "/instances"
        || path.starts_with("/instances/")
        || path == "/status"
        || path == "/service_status"
}

fn ok(status: u16, details: Option<String>) -> Reply {
    match details {
        Some(d) => Reply::text(status, format!("OK\n{d}")),
        None => Reply::text(status, "OK"),
    }
}

fn not_found() -> ApiError {
    ApiError::plain(404, "Not Found")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::plain(500, "Internal Server Error").with_details(e.to_string())
}

impl ListenerError {
    /// This family's rendering of the listener errors.
    fn legacy(self) -> ApiError {
        match self {
            ListenerError::NotFound => not_found(),
            ListenerError::Invalid(out) => {
                ApiError::plain(409, "Invalid configuration").with_details(out)
            }
            ListenerError::Unavailable(why) => {
                ApiError::plain(503, "HAProxy unavailable").with_details(why)
            }
            ListenerError::Failed(action, out) => {
                ApiError::plain(500, format!("Error {} haproxy", action.gerund())).with_details(out)
            }
            ListenerError::Io(e) => internal(e),
        }
    }
}

/// An id that is not valid can name no instance: Not Found, before any file access.
fn instance(p: &Params) -> Result<ListenerId, ApiError> {
    ListenerId::parse(p.get("instance")?).map_err(|_| not_found())
}

fn existing(ctx: &Ctx, p: &Params) -> Result<ListenerId, ApiError> {
    let id = instance(p)?;
    if ctx.listeners.exists(&id) {
        Ok(id)
    } else {
        Err(not_found())
    }
}

fn cert_name(p: &Params) -> Result<CertName, ApiError> {
    CertName::parse(p.get("filename")?).map_err(|_| {
        ApiError::plain(409, "Invalid certificate file name")
            .with_details("letters, digits, '_', '.', '-', ending in .pem")
    })
}

/// Appliance statistics, with the legacy key names and value types (counts and loads as text).
fn status(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let rates = ctx.sampler.rates();
    let (tx, rx) = rates
        .net
        .values()
        .fold((0.0, 0.0), |(t, r), (a, b)| (t + a, r + b));
    let (_, user, system_cpu, soft_irq) = rates.cpu;
    let load: Vec<String> = std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Reply::json(
        200,
        &json!({
            "network_tx": tx,
            "network_rx": rx,
            "active_node": u8::from(ctx.topology.get().is_active()),
            "haproxy_count": ctx.listeners.running_count().to_string(),
            "stunnel_count": "0",
            "hostname": system::hostname(),
            // No fencing daemon is part of this agent.
            "fencing_daemon_status": "NONE",
            "user_cpu": user,
            "system_cpu": system_cpu,
            "software_irq": soft_irq,
            "load": load,
        }),
    ))
}

/// One block per instance: its state, then its haproxy's.
fn service_status(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let mut text = String::new();
    for id in ctx.listeners.instance_ids().map_err(internal)? {
        let state = match ctx.listeners.status(&id) {
            Status::Error => "ERROR",
            Status::Active | Status::Stopped => "OK",
        };
        let haproxy = match ctx.listeners.running_pid(&id) {
            Some(pid) => format!("running (pid {pid})"),
            None => "stopped".to_string(),
        };
        text.push_str(&format!("{id:<52}{state}\n  {:<17}{haproxy}\n", "haproxy"));
    }
    Ok(Reply::text(200, text))
}

fn list(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let ids = ctx.listeners.instance_ids().map_err(internal)?;
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    Ok(Reply::text(200, text))
}

fn exists(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    existing(ctx, p)?;
    Ok(ok(200, None))
}

fn delete(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = instance(p)?;
    let stopped = ctx.listeners.delete(&id).map_err(ListenerError::legacy)?;
    Ok(ok(200, Some(stopped)))
}

/// Upload and run: a running instance is reloaded, a stopped one started.
fn put_config(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = instance(p)?;
    ctx.listeners
        .upload(&id, &req.body)
        .map_err(ListenerError::legacy)?;
    let ran = ctx
        .listeners
        .act(&id, Action::Reload)
        .map_err(ListenerError::legacy)?;
    Ok(ok(201, Some(ran)))
}

fn get_config(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = instance(p)?;
    let cfg = ctx.listeners.config(&id).map_err(ListenerError::legacy)?;
    Ok(Reply {
        body: cfg,
        ..Reply::text(200, "")
    })
}

fn delete_config(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = instance(p)?;
    let stopped = ctx
        .listeners
        .delete_config(&id)
        .map_err(ListenerError::legacy)?;
    Ok(ok(200, Some(stopped)))
}

/// Stores a certificate (the instance need not exist yet: this creates it) and reloads the
/// instance's HAProxy if it runs, so the new file takes effect.
fn put_certificate(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = instance(p)?;
    let name = cert_name(p)?;
    certs::validate(&req.body).map_err(|e| ApiError::plain(409, e.message()))?;
    ctx.listeners
        .locked(|certs| certs.put(&id, &name, &req.body))
        .map_err(internal)?;
    let reloaded = ctx
        .listeners
        .reload_if_running(&id)
        .map_err(ListenerError::legacy)?;
    Ok(ok(201, reloaded))
}

fn get_certificate(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = existing(ctx, p)?;
    let name = cert_name(p)?;
    match ctx
        .listeners
        .locked(|certs| certs.md5(&id, &name))
        .map_err(internal)?
    {
        Some(sum) => Ok(Reply::text(200, sum)),
        None => Err(not_found()),
    }
}

fn delete_certificate(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = existing(ctx, p)?;
    let name = cert_name(p)?;
    if ctx
        .listeners
        .locked(|certs| certs.delete(&id, &name))
        .map_err(internal)?
    {
        Ok(ok(200, None))
    } else {
        Err(not_found())
    }
}
