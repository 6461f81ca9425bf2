//! `GET /metrics`: the agent's own figures and those of every HAProxy it runs, in Prometheus's
//! text format. The registry is fed as the agent works; HAProxy's figures are read per scrape.

use std::sync::atomic::{AtomicUsize, Ordering};

pub mod agent;
pub mod expo;
pub mod haproxy;

pub use agent::AGENT;

/// One HAProxy's `show info` and `show stat` replies, None where it did not answer.
pub struct Replies {
    /// The listener id, or [`haproxy::MAIN`].
    pub listener: String,
    pub info: Option<String>,
    pub stat: Option<String>,
}

/// The last scrape's size: the next is sized alike, not grown by doubling (a large
/// appliance's scrape is megabytes).
static LAST_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The whole scrape: the agent first, then the HAProxies.
pub fn render(replies: &[Replies]) -> String {
    let guess = LAST_SIZE.load(Ordering::Relaxed);
    let mut e = expo::Expo::with_capacity(guess + guess / 8);
    AGENT.write(&mut e);
    let sources: Vec<haproxy::Source> = replies
        .iter()
        .map(|r| haproxy::Source {
            listener: &r.listener,
            info: r.info.as_deref(),
            stat: r.stat.as_deref(),
        })
        .collect();
    haproxy::write(&mut e, &sources);
    let text = e.into_string();
    LAST_SIZE.store(text.len(), Ordering::Relaxed);
    text
}
