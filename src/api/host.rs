//! Amphora API v0.1, the host half (spec/amphora-api-v0.1.rst): `/info` (unversioned),
//! `/v0.1/details`, `/v0.1/topology`, `/v0.1/interface/<ip>`, `/v0.1/plug/...`,
//! `/v0.1/certificate`, `/v0.1/vrrp/...`. Listener routes are in `amphora.rs`.

use serde_json::{json, Map, Value};

use crate::api::plug_body;
use crate::api::{held, words, ApiRoute, Ctx, Endpoint, Reply, Request};
use crate::certs::CertError;
use crate::error::ApiError;
use crate::http::{Method, Params};
use crate::keepalived::KeepalivedError;
use crate::netplug::{PlugError, PlugRequest};
use crate::process::Action;
use crate::system;
use crate::tls::RotateError;
use crate::topology::{Change, Topology};

pub const API_VERSION: &str = "0.1";

pub fn routes() -> Vec<ApiRoute> {
    vec![
        held(Method::Get, "/info", Endpoint::Handler(info)),
        held(Method::Get, "/v0.1/details", Endpoint::Handler(details)),
        held(
            Method::Get,
            "/v0.1/interface/{ip}",
            Endpoint::Handler(interface),
        ),
        held(
            Method::Put,
            "/v0.1/certificate",
            Endpoint::Handler(put_server_certificate),
        ),
        held(
            Method::Get,
            "/v0.1/topology",
            Endpoint::Handler(get_topology),
        ),
        held(
            Method::Post,
            "/v0.1/topology",
            Endpoint::Handler(set_topology),
        ),
        held(
            Method::Post,
            "/v0.1/plug/vip/{ip}",
            Endpoint::Handler(plug_vip),
        ),
        held(
            Method::Post,
            "/v0.1/plug/network/",
            Endpoint::Handler(plug_network),
        ),
        held(
            Method::Post,
            "/v0.1/plug/network",
            Endpoint::Handler(plug_network),
        ),
        // Before `{action}`, which would take "upload" for an action.
        held(
            Method::Put,
            "/v0.1/vrrp/upload",
            Endpoint::Handler(vrrp_upload),
        ),
        held(
            Method::Put,
            "/v0.1/vrrp/{action}",
            Endpoint::Handler(vrrp_action),
        ),
    ]
}

fn uuid(ctx: &Ctx) -> String {
    ctx.config.amphora_id.clone().unwrap_or_default()
}

/// The installed versions, as `[{"haproxy": "2.6.12-1+deb12u4"}, ...]`, and haproxy's alone.
fn packages(ctx: &Ctx) -> (Vec<Value>, String) {
    let pkgs = system::packages(&ctx.config.haproxy, &ctx.config.keepalived);
    let haproxy = pkgs
        .iter()
        .find(|(n, _)| n == "haproxy")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let list = pkgs.iter().map(|(n, v)| json!({ n.as_str(): v })).collect();
    (list, haproxy)
}

/// What `/info` says, which `/details` starts with; `api_version` is the caller's API's.
fn identity(ctx: &Ctx, haproxy_version: String, api_version: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("hostname".into(), json!(system::hostname()));
    m.insert("uuid".into(), json!(uuid(ctx)));
    m.insert("haproxy_version".into(), json!(haproxy_version));
    m.insert("api_version".into(), json!(api_version));
    m
}

/// `/info` of an API version.
pub(super) fn info_of(ctx: &Ctx, api_version: &str) -> Map<String, Value> {
    let (_, haproxy_version) = packages(ctx);
    identity(ctx, haproxy_version, api_version)
}

fn info(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &Value::Object(info_of(ctx, API_VERSION))))
}

/// Memory figures in kB, named as the spec names them.
fn memory() -> Value {
    let m = std::fs::read_to_string("/proc/meminfo")
        .map(|t| system::parse_meminfo(&t))
        .unwrap_or_default();
    let get = |k: &str| m.get(k).copied().unwrap_or(0);
    json!({
        "total": get("MemTotal"),
        "free": get("MemFree"),
        "available": get("MemAvailable"),
        "buffers": get("Buffers"),
        "cached": get("Cached"),
        "swap_used": get("SwapTotal").saturating_sub(get("SwapFree")),
        "shared": get("Shmem"),
        "slab": get("Slab"),
        "committed_as": get("Committed_AS"),
    })
}

