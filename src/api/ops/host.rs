//! The amphora host's operations: what it is and how it fares, its own certificate, its
//! topology, keepalived, and plugging it into networks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use crate::announce;
use crate::firewall::Rule;
use crate::keepalived::KeepalivedError;
use crate::names::ListenerId;
use crate::netns;
use crate::netplug::{PlugRequest, VipHolder};
use crate::process::Action;
use crate::system::{self, Rates};
use crate::topology::{Status, Topology, TopologyError};

use super::{Ctx, DomainError, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOp {
    /// Who this amphora is.
    Info,
    /// How it fares; `frontends` adds the frontends of every listener (API 1.0's listeners).
    Details {
        frontends: bool,
    },
    /// The interface holding an address.
    Interface(IpAddr),
    /// Only these rules let new traffic in on the interface holding `ip`.
    SetRules {
        ip: IpAddr,
        rules: Vec<Rule>,
    },
    /// Replace the agent's own certificate and key.
    RotateCert(Vec<u8>),
    Topology,
    SetTopology(Topology),
    Plug(PlugRequest),
    VrrpUpload(Vec<u8>),
    Vrrp(Action),
}

/// Who this amphora is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub hostname: String,
    /// The amphora id from the agent's config; empty when not set.
    pub uuid: String,
    pub haproxy_version: String,
}

/// How the amphora fares, as `/details` and the legacy `/status` report it.
#[derive(Debug, Clone)]
pub struct Details {
    pub identity: Identity,
    /// (package, version) of what runs the load balancing.
    pub packages: &'static [(String, String)],
    pub rates: Rates,
    /// `/proc/meminfo`, in kB.
    pub memory: BTreeMap<String, u64>,
    /// (used, available) kB on `/`.
    pub disk: (u64, u64),
    /// `/proc/loadavg` as read.
    pub loadavg: String,
    pub topology: Topology,
    pub topology_status: Status,
    pub listeners: Vec<ListenerId>,
    /// Listeners whose HAProxy runs.
    pub running: usize,
    /// Every listener's frontends, sorted, when asked for.
    pub frontends: Option<Vec<String>>,
    pub cpu_count: usize,
    /// The tuned profile (`/etc/tuned/active_profile`), empty without one.
    pub tuned: String,
}

pub fn execute(ctx: &Ctx, op: HostOp) -> Result<Outcome, DomainError> {
    match op {
        HostOp::Info => Ok(Outcome::Identity(identity(ctx))),
        HostOp::Details { frontends } => Ok(Outcome::Details(Box::new(details(ctx, frontends)?))),
        HostOp::Interface(ip) => netns::interface_of(ip)
            .map(Outcome::Interface)
            .ok_or(DomainError::NoInterface),
        HostOp::SetRules { ip, rules } => {
            let dev = netns::interface_of(ip).ok_or(DomainError::NoInterface)?;
            ctx.firewall
                .apply(&dev, &rules)
                .map_err(DomainError::Firewall)?;
            Ok(Outcome::Done)
        }
        HostOp::RotateCert(pem) => {
            let sc = ctx.server_cert.as_ref().ok_or(DomainError::PlainHttp)?;
            sc.rotate(&pem).map_err(DomainError::Rotate)?;
            Ok(Outcome::Done)
        }
        HostOp::Topology => Ok(Outcome::Topology {
            identity: identity(ctx),
            topology: ctx.topology.live(&ctx.keepalived),
        }),
        HostOp::SetTopology(next) => {
            let static_vip = |ip| ctx.plugs.holds_static(ip);
            match ctx.topology.set(next, &ctx.keepalived, &static_vip) {
                Ok(change) => Ok(Outcome::TopologySet(change)),
                Err(TopologyError::InTransition) => Err(DomainError::InTransition),
                Err(TopologyError::Refused(why)) => Err(DomainError::TopologyRefused(why)),
                Err(TopologyError::Keepalived(e)) => Err(DomainError::Keepalived(e)),
                Err(TopologyError::Store(e)) => Err(DomainError::TopologyStore(e)),
            }
        }
        HostOp::Plug(req) => {
            let vip = match &req {
                PlugRequest::Vip(v) => Some(v.vip),
                PlugRequest::Network(_) | PlugRequest::VipPort(_) => None,
            };
            let pair = super::in_pair(ctx);
            let holder = if pair {
                VipHolder::Keepalived
            } else {
                VipHolder::Plug
            };
            let announced = plug_announces(&req, pair);
            let done = ctx.plugs.plug(req, holder).map_err(DomainError::Plug)?;
            announce::addresses(announced);
            Ok(Outcome::Plugged { vip, done })
        }
        HostOp::VrrpUpload(conf) => {
            ctx.keepalived.upload(&conf)?;
            Ok(Outcome::Uploaded {
                md5: crate::certs::md5_hex(&conf),
            })
        }
        HostOp::Vrrp(action) => Ok(Outcome::Keepalived(ctx.keepalived.act(action)?)),
    }
}

/// The addresses a plug announces once done, as Octavia's agent does: a port's fixed IPs (also
/// when plugged again), and the VIPs in SINGLE (in a pair keepalived announces them from the
/// MASTER).
fn plug_announces(req: &PlugRequest, pair: bool) -> Vec<IpAddr> {
    match req {
        PlugRequest::Vip(v) if !pair => std::iter::once(v.vip)
            .chain(v.additional.iter().map(|x| x.ip))
            .collect(),
        PlugRequest::Vip(_) => Vec::new(),
        PlugRequest::Network(n) => n.fixed_ips.iter().map(|f| f.ip).collect(),
        PlugRequest::VipPort(v) => v.fixed_ips.iter().map(|f| f.ip).collect(),
    }
}

fn identity(ctx: &Ctx) -> Identity {
    let haproxy_version = packages(ctx)
        .iter()
        .find(|(n, _)| n == "haproxy")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Identity {
        hostname: system::hostname(),
        uuid: ctx.config.amphora_id.clone().unwrap_or_default(),
        haproxy_version,
    }
}

fn packages(ctx: &Ctx) -> &'static [(String, String)] {
    system::packages(&ctx.config.haproxy, &ctx.config.keepalived)
}

fn details(ctx: &Ctx, with_frontends: bool) -> Result<Details, DomainError> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let frontends = if with_frontends {
        let mut names: Vec<String> = super::frontends(ctx)?.into_iter().map(|f| f.name).collect();
        names.sort();
        Some(names)
    } else {
        None
    };
    Ok(Details {
        identity: identity(ctx),
        packages: packages(ctx),
        rates: ctx.sampler.rates(),
        memory: system::parse_meminfo(&read("/proc/meminfo")),
        disk: system::disk_kb(Path::new("/")).unwrap_or((0, 0)),
        loadavg: read("/proc/loadavg"),
        topology: ctx.topology.live(&ctx.keepalived),
        topology_status: ctx.topology.status(),
        listeners: ctx.listeners.list_ids()?,
        running: ctx.listeners.running_count(),
        frontends,
        cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
        tuned: read("/etc/tuned/active_profile").trim().to_string(),
    })
}

impl From<KeepalivedError> for DomainError {
    fn from(e: KeepalivedError) -> Self {
        DomainError::Keepalived(e)
    }
}
