//! A Rust client for Kizuna's REST and WebSocket API, built only on the public
//! protocol (`kizuna_domain::protocol`). The end-to-end tests, the load
//! generator and `kizuna client` use it.
//!
//! TLS is rustls with the ring provider; the client trusts the root it is
//! given (e.g. the development CA's `root.pem`) and can present a client
//! certificate.

mod rest;
mod ws;

pub use rest::Tokens;
pub use ws::WsConnection;

use kizuna_domain::protocol::ErrorCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error body or frame.
    #[error("server refused ({status:?}): {code:?}: {message}")]
    Server {
        /// HTTP status (REST) or `None` (WebSocket).
        status: Option<u16>,
        /// The error code.
        code: ErrorCode,
        /// The message.
        message: String,
    },
    /// The socket was closed by the server.
    #[error("closed by server: {code} {reason}")]
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// TLS setup or handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// HTTP transport failure.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// WebSocket transport failure.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// I/O failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something the protocol does not allow.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The server's error code, if this is a server refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ClientError>;

/// Where and how to connect.
#[derive(Clone)]
pub struct ClientConfig {
    /// The server's address.
    pub addr: SocketAddr,
    /// Name to verify the server certificate against (e.g. `localhost`).
    pub server_name: String,
    /// PEM of the CA root(s) to trust.
    pub root_pem: String,
    /// Client certificate chain and key (PEM), for mutual TLS.
    pub client_identity: Option<(String, String)>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field("client_identity", &self.client_identity.is_some())
            .finish_non_exhaustive()
    }
}

/// A client: REST over HTTPS plus WebSocket connections.
#[derive(Clone)]
pub struct Client {
    config: ClientConfig,
    tls: Arc<rustls::ClientConfig>,
    http: reqwest::Client,
    base: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn tls_config(config: &ClientConfig, alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(config.root_pem.as_bytes()) {
        let cert = cert.map_err(|e| ClientError::Tls(format!("root PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("root certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut tls = match &config.client_identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| ClientError::Tls(format!("client chain: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| ClientError::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(e.to_string()))?
        }
    };
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tls)
}

impl Client {
    /// Builds a client.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let ws_tls = Arc::new(tls_config(&config, &[b"http/1.1"])?);
        let http_tls = tls_config(&config, &[b"http/1.1"])?;
        let base = format!("https://{}:{}", config.server_name, config.addr.port());
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(http_tls)
            .resolve(&config.server_name, config.addr)
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Client {
            config,
            tls: ws_tls,
            http,
            base,
        })
    }

    /// The base URL (`https://name:port`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn server_name(&self) -> Result<ServerName<'static>> {
        ServerName::try_from(self.config.server_name.clone())
            .map_err(|e| ClientError::Tls(e.to_string()))
    }
}