/// `/details` of an API version.
pub(super) fn details_of(ctx: &Ctx, api_version: &str) -> Result<Map<String, Value>, ApiError> {
    let rates = ctx.sampler.rates();
    let (mut tx, mut rx) = (0.0, 0.0);
    let mut networks = Map::new();
    for (name, (t, r)) in &rates.net {
        tx += t;
        rx += r;
        networks.insert(name.clone(), json!({ "network_tx": t, "network_rx": r }));
    }
    let (total, user, system, soft_irq) = rates.cpu;
    let (used, available) = system::disk_kb(std::path::Path::new("/")).unwrap_or((0, 0));
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|t| system::parse_loadavg(&t))
        .unwrap_or_default();
    let listeners: Vec<String> = ctx
        .listeners
        .list_ids()
        .map_err(|e| ApiError::internal(e.to_string()))?
        .iter()
        .map(|id| id.to_string())
        .collect();
    let (packages, haproxy_version) = packages(ctx);
    let mut out = identity(ctx, haproxy_version, api_version);
    let rest = json!({
        "network_tx": tx,
        "network_rx": rx,
        "networks": networks,
        "active": ctx.topology.get().is_active(),
        "haproxy_count": ctx.listeners.running_count(),
        "cpu": { "total": total, "user": user, "system": system, "soft_irq": soft_irq },
        "memory": memory(),
        "disk": { "used": used, "available": available },
        "load": load,
        "topology": ctx.topology.get().topology,
        "topology_status": topology_status(ctx),
        "listeners": listeners,
        "packages": packages,
    });
    if let Value::Object(rest) = rest {
        out.extend(rest);
    }
    Ok(out)
}

fn details(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    Ok(Reply::json(
        200,
        &Value::Object(details_of(ctx, API_VERSION)?),
    ))
}

/// Rotates the agent's own certificate: new connections get it, open ones keep theirs, and
/// a bad upload changes nothing.
pub(super) fn put_server_certificate(
    ctx: &Ctx,
    req: &Request,
    _: &Params,
) -> Result<Reply, ApiError> {
    let sc = ctx.server_cert.as_ref().ok_or_else(|| {
        ApiError::new(400, "Invalid request")
            .with_details("the agent serves plain HTTP: it has no certificate to replace")
    })?;
    sc.rotate(&req.body).map_err(|e| match e {
        RotateError::Pem(e) => words::cert_error(&CertError::from(e)),
        RotateError::Io(e) => ApiError::internal(format!("cannot store the certificate: {e}")),
    })?;
    Ok(Reply::json(202, &json!({ "message": "OK" })))
}

impl From<KeepalivedError> for ApiError {
    fn from(e: KeepalivedError) -> Self {
        match e {
            KeepalivedError::Invalid(out) => {
                ApiError::new(400, "Invalid request").with_details(out)
            }
            KeepalivedError::Unavailable(why) => {
                ApiError::new(503, "keepalived unavailable").with_details(why)
            }
            KeepalivedError::NoConfig => ApiError::new(400, "Invalid request")
                .with_details("no keepalived configuration has been uploaded"),
            KeepalivedError::Failed(action, out) => ApiError::new(
                500,
                format!("Failed to {} keepalived service", words::verb(action)),
            )
            .with_details(out),
            KeepalivedError::Io(e) => {
                ApiError::new(500, "Failed to upload keepalived configuration.")
                    .with_details(e.to_string())
            }
        }
    }
}

pub(super) fn vrrp_upload(ctx: &Ctx, req: &Request, _: &Params) -> Result<Reply, ApiError> {
    ctx.keepalived.upload(&req.body)?;
    Ok(Reply::json(200, &json!({ "message": "OK" })).with_etag(&req.body))
}

