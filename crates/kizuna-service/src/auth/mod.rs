//! Login, refresh, logout and authentication of requests.
//!
//! A login creates a session row and returns a short-lived access token plus a
//! refresh token. The refresh token rotates on every use; presenting an old one
//! again is treated as theft and ends the session on every device holding it.
//! Every authenticated request re-reads the session and the user, so logout,
//! session revocation and account deactivation act at once.

mod jwt_crypto;
pub mod password;
pub mod tokens;

use crate::Service;
use crate::audit::{record, record_as};
use crate::error::{ServiceError, ServiceResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kizuna_domain::access::Actor;
use kizuna_domain::{SessionId, UserId, UserKind, UserStatus};
use kizuna_realtime::{CloseReason, Selector};
use kizuna_store::audit::AuditEntry;
use kizuna_store::{directory, sessions};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The client certificate presented on the connection, once verified by TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// RFC 8705 thumbprint: base64url SHA-256 of the leaf's DER.
    pub thumbprint: String,
    /// Serial, lowercase hex.
    pub serial: String,
}

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// Client address.
    pub remote_addr: Option<String>,
    /// The verified client certificate, when one was presented.
    pub peer: Option<PeerIdentity>,
}

/// An authenticated user, as seen by the use cases.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The login session.
    pub session_id: SessionId,
    /// The access-control view of the user at authentication time.
    pub actor: Actor,
    /// Where the request came from.
    pub ctx: RequestContext,
}

/// Who is calling an administrative use case.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// The `kizuna admin` command line, run by whoever holds the server's
    /// database credentials; not subject to the access function (it could
    /// edit the database directly) but audited as `via=cli`.
    Cli,
    /// An authenticated user; every action goes through the access function.
    User(&'a Principal),
}

/// Login input.
pub struct LoginRequest {
    /// Login name.
    pub login: String,
    /// Password.
    pub password: SecretString,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").finish_non_exhaustive()
    }
}

/// What login and refresh return.
#[derive(Clone, Serialize)]
pub struct Tokens {
    /// JWT access token (`Authorization: Bearer …`, and the WebSocket upgrade).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access token lifetime, seconds.
    pub expires_in: u64,
    /// Refresh token (opaque, single use).
    pub refresh_token: String,
    /// Refresh token lifetime, seconds.
    pub refresh_expires_in: u64,
    /// The session.
    pub session_id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The user's kind.
    pub user_kind: UserKind,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Login attempts per login name and per client address, each a token bucket
/// refilled per minute. Attempts beyond it are refused with `rate_limited`
/// before any password is checked.
pub(crate) struct LoginLimits {
    per_login: governor::DefaultKeyedRateLimiter<String>,
    per_addr: governor::DefaultKeyedRateLimiter<String>,
    /// One audit entry per login name per minute for refused attempts, so a
    /// flood of refusals does not become a flood of (serialized) audit writes.
    refusal_audit: governor::DefaultKeyedRateLimiter<String>,
}

impl LoginLimits {
    pub(crate) fn new(per_login: u32, per_addr: u32) -> LoginLimits {
        let quota = |n: u32| {
            governor::Quota::per_minute(
                std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN),
            )
        };
        LoginLimits {
            per_login: governor::RateLimiter::keyed(quota(per_login)),
            per_addr: governor::RateLimiter::keyed(quota(per_addr)),
            refusal_audit: governor::RateLimiter::keyed(quota(1)),
        }
    }

    /// Whether a refused attempt for this login should be audited now.
    fn audit_refusal(&self, login: &str) -> bool {
        if self.refusal_audit.len() > 100_000 {
            self.refusal_audit.retain_recent();
        }
        self.refusal_audit.check_key(&login.to_lowercase()).is_ok()
    }

