//! TLS material: PEM loading, key/certificate matching (DESIGN section 7), the rustls server
//! config of the front (TLS 1.2+, optional client certificates) and peer certificate subjects.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Problem, TlsFiles};
use crate::store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    NoCertificate,
    NoKey,
    /// The key is there but rustls cannot use it (unsupported type or damaged).
    BadKey(String),
    Mismatch,
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::NoCertificate => f.write_str("no certificate found"),
            PemError::NoKey => f.write_str("no private key found"),
            PemError::BadKey(e) => write!(f, "unusable private key: {e}"),
            PemError::Mismatch => f.write_str("certificate and key do not match"),
        }
    }
}

/// Every certificate in a PEM text, in order.
pub fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Builds a certified key from PEM texts (which may be one and the same: key + chain) and checks
/// that the key belongs to the first certificate.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, PemError> {
    let chain = certificates(cert_pem);
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| PemError::NoKey)?;
    let signer =
        provider::sign::any_supported_type(&key).map_err(|e| PemError::BadKey(e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(_) => Err(PemError::Mismatch),
    }
}

/// Serves the current server certificate; swappable so a new one applies to new connections.
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(ck: CertifiedKey) -> Self {
        CertSlot(RwLock::new(Arc::new(ck)))
    }

    /// New handshakes get `ck`; connections already open keep theirs.
    pub fn replace(&self, ck: CertifiedKey) {
        let mut g = self.0.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(ck);
    }
}

/// The agent's own certificate: where it is stored and what serves it.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub files: TlsFiles,
    pub slot: Arc<CertSlot>,
}

/// The PEM blocks of a text, split into (private keys, certificates), each as PEM text.
fn split_pem(pem: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(pem);
    let (mut keys, mut certs) = (String::new(), String::new());
    let mut block: Option<(bool, String)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(label) = line.strip_prefix("-----BEGIN ") {
            block = Some((label.contains("PRIVATE KEY"), String::new()));
        }
        if let Some((_, body)) = block.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
        if line.starts_with("-----END ") {
            match block.take() {
                Some((true, body)) => keys.push_str(&body),
                Some((false, body)) if line.contains("CERTIFICATE") => certs.push_str(&body),
                _ => {}
            }
        }
    }
    (keys, certs)
}

impl ServerCert {
    /// Replaces the agent's certificate with `pem` (key, certificate, chain): checked, written
    /// (0600) and then served to new connections. The certificate file is written first and
    /// holds the key too, so a crash between the two writes still leaves a pair that loads.
    pub fn rotate(&self, pem: &[u8]) -> Result<(), RotateError> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let ck = certified_key(pem, pem).map_err(RotateError::Pem)?;
        let (keys, certs) = split_pem(pem);
        let bundle = format!("{keys}{certs}");
        let old = std::fs::read(&self.files.cert).map_err(RotateError::Io)?;
        store::write_atomic(&self.files.cert, bundle.as_bytes(), 0o600).map_err(RotateError::Io)?;
        if !same_file(&self.files.key, &self.files.cert) {
            if let Err(e) = store::write_atomic(&self.files.key, keys.as_bytes(), 0o600) {
                // Keep the pair that is being served.
                let _ = store::write_atomic(&self.files.cert, &old, 0o600);
                return Err(RotateError::Io(e));
            }
        }
        self.slot.replace(ck);
        Ok(())
    }
}

/// Whether two paths name one file (through `..`, links or not).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

#[derive(Debug)]
pub enum RotateError {
    Pem(PemError),
    Io(std::io::Error),
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a valid key: keep serving it.
        Some(match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}

fn read(key: &str, path: &Path, problems: &mut Vec<Problem>) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Some(b),
        Err(e) => {
            problems.push(Problem::new(
                key,
                path.display().to_string(),
                format!("cannot read: {e}"),
            ));
            None
        }
    }
}

/// The front's TLS config from the configured files; every problem names its key.
pub fn server_config(files: &TlsFiles) -> Result<(Arc<ServerConfig>, ServerCert), Vec<Problem>> {
    let mut p = Vec::new();
    let cert_pem = read("sslcrt", &files.cert, &mut p);
    let key_pem = read("sslkey", &files.key, &mut p);
    let ca_pem = files
        .client_ca
        .as_ref()
        .map(|ca| (ca, read("client_ca", ca, &mut p)));

    let mut ck = None;
    if let (Some(c), Some(k)) = (&cert_pem, &key_pem) {
        // A rotation that was cut short leaves the new key in the certificate file: use it.
        let loaded = certified_key(c, k).or_else(|e| match e {
            PemError::Mismatch => certified_key(c, c).map_err(|_| e),
            other => Err(other),
        });
        match loaded {
            Ok(v) => ck = Some(v),
            Err(e) => {
                let key = match e {
                    PemError::NoCertificate => "sslcrt",
                    _ => "sslkey",
                };
                let path = if key == "sslcrt" {
                    &files.cert
                } else {
                    &files.key
                };
                p.push(Problem::new(key, path.display().to_string(), e.to_string()));
            }
        }
    }
    let provider = Arc::new(provider::default_provider());
    let mut verifier = None;
    if let Some((path, Some(pem))) = ca_pem {
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certificates(&pem));
        let built =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build();
        match built {
            Ok(v) if added > 0 => verifier = Some(v),
            _ => p.push(Problem::new(
                "client_ca",
                path.display().to_string(),
                "holds no usable CA certificate",
            )),
        }
    }
    let Some(ck) = ck.filter(|_| p.is_empty()) else {
        return Err(p);
    };
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| vec![Problem::new("sslcrt", "", format!("TLS setup failed: {e}"))])?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let slot = Arc::new(CertSlot::new(ck));
    let mut cfg = builder.with_cert_resolver(slot.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_cert = ServerCert {
        files: files.clone(),
        slot,
    };
    Ok((Arc::new(cfg), server_cert))
}

/// The subject of a DER certificate, e.g. `CN=client, O=Example`.
pub fn subject(der: &[u8]) -> Option<String> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.subject().to_string())
}
