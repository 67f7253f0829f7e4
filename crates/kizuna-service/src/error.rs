//! The service's error: what went wrong in client terms, mapped one-to-one to
//! the protocol's [`ErrorCode`]. Messages never contain content; causes of
//! internal failures are logged by the edge with the request id, not sent.

use kizuna_domain::access::Denial;
use kizuna_domain::protocol::ErrorCode;
use kizuna_store::StoreError;

/// A failed use case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The target does not exist, or the caller may not know it does.
    #[error("not found")]
    NotFound,
    /// The caller may see the target but not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A uniqueness or state rule refused the change.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A field is invalid (the message names the field, never the value).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Wrong login or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Missing or invalid token, or a session that ended.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The access token expired.
    #[error("token expired")]
    TokenExpired,
    /// The account is disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// The facility requires a client certificate and none was presented.
    #[error("certificate required")]
    CertificateRequired,
    /// The presented certificate is unknown, revoked, expired or not the bound one.
    #[error("certificate rejected: {0}")]
    CertificateRejected(&'static str),
    /// Too many attempts; retry later.
    #[error("rate limited")]
    RateLimited,
    /// The database is unavailable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is for the log only.
    #[error("internal: {0}")]
    Internal(String),
}

impl ServiceError {
    /// The protocol error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::NotFound => ErrorCode::NotFound,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::Conflict(_) => ErrorCode::Conflict,
            ServiceError::Invalid(_) => ErrorCode::InvalidField,
            ServiceError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ServiceError::Unauthorized(_) => ErrorCode::Unauthorized,
            ServiceError::TokenExpired => ErrorCode::TokenExpired,
            ServiceError::AccountDisabled => ErrorCode::AccountDisabled,
            ServiceError::CertificateRequired => ErrorCode::CertificateRequired,
            ServiceError::CertificateRejected(_) => ErrorCode::CertificateRejected,
            ServiceError::RateLimited => ErrorCode::RateLimited,
            ServiceError::Unavailable(_) => ErrorCode::Unavailable,
            ServiceError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message a client may see.
    pub fn public_message(&self) -> String {
        match self {
            ServiceError::NotFound => "no such item, or you may not see it".into(),
            ServiceError::Forbidden(why) => format!("not allowed: {why}"),
            ServiceError::Conflict(why) => format!("conflict: {why}"),
            ServiceError::Invalid(why) => why.clone(),
            ServiceError::InvalidCredentials => "login or password is wrong".into(),
            ServiceError::Unauthorized(why) => format!("not authenticated: {why}"),
            ServiceError::TokenExpired => "access token expired; refresh it".into(),
            ServiceError::AccountDisabled => "this account is disabled".into(),
            ServiceError::CertificateRequired => {
                "this account's facility requires the device's client certificate as well as the password".into()
            }
            ServiceError::CertificateRejected(why) => format!("client certificate rejected: {why}"),
            ServiceError::RateLimited => "too many attempts; wait a minute and retry".into(),
            ServiceError::Unavailable(_) => "service temporarily unavailable; retry".into(),
            ServiceError::Internal(_) => "internal error; it has been logged".into(),
        }
    }

    /// Whether the cause should be logged as a server-side problem.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            ServiceError::Unavailable(_) | ServiceError::Internal(_)
        )
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(what) => ServiceError::Conflict(what),
            StoreError::Unavailable(why) => ServiceError::Unavailable(why),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<Denial> for ServiceError {
    fn from(d: Denial) -> Self {
        match d {
            Denial::NotVisible => ServiceError::NotFound,
            Denial::TimelineHidden => {
                ServiceError::Forbidden("this timeline is not shared with you")
            }
            Denial::NotPermitted => ServiceError::Forbidden("your role does not allow this"),
            Denial::AccountDisabled => ServiceError::AccountDisabled,
        }
    }
}

/// Result alias.
pub type ServiceResult<T> = Result<T, ServiceError>;
