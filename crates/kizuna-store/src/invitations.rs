//! Invitations into patient groups and the approvals they wait for.
//!
//! Every change to one invitation starts with [`lock`], a no-op write to its
//! row: it serializes concurrent decisions on both backends (PostgreSQL's row
//! lock, SQLite's write lock), so "was that the last approval?" is answered
//! once. Creating, binding or reopening one starts with [`lock_group`] for
//! the same reason: one pending invitation per person and group, which the
//! unique index `invitations_one_pending` also enforces (a write that would
//! break it answers `Conflict("already invited")`).

use crate::db::DbConn;
use crate::error::StoreError;
use crate::models::{ApprovalRow, InvitationRow};
use crate::schema::{care_groups, invitation_approvals, invitations, patients};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use kizuna_domain::*;

/// What a write that would give one person two pending invitations into one
/// group answers (the unique index `invitations_one_pending`).
pub const ALREADY_INVITED: &str = "already invited";

/// Maps a violation of `invitations_one_pending` to
/// `Conflict(ALREADY_INVITED)`; any other error as usual. PostgreSQL names
/// the index; SQLite names its columns.
fn one_pending(e: DieselError) -> StoreError {
    if let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &e {
        let message = info.message();
        if info.constraint_name() == Some("invitations_one_pending")
            || message.contains("invitations_one_pending")
            || message.contains("invitations.invitee_user_id")
        {
            return StoreError::Conflict(ALREADY_INVITED);
        }
    }
    e.into()
}

/// A new invitation and the approvals it needs.
#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    /// The patient group.
    pub group_id: GroupId,
    /// Team or family timeline.
    pub scope: InvitationScope,
    /// The invitee's kind (for a code: the kind it is for).
    pub invitee_kind: UserKind,
    /// The invitee, when they have an account.
    pub invitee_user_id: Option<UserId>,
    /// SHA-256 (hex) of a one-time code.
    pub code_hash: Option<&'a str>,
    /// Who invites.
    pub invited_by: UserId,
    /// Unix ms (created and sent).
    pub now: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// The approvals, with the facility whose admins decide (facility roles).
    pub approvals: &'a [(ApprovalRole, Option<FacilityId>)],
}

/// An invitation with its approvals.
#[derive(Debug, Clone)]
pub struct InvitationWithApprovals {
    /// The invitation.
    pub invitation: InvitationRow,
    /// Its approvals, by role.
    pub approvals: Vec<ApprovalRow>,
}

