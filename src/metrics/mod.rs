//! `GET /metrics`: the agent's own figures and those of every HAProxy it runs, in Prometheus's
//! text format. The registry is fed as the agent works; HAProxy's figures are read per scrape.

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

/// The whole scrape: the agent first, then the HAProxies.
pub fn render(replies: &[Replies]) -> String {
    let mut e = expo::Expo::new();
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
    e.into_string()
}
