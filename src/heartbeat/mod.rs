//! Health heartbeats to Octavia's controller (AGENT.md section 1): every interval, one signed
//! UDP datagram with the amphora's listeners, pools and statistics, to one health manager of
//! the configured list in turn. Octavia creates an amphora's health record only when one
//! arrives, and fails the amphora over when they stop.

mod envelope;
mod message;

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{Destination, Mutable};
use crate::metrics::AGENT;
use crate::{logs, store};

pub use message::Counters;

/// The largest UDP payload IPv4 carries; the controller reads up to 64 KiB.
const MAX_DATAGRAM: usize = 65_507;

/// The settings Octavia's controller changes at run time, shared by the request that changes
/// them and the sender that reads them; a change wakes the sender.
pub struct Control {
    /// The settings and how many times they changed (so that a change between the sender's
    /// read and its wait is not slept through).
    state: Mutex<(Mutable, u64)>,
    changed: Condvar,
}

impl Control {
    pub fn new(m: Mutable) -> Self {
        Control {
            state: Mutex::new((m, 0)),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Mutable, u64)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings now, and their version.
    pub fn get(&self) -> (Mutable, u64) {
        self.lock().clone()
    }

    /// Takes new settings: debug logging follows at once, the sender at its next beat, which
    /// is now.
    pub fn apply(&self, m: Mutable) {
        logs::set_debug(m.debug);
        let mut state = self.lock();
        *state = (m, state.1 + 1);
        self.changed.notify_all();
    }

    /// Sleeps `d`, or less when the settings have changed since `version` or the agent stops.
    fn wait(&self, d: Duration, version: u64, stop: &AtomicBool) {
        let end = Instant::now() + d;
        let mut state = self.lock();
        while state.1 == version && !stop.load(Ordering::SeqCst) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Wakes the sender, so it sees the stop flag.
    pub fn wake(&self) {
        self.changed.notify_all();
    }
}

/// What the sender needs of the rest of the agent.
pub trait Amphora {
    fn id(&self) -> Option<String>;
    /// `show stat` of every running API-1.0 load balancer, as HAProxy replied, each read into
    /// `buf` (kept across heartbeats) and handed to `each`.
    fn stats(&self, buf: &mut Vec<u8>, each: &mut dyn FnMut(&[u8]));
    /// Keepalived is configured but not running: Octavia's agent then stays silent, so that
    /// the controller fails this amphora over.
    fn vrrp_down(&self) -> bool;
}

/// The sender's own state across beats.
pub struct Sender {
    counters_path: PathBuf,
    counters: Counters,
    builder: message::Builder,
    sealer: envelope::Sealer,
    /// Where each `show stat` reply is read.
    reply: Vec<u8>,
    /// The counters file as last written: unchanged counters (no traffic) are not written again.
    written: Vec<u8>,
    /// One socket per address family, opened at the first send.
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    seq: u64,
    turn: usize,
    /// Why the last beat was not sent, to log a reason once rather than every interval.
    silent: Option<String>,
}

impl Sender {
    pub fn new(state_dir: &Path) -> Self {
        let counters_path = state_dir.join("stats_counters.json");
        // Unreadable counters only cost one message with whole counters.
        let counters = std::fs::read(&counters_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Sender {
            counters_path,
            counters,
            builder: message::Builder::default(),
            sealer: envelope::Sealer::new(),
            reply: Vec::new(),
            written: Vec::new(),
            v4: None,
            v6: None,
            seq: 0,
            turn: 0,
            silent: None,
        }
    }

    /// Beats until `stop`: every interval, or at once after the settings change.
    pub fn run(mut self, control: &Control, amphora: &dyn Amphora, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let (settings, version) = control.get();
            let beat = self.beat(&settings, amphora);
            // An agent with no controller to send to sends nothing by design: not a failure.
            let hb = &settings.heartbeat;
            if hb.key.is_some() && !hb.destinations.is_empty() {
                AGENT.heartbeat(beat.is_ok());
            }
            match beat {
                Ok(to) => {
                    logs::debug(&format!("heartbeat {} sent to {to}", self.seq - 1));
                    self.silent = None;
                }
                Err(why) => {
                    if self.silent.as_deref() != Some(why.as_str()) {
                        logs::warn(&format!("no heartbeat: {why}"));
                    }
                    self.silent = Some(why);
                }
            }
            control.wait(settings.heartbeat.interval, version, stop);
        }
    }

    /// Builds, signs and sends one message; where it went, or why nothing was sent.
    pub fn beat(
        &mut self,
        settings: &Mutable,
        amphora: &dyn Amphora,
    ) -> Result<SocketAddr, String> {
        let hb = &settings.heartbeat;
        let id = amphora.id().ok_or("amphora_id is not set")?;
        let key = hb.key.as_deref().ok_or("heartbeat_key is not set")?;
        if hb.destinations.is_empty() {
            return Err("controller_ip_port_list is empty".into());
        }
        if amphora.vrrp_down() {
            return Err("keepalived is configured but not running".into());
        }
        self.builder.begin();
        let (builder, last) = (&mut self.builder, &self.counters);
        amphora.stats(&mut self.reply, &mut |reply| builder.add(reply, last));
        let mut counters = Counters::new();
        let (head, tail, members) = self.builder.finish(&id, self.seq, &mut counters);
        self.seq += 1;
        let sealed = self
            .sealer
            .seal(head.as_bytes(), tail.as_bytes(), key.as_bytes())
            .ok_or("the message could not be compressed")?;
        if sealed.len() > MAX_DATAGRAM {
            // Not sent, so its deltas are not spent: the next message carries them.
            return Err(format!(
                "the message is {} bytes, over one datagram, with {members} members",
                sealed.len()
            ));
        }
        // Kept before the send, as Octavia's agent does: a lost datagram loses its deltas,
        // a restarted agent never counts twice.
        self.counters = counters;
        let text = serde_json::to_vec(&self.counters).unwrap_or_default();
        if text != self.written {
            match store::write_atomic(&self.counters_path, &text, 0o600) {
                Ok(()) => self.written = text,
                Err(e) => logs::warn(&format!("cannot keep the heartbeat counters: {e}")),
            }
        }
        let dest = &hb.destinations[self.turn % hb.destinations.len()];
        self.turn = self.turn.wrapping_add(1);
        let to = resolve(dest)?;
        let socket = if to.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        send(socket, to, sealed)
    }
}

/// A health manager's address; a name is resolved at each send, as the controller's may move.
fn resolve(dest: &Destination) -> Result<SocketAddr, String> {
    (dest.host.as_str(), dest.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve {}:{}", dest.host, dest.port))
}

/// One datagram to `to`, from the family's socket (opened now if it is not yet).
fn send(
    socket: &mut Option<UdpSocket>,
    to: SocketAddr,
    datagram: &[u8],
) -> Result<SocketAddr, String> {
    let s = match socket {
        Some(s) => s,
        None => {
            let local: SocketAddr = if to.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            socket.insert(UdpSocket::bind(local).map_err(|e| format!("UDP socket: {e}"))?)
        }
    };
    s.send_to(datagram, to)
        .map_err(|e| format!("send to {to}: {e}"))?;
    Ok(to)
}

/// Starts the sender thread.
pub fn start(
    state_dir: &Path,
    control: Arc<Control>,
    amphora: Arc<dyn Amphora + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let sender = Sender::new(state_dir);
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || sender.run(&control, amphora.as_ref(), &stop))
}