/// Takes the write lock of a group's row until the transaction ends (see the
/// module documentation). `NotFound` when there is no such group.
pub fn lock_group(conn: &mut DbConn, group: GroupId) -> Result<(), StoreError> {
    let n = diesel::update(care_groups::table.find(group.get()))
        .set(care_groups::created_by.eq(care_groups::created_by))
        .execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Takes the write lock of an invitation's row until the transaction ends,
/// then reads it. `NotFound` when there is no such invitation.
pub fn lock(conn: &mut DbConn, id: i64) -> Result<InvitationRow, StoreError> {
    let n = diesel::update(invitations::table.find(id))
        .set(invitations::status.eq(invitations::status))
        .execute(conn)?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    get(conn, id)
}

fn insert_approvals(
    conn: &mut DbConn,
    invitation: i64,
    approvals: &[(ApprovalRole, Option<FacilityId>)],
) -> Result<(), StoreError> {
    for (role, facility) in approvals {
        diesel::insert_into(invitation_approvals::table)
            .values((
                invitation_approvals::invitation_id.eq(invitation),
                invitation_approvals::role.eq(role.as_str()),
                invitation_approvals::facility_id.eq(facility.map(FacilityId::get)),
                invitation_approvals::state.eq(ApprovalState::Pending.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Creates an invitation (status `pending`, sent once) with its approvals.
/// `Conflict(ALREADY_INVITED)` when the invitee already has a pending
/// invitation into the group (expired or not: mark an expired one first);
/// `Conflict` when the code hash is already in use.
pub fn create(
    conn: &mut DbConn,
    new: &NewInvitation<'_>,
) -> Result<InvitationWithApprovals, StoreError> {
    conn.transaction(|conn| {
        let invitation: InvitationRow = diesel::insert_into(invitations::table)
            .values((
                invitations::group_id.eq(new.group_id.get()),
                invitations::scope.eq(new.scope.as_str()),
                invitations::invitee_kind.eq(new.invitee_kind.as_str()),
                invitations::invitee_user_id.eq(new.invitee_user_id.map(UserId::get)),
                invitations::code_hash.eq(new.code_hash),
                invitations::invited_by.eq(new.invited_by.get()),
                invitations::status.eq(InvitationStatus::Pending.as_str()),
                invitations::created_at.eq(new.now),
                invitations::sent_at.eq(new.now),
                invitations::send_count.eq(1i64),
                invitations::expires_at.eq(new.expires_at),
            ))
            .returning(invitations::all_columns)
            .get_result(conn)
            .map_err(one_pending)?;
        insert_approvals(conn, invitation.id, new.approvals)?;
        let approvals = approvals(conn, invitation.id)?;
        Ok(InvitationWithApprovals {
            invitation,
            approvals,
        })
    })
}

/// An invitation by id.
pub fn get(conn: &mut DbConn, id: i64) -> Result<InvitationRow, StoreError> {
    Ok(invitations::table.find(id).get_result(conn)?)
}

/// An invitation by the SHA-256 (hex) of its code.
pub fn by_code_hash(conn: &mut DbConn, hash: &str) -> Result<Option<InvitationRow>, StoreError> {
    Ok(invitations::table
        .filter(invitations::code_hash.eq(hash))
        .get_result(conn)
        .optional()?)
}

/// An invitation's approvals, by role.
pub fn approvals(conn: &mut DbConn, id: i64) -> Result<Vec<ApprovalRow>, StoreError> {
    Ok(invitation_approvals::table
        .filter(invitation_approvals::invitation_id.eq(id))
        .order(invitation_approvals::role)
        .load(conn)?)
}

/// Attaches their approvals to invitations (one query).
pub fn with_approvals(
    conn: &mut DbConn,
    rows: Vec<InvitationRow>,
) -> Result<Vec<InvitationWithApprovals>, StoreError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let all: Vec<ApprovalRow> = invitation_approvals::table
        .filter(invitation_approvals::invitation_id.eq_any(&ids))
        .order((
            invitation_approvals::invitation_id,
            invitation_approvals::role,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|invitation| {
            let approvals = all
                .iter()
                .filter(|a| a.invitation_id == invitation.id)
                .cloned()
                .collect();
            InvitationWithApprovals {
                invitation,
                approvals,
            }
        })
        .collect())
}

/// A group's invitations, newest first.
pub fn of_group(conn: &mut DbConn, group: GroupId) -> Result<Vec<InvitationRow>, StoreError> {
    Ok(invitations::table
        .filter(invitations::group_id.eq(group.get()))
        .order(invitations::id.desc())
        .load(conn)?)
}

/// The pending invitations addressed to a user that have not expired by
/// `now`, newest first.
pub fn pending_for_invitee(
    conn: &mut DbConn,
    user: UserId,
    now: i64,
) -> Result<Vec<InvitationRow>, StoreError> {
    Ok(invitations::table
        .filter(invitations::invitee_user_id.eq(user.get()))
        .filter(invitations::status.eq(InvitationStatus::Pending.as_str()))
        .filter(invitations::expires_at.ge(now))
        .order(invitations::id.desc())
        .load(conn)?)
}

/// The pending invitation of a user into a group, if any (expired or not).
pub fn pending_of_user_in_group(
    conn: &mut DbConn,
    group: GroupId,
    user: UserId,
) -> Result<Option<InvitationRow>, StoreError> {
    Ok(invitations::table
        .filter(invitations::group_id.eq(group.get()))
        .filter(invitations::invitee_user_id.eq(user.get()))
        .filter(invitations::status.eq(InvitationStatus::Pending.as_str()))
        .order(invitations::id.desc())
        .first(conn)
        .optional()?)
}

/// Pending, unexpired invitations waiting for a facility's admins (roles
/// `inviting_facility` and `invitee_facility` naming the facility), with the
/// waiting approval, oldest first.
pub fn pending_approvals_for_facility(
    conn: &mut DbConn,
    facility: FacilityId,
    now: i64,
) -> Result<Vec<(InvitationRow, ApprovalRow)>, StoreError> {
    Ok(invitations::table
        .inner_join(invitation_approvals::table)
        .filter(invitation_approvals::facility_id.eq(facility.get()))
        .filter(invitation_approvals::role.eq_any([
            ApprovalRole::InvitingFacility.as_str(),
            ApprovalRole::InviteeFacility.as_str(),
        ]))
        .filter(invitation_approvals::state.eq(ApprovalState::Pending.as_str()))
        .filter(invitations::status.eq(InvitationStatus::Pending.as_str()))
        .filter(invitations::expires_at.ge(now))
        .order((invitations::id, invitation_approvals::role))
        .select((invitations::all_columns, invitation_approvals::all_columns))
        .load(conn)?)
}

/// Pending, unexpired invitations waiting for a patient's own approval: the
/// `patient` approvals of the groups of the patients whose account is `user`.
pub fn pending_approvals_for_patient(
    conn: &mut DbConn,
    user: UserId,
    now: i64,
) -> Result<Vec<(InvitationRow, ApprovalRow)>, StoreError> {
    let groups: Vec<i64> = care_groups::table
        .inner_join(patients::table.on(care_groups::patient_id.eq(patients::id.nullable())))
        .filter(patients::user_id.eq(user.get()))
        .select(care_groups::id)
        .load(conn)?;
    Ok(invitations::table
        .inner_join(invitation_approvals::table)
        .filter(invitations::group_id.eq_any(&groups))
        .filter(invitation_approvals::role.eq(ApprovalRole::Patient.as_str()))
        .filter(invitation_approvals::state.eq(ApprovalState::Pending.as_str()))
        .filter(invitations::status.eq(InvitationStatus::Pending.as_str()))
        .filter(invitations::expires_at.ge(now))
        .order(invitations::id)
        .select((invitations::all_columns, invitation_approvals::all_columns))
        .load(conn)?)
}

/// Records an approver's decision. `NotFound` when the invitation has no
/// such approval; `Conflict` when it was already decided.
pub fn decide_approval(
    conn: &mut DbConn,
    id: i64,
    role: ApprovalRole,
    state: ApprovalState,
    by: UserId,
    at: i64,
) -> Result<ApprovalRow, StoreError> {
    conn.transaction(|conn| {
        let row: ApprovalRow = invitation_approvals::table
            .find((id, role.as_str()))
            .get_result(conn)?;
        if row.state != ApprovalState::Pending.as_str() {
            return Err(StoreError::Conflict("approval already decided"));
        }
        Ok(
            diesel::update(invitation_approvals::table.find((id, role.as_str())))
                .set((
                    invitation_approvals::state.eq(state.as_str()),
                    invitation_approvals::decided_by.eq(Some(by.get())),
                    invitation_approvals::decided_at.eq(Some(at)),
                ))
                .returning(invitation_approvals::all_columns)
                .get_result(conn)?,
        )
    })
}

/// Sets an invitation's status; any status but `pending` also records when
/// it closed (`at`), `pending` clears it.
pub fn set_status(
    conn: &mut DbConn,
    id: i64,
    status: InvitationStatus,
    at: i64,
) -> Result<InvitationRow, StoreError> {
    let closed_at = (status != InvitationStatus::Pending).then_some(at);
    Ok(diesel::update(invitations::table.find(id))
        .set((
            invitations::status.eq(status.as_str()),
            invitations::closed_at.eq(closed_at),
        ))
        .returning(invitations::all_columns)
        .get_result(conn)?)
}

/// Records that the invitee accepted.
pub fn set_accepted(conn: &mut DbConn, id: i64, at: i64) -> Result<InvitationRow, StoreError> {
    Ok(diesel::update(invitations::table.find(id))
        .set(invitations::accepted_at.eq(Some(at)))
        .returning(invitations::all_columns)
        .get_result(conn)?)
}

/// Sends an invitation again: `sent_at` now, one more send, a new expiry,
/// status `pending` again (an expired invitation is renewed). A new code hash
/// replaces the old one when given (the old code stops working).
/// `Conflict(ALREADY_INVITED)` when reopening it would give the invitee a
/// second pending invitation into the group.
pub fn resend(
    conn: &mut DbConn,
    id: i64,
    now: i64,
    expires_at: i64,
    new_code_hash: Option<&str>,
) -> Result<InvitationRow, StoreError> {
    conn.transaction(|conn| {
        if let Some(hash) = new_code_hash {
            diesel::update(invitations::table.find(id))
                .set(invitations::code_hash.eq(Some(hash)))
                .execute(conn)?;
        }
        diesel::update(invitations::table.find(id))
            .set((
                invitations::sent_at.eq(now),
                invitations::send_count.eq(invitations::send_count + 1i64),
                invitations::expires_at.eq(expires_at),
                invitations::status.eq(InvitationStatus::Pending.as_str()),
                invitations::closed_at.eq(None::<i64>),
            ))
            .returning(invitations::all_columns)
            .get_result(conn)
            .map_err(one_pending)
    })
}

/// Binds the account that redeemed a code invitation and adds the approvals
/// computed for them. `Conflict` when the code was already redeemed;
/// `Conflict(ALREADY_INVITED)` when the account already has a pending
/// invitation into the group.
pub fn bind_invitee(
    conn: &mut DbConn,
    id: i64,
    user: UserId,
    needed: &[(ApprovalRole, Option<FacilityId>)],
) -> Result<InvitationWithApprovals, StoreError> {
    conn.transaction(|conn| {
        let n = diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::invitee_user_id.is_null()),
        )
        .set(invitations::invitee_user_id.eq(Some(user.get())))
        .execute(conn)
        .map_err(one_pending)?;
        if n == 0 {
            return Err(match get(conn, id) {
                Ok(_) => StoreError::Conflict("code already redeemed"),
                Err(e) => e,
            });
        }
        insert_approvals(conn, id, needed)?;
        Ok(InvitationWithApprovals {
            invitation: get(conn, id)?,
            approvals: approvals(conn, id)?,
        })
    })
}

/// Brings an invitation's approvals up to `needed` (a re-sent invitation
/// waits for what the policies ask today): adds the roles it lacks, and
/// re-opens (`pending`, undecided) a facility role whose facility changed
/// (the invitee moved). Roles no longer needed are left as they are.
pub fn refresh_approvals(
    conn: &mut DbConn,
    id: i64,
    needed: &[(ApprovalRole, Option<FacilityId>)],
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        let have = approvals(conn, id)?;
        let mut missing = Vec::new();
        for (role, facility) in needed {
            let facility = facility.map(FacilityId::get);
            match have.iter().find(|a| a.role == role.as_str()) {
                None => missing.push((*role, facility.map(FacilityId))),
                Some(a) if a.facility_id != facility => {
                    diesel::update(invitation_approvals::table.find((id, role.as_str())))
                        .set((
                            invitation_approvals::facility_id.eq(facility),
                            invitation_approvals::state.eq(ApprovalState::Pending.as_str()),
                            invitation_approvals::decided_by.eq(None::<i64>),
                            invitation_approvals::decided_at.eq(None::<i64>),
                        ))
                        .execute(conn)?;
                }
                Some(_) => {}
            }
        }
        insert_approvals(conn, id, &missing)
    })
}
