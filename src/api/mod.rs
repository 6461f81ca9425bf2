//! The API families, one file each: its routes, its `parse` (request to `Op`) and its `render`
//! (`Outcome` or `DomainError` to the answer); `ops` holds the operations and their one
//! `execute`; `handle` ties the three together for a matched route. Also the shared context.

pub mod amphora;
pub mod amphora10;
pub mod devices;
pub mod hapi;
pub mod host;
pub mod legacy;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod plug_body;
mod words;

use std::sync::Arc;

use crate::config::{Api, Config};
use crate::error::ApiError;
use crate::http::{Method, Params, Route};
use ops::{Op, Outcome};

pub use crate::http::{Reply, Request};

/// What a route leads to: a family and its route key (the family's `parse`, then
/// `ops::execute`, then the family's `render`).
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    Amphora(amphora::Key),
    Amphora10(amphora10::Key),
    Legacy(legacy::Key),
    Hapi(hapi::Key),
    Devices(devices::Key),
    Host(host::Key),
    Metrics(metrics::Key),
    OpenApi(openapi::Key),
}

pub type ApiRoute = Route<Endpoint>;

/// Parse, execute, render.
pub fn handle(ctx: &Ctx, e: Endpoint, req: &mut Request, p: &Params) -> Result<Reply, ApiError> {
    let op = parse(e, p, req.query.as_deref(), std::mem::take(&mut req.body))?;
    render(e, ops::execute(ctx, op))
}

/// The family's reading of a request: no `Ctx`, no I/O.
fn parse(e: Endpoint, p: &Params, query: Option<&str>, body: Vec<u8>) -> Result<Op, ApiError> {
    match e {
        Endpoint::Hapi(k) => hapi::parse(k, p, body),
        Endpoint::Devices(k) => devices::parse(k, p, query, body),
        Endpoint::Host(k) => host::parse(k, p, body),
        Endpoint::Amphora(k) => amphora::parse(k, p, body),
        Endpoint::Amphora10(k) => amphora10::parse(k, p, body),
        Endpoint::Legacy(k) => legacy::parse(k, p, body),
        Endpoint::Metrics(k) => metrics::parse(k, p, body),
        Endpoint::OpenApi(k) => openapi::parse(k, p, body),
    }
}

fn render(e: Endpoint, r: Result<Outcome, ops::DomainError>) -> Result<Reply, ApiError> {
    match e {
        Endpoint::Amphora(k) => amphora::render(k, r),
        Endpoint::Amphora10(k) => amphora10::render(k, r),
        Endpoint::Legacy(k) => legacy::render(k, r),
        Endpoint::Hapi(k) => hapi::render(k, r),
        Endpoint::Devices(k) => devices::render(k, r),
        Endpoint::Host(k) => host::render(k, r),
        Endpoint::Metrics(k) => metrics::render(k, r),
        Endpoint::OpenApi(k) => openapi::render(k, r),
    }
}

/// A route of a family that manages the appliance (listeners, certificates, keepalived,
/// networks, topology): its writes wait while the topology changes.
fn held(method: Method, pattern: &'static str, target: Endpoint) -> ApiRoute {
    Route {
        held: !method.is_safe(),
        method,
        pattern,
        target,
    }
}

/// A route no topology change concerns (HApi's main HAProxy, the device registry).
fn free(method: Method, pattern: &'static str, target: Endpoint) -> ApiRoute {
    Route {
        held: false,
        method,
        pattern,
        target,
    }
}

/// Shared, read-only state every handler gets.
pub struct Ctx {
    pub config: Arc<Config>,
    /// The main HAProxy's admin socket (HApi's `socat`).
    pub main_haproxy: crate::haproxy::Runtime,
    pub listeners: crate::listeners::Listeners,
    /// CPU and network rates over the last 30 seconds.
    pub sampler: std::sync::Arc<crate::system::Sampler>,
    pub keepalived: std::sync::Arc<crate::keepalived::Keepalived>,
    pub topology: crate::topology::TopologyState,
    pub plugs: crate::netplug::Plugs,
    /// The VIP firewall Octavia sets on SR-IOV VIPs.
    pub firewall: crate::firewall::Firewall,
    /// The agent's own TLS certificate, when it serves HTTPS.
    pub server_cert: Option<crate::tls::ServerCert>,
    /// The settings Octavia's controller changes at run time, which the heartbeat sender reads.
    pub heartbeat: Arc<crate::heartbeat::Control>,
    /// Loaded when the device API is served.
    pub devices: Option<crate::devices::Registry>,
}

/// The routes of every enabled API family, and `/metrics` and `/openapi.json`, which every
/// agent serves.
pub fn routes(apis: &[Api]) -> Vec<ApiRoute> {
    let mut all = metrics::routes();
    all.extend(openapi::routes());
    for api in apis {
        match api {
            Api::Hapi => all.extend(hapi::routes()),
            Api::Amphora => {
                all.extend(amphora::routes());
                all.extend(host::routes());
                all.extend(amphora10::routes());
            }
            Api::Appliance => all.extend(legacy::routes()),
            Api::Devices => all.extend(devices::routes()),
        }
    }
    all
}

/// For the families' parse tables: what a request parses into, with no `Ctx` and no HTTP.
#[cfg(test)]
pub(crate) fn parse_request(method: &str, target: &str, body: &str) -> Result<Op, ApiError> {
    use crate::http::{Match, Router};
    let router = Router::new(routes(&Api::ALL));
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    match router.find(&Method::parse(method), path) {
        Match::Found(route, p) => parse(route.target, &p, query, body.as_bytes().to_vec()),
        _ => panic!("no route for {method} {target}"),
    }
}

/// An error as (status, message, details), for the parse tables.
#[cfg(test)]
pub(crate) fn refusal(r: Result<Op, ApiError>) -> (u16, String, Option<String>) {
    match r {
        Ok(op) => panic!("parsed as {op:?}"),
        Err(e) => (e.status, e.message, e.details),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter every route's parser reads is one its pattern declares: a typo would
    /// be a 500 here, for any body.
    #[test]
    fn every_route_reads_only_its_own_parameters() {
        let routes = routes(&Api::ALL);
        assert_eq!(routes.len(), 62);
        for r in &routes {
            let path: Vec<&str> = r
                .pattern
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x1" } else { seg })
                .collect();
            let path = path.join("/");
            for body in ["", "{}"] {
                if let Err(e) = parse_request(r.method.as_str(), &path, body) {
                    assert_ne!(e.status, 500, "{} {}: {e:?}", r.method, r.pattern);
                }
            }
        }
    }
}
