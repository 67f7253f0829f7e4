//! Timeline use cases: posting, editing, deleting, 了解, read markers,
//! history, catch-up and the list of one's timelines.
//!
//! Every operation first loads the caller's current account and the timeline's
//! group and membership, and asks `kizuna_domain::access::decide`. Writes are
//! committed before anything is published: the caller's `ok` and other
//! clients' `event` frames both come after the commit.

mod commit;
mod read;
mod write;

pub(crate) use commit::{PostJob, QUEUE as COMMIT_QUEUE, run as run_committer};
pub use read::CatchUp;
pub use write::Stored;

use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use kizuna_domain::access::{Action, Decision, GroupFacts, TimelineOp, decide};
use kizuna_domain::protocol::Event;
use kizuna_domain::{FacilityId, TimelineId, TimelineKind, UserId};
use kizuna_store::DbConn;
use kizuna_store::directory::{self, TimelineContext};
use kizuna_store::models::UserRow;

/// What an authorized timeline operation works with.
pub(crate) struct Authorized {
    pub(crate) user: UserRow,
    pub(crate) ctx: TimelineContext,
}

impl Authorized {
    pub(crate) fn is_patient_group(&self) -> bool {
        self.ctx.group.patient_id.is_some()
    }

    /// Whether the timeline is a community's consultation tab, whose events
    /// never name their author.
    pub(crate) fn is_anonymous(&self) -> ServiceResult<bool> {
        Ok(self.ctx.timeline.kind()? == TimelineKind::Consultation)
    }
}

/// An event as sent from a timeline: anonymized when the timeline is
/// anonymous (the same for every recipient, the author included).
pub(crate) fn present(event: Event, anonymous: bool) -> Event {
    if anonymous { event.anonymized() } else { event }
}

/// Loads the facts and asks the access function. `author` is the author of the
/// targeted post, for edit and delete.
pub(crate) fn authorize(
    conn: &mut DbConn,
    p: &Principal,
    timeline: TimelineId,
    op: TimelineOp,
    author: Option<UserId>,
) -> ServiceResult<Authorized> {
    let user = directory::user(conn, p.user_id)?;
    let actor = user.actor()?;
    let ctx =
        directory::timeline_context(conn, timeline, p.user_id)?.ok_or(ServiceError::NotFound)?;
    let facts = GroupFacts {
        kind: ctx.group.kind()?,
        owner_facility: ctx.group.owner_facility_id.map(FacilityId),
        membership: ctx
            .membership
            .as_ref()
            .map(|m| m.membership())
            .transpose()?,
        owner_policy: ctx.owner_policy,
    };
    let action = Action::Timeline {
        op,
        timeline: ctx.timeline.kind()?,
        group: facts,
        author,
    };
    match decide(&actor, &action) {
        Decision::Allow => Ok(Authorized { user, ctx }),
        Decision::Deny(d) => Err(d.into()),
    }
}

/// Whether the actor may read a timeline of a group they are a member of.
pub(crate) fn may_read(
    actor: &kizuna_domain::access::Actor,
    row: &directory::UserTimeline,
) -> ServiceResult<bool> {
    let facts = GroupFacts {
        kind: row.group.kind()?,
        owner_facility: row.group.owner_facility_id.map(FacilityId),
        membership: Some(row.membership.membership()?),
        owner_policy: row.owner_policy,
    };
    let action = Action::Timeline {
        op: TimelineOp::Read,
        timeline: row.timeline.kind()?,
        group: facts,
        author: None,
    };
    Ok(decide(actor, &action) == Decision::Allow)
}

/// Every timeline the actor may read now (one query plus the access function
/// per row).
pub(crate) fn readable_timelines(
    conn: &mut DbConn,
    actor: &kizuna_domain::access::Actor,
) -> ServiceResult<std::collections::HashSet<TimelineId>> {
    let mut out = std::collections::HashSet::new();
    for row in directory::timelines_of_user(conn, actor.user_id)? {
        if may_read(actor, &row)? {
            out.insert(TimelineId(row.timeline.id));
        }
    }
    Ok(out)
}
