//! What the listener families (amphora v0.1, 1.0 and the legacy API) say alike: the details
//! of starts, stops and reloads, certificate verdicts, and the listener errors' statuses.
//! These are the texts of Octavia's agent and of the specs, kept out of the domain.

use crate::certs::CertError;
use crate::error::ApiError;
use crate::keepalived;
use crate::listeners::{ListenerError, LiveCert, Ran};
use crate::names::ListenerId;
use crate::process::Action;

use super::ops::{Applied, DomainError};

/// What a start, stop or reload did, as Octavia's agent says it.
pub fn ran(id: &ListenerId, ran: &Ran) -> String {
    match ran {
        Ran::Started { pid, check } => {
            format!("{check}\nhaproxy daemon for {id} started (pid {pid})")
        }
        Ran::AlreadyRunning { pid } => {
            format!("haproxy daemon for {id} already running (pid {pid})")
        }
        Ran::Stopped => format!("haproxy daemon for {id} stopped"),
        Ran::NotRunning => format!("haproxy daemon for {id} is not running"),
        Ran::Reloaded { worker, check } => {
            format!("{check}\nhaproxy daemon for {id} reloaded (new worker pid {worker})")
        }
    }
}

/// What deleting a listener did to its HAProxy.
pub fn deleted(id: &ListenerId, was_running: bool) -> String {
    if was_running {
        format!("haproxy daemon for {id} stopped")
    } else {
        format!("haproxy daemon for {id} was not running")
    }
}

fn live_cert(live: &LiveCert) -> String {
    match live {
        LiveCert::Applied => "Certificate applied to the running haproxy".to_string(),
        LiveCert::Refused(e) => {
            format!("Stored; the running haproxy did not take it ({e}): reload to apply")
        }
    }
}

/// What storing a certificate did to the running HAProxy; None when nothing.
pub fn applied(id: &ListenerId, applied: &Applied) -> Option<String> {
    match applied {
        Applied::Nothing => None,
        Applied::Live(l) => Some(live_cert(l)),
        Applied::Reloaded(r) => Some(ran(id, r)),
    }
}

/// What a start, stop or reload of keepalived did.
pub fn keepalived_ran(ran: keepalived::Ran) -> &'static str {
    match ran {
        keepalived::Ran::Started => "keepalived started",
        keepalived::Ran::Reloaded => "keepalived reloaded",
        keepalived::Ran::Stopped => "keepalived stopped",
        keepalived::Ran::NotRunning => "keepalived is not running",
    }
}

/// "Error starting haproxy".
pub fn gerund(action: Action) -> &'static str {
    match action {
        Action::Start => "starting",
        Action::Stop => "stopping",
        Action::Reload => "reloading",
    }
}

/// "Failed to start keepalived service".
pub fn verb(action: Action) -> &'static str {
    match action {
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Reload => "reload",
    }
}

/// Why a PEM bundle was refused, in the amphora spec's words.
pub fn cert_refused(e: &CertError) -> &'static str {
    match e {
        CertError::NoCertificate => "No certificate found",
        CertError::NoKey(_) => "No RSA key found",
        CertError::Mismatch => "Certificate and key do not match",
    }
}

/// The spec's 400 for a PEM bundle, with the key's problem as details when there is one.
pub fn cert_error(e: &CertError) -> ApiError {
    let err = ApiError::new(400, cert_refused(e));
    match e {
        CertError::NoKey(Some(why)) => err.with_details(why.clone()),
        _ => err,
    }
}

/// The amphora APIs' (JSON) rendering of what the domain refused; `not_found` names the
/// family's missing listener ("Listener Not Found", "Loadbalancer Not Found").
pub fn amphora_error(e: DomainError, not_found: fn(&ListenerId) -> ApiError) -> ApiError {
    match e {
        DomainError::Listener(ListenerError::NotFound(id)) => not_found(&id),
        DomainError::Listener(ListenerError::Invalid(out)) => {
            ApiError::new(400, "Invalid request").with_details(out)
        }
        DomainError::Listener(ListenerError::Unavailable(why)) => {
            ApiError::new(503, "HAProxy unavailable").with_details(why)
        }
        DomainError::Listener(ListenerError::Failed(action, out)) => {
            ApiError::new(500, format!("Error {} haproxy", gerund(action))).with_details(out)
        }
        DomainError::Listener(ListenerError::Io(e)) | DomainError::Io(e) => {
            ApiError::internal(e.to_string())
        }
        DomainError::Cert(e) => cert_error(&e),
        DomainError::CertNotFound(name) => ApiError::new(404, "Certificate Not Found")
            .with_details(format!("No certificate with file name: {name}")),
        other => unexpected(&other),
    }
}

/// An outcome (or error) a family's operations never produce: a bug in its render table.
pub fn unexpected(what: &impl std::fmt::Debug) -> ApiError {
    ApiError::internal(format!("no answer for {what:?}"))
}
