//! The operations the API families ask of the appliance, and the one `execute` that runs
//! them. A family's file parses a request into an `Op` and renders the `Outcome` (or the
//! `DomainError`) in its own words; nothing here knows a path, a status code or a spec text.

use std::io;

use crate::certs::{self, CertError};
use crate::listeners::{ListenerError, LiveCert, Ran, Status, Summary};
use crate::names::{CertName, ListenerId};
use crate::pools::{self, ListenerType, Pool};
use crate::process::Action;
use crate::store;

use super::Ctx;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Nothing to do: the answer is the family's own (API 1.0's version document).
    Nothing,
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
    /// Keep the controller's agent config file (0600: it holds the heartbeat key).
    StoreAgentConfig(Vec<u8>),
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
}

#[derive(Debug)]
pub enum DomainError {
    Listener(ListenerError),
    CertNotFound(CertName),
    Cert(CertError),
    Io(io::Error),
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

pub fn execute(ctx: &Ctx, op: Op) -> Result<Outcome, DomainError> {
    let l = &ctx.listeners;
    match op {
        Op::Nothing => Ok(Outcome::Done),
        Op::Listeners => Ok(Outcome::Summaries(
            l.list_ids()?.iter().map(|id| l.summary(id)).collect(),
        )),
        Op::Listener(id) => {
            require(ctx, &id, Need::Listener)?;
            Ok(Outcome::Listener {
                summary: l.summary(&id),
                pools: l.pools(&id),
            })
        }
        Op::Frontends => Ok(Outcome::Frontends(frontends(ctx)?)),
        Op::Instances => Ok(Outcome::Ids(l.instance_ids()?)),
        Op::Services => Ok(Outcome::Services(services(ctx)?)),
        Op::Exists(id) => require(ctx, &id, Need::Listener).map(|_| Outcome::Done),
        Op::Config(id) => Ok(Outcome::Config(l.config(&id)?)),
        Op::Upload { id, config } => {
            l.upload(&id, &config)?;
            Ok(Outcome::Uploaded {
                md5: certs::md5_hex(&config),
            })
        }
        Op::UploadAndRun { id, config } => {
            l.upload(&id, &config)?;
            let ran = l.act(&id, Action::Reload)?;
            Ok(Outcome::Ran { id, ran })
        }
        Op::Act { id, action } => {
            require(ctx, &id, Need::Listener)?;
            let ran = l.act(&id, action)?;
            Ok(Outcome::Ran { id, ran })
        }
        Op::Delete { id, need } => delete(ctx, id, need),
        Op::DeleteConfig(id) => {
            let was_running = l.delete_config(&id)?;
            Ok(Outcome::Deleted { id, was_running })
        }
        Op::PutCert(put) => put_cert(ctx, put),
        Op::CertSum { id, name, need } => {
            require(ctx, &id, need)?;
            match l.locked(|certs| certs.md5(&id, &name))? {
                Some(sum) => Ok(Outcome::CertSum(sum)),
                None => Err(DomainError::CertNotFound(name)),
            }
        }
        Op::DeleteCert { id, name, need } => {
            require(ctx, &id, need)?;
            if l.locked(|certs| certs.delete(&id, &name))? {
                Ok(Outcome::Done)
            } else {
                Err(DomainError::CertNotFound(name))
            }
        }
        Op::StoreAgentConfig(body) => {
            let path = ctx.config.state_dir.join("amphora-agent.conf");
            store::write_atomic(&path, &body, 0o600)?;
            Ok(Outcome::Done)
        }
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
