//! Writing audit entries from use cases. Failures to audit are errors: a read
//! of patient information that cannot be recorded does not happen.

use crate::auth::{Principal, RequestContext};
use crate::error::ServiceResult;
use crate::timeline::Authorized;
use kizuna_domain::TimelineKind;
use kizuna_store::DbConn;
use kizuna_store::audit::{self, AuditEntry};
use kizuna_store::models::{AuditRow, UserRow};

/// Fills in the request's address and certificate, then appends. When the
/// entry names an actor but not their facility, the actor is looked up (use
/// [`record_as`] when the actor's row is at hand).
pub(crate) fn record(
    conn: &mut DbConn,
    ctx: &RequestContext,
    entry: AuditEntry,
) -> ServiceResult<()> {
    record_returning(conn, ctx, entry).map(drop)
}

/// [`record`], returning the stored entry.
pub(crate) fn record_returning(
    conn: &mut DbConn,
    ctx: &RequestContext,
    mut entry: AuditEntry,
) -> ServiceResult<AuditRow> {
    if let (Some(actor), None) = (entry.actor_user_id, entry.actor_facility_id) {
        entry.actor_facility_id =
            kizuna_store::directory::user(conn, kizuna_domain::UserId(actor))?.facility_id;
    }
    append(conn, ctx, entry)
}

/// Records an entry by an actor whose row is already loaded: no lookup.
pub(crate) fn record_as(
    conn: &mut DbConn,
    ctx: &RequestContext,
    actor: &UserRow,
    mut entry: AuditEntry,
) -> ServiceResult<()> {
    entry.actor_user_id = Some(actor.id);
    entry.actor_facility_id = actor.facility_id;
    append(conn, ctx, entry).map(drop)
}

fn append(
    conn: &mut DbConn,
    ctx: &RequestContext,
    mut entry: AuditEntry,
) -> ServiceResult<AuditRow> {
    entry.remote_addr = ctx.remote_addr.clone();
    entry.cert_serial = ctx.peer.as_ref().map(|p| p.serial.clone());
    Ok(audit::append(conn, &entry)?)
}

/// What was written to a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimelineWrite {
    /// A new post.
    Post,
    /// An edit of a post (`target`: its seq).
    Edit { target: i64 },
    /// A deletion of a post (`target`: its seq).
    Delete { target: i64 },
}

/// Audits a write to a timeline, in the writer's transaction, from what the
/// authorization already loaded (no query but the append). Writes to a
/// community's consultation timeline are `consultation.*`: they carry no
/// facility and never appear in a facility's view of the trail, since their
/// actor is an anonymous author.
pub(crate) fn timeline_write(
    conn: &mut DbConn,
    p: &Principal,
    a: &Authorized,
    write: TimelineWrite,
    seq: i64,
) -> ServiceResult<()> {
    let consultation = a.ctx.timeline.kind()? == TimelineKind::Consultation;
    let (action, target) = match (consultation, write) {
        (false, TimelineWrite::Post) => ("timeline.post", None),
        (false, TimelineWrite::Edit { target }) => ("timeline.edit", Some(target)),
        (false, TimelineWrite::Delete { target }) => ("timeline.delete", Some(target)),
        (true, TimelineWrite::Post) => ("consultation.post", None),
        (true, TimelineWrite::Edit { target }) => ("consultation.edit", Some(target)),
        (true, TimelineWrite::Delete { target }) => ("consultation.delete", Some(target)),
    };
    let detail = match target {
        Some(t) => format!("seq={seq} target_seq={t}"),
        None => format!("seq={seq}"),
    };
    record_as(
        conn,
        &p.ctx,
        &a.user,
        AuditEntry {
            action,
            outcome: "ok",
            facility_id: if consultation {
                None
            } else {
                a.ctx.group.owner_facility_id
            },
            patient_id: a.ctx.group.patient_id,
            group_id: Some(a.ctx.group.id),
            timeline_id: Some(a.ctx.timeline.id),
            detail: Some(detail),
            ..Default::default()
        },
    )
}
