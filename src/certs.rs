//! Listener certificates (DESIGN section 7): validation of key + certificate PEM bundles and
//! their files under `<cert_dir>/<listener>/<name>.pem` (mode 0600). Only md5 sums leave here.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::names::{CertName, ListenerId};
use crate::store;
use crate::tls::{self, PemError};

/// Why a PEM bundle was refused (the API families word it: `api::words`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    NoCertificate,
    NoKey(Option<String>),
    Mismatch,
}

/// Checks that `pem` holds a private key and at least one certificate, and that the key
/// belongs to the first certificate.
pub fn validate(pem: &[u8]) -> Result<(), CertError> {
    tls::certified_key(pem, pem)
        .map(|_| ())
        .map_err(CertError::from)
}

impl From<PemError> for CertError {
    fn from(e: PemError) -> Self {
        match e {
            PemError::NoCertificate => CertError::NoCertificate,
            PemError::NoKey => CertError::NoKey(None),
            PemError::BadKey(e) => CertError::NoKey(Some(e)),
            PemError::Mismatch => CertError::Mismatch,
        }
    }
}

pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The certificate files of all listeners.
#[derive(Debug, Clone)]
pub struct CertStore {
    root: PathBuf,
}

impl CertStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CertStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &ListenerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    fn path(&self, id: &ListenerId, name: &CertName) -> PathBuf {
        self.dir(id).join(name.as_str())
    }

    /// Stores a bundle that `validate` accepted.
    pub fn put(&self, id: &ListenerId, name: &CertName, pem: &[u8]) -> io::Result<PathBuf> {
        store::ensure_dir(&self.root, 0o700)?;
        store::ensure_dir(&self.dir(id), 0o700)?;
        let path = self.path(id, name);
        store::write_atomic(&path, pem, 0o600)?;
        Ok(path)
    }

    /// md5 of the stored bytes; None if there is no such file.
    pub fn md5(&self, id: &ListenerId, name: &CertName) -> io::Result<Option<String>> {
        match fs::read(self.path(id, name)) {
            Ok(b) => Ok(Some(md5_hex(&b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes one file (and the listener's directory once empty); false if there was none.
    pub fn delete(&self, id: &ListenerId, name: &CertName) -> io::Result<bool> {
        match fs::remove_file(self.path(id, name)) {
            Ok(()) => {
                // Only succeeds when empty, which is the point.
                let _ = fs::remove_dir(self.dir(id));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes every certificate of a listener.
    pub fn delete_all(&self, id: &ListenerId) -> io::Result<()> {
        remove_tree(&self.dir(id))
    }
}

/// `remove_dir_all` that treats an absent directory as done.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_bytes() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn garbage_and_halves_are_refused() {
        assert_eq!(validate(b"garbage"), Err(CertError::NoCertificate));
        assert_eq!(validate(b""), Err(CertError::NoCertificate));
        let fake_cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(matches!(validate(fake_cert), Err(CertError::NoKey(_))));
    }
}
