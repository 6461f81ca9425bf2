//! What handlers see: the request, the reply, the shared context; and the route tables of each
//! API family, one file per family.

pub mod amphora;
pub mod amphora10;
pub mod devices;
pub mod hapi;
pub mod host;
pub mod legacy;

use std::sync::Arc;

use crate::config::{Api, Config};
use crate::error::ApiError;
use crate::http::{Method, Params, Route};

pub use crate::http::{Reply, Request};

/// Parses, acts and answers one request.
pub type Handler = fn(&Ctx, &Request, &Params) -> Result<Reply, ApiError>;
pub type ApiRoute = Route<Handler>;

/// A route of a family that manages the appliance (listeners, certificates, keepalived,
/// networks, topology): its writes wait while the topology changes.
fn held(method: Method, pattern: &'static str, handler: Handler) -> ApiRoute {
    Route {
        held: !method.is_safe(),
        method,
        pattern,
        target: handler,
    }
}

/// A route no topology change concerns (HApi's main HAProxy, the device registry).
fn free(method: Method, pattern: &'static str, handler: Handler) -> ApiRoute {
    Route {
        held: false,
        method,
        pattern,
        target: handler,
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
    /// The agent's own TLS certificate, when it serves HTTPS.
    pub server_cert: Option<crate::tls::ServerCert>,
    /// Loaded when the device API is served.
    pub devices: Option<crate::devices::Registry>,
}

/// The routes of every enabled API family.
pub fn routes(apis: &[Api]) -> Vec<ApiRoute> {
    let mut all = Vec::new();
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
