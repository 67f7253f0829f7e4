//! Invitations into patient groups: create and list them per group, the
//! caller's own, a facility's pending approvals, and acting on one
//! (accept, decline, resend, cancel, approve, refuse, redeem a code). Bodies
//! reject unknown fields, so `status`, `invited_by` or `approvals` cannot be
//! slipped in.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Authenticated, bearer, request_context};
use actix_web::{HttpRequest, HttpResponse, web};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::text::Name;
use kizuna_domain::*;
use kizuna_service::invitations::{InviteTarget, RedeemAccount};
use secrecy::SecretString;
use serde::Deserialize;

/// Registers the routes. Called on the `/v1` scope before the `/admin`
/// scope, which would otherwise take `/admin/facilities/{id}/approvals`.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups/{id}/invitations", web::post().to(create))
        .route("/groups/{id}/invitations", web::get().to(list_of_group))
        .route("/me/invitations", web::get().to(mine))
        .route(
            "/admin/facilities/{id}/approvals",
            web::get().to(facility_approvals),
        )
        .route("/invitations/redeem", web::post().to(redeem))
        .route("/invitations/{id}/accept", web::post().to(accept))
        .route("/invitations/{id}/decline", web::post().to(decline))
        .route("/invitations/{id}/resend", web::post().to(resend))
        .route("/invitations/{id}/cancel", web::post().to(cancel))
        .route(
            "/invitations/{id}/approvals/{role}/{decision}",
            web::post().to(decide),
        );
}

/// `{"user_id": N, "scope"?}` or `{"code_for": "staff"|"family", "scope"?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InviteBody {
    #[serde(default)]
    user_id: Option<UserId>,
    #[serde(default)]
    code_for: Option<UserKind>,
    #[serde(default)]
    scope: Option<InvitationScope>,
}

/// `{"code"}` with a token; `{"code", "login", "display_name", "password"}`
/// without one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedeemBody {
    code: SecretString,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    display_name: Option<Name>,
    #[serde(default)]
    password: Option<SecretString>,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such item, or you may not see it")
}

fn id_from_path(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(not_found)
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message)
}

async fn create(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<InviteBody>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupId(id_from_path(&path)?);
    let b = body.into_inner();
    let target = match (b.user_id, b.code_for) {
        (Some(user_id), None) => InviteTarget::User {
            user_id,
            scope: b.scope,
        },
        (None, Some(kind @ (UserKind::Staff | UserKind::Family))) => InviteTarget::Code {
            kind,
            scope: b.scope,
        },
        (None, Some(_)) => return Err(invalid("code_for must be staff or family")),
        _ => return Err(invalid("give exactly one of user_id and code_for")),
    };
    let v = state.service.invite(&who.0, group, target).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(v))
}

async fn list_of_group(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupId(id_from_path(&path)?);
    let list = state.service.group_invitations(&who.0, group).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "invitations": list })))
}

async fn mine(state: web::Data<AppState>, who: Authenticated) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.service.my_invitations(&who.0).await?))
}

async fn facility_approvals(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let facility = FacilityId(id_from_path(&path)?);
    let list = state.service.facility_approvals(&who.0, facility).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "invitations": list })))
}

async fn accept(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = InvitationId(id_from_path(&path)?);
    Ok(HttpResponse::Ok().json(state.service.accept_invitation(&who.0, id).await?))
}

async fn decline(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = InvitationId(id_from_path(&path)?);
    Ok(HttpResponse::Ok().json(state.service.decline_invitation(&who.0, id).await?))
}

async fn resend(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = InvitationId(id_from_path(&path)?);
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(state.service.resend_invitation(&who.0, id).await?))
}

async fn cancel(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = InvitationId(id_from_path(&path)?);
    Ok(HttpResponse::Ok().json(state.service.cancel_invitation(&who.0, id).await?))
}

async fn decide(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, role, decision) = path.into_inner();
    let id = InvitationId(id_from_path(&id)?);
    let role: ApprovalRole = role.parse().map_err(|_| not_found())?;
    let approve = match decision.as_str() {
        "approve" => true,
        "refuse" => false,
        _ => return Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
    };
    let v = state
        .service
        .decide_invitation_approval(&who.0, id, role, approve)
        .await?;
    Ok(HttpResponse::Ok().json(v))
}

async fn redeem(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RedeemBody>,
) -> Result<HttpResponse, ApiError> {
    let ctx = request_context(&req)?;
    // A token is optional here: with one, the caller redeems for their own
    // account; a present but bad token is refused as anywhere else.
    let has_token = req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION);
    let principal = if has_token {
        Some(
            state
                .service
                .authenticate(bearer(&req)?, ctx.clone())
                .await?,
        )
    } else {
        None
    };
    let b = body.into_inner();
    let account = match (b.login, b.display_name, b.password) {
        (None, None, None) => None,
        (Some(login), Some(display_name), Some(password)) => Some(RedeemAccount {
            login,
            display_name,
            password,
        }),
        _ => {
            return Err(invalid("login, display_name and password go together"));
        }
    };
    let r = state
        .service
        .redeem_invitation(principal.as_ref(), ctx, b.code, account)
        .await?;
    Ok(HttpResponse::Created().json(r))
}
