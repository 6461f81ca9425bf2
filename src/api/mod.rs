//! What handlers see: the request, the reply, the shared context; and the route tables of each
//! API family, one file per family.

pub mod amphora;
pub mod amphora10;
pub mod devices;
pub mod hapi;
pub mod host;
pub mod legacy;

use std::sync::Arc;

use serde_json::Value;

use crate::config::{Api, Config};
use crate::router::Route;

pub use crate::front::Peer;

/// A request as handlers see it: no tiny_http types.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: Peer,
    /// The basic-auth user, once authenticated.
    pub user: Option<String>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn text(status: u16, s: impl Into<String>) -> Self {
        Reply {
            status,
            content_type: crate::error::TEXT,
            body: s.into().into_bytes(),
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, v: &Value) -> Self {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }
}

impl Reply {
    /// Adds `ETag: <md5 of data>`, as Octavia's agent sends with uploads and file reads.
    pub fn with_etag(mut self, data: &[u8]) -> Self {
        self.headers.push(("ETag", crate::certs::md5_hex(data)));
        self
    }
}

impl From<crate::error::ApiError> for Reply {
    fn from(e: crate::error::ApiError) -> Self {
        Reply {
            status: e.status,
            content_type: e.content_type(),
            body: e.body().into_bytes(),
            headers: e.headers,
        }
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
pub fn routes(apis: &[Api]) -> Vec<Route> {
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
