//! The operations the API families ask of the appliance, and the one `execute` that runs
//! them. A family's file parses a request into an `Op` and renders the `Outcome` (or the
//! `DomainError`) in its own words; nothing here knows a path, a status code or a spec text.

mod devices;
mod hapi;
mod host;
mod store;

use std::io;
use std::net::IpAddr;

use crate::certs::CertError;
use crate::config::Mutable;
use crate::devices::{Device, DeviceError};
use crate::hapi::PoolError;
use crate::haproxy::HaproxyError;
use crate::keepalived::{self, KeepalivedError};
use crate::listeners::{ListenerError, Ran, Summary};
use crate::names::{CertName, InvalidName, ListenerId, ProxyName};
use crate::netplug::PlugError;
use crate::pools::Pool;
use crate::store as files;
use crate::tls::RotateError;
use crate::topology::{Change, Topology};

use super::Ctx;

pub use devices::DeviceOp;
pub use hapi::HapiOp;
pub use host::{Details, HostOp, Identity};
#[cfg(test)]
pub use store::CertPut;
pub use store::{
    frontends, Applied, CertApply, CertPolicy, CertVerb, Frontend, Need, PemCheck, Service, StoreOp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Nothing to do: the answer is the family's own (API 1.0's version document).
    Nothing,
    Store(StoreOp),
    Hapi(HapiOp),
    Device(DeviceOp),
    Host(HostOp),
    /// The controller's agent config: kept (0600: it holds the heartbeat key), and its
    /// run-time settings applied at once.
    AgentConfig {
        text: Vec<u8>,
        settings: Mutable,
    },
    /// A Prometheus scrape of the agent and its HAProxies.
    Metrics,
}

#[derive(Debug)]
pub enum Outcome {
    Done,
    Summaries(Vec<Summary>),
    Listener {
        summary: Summary,
        pools: Vec<Pool>,
    },
    Frontends(Vec<Frontend>),
    Ids(Vec<ListenerId>),
    Services(Vec<Service>),
    Config(Vec<u8>),
    /// `md5` of the uploaded bytes.
    Uploaded {
        md5: String,
    },
    Ran {
        id: ListenerId,
        ran: Ran,
    },
    Deleted {
        id: ListenerId,
        was_running: bool,
    },
    CertStored {
        id: ListenerId,
        md5: String,
        applied: Applied,
    },
    CertSum(String),
    /// The main HAProxy's `show info`, in its order.
    Info(Vec<(String, String)>),
    /// `"<backend>: <server>"` of each node found.
    Nodes(Vec<String>),
    NodeSet {
        action: crate::hapi::Action,
        backends: Vec<ProxyName>,
        node: String,
    },
    Devices(Vec<Device>),
    Device(Device),
    Usage {
        total: usize,
        free: usize,
        taken: usize,
    },
    Identity(Identity),
    Details(Box<Details>),
    Interface(String),
    Topology {
        identity: Identity,
        topology: Topology,
    },
    TopologySet(Change),
    /// `dev` is the interface plugged; `vip` the address a VIP plug put on it.
    Plugged {
        vip: Option<IpAddr>,
        done: crate::netplug::Plugged,
    },
    Keepalived(keepalived::Ran),
    /// The scrape, in Prometheus's text format.
    Metrics(String),
}

#[derive(Debug)]
pub enum DomainError {
    Listener(ListenerError),
    CertNotFound(CertName),
    Cert(CertError),
    Io(io::Error),
    Haproxy(HaproxyError),
    /// A frontend HApi's config does not name.
    NoFrontend(String),
    /// A node that makes no valid server name.
    BadNode(String, InvalidName),
    /// A pool change that failed part-way.
    Pool(PoolError),
    Device(DeviceError),
    /// The device API is served without its registry.
    NoRegistry,
    /// No interface holds the address.
    NoInterface,
    /// The agent serves plain HTTP: it has no certificate to replace.
    PlainHttp,
    Rotate(RotateError),
    /// A topology change is under way.
    InTransition,
    TopologyStore(io::Error),
    Plug(PlugError),
    Keepalived(KeepalivedError),
    /// An agent config the agent could not start on.
    BadAgentConfig(Vec<crate::config::Problem>),
    /// A topology this host cannot enact; why.
    TopologyRefused(String),
    Firewall(crate::firewall::FirewallError),
}

