//! Octavia amphora API 1.0, the version Octavia's controllers speak today: `/` (and `//`, which
//! is what their client asks) and `/1.0/...`. The same domain calls as v0.1 (`amphora.rs`,
//! `host.rs`); only paths, status codes and bodies differ, as Octavia 19's own agent gives them.
//! A 1.0 "load balancer" is one listener-store entry: one HAProxy whose config holds a
//! frontend per listener.

use serde_json::{json, Value};

use crate::api::{amphora, held, host, ApiRoute, Ctx, Reply, Request};
use crate::certs::{self, CertError};
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::listeners::{ListenerError, Status};
use crate::names::{CertName, ListenerId};
use crate::pools;
use crate::store;

const API_VERSION: &str = "1.0";

pub fn routes() -> Vec<ApiRoute> {
    vec![
        held(Method::Get, "/", version),
        held(Method::Get, "//", version),
        held(Method::Get, "/1.0/info", info),
        held(Method::Get, "/1.0/details", details),
        held(Method::Get, "/1.0/listeners", list_listeners),
        held(Method::Delete, "/1.0/listeners/{lb}", delete_lb),
        // Before the upload route: both have five segments.
        held(
            Method::Put,
            "/1.0/loadbalancer/{lb}/certificates/{filename}",
            put_cert,
        ),
        held(
            Method::Get,
            "/1.0/loadbalancer/{lb}/certificates/{filename}",
            get_cert,
        ),
        held(
            Method::Delete,
            "/1.0/loadbalancer/{lb}/certificates/{filename}",
            delete_cert,
        ),
        held(
            Method::Put,
            "/1.0/loadbalancer/{amphora_id}/{lb}/haproxy",
            upload_config,
        ),
        held(Method::Get, "/1.0/loadbalancer/{lb}/haproxy", get_config),
        held(Method::Put, "/1.0/loadbalancer/{lb}/{action}", act),
        held(Method::Post, "/1.0/plug/vip/{ip}", host::plug_vip),
        held(Method::Post, "/1.0/plug/network", host::plug_network),
        held(
            Method::Put,
            "/1.0/certificate",
            host::put_server_certificate,
        ),
        held(Method::Put, "/1.0/vrrp/upload", host::vrrp_upload),
        held(Method::Put, "/1.0/vrrp/{action}", host::vrrp_action),
        held(Method::Get, "/1.0/interface/{ip}", host::interface),
        held(Method::Put, "/1.0/config", put_agent_config),
    ]
}

fn ok(status: u16) -> Reply {
    Reply::json(status, &json!({ "message": "OK" }))
}

fn lb_not_found(id: &str) -> ApiError {
    ApiError::new(404, "Loadbalancer Not Found")
        .with_details(format!("No loadbalancer with UUID: {id}"))
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

/// The load balancer id from the path, which must name a load balancer with a config.
fn existing_lb(ctx: &Ctx, p: &Params) -> Result<ListenerId, ApiError> {
    let raw = p.get("lb")?;
    match ListenerId::parse(raw) {
        Ok(id) if ctx.listeners.exists(&id) => Ok(id),
        _ => Err(lb_not_found(raw)),
    }
}

fn lb_id(p: &Params) -> Result<ListenerId, ApiError> {
    let raw = p.get("lb")?;
    ListenerId::parse(raw).map_err(|_| {
        ApiError::new(400, "Invalid request")
            .with_details(format!("Invalid load balancer id: {raw}"))
    })
}

fn cert_name(p: &Params) -> Result<CertName, ApiError> {
    CertName::parse(p.get("filename")?).map_err(|_| ApiError::new(400, "Filename has wrong format"))
}

fn version(_: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &json!({ "api_version": API_VERSION })))
}

fn info(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        200,
        &Value::Object(host::info_of(ctx, API_VERSION)),
    ))
}

/// The frontends of every load balancer's config: API 1.0's listeners.
fn frontends(ctx: &Ctx) -> Result<Vec<(ListenerId, String, pools::ListenerType)>, ApiError> {
    let mut all = Vec::new();
    for id in ctx.listeners.list_ids().map_err(internal)? {
        let Ok(cfg) = ctx.listeners.config(&id) else {
            continue;
        };
        for (name, kind) in pools::frontends(&String::from_utf8_lossy(&cfg)) {
            all.push((id.clone(), name, kind));
        }
    }
    Ok(all)
}

