//! Liveness and readiness.

use crate::AppState;
use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use serde_json::json;

/// The process is up.
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can serve: the database answers. Also reports hub figures.
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.service.ready().await?;
    let hub = state.service.hub().stats();
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "connections": hub.connections,
        "subscriptions": hub.subscriptions,
    })))
}