    /// Takes one attempt from both buckets; false when either is empty.
    pub(crate) fn allow(&self, login: &str, addr: Option<&str>) -> bool {
        // Keep the key maps from growing without bound.
        if self.per_login.len() > 100_000 {
            self.per_login.retain_recent();
        }
        if self.per_addr.len() > 100_000 {
            self.per_addr.retain_recent();
        }
        let login_ok = self.per_login.check_key(&login.to_lowercase()).is_ok();
        let addr_ok = addr.is_none_or(|a| self.per_addr.check_key(&a.to_owned()).is_ok());
        login_ok && addr_ok
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_refresh_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh(&token);
    (token, hash)
}

fn hash_refresh(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A refused login of a known account: about the account's facility, so its
/// admins see it.
fn login_fail_entry(user: &kizuna_store::models::UserRow, reason: &str) -> AuditEntry {
    AuditEntry {
        facility_id: user.facility_id,
        ..fail_entry("auth.login", Some(user.id), reason)
    }
}

fn fail_entry(action: &'static str, subject: Option<i64>, reason: &str) -> AuditEntry {
    AuditEntry {
        action,
        outcome: "failed",
        subject_user_id: subject,
        detail: Some(format!("reason={reason}")),
        ..Default::default()
    }
}

impl Service {
    /// Checks login and password and starts a session.
    pub async fn login(&self, req: LoginRequest, ctx: RequestContext) -> ServiceResult<Tokens> {
        // Refused before any database work or password hashing.
        if !self
            .inner
            .limits
            .allow(&req.login, ctx.remote_addr.as_deref())
        {
            if self.inner.limits.audit_refusal(&req.login) {
                let ctx = ctx.clone();
                self.blocking(move |conn| {
                    record(conn, &ctx, fail_entry("auth.login", None, "rate_limited"))
                })
                .await?;
            }
            return Err(ServiceError::RateLimited);
        }
        let svc = self.clone();
        self.blocking(move |conn| {
            let password = req.password.expose_secret();
            let Some(user) = directory::user_by_login(conn, &req.login)? else {
                password::verify_dummy(password);
                record(conn, &ctx, fail_entry("auth.login", None, "unknown_login"))?;
                return Err(ServiceError::InvalidCredentials);
            };
            if !password::verify(password, &user.password_hash) {
                record(conn, &ctx, login_fail_entry(&user, "bad_password"))?;
                return Err(ServiceError::InvalidCredentials);
            }
            if user.status()? != UserStatus::Active {
                record(conn, &ctx, login_fail_entry(&user, "account_disabled"))?;
                return Err(ServiceError::AccountDisabled);
            }
            // The second factor: the device's certificate, checked in the TLS
            // handshake, must be one of this user's active certificates.
            match &ctx.peer {
                Some(peer) => {
                    let cert =
                        match crate::pki::check_presented(conn, &peer.serial, &peer.thumbprint) {
                            Ok(c) => c,
                            Err(e) => {
                                record(
                                    conn,
                                    &ctx,
                                    login_fail_entry(&user, "certificate_rejected"),
                                )?;
                                return Err(e);
                            }
                        };
                    if cert.user_id != user.id {
                        // Certificate of one person, password of another.
                        record(
                            conn,
                            &ctx,
                            login_fail_entry(&user, "certificate_of_another_user"),
                        )?;
                        return Err(ServiceError::InvalidCredentials);
                    }
                }
                None => {
                    let required = facility_requires_certificate(conn, &user)?;
                    if required {
                        record(conn, &ctx, login_fail_entry(&user, "certificate_required"))?;
                        return Err(ServiceError::CertificateRequired);
                    }
                }
            }
            let refresh_ttl = svc.inner.config.refresh_ttl_secs;
            let (refresh, refresh_hash) = new_refresh_token();
            let thumb = ctx.peer.as_ref().map(|p| p.thumbprint.as_str());
            let expires_at = kizuna_store::now_ms() + (refresh_ttl as i64) * 1000;
            // The session and its audit entry commit together.
            let session = kizuna_store::transaction(conn, |conn| {
                let session = sessions::create_session(
                    conn,
                    user.user_id(),
                    &refresh_hash,
                    thumb,
                    expires_at,
                )?;
                record_as(
                    conn,
                    &ctx,
                    &user,
                    AuditEntry {
                        action: "auth.login",
                        outcome: "ok",
                        facility_id: user.facility_id,
                        detail: Some(format!("session={}", session.id)),
                        ..Default::default()
                    },
                )?;
                Ok::<_, ServiceError>(session)
            })?;
            let (access, _) = svc
                .inner
                .tokens
                .issue(user.id, session.id, thumb, now_secs())
                .map_err(ServiceError::Internal)?;
            Ok(Tokens {
                access_token: access,
                token_type: "Bearer",
                expires_in: svc.inner.tokens.settings().access_ttl_secs,
                refresh_token: refresh,
                refresh_expires_in: refresh_ttl,
                session_id: SessionId(session.id),
                user_id: user.user_id(),
                user_kind: user.kind()?,
            })
        })
        .await
    }

    /// Exchanges a refresh token for new tokens (the old refresh token dies).
    pub async fn refresh(
        &self,
        refresh_token: SecretString,
        ctx: RequestContext,
    ) -> ServiceResult<Tokens> {
        let svc = self.clone();
        let (outcome, reused) = self
            .blocking(move |conn| {
                // One transaction: a deliberate refusal below returns Ok (and
                // commits its revocation and audit entry); any unexpected error
                // rolls the rotation back, so the client's retry with the same
                // refresh token is not mistaken for theft.
                kizuna_store::transaction(conn, |conn| {
                    let presented = hash_refresh(refresh_token.expose_secret());
                    let (new_refresh, new_hash) = new_refresh_token();
                    let refresh_ttl = svc.inner.config.refresh_ttl_secs;
                    let expires_at = kizuna_store::now_ms() + (refresh_ttl as i64) * 1000;
                    match sessions::rotate_refresh(conn, &presented, &new_hash, expires_at)? {
                        sessions::Rotation::Rotated(session) => {
                            let bound = session.cert_thumbprint.as_deref();
                            let user = directory::user(conn, UserId(session.user_id))?;
                            if user.status()? != UserStatus::Active {
                                return Ok((Err(ServiceError::AccountDisabled), None));
                            }
                            // The second factor is re-checked at every refresh: the
                            // connection's certificate must be the one the session is
                            // bound to (if any), active, and the session user's own;
                            // a session made without one ends once the facility
                            // requires it. Any refusal ends the session.
                            let refused: Option<(ServiceError, &str)> =
                                if !thumbprints_match(bound, ctx.peer.as_ref()) {
                                    Some((
                                        ServiceError::CertificateRejected(
                                            "the session is bound to another device's certificate",
                                        ),
                                        "certificate_mismatch",
                                    ))
                                } else {
                                    let e = match &ctx.peer {
                                        Some(peer) => match crate::pki::check_presented(
                                            conn,
                                            &peer.serial,
                                            &peer.thumbprint,
                                        ) {
                                            // Someone else's certificate never refreshes this session.
                                            Ok(cert) if cert.user_id != session.user_id => {
                                                Some(ServiceError::CertificateRejected(
                                                    "certificate belongs to another account",
                                                ))
                                            }
                                            Ok(_) => None,
                                            Err(e) => Some(e),
                                        },
                                        None => facility_requires_certificate(conn, &user)?
                                            .then_some(ServiceError::CertificateRequired),
                                    };
                                    e.map(|e| {
                                        let reason = e.code().as_str();
                                        (e, reason)
                                    })
                                };
                            if let Some((e, reason)) = refused {
                                sessions::revoke_session(
                                    conn,
                                    SessionId(session.id),
                                    "refresh_certificate_check",
                                )?;
                                record(
                                    conn,
                                    &ctx,
                                    fail_entry("auth.refresh", Some(session.user_id), reason),
                                )?;
                                return Ok((Err(e), Some(session.id)));
                            }
                            let (access, _) = svc
                                .inner
                                .tokens
                                .issue(user.id, session.id, bound, now_secs())
                                .map_err(ServiceError::Internal)?;
                            Ok((
                                Ok(Tokens {
                                    access_token: access,
                                    token_type: "Bearer",
                                    expires_in: svc.inner.tokens.settings().access_ttl_secs,
                                    refresh_token: new_refresh,
                                    refresh_expires_in: refresh_ttl,
                                    session_id: SessionId(session.id),
                                    user_id: user.user_id(),
                                    user_kind: user.kind()?,
                                }),
                                None,
                            ))
                        }
                        sessions::Rotation::Reused(session) => {
                            record(
                                conn,
                                &ctx,
                                fail_entry("auth.refresh", Some(session.user_id), "refresh_reuse"),
                            )?;
                            Ok((
                                Err(ServiceError::Unauthorized(
                                    "refresh token was already used; session ended",
                                )),
                                Some(session.id),
                            ))
                        }
                        sessions::Rotation::Ended(_) => {
                            Ok((Err(ServiceError::Unauthorized("session ended")), None))
                        }
                        sessions::Rotation::Unknown => Ok((
                            Err(ServiceError::Unauthorized("unknown refresh token")),
                            None,
                        )),
                    }
                })
            })
            .await?;
        if let Some(sid) = reused {
            self.close_connections(Selector::Session(SessionId(sid)), CloseReason::SessionEnded)
                .await;
        }
        outcome
    }

    /// Ends the caller's session and closes its live connections.
    pub async fn logout(&self, p: &Principal) -> ServiceResult<()> {
        let (sid, uid, ctx) = (p.session_id, p.user_id, p.ctx.clone());
        self.blocking(move |conn| {
            sessions::revoke_session(conn, sid, "logout")?;
            record(
                conn,
                &ctx,
                AuditEntry {
                    actor_user_id: Some(uid.get()),
                    action: "auth.logout",
                    outcome: "ok",
                    detail: Some(format!("session={sid}")),
                    ..Default::default()
                },
            )
        })
        .await?;
        self.close_connections(Selector::Session(sid), CloseReason::SessionEnded)
            .await;
        Ok(())
    }

    /// Authenticates a request: token signature and claims, the certificate
    /// binding, the session and the account, all checked now.
    pub async fn authenticate(
        &self,
        access_token: &str,
        ctx: RequestContext,
    ) -> ServiceResult<Principal> {
        let claims = self
            .inner
            .tokens
            .verify(access_token)
            .map_err(|e| match e {
                tokens::TokenError::Expired => ServiceError::TokenExpired,
                _ => ServiceError::Unauthorized("invalid access token"),
            })?;
        let bound = claims.cnf.as_ref().map(|c| c.x5t_s256.as_str());
        if bound.is_some() && !thumbprints_match(bound, ctx.peer.as_ref()) {
            return Err(ServiceError::CertificateRejected(
                "the token is bound to another device's certificate",
            ));
        }
        let user_id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ServiceError::Unauthorized("invalid access token"))?;
        let session_id = SessionId(claims.sid);
        self.blocking(move |conn| {
            let session = sessions::session(conn, session_id)
                .map_err(|_| ServiceError::Unauthorized("session ended"))?;
            if session.user_id != user_id
                || session.revoked_at.is_some()
                || session.expires_at <= kizuna_store::now_ms()
            {
                return Err(ServiceError::Unauthorized("session ended"));
            }
            if let Some(peer) = &ctx.peer {
                let cert = crate::pki::check_presented(conn, &peer.serial, &peer.thumbprint)?;
                if cert.user_id != user_id {
                    return Err(ServiceError::CertificateRejected(
                        "certificate belongs to another account",
                    ));
                }
            }
            let user = directory::user(conn, UserId(user_id))
                .map_err(|_| ServiceError::Unauthorized("session ended"))?;
            let actor = user.actor()?;
            if actor.status != UserStatus::Active {
                return Err(ServiceError::AccountDisabled);
            }
            Ok(Principal {
                user_id: UserId(user_id),
                session_id,
                actor,
                ctx,
            })
        })
        .await
    }
}

impl Service {
    /// Re-checks that an authenticated principal's session is live and its
    /// account active, and returns the timelines it may read now. Long-lived
    /// WebSockets call this on every heartbeat, so changes made elsewhere (a
    /// `kizuna admin` command, another node) take effect within one interval.
    pub async fn session_check(
        &self,
        p: &Principal,
    ) -> ServiceResult<std::collections::HashSet<kizuna_domain::TimelineId>> {
        let (sid, uid, peer) = (p.session_id, p.user_id, p.ctx.peer.clone());
        self.blocking(move |conn| {
            // The account first: disabling it also ends its sessions, and
            // "account disabled" is the more useful reason to give.
            let actor = directory::user(conn, uid)?.actor()?;
            if actor.status != UserStatus::Active {
                return Err(ServiceError::AccountDisabled);
            }
            let session = sessions::session(conn, sid)?;
            if session.revoked_at.is_some() || session.expires_at <= kizuna_store::now_ms() {
                return Err(ServiceError::Unauthorized("session ended"));
            }
            if let Some(peer) = &peer {
                crate::pki::check_presented(conn, &peer.serial, &peer.thumbprint)?;
            }
            crate::timeline::readable_timelines(conn, &actor)
        })
        .await
    }
}

/// Whether the user's facility requires a client certificate at login.
fn facility_requires_certificate(
    conn: &mut kizuna_store::DbConn,
    user: &kizuna_store::models::UserRow,
) -> ServiceResult<bool> {
    Ok(match user.facility_id {
        Some(f) => directory::facility(conn, kizuna_domain::FacilityId(f))?.require_client_cert,
        None => false,
    })
}

/// Whether the certificate on the connection matches a binding. No binding
/// matches anything; a binding needs a certificate with the same thumbprint,
/// compared in constant time.
pub fn thumbprints_match(bound: Option<&str>, peer: Option<&PeerIdentity>) -> bool {
    match (bound, peer) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(b), Some(p)) => {
            b.len() == p.thumbprint.len() && bool::from(b.as_bytes().ct_eq(p.thumbprint.as_bytes()))
        }
    }
}
