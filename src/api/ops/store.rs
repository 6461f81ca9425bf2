//! The listener store's operations, shared by amphora v0.1, API 1.0 and the legacy API:
//! configs, start/stop/reload, certificates.

use std::io;

use crate::announce;
use crate::certs;
use crate::listeners::{ListenerError, LiveCert, Origin, Ran, Status};
use crate::logs;
use crate::names::{CertName, ListenerId};
use crate::pools::{self, ListenerType};
use crate::process::Action;

use super::{Ctx, DomainError, Outcome};

/// Whether an operation on a listener needs it to exist already (have a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Listener,
    /// Octavia's controller sends certificates before the config that names them.
    Nothing,
}

/// How much of a certificate upload is checked before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemCheck {
    /// A private key with its certificate chain, matching.
    Bundle,
    /// A bundle when it holds a private key; anything else (CA bundles, CRLs, crt-lists) as is.
    KeyIfPresent,
}

/// What a stored certificate does to the listener's running HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertApply {
    /// Handed to the running HAProxy, without a reload, when it serves that file.
    Live,
    /// The running HAProxy is reloaded.
    Reload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPut {
    pub id: ListenerId,
    pub name: CertName,
    pub pem: Vec<u8>,
    pub need: Need,
    pub check: PemCheck,
    pub apply: CertApply,
}

/// The three certificate routes every listener family has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertVerb {
    Put,
    Sum,
    Delete,
}

/// How a family treats its listeners' certificate files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPolicy {
    /// Whether a file may be stored for a listener that has no config yet.
    pub put_needs: Need,
    /// Whether reading or deleting a file needs the listener.
    pub read_needs: Need,
    pub check: PemCheck,
    pub apply: CertApply,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Every listener with a config, summarised.
    Listeners,
    /// One listener (which must exist) with its pools.
    Listener(ListenerId),
    /// The frontends of every listener's config.
    Frontends,
    /// Every listener with any file, config or certificates.
    Instances,
    /// Every instance's state and its HAProxy's pid.
    Services,
    /// Whether a listener exists.
    Exists(ListenerId),
    Config(ListenerId),
    Upload {
        id: ListenerId,
        config: Vec<u8>,
        /// Which API's listener it becomes (heartbeats report API 1.0's).
        origin: Origin,
    },
    /// Upload, then reload (a stopped listener starts).
    UploadAndRun {
        id: ListenerId,
        config: Vec<u8>,
    },
    Act {
        id: ListenerId,
        action: Action,
    },
    /// Stop and remove a listener with its certificates; with `Need::Nothing`, one that does
    /// not exist only loses its certificates.
    Delete {
        id: ListenerId,
        need: Need,
    },
    /// Stop and remove the config and state, keeping certificates.
    DeleteConfig(ListenerId),
    PutCert(CertPut),
    CertSum {
        id: ListenerId,
        name: CertName,
        need: Need,
    },
    DeleteCert {
        id: ListenerId,
        name: CertName,
        need: Need,
    },
}

impl StoreOp {
    /// A certificate route's operation, by its family's policy.
    pub fn cert(
        verb: CertVerb,
        id: ListenerId,
        name: CertName,
        pem: Vec<u8>,
        policy: CertPolicy,
    ) -> Self {
        let need = policy.read_needs;
        match verb {
            CertVerb::Put => StoreOp::PutCert(CertPut {
                id,
                name,
                pem,
                need: policy.put_needs,
                check: policy.check,
                apply: policy.apply,
            }),
            CertVerb::Sum => StoreOp::CertSum { id, name, need },
            CertVerb::Delete => StoreOp::DeleteCert { id, name, need },
        }
    }
}

/// One frontend of a listener's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub listener: ListenerId,
    pub name: String,
    pub kind: ListenerType,
    pub status: Status,
}

/// An instance as the service status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: ListenerId,
    pub status: Status,
    pub pid: Option<u32>,
}

/// What became of a stored certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Live(LiveCert),
    Reloaded(Ran),
}