/// v0.1's details, plus what Octavia's controller reads from 1.0's: `cpu_count` and
/// `active_tuned_profiles` (it tunes HAProxy's threads by them); listeners are frontends.
fn details(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let mut d = host::details_of(ctx, API_VERSION)?;
    let mut listeners: Vec<String> = frontends(ctx)?.into_iter().map(|(_, n, _)| n).collect();
    listeners.sort();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tuned = std::fs::read_to_string("/etc/tuned/active_profile").unwrap_or_default();
    d.insert("listeners".into(), json!(listeners));
    d.insert("cpu_count".into(), json!(cpus));
    d.insert("active_tuned_profiles".into(), json!(tuned.trim()));
    d.insert("lvs_listener_process_count".into(), json!(0));
    Ok(Reply::json(200, &Value::Object(d)))
}

/// Each frontend with its load balancer's status (Octavia's agent always says ACTIVE; this
/// one says whether the HAProxy serving it runs).
fn list_listeners(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let all: Vec<Value> = frontends(ctx)?
        .into_iter()
        .map(|(id, name, kind)| {
            let status: Status = ctx.listeners.status(&id);
            json!({ "status": status, "uuid": name, "type": kind })
        })
        .collect();
    Ok(Reply::json(200, &json!(all)))
}

/// Stops and removes a load balancer with its certificates; one that does not exist is
/// already gone (200, as Octavia's agent answers: its controller retries deletes). An id that
/// could name none is a bad request.
fn delete_lb(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = lb_id(p)?;
    match ctx.listeners.delete(&id) {
        Ok(_) => Ok(ok(200)),
        // Certificates may have come before any config.
        Err(ListenerError::NotFound) => {
            ctx.listeners
                .locked(|certs| certs.delete_all(&id))
                .map_err(internal)?;
            Ok(ok(200))
        }
        Err(e) => Err(e.into()),
    }
}

/// Checks and stores a load balancer's config (it runs on the next start or reload, which
/// Octavia's controller always sends next).
fn upload_config(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = lb_id(p)?;
    ctx.listeners.upload(&id, &req.body)?;
    Ok(ok(202).with_etag(&req.body))
}

fn get_config(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let id = existing_lb(ctx, p)?;
    match ctx.listeners.config(&id) {
        Ok(bytes) => Ok(Reply {
            body: bytes.clone(),
            ..Reply::text(200, "")
        }
        .with_etag(&bytes)),
        Err(ListenerError::NotFound) => Err(lb_not_found(id.as_str())),
        Err(e) => Err(e.into()),
    }
}

/// start / stop / reload (a reload of a stopped load balancer starts it); the action word
/// is checked first, in any case.
fn act(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let action = amphora::action_word(&p.get("action")?.to_ascii_lowercase())?;
    let id = existing_lb(ctx, p)?;
    amphora::act_on(ctx, &id, action, lb_not_found)
}

/// Stores a file for a load balancer's TLS: a key with its certificate chain (checked to
/// match), or what goes with them: CA bundles, CRLs, crt-lists. The load balancer need not
/// exist yet: Octavia's controller uploads certificates before the config that names them.
fn put_cert(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let name = cert_name(p)?;
    let id = lb_id(p)?;
    if String::from_utf8_lossy(&req.body).contains("PRIVATE KEY-----") {
        certs::validate(&req.body).map_err(|e: CertError| ApiError::from(e))?;
    }
    let file = ctx
        .listeners
        .locked(|certs| certs.put(&id, &name, &req.body))
        .map_err(internal)?;
    if ctx.listeners.exists(&id) {
        ctx.listeners.apply_cert_live(&id, &file, &req.body);
    }
    Ok(ok(200).with_etag(&req.body))
}

fn get_cert(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let name = cert_name(p)?;
    let id = lb_id(p)?;
    match ctx
        .listeners
        .locked(|certs| certs.md5(&id, &name))
        .map_err(internal)?
    {
        Some(sum) => {
            let mut r = Reply::json(200, &json!({ "md5sum": sum }));
            r.headers.push(("ETag", sum));
            Ok(r)
        }
        None => Err(ApiError::new(404, "Certificate Not Found")
            .with_details(format!("No certificate with filename: {name}"))),
    }
}

/// Removes a file; one that is not there is already gone (200).
fn delete_cert(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let name = cert_name(p)?;
    let id = lb_id(p)?;
    ctx.listeners
        .locked(|certs| certs.delete(&id, &name))
        .map_err(internal)?;
    Ok(ok(200))
}

/// Octavia pushes its agent's own config file (heartbeat targets and key). This agent sends
/// no heartbeats; it keeps the file (0600: it holds the heartbeat key) in its state
/// directory, so what the controller sent can be inspected and used by an operator.
fn put_agent_config(ctx: &Ctx, req: &Request, _: &Params) -> Result<Reply, ApiError> {
    let path = ctx.config.state_dir.join("amphora-agent.conf");
    store::write_atomic(&path, &req.body, 0o600).map_err(|e| {
        ApiError::new(500, "Unable to update amphora-agent configuration.")
            .with_details(e.to_string())
    })?;
    Ok(ok(202))
}
