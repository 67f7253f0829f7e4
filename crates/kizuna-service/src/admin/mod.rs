//! Administration: facilities, accounts, patients (with their patient groups),
//! free groups and communities, membership, account deactivation. Callers are
//! users (checked by the access function) or the CLI (see [`Caller::Cli`]).
//! Every action is audited.

mod accounts;
mod audit_trail;
mod facilities;
mod groups;
mod views;

pub use accounts::UserChange;
pub use audit_trail::{
    AuditExport, AuditFilter, AuditPage, AuditRow, MAX_AUDIT_PAGE, PatientAccess, PatientAccessView,
};
pub use facilities::PolicyChange;
pub(crate) use groups::facts;
pub(crate) use groups::{invitee_facts, patient_joined};
pub use views::{
    FacilityView, GroupView, MemberView, NewAccount, TimelineView, UserGroupView, UserView,
};
use views::{group_view, user_view};

use crate::Service;
use crate::audit::record;
use crate::auth::{Caller, RequestContext, password};
use crate::error::{ServiceError, ServiceResult};
use kizuna_domain::access::{
    Action, AdminOp, Decision, GroupFacts, Invitee, MemberChange, decide, may_join,
    required_approvals, visibility_for,
};
use kizuna_domain::text::Name;
use kizuna_domain::*;
use kizuna_realtime::{CloseReason, Selector};
use kizuna_store::audit::AuditEntry;
use kizuna_store::directory::{self, GroupWithTimelines, NewUser};
use kizuna_store::models::{GroupRow, UserRow};
use kizuna_store::sessions;
use kizuna_store::{DbConn, transaction};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

fn invalid(msg: &str) -> ServiceError {
    ServiceError::Invalid(msg.to_owned())
}

/// Checks a login name's shape (it appears in audit exports, so no control
/// characters or separators).
pub fn check_login(login: &str) -> ServiceResult<()> {
    let ok_len = (3..=64).contains(&login.len());
    let ok_chars = login
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(invalid(
            "login must be 3 to 64 characters of a-z, A-Z, 0-9, '.', '_', '-', '@'",
        ))
    }
}

/// The actor behind a caller, freshly loaded, and their user id for the audit.
fn caller_actor(
    conn: &mut DbConn,
    caller: &CallerInfo,
) -> ServiceResult<Option<kizuna_domain::access::Actor>> {
    match caller.user {
        Some(uid) => Ok(Some(directory::user(conn, uid)?.actor()?)),
        None => Ok(None),
    }
}

/// What the blocking closures need of a caller (owned, `Send`).
#[derive(Debug, Clone)]
pub(crate) struct CallerInfo {
    pub(crate) user: Option<UserId>,
    pub(crate) ctx: RequestContext,
}

impl From<Caller<'_>> for CallerInfo {
    fn from(c: Caller<'_>) -> Self {
        match c {
            Caller::Cli => CallerInfo {
                user: None,
                ctx: RequestContext::default(),
            },
            Caller::User(p) => CallerInfo {
                user: Some(p.user_id),
                ctx: p.ctx.clone(),
            },
        }
    }
}

/// Whether the caller may do `action` (the CLI always may), without auditing.
pub(crate) fn caller_decision(
    conn: &mut DbConn,
    caller: &CallerInfo,
    action: Action,
) -> ServiceResult<bool> {
    Ok(match caller_actor(conn, caller)? {
        None => true,
        Some(actor) => decide(&actor, &action).is_allowed(),
    })
}

pub(crate) fn allow(conn: &mut DbConn, caller: &CallerInfo, action: Action) -> ServiceResult<()> {
    match caller_actor(conn, caller)? {
        None => Ok(()),
        Some(actor) => match decide(&actor, &action) {
            Decision::Allow => Ok(()),
            Decision::Deny(d) => Err(d.into()),
        },
    }
}

pub(crate) fn audit(
    conn: &mut DbConn,
    caller: &CallerInfo,
    mut entry: AuditEntry,
) -> ServiceResult<()> {
    entry.actor_user_id = caller.user.map(UserId::get);
    if caller.user.is_none() {
        entry.detail = Some(match entry.detail.take() {
            Some(d) => format!("via=cli {d}"),
            None => "via=cli".into(),
        });
    }
    record(conn, &caller.ctx, entry)
}

/// Audits a refused administrative action, then returns the refusal.
pub(crate) fn denied<T>(
    conn: &mut DbConn,
    caller: &CallerInfo,
    action: &'static str,
    e: ServiceError,
) -> ServiceResult<T> {
    if matches!(e, ServiceError::Forbidden(_) | ServiceError::NotFound) && caller.user.is_some() {
        audit(
            conn,
            caller,
            AuditEntry {
                action,
                outcome: "denied",
                detail: Some(format!("code={}", e.code().as_str())),
                ..Default::default()
            },
        )?;
    }
    Err(e)
}

/// Whether the caller is a user of a facility other than `target` (an
/// operator, or the CLI, is not).
pub(crate) fn other_facility(
    conn: &mut DbConn,
    caller: &CallerInfo,
    target: Option<i64>,
) -> ServiceResult<bool> {
    Ok(match caller_actor(conn, caller)? {
        Some(a) if a.kind != UserKind::Operator => a.facility_id.map(FacilityId::get) != target,
        _ => false,
    })
}

/// Asks the access function about an administrative action within one
/// facility (`None`: an account with no facility). A refusal is audited and
/// answered with the access function's answer (`forbidden`) to someone of
/// that facility, who knows it exists, and with `not_found` to anyone else,
/// exactly as for an id that does not exist.
pub(crate) fn allow_in_facility(
    conn: &mut DbConn,
    caller: &CallerInfo,
    facility: Option<i64>,
    op: AdminOp,
    action: &'static str,
) -> ServiceResult<()> {
    match allow(conn, caller, Action::Admin(op)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = if other_facility(conn, caller, facility)? {
                ServiceError::NotFound
            } else {
                e
            };
            denied(conn, caller, action, e)
        }
    }
}
