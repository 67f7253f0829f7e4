//! The edge's one error type. Every failure answers with the fixed body
//! `{"code":"snake_case","message":"…","request_id":"…"}` and the status that
//! fits the code; causes go to the log under the same request id, never to the
//! client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kizuna_domain::protocol::ErrorCode;
use kizuna_service::ServiceError;
use serde::Serialize;

/// An error answered to a REST client.
#[derive(Debug)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Message safe to show.
    pub message: String,
    /// Correlates the answer with the log line.
    pub request_id: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: ErrorCode,
    message: &'a str,
    request_id: &'a str,
}

/// A fresh request id (16 hex digits).
pub fn request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            request_id: request_id(),
        }
    }
}

/// HTTP status for an error code.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadFrame
        | ErrorCode::UnknownCommand
        | ErrorCode::InvalidField
        | ErrorCode::InvalidBody => StatusCode::BAD_REQUEST,
        ErrorCode::TooManySubscriptions => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden | ErrorCode::AccountDisabled | ErrorCode::OriginNotAllowed => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::InvalidCredentials
        | ErrorCode::Unauthorized
        | ErrorCode::TokenExpired
        | ErrorCode::CertificateRequired
        | ErrorCode::CertificateRejected => StatusCode::UNAUTHORIZED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_for(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.code == ErrorCode::Unauthorized || self.code == ErrorCode::TokenExpired {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        res.json(Body {
            code: self.code,
            message: &self.message,
            request_id: &self.request_id,
        })
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let err = ApiError::new(e.code(), e.public_message());
        if e.is_server_fault() {
            tracing::error!(request_id = %err.request_id, error = %e, "request failed");
        } else {
            tracing::debug!(request_id = %err.request_id, code = err.code.as_str(), "request refused");
        }
        err
    }
}

/// Maps actix's JSON extractor errors to our codes (never echoing the body).
pub fn json_error(
    err: actix_web::error::JsonPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "request body is larger than allowed",
        ),
        J::ContentType => {
            ApiError::new(ErrorCode::BadFrame, "Content-Type must be application/json")
        }
        J::Deserialize(e) if e.is_data() => {
            let msg = e.to_string();
            let field = msg
                .split('`')
                .nth(1)
                .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"));
            match field {
                Some(f) if msg.starts_with("unknown field") => ApiError::new(
                    ErrorCode::InvalidField,
                    format!("field `{f}` is not accepted"),
                ),
                Some(f) => {
                    ApiError::new(ErrorCode::InvalidField, format!("field `{f}` is missing"))
                }
                None => ApiError::new(
                    ErrorCode::InvalidField,
                    "a field has the wrong type or value",
                ),
            }
        }
        _ => ApiError::new(ErrorCode::BadFrame, "request body is not valid JSON"),
    };
    api.into()
}
