//! `GET /v1/ws`: the WebSocket endpoint. The upgrade is authenticated like any
//! REST call (bearer token, certificate binding, session, account) and checked
//! against the `Origin` allow-list; then one task per socket runs
//! [`socket::Socket::run`], a single `select!` over client frames, hub
//! deliveries, and the heartbeat.

mod socket;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{bearer, request_context};
use actix_web::{HttpRequest, HttpResponse, web};
use kizuna_domain::UserId;
use kizuna_domain::protocol::{ErrorCode, MAX_FRAME_BYTES};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Open sockets per user, to bound what one account (or one stolen token) can
/// hold open.
#[derive(Debug, Clone, Default)]
pub(crate) struct SocketCounter {
    /// user → open sockets. A plain mutex: touched once per upgrade and once
    /// per close, never held across an await.
    open: Arc<Mutex<HashMap<UserId, usize>>>,
}

/// Releases one socket slot when dropped.
#[derive(Debug)]
pub(crate) struct SocketSlot {
    counter: SocketCounter,
    user: UserId,
}

impl SocketCounter {
    fn acquire(&self, user: UserId, limit: usize) -> Option<SocketSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(user).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counter: self.clone(),
            user,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

fn check_origin(req: &HttpRequest, allowed: &[String]) -> Result<(), ApiError> {
    match req.headers().get(actix_web::http::header::ORIGIN) {
        None => Ok(()),
        Some(v) => {
            let origin = v.to_str().unwrap_or("");
            if allowed.iter().any(|a| a == origin) {
                Ok(())
            } else {
                Err(ApiError::new(
                    ErrorCode::OriginNotAllowed,
                    "this Origin may not open a WebSocket",
                ))
            }
        }
    }
}

/// The upgrade handler.
pub(crate) async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &state.settings.allowed_origins)?;
    let ctx = request_context(&req)?;
    let token = bearer(&req)?;
    let principal = state.service.authenticate(token, ctx).await?;
    let slot = state
        .sockets
        .acquire(principal.user_id, state.settings.max_sockets_per_user)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::RateLimited,
                "too many open WebSockets for this account",
            )
        })?;
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| ApiError::new(ErrorCode::BadFrame, "expected a WebSocket upgrade request"))?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let socket = socket::Socket::new(
        state.service.clone(),
        principal,
        session,
        state.settings.clone(),
    );
    actix_web::rt::spawn(async move {
        // Held for the socket's lifetime.
        let _slot = slot;
        socket.run(stream).await;
    });
    Ok(response)
}