pub fn execute(ctx: &Ctx, op: StoreOp) -> Result<Outcome, DomainError> {
    let l = &ctx.listeners;
    match op {
        StoreOp::Listeners => Ok(Outcome::Summaries(
            l.list_ids()?.iter().map(|id| l.summary(id)).collect(),
        )),
        StoreOp::Listener(id) => {
            require(ctx, &id, Need::Listener)?;
            Ok(Outcome::Listener {
                summary: l.summary(&id),
                pools: l.pools(&id),
            })
        }
        StoreOp::Frontends => Ok(Outcome::Frontends(frontends(ctx)?)),
        StoreOp::Instances => Ok(Outcome::Ids(l.instance_ids()?)),
        StoreOp::Services => Ok(Outcome::Services(services(ctx)?)),
        StoreOp::Exists(id) => require(ctx, &id, Need::Listener).map(|_| Outcome::Done),
        StoreOp::Config(id) => Ok(Outcome::Config(l.config(&id)?)),
        StoreOp::Upload { id, config, origin } => {
            l.upload(&id, &config, origin)?;
            Ok(Outcome::Uploaded {
                md5: certs::md5_hex(&config),
            })
        }
        StoreOp::UploadAndRun { id, config } => {
            l.upload(&id, &config, Origin::Other)?;
            let ran = l.act(&id, Action::Reload)?;
            announce_vips(ctx, &id);
            Ok(Outcome::Ran { id, ran })
        }
        StoreOp::Act { id, action } => {
            require(ctx, &id, Need::Listener)?;
            let ran = l.act(&id, action)?;
            if matches!(action, Action::Start | Action::Reload) {
                announce_vips(ctx, &id);
            }
            Ok(Outcome::Ran { id, ran })
        }
        StoreOp::Delete { id, need } => delete(ctx, id, need),
        StoreOp::DeleteConfig(id) => {
            let was_running = l.delete_config(&id)?;
            Ok(Outcome::Deleted { id, was_running })
        }
        StoreOp::PutCert(put) => put_cert(ctx, put),
        StoreOp::CertSum { id, name, need } => {
            require(ctx, &id, need)?;
            match l.locked(|certs| certs.md5(&id, &name))? {
                Some(sum) => Ok(Outcome::CertSum(sum)),
                None => Err(DomainError::CertNotFound(name)),
            }
        }
        StoreOp::DeleteCert { id, name, need } => {
            require(ctx, &id, need)?;
            if l.locked(|certs| certs.delete(&id, &name))? {
                Ok(Outcome::Done)
            } else {
                Err(DomainError::CertNotFound(name))
            }
        }
    }
}

/// After a start or reload, a SINGLE load balancer's VIPs are announced so that neighbours
/// still holding a failed amphora's MAC move here (in a pair keepalived announces them).
fn announce_vips(ctx: &Ctx, id: &ListenerId) {
    if super::in_pair(ctx) {
        return;
    }
    match ctx.listeners.config(id) {
        Ok(cfg) => announce::config_vips(&String::from_utf8_lossy(&cfg)),
        Err(e) => logs::warn(&format!("not announcing the VIPs of {id}: {e:?}")),
    }
}

fn require(ctx: &Ctx, id: &ListenerId, need: Need) -> Result<(), DomainError> {
    if need == Need::Listener && !ctx.listeners.exists(id) {
        return Err(ListenerError::NotFound(id.clone()).into());
    }
    Ok(())
}

fn services(ctx: &Ctx) -> io::Result<Vec<Service>> {
    let l = &ctx.listeners;
    Ok(l.instance_ids()?
        .into_iter()
        .map(|id| Service {
            status: l.status(&id),
            pid: l.running_pid(&id),
            id,
        })
        .collect())
}

fn delete(ctx: &Ctx, id: ListenerId, need: Need) -> Result<Outcome, DomainError> {
    let l = &ctx.listeners;
    match l.delete(&id) {
        Ok(was_running) => Ok(Outcome::Deleted { id, was_running }),
        // Certificates may have come before any config.
        Err(ListenerError::NotFound(_)) if need == Need::Nothing => {
            l.locked(|certs| certs.delete_all(&id))?;
            Ok(Outcome::Deleted {
                id,
                was_running: false,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The frontends of every listener's config, with their listener's status.
pub fn frontends(ctx: &Ctx) -> io::Result<Vec<Frontend>> {
    let l = &ctx.listeners;
    let mut all = Vec::new();
    for id in l.list_ids()? {
        let Ok(cfg) = l.config(&id) else {
            continue;
        };
        let status = l.status(&id);
        for (name, kind) in pools::frontends(&String::from_utf8_lossy(&cfg)) {
            all.push(Frontend {
                listener: id.clone(),
                name,
                kind,
                status,
            });
        }
    }
    Ok(all)
}

fn put_cert(ctx: &Ctx, put: CertPut) -> Result<Outcome, DomainError> {
    let l = &ctx.listeners;
    require(ctx, &put.id, put.need)?;
    let has_key = || String::from_utf8_lossy(&put.pem).contains("PRIVATE KEY-----");
    if put.check == PemCheck::Bundle || has_key() {
        certs::validate(&put.pem)?;
    }
    let file = l.locked(|certs| certs.put(&put.id, &put.name, &put.pem))?;
    let applied = match put.apply {
        CertApply::Live if l.exists(&put.id) => l
            .apply_cert_live(&put.id, &file, &put.pem)
            .map_or(Applied::Nothing, Applied::Live),
        CertApply::Live => Applied::Nothing,
        CertApply::Reload => l
            .reload_if_running(&put.id)?
            .map_or(Applied::Nothing, Applied::Reloaded),
    };
    Ok(Outcome::CertStored {
        md5: certs::md5_hex(&put.pem),
        id: put.id,
        applied,
    })
}
