//! Login sessions and rotating refresh tokens. Only SHA-256 hashes of refresh
//! tokens are stored.

use crate::db::{DbConn, now_ms};
use crate::error::StoreError;
use crate::models::SessionRow;
use crate::schema::sessions;
use diesel::prelude::*;
use kizuna_domain::{SessionId, UserId};

/// Starts a session.
pub fn create_session(
    conn: &mut DbConn,
    user: UserId,
    refresh_hash: &str,
    cert_thumbprint: Option<&str>,
    expires_at: i64,
) -> Result<SessionRow, StoreError> {
    let now = now_ms();
    Ok(diesel::insert_into(sessions::table)
        .values((
            sessions::user_id.eq(user.get()),
            sessions::refresh_hash.eq(refresh_hash),
            sessions::cert_thumbprint.eq(cert_thumbprint),
            sessions::created_at.eq(now),
            sessions::refreshed_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .returning(sessions::all_columns)
        .get_result(conn)?)
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The token was current: it is replaced by the new one.
    Rotated(SessionRow),
    /// The token was the previous one: someone replayed it. The session is now
    /// revoked (both holders are logged out).
    Reused(SessionRow),
    /// The session is revoked or expired.
    Ended(SessionRow),
    /// No session knows this token.
    Unknown,
}

/// Rotates a refresh token: `presented` (hash) must be the session's current
/// one; it becomes `previous` and `new_hash` becomes current.
pub fn rotate_refresh(
    conn: &mut DbConn,
    presented: &str,
    new_hash: &str,
    new_expires_at: i64,
) -> Result<Rotation, StoreError> {
    let now = now_ms();
    conn.transaction(|conn| {
        // Write first (see events.rs): the update either rotates the current
        // token or touches nothing.
        let rotated: Option<SessionRow> = diesel::update(
            sessions::table
                .filter(sessions::refresh_hash.eq(presented))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now)),
        )
        .set((
            sessions::previous_refresh_hash.eq(Some(presented)),
            sessions::refresh_hash.eq(new_hash),
            sessions::refreshed_at.eq(now),
            sessions::expires_at.eq(new_expires_at),
        ))
        .returning(sessions::all_columns)
        .get_result(conn)
        .optional()?;
        if let Some(s) = rotated {
            return Ok(Rotation::Rotated(s));
        }
        if let Some(s) = sessions::table
            .filter(sessions::refresh_hash.eq(presented))
            .get_result::<SessionRow>(conn)
            .optional()?
        {
            return Ok(Rotation::Ended(s));
        }
        let reused: Option<SessionRow> = sessions::table
            .filter(sessions::previous_refresh_hash.eq(presented))
            .get_result(conn)
            .optional()?;
        match reused {
            Some(s) => {
                if s.revoked_at.is_none() {
                    diesel::update(sessions::table.find(s.id))
                        .set((
                            sessions::revoked_at.eq(Some(now)),
                            sessions::revoke_reason.eq(Some("refresh_reuse")),
                        ))
                        .execute(conn)?;
                }
                Ok(Rotation::Reused(s))
            }
            None => Ok(Rotation::Unknown),
        }
    })
}

/// A session by id.
pub fn session(conn: &mut DbConn, id: SessionId) -> Result<SessionRow, StoreError> {
    Ok(sessions::table.find(id.get()).get_result(conn)?)
}

/// Revokes one session (idempotent).
pub fn revoke_session(conn: &mut DbConn, id: SessionId, reason: &str) -> Result<(), StoreError> {
    diesel::update(
        sessions::table
            .find(id.get())
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(Some(now_ms())),
        sessions::revoke_reason.eq(Some(reason)),
    ))
    .execute(conn)?;
    Ok(())
}

/// Revokes every live session of a user; returns their ids.
pub fn revoke_user_sessions(
    conn: &mut DbConn,
    user: UserId,
    reason: &str,
) -> Result<Vec<SessionId>, StoreError> {
    let ids: Vec<i64> = diesel::update(
        sessions::table
            .filter(sessions::user_id.eq(user.get()))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(Some(now_ms())),
        sessions::revoke_reason.eq(Some(reason)),
    ))
    .returning(sessions::id)
    .get_results(conn)?;
    Ok(ids.into_iter().map(SessionId).collect())
}

/// Revokes every live session of a facility's accounts that is not bound to a
/// client certificate (the facility now requires one); returns their ids.
pub fn revoke_unbound_sessions_of_facility(
    conn: &mut DbConn,
    facility: kizuna_domain::FacilityId,
    reason: &str,
) -> Result<Vec<SessionId>, StoreError> {
    use crate::schema::users;
    let members = users::table
        .filter(users::facility_id.eq(facility.get()))
        .select(users::id);
    let ids: Vec<i64> = diesel::update(
        sessions::table
            .filter(sessions::user_id.eq_any(members))
            .filter(sessions::cert_thumbprint.is_null())
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(Some(now_ms())),
        sessions::revoke_reason.eq(Some(reason)),
    ))
    .returning(sessions::id)
    .get_results(conn)?;
    Ok(ids.into_iter().map(SessionId).collect())
}
