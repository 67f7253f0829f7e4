//! `/v1/auth/*`, `/v1/me`, `/v1/timelines`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, request_context};
use actix_web::{HttpRequest, HttpResponse, web};
use kizuna_service::LoginRequest;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    login: String,
    password: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: SecretString,
}

pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req)?;
    let body = body.into_inner();
    let tokens = state
        .service
        .login(
            LoginRequest {
                login: body.login,
                password: body.password,
            },
            ctx,
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(tokens))
}

pub(crate) async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req)?;
    let tokens = state
        .service
        .refresh(body.into_inner().refresh_token, ctx)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(tokens))
}

pub(crate) async fn logout(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.service.logout(&who.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) async fn me(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let a = who.0.actor;
    let hours = state.service.notification_hours(&who.0).await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user_id": a.user_id,
        "kind": a.kind,
        "facility_id": a.facility_id,
        "facility_role": a.facility_role,
        "session_id": who.0.session_id,
        "notification_hours": hours,
        "notifications_allowed_now": hours.is_none_or(|h| h.allows_at_unix_ms(now_ms)),
    })))
}

pub(crate) async fn timelines(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let list = state.service.timelines(&who.0).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "timelines": list })))
}