impl From<HaproxyError> for DomainError {
    fn from(e: HaproxyError) -> Self {
        DomainError::Haproxy(e)
    }
}

impl From<DeviceError> for DomainError {
    fn from(e: DeviceError) -> Self {
        DomainError::Device(e)
    }
}

impl From<ListenerError> for DomainError {
    fn from(e: ListenerError) -> Self {
        DomainError::Listener(e)
    }
}

impl From<CertError> for DomainError {
    fn from(e: CertError) -> Self {
        DomainError::Cert(e)
    }
}

impl From<io::Error> for DomainError {
    fn from(e: io::Error) -> Self {
        DomainError::Io(e)
    }
}

impl From<StoreOp> for Op {
    fn from(op: StoreOp) -> Self {
        Op::Store(op)
    }
}

pub fn execute(ctx: &Ctx, op: Op) -> Result<Outcome, DomainError> {
    match op {
        Op::Nothing => Ok(Outcome::Done),
        Op::Store(op) => store::execute(ctx, op),
        Op::Hapi(op) => hapi::execute(ctx, op),
        Op::Device(op) => devices::execute(ctx, op),
        Op::Host(op) => host::execute(ctx, op),
        Op::AgentConfig { text, settings } => agent_config(ctx, &text, settings),
        Op::Metrics => Ok(Outcome::Metrics(metrics(ctx))),
    }
}

/// Reads every HAProxy the agent runs (HApi's main one when that API is on, and each listener
/// that runs or should), then writes the scrape. One that does not answer costs only its own
/// series.
fn metrics(ctx: &Ctx) -> String {
    use crate::haproxy::{figures, Runtime, FIGURES_TIMEOUT};
    use crate::metrics::{haproxy::MAIN, Replies};
    let mut replies = Vec::new();
    if ctx.config.apis.contains(&crate::config::Api::Hapi) {
        let (info, stat) = figures(&Runtime::new(&ctx.config.socat, FIGURES_TIMEOUT));
        replies.push(Replies {
            listener: MAIN.to_string(),
            info,
            stat,
        });
    }
    replies.extend(
        ctx.listeners
            .figures()
            .into_iter()
            .map(|(id, info, stat)| Replies {
                listener: id.to_string(),
                info,
                stat,
            }),
    );
    crate::metrics::render(&replies)
}

/// Whether this amphora is one of an ACTIVE_STANDBY pair (by Octavia's agent config, or the
/// v0.1 topology): keepalived then holds the VIPs, on the MASTER only, and announces them.
fn in_pair(ctx: &Ctx) -> bool {
    ctx.heartbeat.get().0.topology == crate::config::LbTopology::ActiveStandby
        || ctx.topology.get().topology == crate::topology::Kind::ActiveStandby
}

/// Writes the agent config where the agent reads it at its next start (the file it was started
/// on, which must then still start it), then applies what changes at run time.
fn agent_config(ctx: &Ctx, text: &[u8], settings: Mutable) -> Result<Outcome, DomainError> {
    let path = match &ctx.config.agent_conf {
        Some(path) => {
            let as_text = String::from_utf8_lossy(text);
            crate::config::parse_file(&as_text, path).map_err(DomainError::BadAgentConfig)?;
            path.clone()
        }
        None => ctx.config.state_dir.join("amphora-agent.conf"),
    };
    files::write_atomic(&path, text, 0o600)?;
    ctx.heartbeat.apply(settings);
    Ok(Outcome::Done)
}
