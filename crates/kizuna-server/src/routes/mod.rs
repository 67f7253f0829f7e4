//! REST routes under `/v1/`, plus health checks.

mod admin;
mod audit;
mod auth;
mod certificates;
mod communities;
mod health;
mod invitations;

use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use kizuna_domain::protocol::ErrorCode;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::live))
        .route("/readyz", web::get().to(health::ready))
        .service(
            web::scope("/v1")
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/me", web::get().to(auth::me))
                .route("/timelines", web::get().to(auth::timelines))
                .route("/ws", web::get().to(crate::ws::upgrade))
                .route("/me/certificate/renew", web::post().to(certificates::renew))
                .route(
                    "/admin/users/{id}/certificates",
                    web::post().to(certificates::issue),
                )
                .route(
                    "/admin/users/{id}/certificates",
                    web::get().to(certificates::list),
                )
                .route(
                    "/admin/certificates/{id}/revoke",
                    web::post().to(certificates::revoke),
                )
                .route(
                    "/admin/facilities/{id}/revoke-ca",
                    web::post().to(certificates::revoke_facility_ca),
                )
                .configure(communities::routes)
                .configure(audit::configure)
                .configure(invitations::routes)
                .service(admin::scope()),
        );
}

pub(crate) async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such endpoint"))
}