pub(super) fn vrrp_action(ctx: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let word = p.get("action")?;
    let action = Action::parse(word).ok_or_else(|| {
        ApiError::new(400, "Invalid Request").with_details(format!("Unknown action: {word}"))
    })?;
    let details = words::keepalived_ran(ctx.keepalived.act(action)?);
    Ok(Reply::json(
        202,
        &json!({ "message": "OK", "details": details }),
    ))
}

fn topology_status(ctx: &Ctx) -> &'static str {
    if ctx.topology.in_transition() {
        "TOPOLOGY-CHANGE"
    } else {
        "OK"
    }
}

fn get_topology(ctx: &Ctx, _: &Request, _: &Params) -> Result<Reply, ApiError> {
    let t = ctx.topology.get();
    Ok(Reply::json(
        200,
        &json!({
            "hostname": system::hostname(),
            "uuid": uuid(ctx),
            "topology": t.topology,
            "role": t.role,
            "ha_ip": t.ha_ip,
        }),
    ))
}

fn set_topology(ctx: &Ctx, req: &Request, _: &Params) -> Result<Reply, ApiError> {
    let next = Topology::parse(&req.body)
        .map_err(|d| ApiError::new(400, "Invalid request").with_details(d))?;
    let change = ctx
        .topology
        .set(next, &ctx.keepalived)
        .map_err(|e| ApiError::internal(format!("cannot store the topology: {e}")))?;
    let status = match change {
        Some(Change::Done) => 200,
        Some(Change::Started) => 202,
        None => return Err(ApiError::new(503, "Topology transition in progress")),
    };
    Ok(Reply::json(status, &json!({ "message": "OK" })))
}

/// A plug that was not done; `failed` is the message of a failed step, which names the kind
/// of plug.
fn plug_error(e: PlugError, failed: &'static str) -> ApiError {
    match e {
        // The details are what Octavia's controller looks for to retry: the port may
        // still be on its way.
        PlugError::NoInterface => ApiError::new(404, "No suitable network interface found")
            .with_details("No suitable network interface found"),
        PlugError::AlreadyPlugged(mac) => ApiError::new(409, "Interface already plugged")
            .with_details(format!("the interface with MAC {mac} is already plugged")),
        PlugError::NoFreeTable => ApiError::new(500, failed).with_details("no free routing table"),
        PlugError::Failed(step) => ApiError::new(500, failed).with_details(step.to_string()),
        PlugError::Io(e) => ApiError::internal(format!("cannot record the plug: {e}")),
    }
}

pub(super) fn plug_vip(ctx: &Ctx, req: &Request, p: &Params) -> Result<Reply, ApiError> {
    let plug = plug_body::vip_plug(p.get("ip")?, &req.body)?;
    let vip = plug.vip;
    let dev = ctx
        .plugs
        .plug(PlugRequest::Vip(plug))
        .map_err(|e| plug_error(e, "Error plugging VIP"))?;
    Ok(Reply::json(
        202,
        &json!({ "message": "OK", "details": format!("VIP {vip} plugged on interface {dev}") }),
    ))
}

pub(super) fn plug_network(ctx: &Ctx, req: &Request, _: &Params) -> Result<Reply, ApiError> {
    let plug = plug_body::network_plug(&req.body)?;
    let dev = ctx
        .plugs
        .plug(PlugRequest::Network(plug))
        .map_err(|e| plug_error(e, "Error plugging Port"))?;
    Ok(Reply::json(
        202,
        &json!({ "message": "OK", "details": format!("Plugged interface {dev}") }),
    ))
}

pub(super) fn interface(_: &Ctx, _: &Request, p: &Params) -> Result<Reply, ApiError> {
    let ip = p
        .get("ip")?
        .parse()
        .map_err(|_| ApiError::new(400, "Bad IP address version"))?;
    let name = system::interface_of(ip)
        .ok_or_else(|| ApiError::new(404, "Error interface not found for IP address"))?;
    Ok(Reply::json(
        200,
        &json!({ "message": "OK", "interface": name }),
    ))
}
