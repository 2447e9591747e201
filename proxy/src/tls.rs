//! Server certificates of TLS listeners. They are loaded and checked with each configuration
//! (a reload renews them: no binary upgrade for a certificate renewal) and chosen at each
//! handshake by the client's SNI among the listener's certificates, the first one being the
//! default, as Envoy picks among a listener's `tls_certificates`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CertificateDer, ServerName};
use pingora::tls::{ClientHello, ResolvesServerCert};

use crate::state::State;

/// One certificate chain and its key.
pub struct ServerCert {
    key: Arc<CertifiedKey>,
}

impl ServerCert {
    /// Whether the leaf certificate is valid for `name` (its subject alternative names).
    fn serves(&self, name: &ServerName<'_>) -> bool {
        let Some(leaf) = self.key.cert.first() else { return false };
        webpki::EndEntityCert::try_from(leaf).is_ok_and(|ee| ee.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// A listener's certificates; the first answers clients whose SNI no other one serves.
pub struct ListenerCerts(pub Vec<ServerCert>);

impl std::fmt::Debug for ListenerCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ListenerCerts({} certificates)", self.0.len())
    }
}

impl ListenerCerts {
    fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = sni.and_then(|s| ServerName::try_from(s.to_owned()).ok());
        let by_name = name.and_then(|n| self.0.iter().find(|c| c.serves(&n)));
        by_name.or_else(|| self.0.first()).map(|c| c.key.clone())
    }
}

/// Why a certificate and key cannot serve; each names the file and keeps the library's cause.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{}: not a PEM certificate chain", .0.display())]
    Chain(PathBuf, #[source] rustls_pki_types::pem::Error),
    #[error("{}: no PEM certificate in it", .0.display())]
    Empty(PathBuf),
    #[error("{}: no PEM private key (PKCS#1, PKCS#8 or SEC1) in it", .0.display())]
    Key(PathBuf, #[source] rustls_pki_types::pem::Error),
    #[error("{}: unsupported private key", .0.display())]
    UnsupportedKey(PathBuf, #[source] rustls::Error),
    #[error("{} and {} do not belong together", .0.display(), .1.display())]
    Mismatch(PathBuf, PathBuf, #[source] rustls::Error),
}

/// Loads a PEM certificate chain and its PEM private key, and checks that they belong together.
///
/// # Errors
///
/// [`CertError`] naming the file that cannot be read or parsed, or the mismatch.
pub fn load(cert: &Path, key: &Path) -> Result<ServerCert, CertError> {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    let read = |path: &Path| std::fs::read(path).map_err(|e| CertError::Read(path.to_owned(), e));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Chain(cert.to_owned(), e))?;
    if chain.is_empty() {
        return Err(CertError::Empty(cert.to_owned()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| CertError::Key(key.to_owned(), e))?;
    let provider = pingora::tls::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let signing =
        provider.key_provider.load_private_key(private).map_err(|e| CertError::UnsupportedKey(key.to_owned(), e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| CertError::Mismatch(cert.to_owned(), key.to_owned(), e))?;
    Ok(ServerCert { key: Arc::new(certified) })
}

/// Chooses a TLS listener's certificate from the current generation at each handshake.
pub struct Resolver {
    /// Shared state (the current generation).
    pub state: Arc<State>,
    /// The listener's index in `listeners:`.
    pub listener: usize,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("listener", &self.listener).finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let generation = self.state.current.load();
        generation.tls.get(self.listener)?.as_ref()?.choose(hello.server_name())
    }
}
