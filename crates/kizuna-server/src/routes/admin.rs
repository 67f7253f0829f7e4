//! `/v1/admin/*`: facilities, accounts, patients, groups, members. Bodies
//! reject unknown fields, so `role`, `facility_id` or `author_id` cannot be
//! slipped in where they are not accepted.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::{HttpResponse, web};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::text::Name;
use kizuna_domain::*;
use kizuna_service::Caller;
use kizuna_service::admin::{NewAccount, PolicyChange, UserChange};
use secrecy::SecretString;
use serde::Deserialize;

pub(crate) fn scope() -> actix_web::Scope {
    web::scope("/admin")
        .route("/facilities", web::post().to(create_facility))
        .route("/facilities", web::get().to(list_facilities))
        .route("/facilities/{id}", web::get().to(get_facility))
        .route("/facilities/{id}", web::patch().to(set_facility_policy))
        .route("/facilities/{id}/users", web::get().to(facility_users))
        .route("/users", web::post().to(create_user))
        .route("/users/{id}", web::patch().to(edit_user))
        .route("/users/{id}/groups", web::get().to(user_groups))
        .route("/users/{id}/disable", web::post().to(disable_user))
        .route("/users/{id}/enable", web::post().to(enable_user))
        .route("/patients", web::post().to(create_patient))
        .route(
            "/patients/{id}/account",
            web::post().to(link_patient_account),
        )
        .route("/groups", web::post().to(create_group))
        .route("/groups/{id}", web::get().to(get_group))
        .route("/groups/{id}/members", web::post().to(add_member))
        .route(
            "/groups/{id}/members/{user_id}",
            web::delete().to(remove_member),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FacilityBody {
    name: Name,
    /// Staff log in with a client certificate and a password (default), or
    /// with a password only.
    #[serde(default = "yes")]
    require_client_cert: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    login: String,
    display_name: Name,
    kind: UserKind,
    #[serde(default)]
    profession: Option<Profession>,
    #[serde(default)]
    facility_id: Option<FacilityId>,
    #[serde(default)]
    facility_role: Option<FacilityRole>,
    password: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatientBody {
    facility_id: FacilityId,
    name: Name,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupBody {
    kind: GroupKind,
    name: Name,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberBody {
    user_id: UserId,
    #[serde(default = "default_role")]
    role: GroupRole,
}

fn default_role() -> GroupRole {
    GroupRole::Member
}

fn id_from_path(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such item, or you may not see it"))
}

async fn create_facility(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<FacilityBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let f = state
        .service
        .create_facility(Caller::User(&who.0), b.name, b.require_client_cert)
        .await?;
    Ok(HttpResponse::Created().json(f))
}

/// A policy change: every field optional; `notification_hours: null` means
/// any time.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyBody {
    #[serde(default)]
    patient_group_creators: Option<PatientGroupCreators>,
    #[serde(default)]
    staff_join_other_facilities: Option<CrossFacility>,
    #[serde(default)]
    outside_invitations: Option<CrossFacility>,
    #[serde(default)]
    family_timeline: Option<bool>,
    #[serde(default)]
    require_client_cert: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    notification_hours: Option<Option<NotificationHours>>,
}

/// Tells a field given as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

async fn get_facility(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let f = state
        .service
        .facility(Caller::User(&who.0), FacilityId(id))
        .await?;
    Ok(HttpResponse::Ok().json(f))
}

async fn set_facility_policy(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<PolicyBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let b = body.into_inner();
    let change = PolicyChange {
        patient_group_creators: b.patient_group_creators,
        staff_join_other_facilities: b.staff_join_other_facilities,
        outside_invitations: b.outside_invitations,
        family_timeline: b.family_timeline,
        require_client_cert: b.require_client_cert,
        notification_hours: b.notification_hours,
    };
    let f = state
        .service
        .set_facility_policy(Caller::User(&who.0), FacilityId(id), change)
        .await?;
    Ok(HttpResponse::Ok().json(f))
}

async fn facility_users(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let users = state
        .service
        .facility_users(Caller::User(&who.0), FacilityId(id))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": users })))
}

/// What a facility admin may change of an account; anything else (`kind`,
/// `facility_id`, `status`, `login`…) is refused with 400.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatchBody {
    #[serde(default)]
    facility_role: Option<FacilityRole>,
    #[serde(default)]
    profession: Option<Profession>,
    #[serde(default)]
    display_name: Option<Name>,
}

async fn edit_user(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<UserPatchBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let b = body.into_inner();
    let change = UserChange {
        facility_role: b.facility_role,
        profession: b.profession,
        display_name: b.display_name,
    };
    let u = state
        .service
        .edit_user(Caller::User(&who.0), UserId(id), change)
        .await?;
    Ok(HttpResponse::Ok().json(u))
}

async fn user_groups(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let groups = state
        .service
        .user_groups(Caller::User(&who.0), UserId(id))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "groups": groups })))
}

async fn list_facilities(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let facilities = state.service.facilities(Caller::User(&who.0)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "facilities": facilities })))
}

async fn create_user(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<UserBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewAccount {
        login: b.login,
        display_name: b.display_name,
        kind: b.kind,
        profession: b.profession,
        facility_id: b.facility_id,
        facility_role: b.facility_role,
        password: b.password,
    };
    let u = state.service.create_user(Caller::User(&who.0), new).await?;
    Ok(HttpResponse::Created().json(u))
}

async fn set_status(
    state: web::Data<AppState>,
    who: Authenticated,
    id: &str,
    status: UserStatus,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(id)?;
    state
        .service
        .set_user_status(Caller::User(&who.0), UserId(id), status)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn disable_user(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(state, who, &path, UserStatus::Disabled).await
}

async fn enable_user(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_status(state, who, &path, UserStatus::Active).await
}

async fn create_patient(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<PatientBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let g = state
        .service
        .create_patient(Caller::User(&who.0), b.facility_id, b.name, None)
        .await?;
    Ok(HttpResponse::Created().json(g))
}

async fn create_group(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let g = state
        .service
        .create_group(Caller::User(&who.0), b.kind, b.name, None)
        .await?;
    Ok(HttpResponse::Created().json(g))
}

async fn get_group(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    Ok(HttpResponse::Ok().json(
        state
            .service
            .group(Caller::User(&who.0), GroupId(id))
            .await?,
    ))
}

async fn add_member(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<MemberBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let b = body.into_inner();
    let m = state
        .service
        .add_member(Caller::User(&who.0), GroupId(id), b.user_id, b.role)
        .await?;
    Ok(HttpResponse::Created().json(m))
}

async fn remove_member(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (g, u) = path.into_inner();
    let (g, u) = (id_from_path(&g)?, id_from_path(&u)?);
    state
        .service
        .remove_member(Caller::User(&who.0), GroupId(g), UserId(u))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatientAccountBody {
    user_id: UserId,
}

async fn link_patient_account(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
    body: web::Json<PatientAccountBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id_from_path(&path)?;
    let m = state
        .service
        .link_patient_account(Caller::User(&who.0), PatientId(id), body.user_id)
        .await?;
    Ok(HttpResponse::Ok().json(m))
}
