//! lbagent: manages HAProxy over HTTPS (HApi, Octavia amphora, appliance and device APIs).
//! The binary (`main.rs`) parses the command line; everything else lives here, so the fuzz
//! targets in `fuzz/` can reach the parsers through [`fuzz`].

pub mod agent;
pub mod config;
pub mod fuzz;

mod announce;
mod api;
mod auth;
mod certs;
mod devices;
mod error;
mod firewall;
mod framing;
mod front;
mod hapi;
mod haproxy;
mod heartbeat;
mod http;
mod ini;
mod keepalived;
mod listeners;
mod logs;
mod metrics;
mod names;
mod netns;
mod netplug;
mod pools;
mod process;
mod promproxy;
mod server;
mod signals;
mod store;
mod syslog;
mod system;
mod timefmt;
mod tls;
mod topology;
mod vrrp_check;
