//! Client certificates: `/v1/admin/users/{id}/certificates`,
//! `/v1/admin/certificates/{id}/revoke`, `/v1/admin/facilities/{id}/revoke-ca`
//! and the device's own `/v1/me/certificate/renew`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::{HttpResponse, web};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::{FacilityId, UserId};
use kizuna_service::Caller;
use kizuna_service::pki::IssueMethod;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueBody {
    device_label: String,
    /// PEM CSR made on the device (the key never leaves it).
    #[serde(default)]
    csr_pem: Option<String>,
    /// Or: the server makes the key and returns a PKCS#12 bundle protected by
    /// this password.
    #[serde(default)]
    bundle_password: Option<SecretString>,
    #[serde(default)]
    validity_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewBody {
    #[serde(default)]
    csr_pem: Option<String>,
    #[serde(default)]
    bundle_password: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    #[serde(default = "unspecified")]
    reason: String,
}

fn unspecified() -> String {
    "unspecified".into()
}

fn method(csr: Option<String>, password: Option<SecretString>) -> Result<IssueMethod, ApiError> {
    match (csr, password) {
        (Some(csr), None) => Ok(IssueMethod::Csr(csr)),
        (None, Some(pw)) => Ok(IssueMethod::Bundle(pw)),
        _ => Err(ApiError::new(
            ErrorCode::InvalidField,
            "give exactly one of `csr_pem` and `bundle_password`",
        )),
    }
}

fn id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such item, or you may not see it"))
}

pub(crate) async fn issue(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<IssueBody>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId(id(&path)?);
    let b = body.into_inner();
    let m = method(b.csr_pem, b.bundle_password)?;
    let issued = state
        .service
        .issue_certificate(
            Caller::User(&who.0),
            user,
            b.device_label,
            m,
            b.validity_days,
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(issued))
}

pub(crate) async fn list(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId(id(&path)?);
    let certs = state
        .service
        .certificates_of(Caller::User(&who.0), user)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "certificates": certs })))
}

pub(crate) async fn revoke(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<RevokeBody>,
) -> Result<HttpResponse, ApiError> {
    let cert = state
        .service
        .revoke_certificate(Caller::User(&who.0), id(&path)?, &body.reason)
        .await?;
    Ok(HttpResponse::Ok().json(cert))
}

pub(crate) async fn revoke_facility_ca(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .service
        .revoke_facility_ca(Caller::User(&who.0), FacilityId(id(&path)?))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn renew(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<RenewBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let issued = state
        .service
        .renew_certificate(&who.0, method(b.csr_pem, b.bundle_password)?)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(issued))
}
