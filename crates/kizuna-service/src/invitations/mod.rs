//! Invitations into patient groups (ADR 0003, "Invitations"): a team member
//! invites an existing account, or someone without one by a one-time code;
//! the invitee accepts or declines; facility admins and the patient approve
//! where the policies ask for it. The invitation becomes `joined` — the
//! membership is created — in the same transaction as the last approval or
//! the acceptance, whichever comes last.
//!
//! Every decision goes through `kizuna_domain::access::decide` with facts
//! loaded from the store. Someone who may not learn an invitation exists gets
//! `not_found`, exactly as for an id that does not exist; someone who can see
//! it (a team member, the invitee, an approver) but may not do this gets
//! `forbidden`. Every change is audited with ids only.
//!
//! Files: this one (views and shared steps), `invite.rs`, `list.rs`,
//! `respond.rs` (accept, decline, approve, refuse, resend, cancel),
//! `redeem.rs` (codes).

mod invite;
mod list;
mod redeem;
mod respond;

pub use redeem::{RedeemAccount, Redeemed};

use crate::Service;
use crate::admin::{CallerInfo, allow, audit, facts, invitee_facts, patient_joined};
use crate::auth::{Caller, Principal};
use crate::error::{ServiceError, ServiceResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kizuna_domain::access::{
    Action, Actor, AdminOp, GroupFacts, Invitee, decide, required_approvals, visibility_for,
};
use kizuna_domain::*;
use kizuna_store::audit::AuditEntry;
use kizuna_store::directory;
use kizuna_store::invitations::{self as store, InvitationWithApprovals, NewInvitation};
use kizuna_store::models::{ApprovalRow, GroupRow, InvitationRow, UserRow};
use kizuna_store::{DbConn, StoreError, now_ms, transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long an invitation stays open after it was last sent.
pub const VALIDITY_MS: i64 = 14 * 24 * 3600 * 1000;

/// Whom to invite.
#[derive(Debug, Clone, Copy)]
pub enum InviteTarget {
    /// An existing account. `scope` defaults from the account's kind
    /// (staff: team, family: family).
    User {
        /// The account.
        user_id: UserId,
        /// Team or family timeline.
        scope: Option<InvitationScope>,
    },
    /// Someone without an account yet, by a one-time code for a staff or a
    /// family account.
    Code {
        /// `Staff` or `Family`.
        kind: UserKind,
        /// Team or family timeline.
        scope: Option<InvitationScope>,
    },
}

/// One approval of an invitation.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    /// Whose approval.
    pub role: ApprovalRole,
    /// Pending, approved or refused.
    pub state: ApprovalState,
    /// For facility roles: the facility whose admins decide.
    pub facility_id: Option<FacilityId>,
    /// Who decided.
    pub decided_by: Option<UserId>,
    /// When (Unix ms).
    pub decided_at: Option<i64>,
}

/// An invitation as the API shows it.
#[derive(Clone, Serialize)]
pub struct InvitationView {
    /// Id.
    pub id: InvitationId,
    /// The patient group.
    pub group_id: GroupId,
    /// Team or family timeline.
    pub scope: InvitationScope,
    /// The invitee's kind (for a code: the kind it is for).
    pub invitee_kind: UserKind,
    /// The invitee; `null` for a code nobody has redeemed yet.
    pub invitee_user_id: Option<UserId>,
    /// Who invited.
    pub invited_by: UserId,
    /// Where it stands; `expired` as soon as it is past `expires_at`.
    pub status: InvitationStatus,
    /// Unix ms.
    pub created_at: i64,
    /// Last (re)sent, Unix ms.
    pub sent_at: i64,
    /// How many times sent.
    pub send_count: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// When the invitee accepted (Unix ms).
    pub accepted_at: Option<i64>,
    /// When it stopped being pending (Unix ms).
    pub closed_at: Option<i64>,
    /// The approvals it waits for.
    pub approvals: Vec<ApprovalView>,
    /// The one-time code: only in the answer that created (or re-sent) a code
    /// invitation, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl std::fmt::Debug for InvitationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitationView")
            .field("id", &self.id)
            .field("group_id", &self.group_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// What `GET /v1/me/invitations` shows.
#[derive(Debug, Clone, Serialize)]
pub struct MyInvitations {
    /// Pending invitations addressed to the caller.
    pub invitations: Vec<InvitationView>,
    /// Pending invitations waiting for the caller's approval as the patient.
    pub approvals: Vec<InvitationView>,
}

pub(crate) fn view(
    i: &InvitationWithApprovals,
    now: i64,
    code: Option<String>,
) -> ServiceResult<InvitationView> {
    let r = &i.invitation;
    let mut status = r.status()?;
    if status == InvitationStatus::Pending && now > r.expires_at {
        status = InvitationStatus::Expired;
    }
    let mut approvals = i
        .approvals
        .iter()
        .map(|a| {
            Ok(ApprovalView {
                role: a.role()?,
                state: a.state()?,
                facility_id: a.facility_id.map(FacilityId),
                decided_by: a.decided_by.map(UserId),
                decided_at: a.decided_at,
            })
        })
        .collect::<ServiceResult<Vec<_>>>()?;
    // The order of `Approvals::roles`: inviting facility, invitee facility, patient.
    approvals.sort_by_key(|a| ApprovalRole::ALL.iter().position(|r| *r == a.role));
    Ok(InvitationView {
        id: InvitationId(r.id),
        group_id: GroupId(r.group_id),
        scope: r.scope()?,
        invitee_kind: r.invitee_kind()?,
        invitee_user_id: r.invitee_user_id.map(UserId),
        invited_by: UserId(r.invited_by),
        status,
        created_at: r.created_at,
        sent_at: r.sent_at,
        send_count: r.send_count,
        expires_at: r.expires_at,
        accepted_at: r.accepted_at,
        closed_at: r.closed_at,
        approvals,
        code,
    })
}

fn views(
    conn: &mut DbConn,
    rows: Vec<InvitationRow>,
    now: i64,
) -> ServiceResult<Vec<InvitationView>> {
    store::with_approvals(conn, rows)?
        .iter()
        .map(|i| view(i, now, None))
        .collect()
}

fn one_view(conn: &mut DbConn, inv: InvitationRow, now: i64) -> ServiceResult<InvitationView> {
    let approvals = store::approvals(conn, inv.id)?;
    view(
        &InvitationWithApprovals {
            invitation: inv,
            approvals,
        },
        now,
        None,
    )
}

/// A new one-time code and the SHA-256 (hex) that is stored instead.
pub(crate) fn new_code() -> (String, String) {
    let bytes: [u8; 24] = rand::random();
    let code = URL_SAFE_NO_PAD.encode(bytes);
    let hash = code_hash(&code);
    (code, hash)
}

pub(crate) fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

fn default_scope(kind: UserKind) -> InvitationScope {
    match kind {
        UserKind::Family | UserKind::Patient => InvitationScope::Family,
        _ => InvitationScope::Team,
    }
}

/// The approvals an invitee needs, with the facility whose admins decide.
pub(crate) fn needed_approvals(
    conn: &mut DbConn,
    g: &GroupRow,
    gf: &GroupFacts,
    invitee: &Invitee,
) -> ServiceResult<Vec<(ApprovalRole, Option<FacilityId>)>> {
    let needed = required_approvals(gf, invitee, patient_joined(conn, g)?);
    Ok(needed
        .roles()
        .into_iter()
        .map(|role| {
            let facility = match role {
                ApprovalRole::InvitingFacility => gf.owner_facility,
                ApprovalRole::InviteeFacility => invitee.facility.map(|(f, _)| f),
                ApprovalRole::Patient => None,
            };
            (role, facility)
        })
        .collect())
}

/// The patient's own account of a patient group, if linked.
pub(crate) fn patient_account(conn: &mut DbConn, g: &GroupRow) -> ServiceResult<Option<UserId>> {
    Ok(match g.patient_id {
        Some(p) => directory::patient(conn, PatientId(p))?.user_id.map(UserId),
        None => None,
    })
}

/// An invitation with what every decision on it needs.
pub(crate) struct Loaded {
    pub(crate) inv: InvitationRow,
    pub(crate) group: GroupRow,
    pub(crate) facts: GroupFacts,
    pub(crate) actor: Actor,
}

/// Loads an invitation for the caller; `None` when there is no such id.
pub(crate) fn load(
    conn: &mut DbConn,
    caller: &CallerInfo,
    id: InvitationId,
) -> ServiceResult<Option<Loaded>> {
    let Some(uid) = caller.user else {
        return Err(ServiceError::Unauthorized("log in first"));
    };
    let inv = match store::get(conn, id.get()) {
        Ok(i) => i,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let group = directory::group(conn, GroupId(inv.group_id))?;
    let facts = facts(conn, caller, &group)?;
    let actor = directory::user(conn, uid)?.actor()?;
    Ok(Some(Loaded {
        inv,
        group,
        facts,
        actor,
    }))
}

impl Loaded {
    /// Whether the actor may learn this invitation exists: a team member of
    /// the group, the invitee, or one of its approvers. Decides between
    /// `forbidden` and `not_found` after a refusal.
    pub(crate) fn visible(&self, conn: &mut DbConn) -> ServiceResult<bool> {
        let a = &self.actor;
        if decide(a, &Action::ViewInvitations { group: self.facts }).is_allowed()
            || self.inv.invitee_user_id == Some(a.user_id.get())
        {
            return Ok(true);
        }
        for approval in store::approvals(conn, self.inv.id)? {
            if self.may_decide(conn, &approval)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether the actor may decide this approval.
    pub(crate) fn may_decide(&self, conn: &mut DbConn, a: &ApprovalRow) -> ServiceResult<bool> {
        let role = a.role()?;
        if !decide(&self.actor, &decide_approval_action(a, self.facts)?).is_allowed() {
            return Ok(false);
        }
        // The domain knows the actor is a patient in the group; only the
        // group's own patient approves.
        Ok(role != ApprovalRole::Patient
            || patient_account(conn, &self.group)? == Some(self.actor.user_id))
    }

    /// The audit entry about this invitation.
    pub(crate) fn entry(&self, action: &'static str, outcome: &'static str) -> AuditEntry {
        entry(&self.group, &self.inv, action, outcome)
    }
}

/// Deciding one stored approval. The `invitee_facility` role is decided by
/// the admins of the facility stored on the approval (the invitee's when it
/// was fixed), never the invitee's facility of the moment: who may decide,
/// who sees it waiting (`GET /v1/admin/facilities/{id}/approvals`) and who
/// may learn the invitation exists all agree.
pub(crate) fn decide_approval_action(a: &ApprovalRow, group: GroupFacts) -> ServiceResult<Action> {
    Ok(Action::DecideApproval {
        role: a.role()?,
        group,
        invitee_facility: a.facility_id.map(FacilityId),
    })
}

pub(crate) fn entry(
    g: &GroupRow,
    inv: &InvitationRow,
    action: &'static str,
    outcome: &'static str,
) -> AuditEntry {
    AuditEntry {
        action,
        outcome,
        facility_id: g.owner_facility_id,
        patient_id: g.patient_id,
        group_id: Some(g.id),
        subject_user_id: inv.invitee_user_id,
        detail: Some(format!("invitation={}", inv.id)),
        ..Default::default()
    }
}

/// Audits a refusal of an authenticated caller, then returns it.
pub(crate) fn refused<T>(
    conn: &mut DbConn,
    caller: &CallerInfo,
    action: &'static str,
    what: Option<(&GroupRow, Option<i64>)>,
    e: ServiceError,
) -> ServiceResult<T> {
    if matches!(e, ServiceError::Forbidden(_) | ServiceError::NotFound) && caller.user.is_some() {
        let detail = match what.and_then(|(_, i)| i) {
            Some(i) => format!("invitation={i} code={}", e.code().as_str()),
            None => format!("code={}", e.code().as_str()),
        };
        audit(
            conn,
            caller,
            AuditEntry {
                action,
                outcome: "denied",
                group_id: what.map(|(g, _)| g.id),
                facility_id: what.and_then(|(g, _)| g.owner_facility_id),
                detail: Some(detail),
                ..Default::default()
            },
        )?;
    }
    Err(e)
}

/// Marks an invitation `expired` (in its own transaction, so the change
/// stays whatever the caller's action then answers) once it is past its
/// expiry; returns the current row.
pub(crate) fn expire_if_due(
    conn: &mut DbConn,
    caller: &CallerInfo,
    g: &GroupRow,
    inv: InvitationRow,
    now: i64,
) -> ServiceResult<InvitationRow> {
    if inv.status()? != InvitationStatus::Pending || now <= inv.expires_at {
        return Ok(inv);
    }
    transaction(conn, |conn| {
        let inv = store::lock(conn, inv.id)?;
        if inv.status()? != InvitationStatus::Pending || now <= inv.expires_at {
            return Ok(inv);
        }
        let inv = store::set_status(conn, inv.id, InvitationStatus::Expired, inv.expires_at)?;
        audit(conn, caller, entry(g, &inv, "invitation.expire", "ok"))?;
        Ok(inv)
    })
}

/// Inside the caller's transaction (the invitation locked): when the invitee
/// has accepted and every approval is `approved`, adds the membership and
/// marks the invitation `joined`. Returns the current row.
pub(crate) fn join_if_complete(
    conn: &mut DbConn,
    caller: &CallerInfo,
    g: &GroupRow,
    inv: InvitationRow,
    now: i64,
) -> ServiceResult<InvitationRow> {
    let (Some(_), Some(user)) = (inv.accepted_at, inv.invitee_user_id) else {
        return Ok(inv);
    };
    let approvals = store::approvals(conn, inv.id)?;
    for a in &approvals {
        if a.state()? != ApprovalState::Approved {
            return Ok(inv);
        }
    }
    let user = UserId(user);
    let group = GroupId(g.id);
    // Facts may have changed since the invitation was sent: the invitee's
    // account may have been disabled (its row is locked here, so this
    // serializes with a deactivation), or a facility may have tightened its
    // policy, or the inviter may have left the team. Re-decide as at
    // sending; if the answer is now no, the invitation is cancelled instead.
    directory::lock_user(conn, user)?;
    let invitee_row = directory::user(conn, user)?;
    let inviter = CallerInfo {
        user: Some(UserId(inv.invited_by)),
        ctx: caller.ctx.clone(),
    };
    let action = Action::Invite {
        group: facts(conn, &inviter, g)?,
        scope: inv.scope()?,
        invitee: invitee_facts(conn, &invitee_row)?,
    };
    // `allow` also refuses a disabled inviter.
    let still_allowed =
        invitee_row.status()? == UserStatus::Active && allow(conn, &inviter, action).is_ok();
    if !still_allowed {
        let inv = store::set_status(conn, inv.id, InvitationStatus::Cancelled, now)?;
        let mut e = entry(g, &inv, "invitation.cancel", "ok");
        e.detail = Some(format!("invitation={} reason=no_longer_allowed", inv.id));
        audit(conn, caller, e)?;
        return Ok(inv);
    }
    let visibility = match inv.scope()? {
        InvitationScope::Family => Visibility::FamilyOnly,
        InvitationScope::Team => visibility_for(inv.invitee_kind()?, Visibility::All),
    };
    // Someone added directly in the meantime is simply a member already.
    if directory::membership(conn, group, user)?.is_none() {
        directory::add_member(conn, group, user, GroupRole::Member, visibility)?;
    }
    let inv = store::set_status(conn, inv.id, InvitationStatus::Joined, now)?;
    let mut e = entry(g, &inv, "invitation.join", "ok");
    e.detail = Some(format!("invitation={} visibility={visibility}", inv.id));
    audit(conn, caller, e)?;
    Ok(inv)
}
