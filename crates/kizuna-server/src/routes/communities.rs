//! `/v1/communities/*`, `/v1/me/applications` and the consultation reveal
//! (`/v1/timelines/{id}/events/{seq}/reveal-author`). Handlers only parse;
//! the service authorizes and audits.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::{HttpRequest, HttpResponse, web};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::*;
use kizuna_service::communities::parse_query;
use std::collections::HashMap;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/communities", web::get().to(list))
        .route("/communities/{id}/applications", web::post().to(apply))
        .route(
            "/communities/{id}/applications",
            web::get().to(list_applications),
        )
        .route(
            "/communities/{id}/applications/{app_id}/approve",
            web::post().to(approve),
        )
        .route(
            "/communities/{id}/applications/{app_id}/deny",
            web::post().to(deny),
        )
        .route(
            "/communities/{id}/applications/{app_id}/withdraw",
            web::post().to(withdraw),
        )
        .route("/me/applications", web::get().to(mine))
        .route(
            "/timelines/{timeline_id}/events/{seq}/reveal-author",
            web::post().to(reveal_author),
        );
}

/// A positive id from a path segment; anything else names nothing.
fn id_from_path(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such item, or you may not see it"))
}

/// The query string's parameters (never echoed back in errors).
fn query_params(req: &HttpRequest) -> Result<HashMap<String, String>, ApiError> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| ApiError::new(ErrorCode::InvalidField, "the query string is malformed"))
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let params = query_params(&req)?;
    let q = parse_query(params.get("q").map(String::as_str))?;
    let communities = state.service.communities(&who.0, q).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "communities": communities })))
}

async fn apply(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupId(id_from_path(&path)?);
    let a = state.service.apply_to_community(&who.0, group).await?;
    Ok(HttpResponse::Created().json(a))
}

async fn list_applications(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let group = GroupId(id_from_path(&path)?);
    let status = match query_params(&req)?.get("status").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(s) => Some(s.parse::<ApplicationStatus>().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidField,
                "status must be pending, approved, denied, withdrawn or all",
            )
        })?),
    };
    let applications = state
        .service
        .community_applications(&who.0, group, status)
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "applications": applications })))
}

fn application_path(path: &(String, String)) -> Result<(GroupId, ApplicationId), ApiError> {
    Ok((
        GroupId(id_from_path(&path.0)?),
        ApplicationId(id_from_path(&path.1)?),
    ))
}

async fn decide(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let (group, id) = application_path(&path)?;
    let a = state
        .service
        .decide_application(&who.0, group, id, approve)
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

async fn approve(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    decide(state, who, path, true).await
}

async fn deny(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    decide(state, who, path, false).await
}

async fn withdraw(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group, id) = application_path(&path)?;
    let a = state
        .service
        .withdraw_application(&who.0, group, id)
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

async fn mine(state: web::Data<AppState>, who: Authenticated) -> Result<HttpResponse, ApiError> {
    let applications = state.service.my_applications(&who.0).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "applications": applications })))
}

async fn reveal_author(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let timeline = TimelineId(id_from_path(&path.0)?);
    let seq: Seq = id_from_path(&path.1)?;
    let author = state.service.reveal_author(&who.0, timeline, seq).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({
            "timeline_id": timeline,
            "seq": seq,
            "author": author,
        })))
}
