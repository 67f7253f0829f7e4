//! The rustls server configuration. There is no listener without TLS: the API
//! is only ever served through this configuration.
//!
//! Client certificates are verified in the handshake against the service's
//! root, with a CRL for every issuer in the chain (root → issuing CA →
//! facility CA), expired CRLs refused. Presenting a certificate is optional at
//! the TLS level (facilities may allow password-only login; the application
//! decides), but a certificate that *is* presented and fails verification ends
//! the handshake. The verifier can be swapped at run time
//! ([`ReloadableVerifier::reload`]) so revocations take effect without a
//! restart, and TLS session resumption is disabled because a resumed session
//! would skip the CRL check.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, Error as TlsErr, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::sync::{Arc, RwLock};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain PEM has no certificate or does not parse.
    #[error("server certificate chain: {0}")]
    Chain(String),
    /// The private key PEM does not parse.
    #[error("server private key: {0}")]
    Key(String),
    /// The client-certificate trust anchor or a CRL does not parse.
    #[error("client certificate verification: {0}")]
    ClientAuth(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// What client-certificate verification trusts: the root, and one CRL per
/// issuer (DER).
#[derive(Debug, Clone)]
pub struct ClientTrust {
    /// The service root's certificate (DER).
    pub root_der: Vec<u8>,
    /// CRLs (DER) of the root, the issuing CA and every facility CA.
    pub crls_der: Vec<Vec<u8>>,
}

fn build_inner(trust: &ClientTrust) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(trust.root_der.clone()))
        .map_err(|e| TlsError::ClientAuth(e.to_string()))?;
    let crls = trust
        .crls_der
        .iter()
        .map(|d| CertificateRevocationListDer::from(d.clone()))
        .collect::<Vec<_>>();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(crls)
        // An expired CRL is not "no news": refuse, loudly.
        .enforce_revocation_expiration()
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::ClientAuth(e.to_string()))
}

/// A client-certificate verifier whose trust (root and CRLs) can be replaced
/// while the server runs. `ServerConfig` is cloned into every worker at bind
/// time, so swapping inside this shared object is how a reload reaches them.
pub struct ReloadableVerifier {
    /// The current webpki verifier. A `RwLock` read per handshake (cheap,
    /// uncontended); written only on reload.
    inner: RwLock<Arc<dyn ClientCertVerifier>>,
    /// Root hint subjects: fixed (the root does not change on CRL reloads),
    /// kept here because the trait hands out a reference.
    hints: Vec<DistinguishedName>,
}

impl std::fmt::Debug for ReloadableVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableVerifier").finish_non_exhaustive()
    }
}

impl ReloadableVerifier {
    /// Builds the verifier.
    pub fn new(trust: &ClientTrust) -> Result<Arc<ReloadableVerifier>, TlsError> {
        let inner = build_inner(trust)?;
        let hints = inner.root_hint_subjects().to_vec();
        Ok(Arc::new(ReloadableVerifier {
            inner: RwLock::new(inner),
            hints,
        }))
    }

    /// Replaces the CRLs (and root); new handshakes use them at once.
    pub fn reload(&self, trust: &ClientTrust) -> Result<(), TlsError> {
        let next = build_inner(trust)?;
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ClientCertVerifier for ReloadableVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsErr> {
        let result = self
            .current()
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &result {
            let crl_expired = matches!(
                e,
                TlsErr::InvalidCertificate(rustls::CertificateError::ExpiredRevocationList)
                    | TlsErr::InvalidCertificate(
                        rustls::CertificateError::ExpiredRevocationListContext { .. }
                    )
            );
            if crl_expired {
                // Every certificate handshake fails until the CRLs are
                // re-signed: an operator must act.
                tracing::error!(error = %e, "client certificate refused: a CRL has EXPIRED (fail closed)");
            } else {
                tracing::info!(error = %e, "client certificate refused in the handshake");
            }
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsErr> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsErr> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Builds the server configuration from PEM text: TLS 1.3 and 1.2 only, ring
/// as the crypto provider, HTTP/1.1 and HTTP/2 by ALPN (WebSockets use
/// HTTP/1.1). With `client_auth`, client certificates are requested and
/// verified; session resumption is off either way.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    client_auth: Option<Arc<ReloadableVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Chain(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Chain("no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match client_auth {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    }
    .with_single_cert(chain, key)?;
    // A resumed session restores the old peer certificate without checking
    // it again; with resumption off every connection is verified afresh.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
