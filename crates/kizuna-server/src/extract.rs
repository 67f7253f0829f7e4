//! Per-connection facts (peer address, client certificate) captured when the
//! TLS connection is accepted, and the bearer-token extractor built on them.

use crate::AppState;
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use kizuna_domain::protocol::ErrorCode;
use kizuna_service::{PeerIdentity, Principal, RequestContext};
use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

type TlsStream = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;

/// What the server knows about a TLS connection.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// The client's address.
    pub peer_addr: Option<SocketAddr>,
    /// The verified client certificate (leaf) in DER, when one was presented.
    pub peer_cert_der: Option<Vec<u8>>,
    /// False when the connection was not a TLS stream of the expected type; such
    /// connections are refused (fail closed).
    pub tls: bool,
}

/// Reads the connection facts. The stream type must match the rustls version
/// the listener uses; anything else is recorded as non-TLS and refused.
pub(crate) fn conn_info(conn: &dyn Any) -> ConnInfo {
    match conn.downcast_ref::<TlsStream>() {
        Some(tls) => {
            let (sock, session) = tls.get_ref();
            // Frames are small and interactive: without this, Nagle's
            // algorithm and delayed ACKs hold some of them back ~40 ms.
            if let Err(e) = sock.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            ConnInfo {
                peer_addr: sock.peer_addr().ok(),
                // The first certificate is the client's leaf.
                peer_cert_der: session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec()),
                tls: true,
            }
        }
        None => ConnInfo::default(),
    }
}

/// The request's context for the service: address and certificate identity.
pub(crate) fn request_context(req: &HttpRequest) -> Result<RequestContext, ApiError> {
    let info = req.conn_data::<ConnInfo>().cloned().unwrap_or_default();
    if !info.tls {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "connection is not TLS",
        ));
    }
    let peer = match &info.peer_cert_der {
        Some(der) => Some(peer_identity(der)?),
        None => None,
    };
    Ok(RequestContext {
        remote_addr: info.peer_addr.map(|a| a.ip().to_string()),
        peer,
    })
}

/// The verified peer certificate as the service sees it. The handshake has
/// already checked the chain to our root and the CRLs; this also refuses a
/// certificate that is a CA or lacks the clientAuth purpose (webpki accepts a
/// certificate with no EKU at all).
fn peer_identity(der: &[u8]) -> Result<PeerIdentity, ApiError> {
    let rejected = || {
        ApiError::new(
            ErrorCode::CertificateRejected,
            "client certificate rejected: not a client certificate of this service",
        )
    };
    let parsed = kizuna_ca::parse_peer_certificate(der).map_err(|_| rejected())?;
    if parsed.is_ca || !parsed.has_client_auth_eku {
        return Err(rejected());
    }
    Ok(PeerIdentity {
        thumbprint: kizuna_service::auth::tokens::thumbprint(der),
        serial: parsed.serial_hex,
    })
}

/// The `Authorization: Bearer` token of a request.
pub(crate) fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing Authorization: Bearer token",
            )
        })
}

/// An authenticated request (token, certificate binding, session and account
/// all checked).
#[derive(Debug)]
pub(crate) struct Authenticated(pub(crate) Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| ApiError::new(ErrorCode::Internal, "application state missing"))?;
            let ctx = request_context(&req)?;
            let token = bearer(&req)?;
            Ok(Authenticated(state.service.authenticate(token, ctx).await?))
        })
    }
}
