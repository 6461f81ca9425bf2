//! The peer registry: the front names each client connection with a random token, added as a
//! header to every request it forwards; the table maps tokens to the real client, so a request
//! that did not come through the front finds no peer.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::http::Peer;

/// What a token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Client(Peer),
    /// The front checking a new internal connection: answered at once, never logged.
    Probe,
}

/// Connection token -> the real client.
pub struct PeerTable {
    map: Mutex<HashMap<String, Peer>>,
    probe: String,
}

impl PeerTable {
    pub fn new() -> io::Result<Self> {
        Ok(PeerTable {
            map: Mutex::default(),
            probe: random_token()?,
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Peer>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, token: &str) -> Option<Caller> {
        if token == self.probe {
            return Some(Caller::Probe);
        }
        self.map().get(token).cloned().map(Caller::Client)
    }

    /// The token of the front's own probe requests.
    pub(super) fn probe_token(&self) -> &str {
        &self.probe
    }

    /// Names a connection for as long as the registration lives.
    pub(super) fn register(&self, peer: Peer) -> io::Result<Registration<'_>> {
        let token = random_token()?;
        self.map().insert(token.clone(), peer);
        Ok(Registration(self, token))
    }
}

/// 128 random bits, hex: unguessable, so only the front can name a connection.
fn random_token() -> io::Result<String> {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most b.len() bytes into the valid, exclusively borrowed buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Removes a registration when the connection ends.
pub(super) struct Registration<'a>(&'a PeerTable, String);

impl Registration<'_> {
    pub fn token(&self) -> &str {
        &self.1
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.0.map().remove(&self.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_connection_until_it_ends() {
        let table = PeerTable::new().unwrap();
        let peer = Peer {
            addr: "127.0.0.1:9".parse().unwrap(),
            cert_subject: None,
        };
        let token = {
            let r = table.register(peer.clone()).unwrap();
            assert_eq!(r.token().len(), 32);
            assert_eq!(table.get(r.token()), Some(Caller::Client(peer)));
            r.token().to_string()
        };
        assert_eq!(table.get(&token), None);
        assert_eq!(table.get(table.probe_token()), Some(Caller::Probe));
        assert_eq!(table.get(""), None);
    }
}
