//! Reading: subscribe authorization and catch-up, history, acknowledgements
//! and the timeline list. Reads of a patient group's timelines are audited.

use super::{Authorized, authorize, present};
use crate::Service;
use crate::audit::{record, record_as};
use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use kizuna_domain::access::TimelineOp;
use kizuna_domain::protocol::{
    Acknowledgement, DEFAULT_HISTORY_LIMIT, Event, MAX_HISTORY_LIMIT, TimelineSummary, cmd,
};
use kizuna_domain::text::Name;
use kizuna_domain::{GroupId, Seq, TimelineId};
use kizuna_store::DbConn;
use kizuna_store::audit::AuditEntry;
use kizuna_store::models::{AuthorRow, EventRow};
use kizuna_store::{directory, events};

/// A page of catch-up events.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// Events after the requested `seq`, oldest first.
    pub events: Vec<Event>,
    /// True when more events follow this page.
    pub more: bool,
}

fn audit_read(conn: &mut DbConn, p: &Principal, a: &Authorized, via: &str) -> ServiceResult<()> {
    if !a.is_patient_group() {
        return Ok(());
    }
    // The actor's row is at hand: no lookup for their facility.
    record_as(
        conn,
        &p.ctx,
        &a.user,
        AuditEntry {
            action: "timeline.read",
            outcome: "ok",
            facility_id: a.ctx.group.owner_facility_id,
            patient_id: a.ctx.group.patient_id,
            group_id: Some(a.ctx.group.id),
            timeline_id: Some(a.ctx.timeline.id),
            detail: Some(format!("via={via}")),
            ..Default::default()
        },
    )
}

/// Authorizes a read; a refused read of an existing patient timeline is
/// audited too (who tried to look at which patient).
fn authorize_read(
    conn: &mut DbConn,
    p: &Principal,
    timeline: TimelineId,
    via: &str,
) -> ServiceResult<Authorized> {
    match authorize(conn, p, timeline, TimelineOp::Read, None) {
        Ok(a) => {
            audit_read(conn, p, &a, via)?;
            Ok(a)
        }
        Err(e @ (ServiceError::NotFound | ServiceError::Forbidden(_))) => {
            if let Some(ctx) = directory::timeline_context(conn, timeline, p.user_id)?
                && ctx.group.patient_id.is_some()
            {
                record(
                    conn,
                    &p.ctx,
                    AuditEntry {
                        actor_user_id: Some(p.user_id.get()),
                        action: "timeline.read",
                        outcome: "denied",
                        facility_id: ctx.group.owner_facility_id,
                        patient_id: ctx.group.patient_id,
                        group_id: Some(ctx.group.id),
                        timeline_id: Some(ctx.timeline.id),
                        detail: Some(format!("via={via} code={}", e.code().as_str())),
                        ..Default::default()
                    },
                )?;
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Rows as events for `viewer`. On an anonymous timeline every event is
/// anonymized; `mark_mine` (`history`) then flags the viewer's own posts.
fn to_events(
    conn: &mut DbConn,
    a: &Authorized,
    rows: &[(EventRow, AuthorRow)],
    viewer: &Principal,
    mark_mine: bool,
) -> ServiceResult<Vec<Event>> {
    let timeline = TimelineId(a.ctx.timeline.id);
    let anonymous = a.is_anonymous()?;
    let seqs: Vec<Seq> = rows
        .iter()
        .filter(|(e, _)| e.kind == "post")
        .map(|(e, _)| e.seq)
        .collect();
    let counts = events::ack_counts(conn, timeline, &seqs)?;
    rows.iter()
        .map(|(e, author)| {
            let event = e.to_event(
                author,
                counts.get(&e.seq).copied().unwrap_or(0),
                Some(viewer.user_id),
            )?;
            if !anonymous {
                return Ok(event);
            }
            let mine = mark_mine && e.kind == "post" && e.author_id == viewer.user_id.get();
            Ok(Event {
                mine,
                ..present(event, true)
            })
        })
        .collect()
}

impl Service {
    /// Authorizes (and audits) subscribing to a timeline; returns its newest
    /// `seq`. The caller registers the live subscription next, then catches up
    /// with [`Service::catch_up`].
    pub async fn open_timeline(&self, p: &Principal, timeline: TimelineId) -> ServiceResult<Seq> {
        let principal = p.clone();
        self.blocking(move |conn| {
            let a = authorize_read(conn, &principal, timeline, "subscribe")?;
            Ok(a.ctx.timeline.last_seq)
        })
        .await
    }

    /// Events after `after_seq`, oldest first, one page (≤ 200).
    pub async fn catch_up(
        &self,
        p: &Principal,
        timeline: TimelineId,
        after_seq: Seq,
    ) -> ServiceResult<CatchUp> {
        let principal = p.clone();
        self.blocking(move |conn| {
            let a = authorize(conn, &principal, timeline, TimelineOp::Read, None)?;
            let limit = i64::from(MAX_HISTORY_LIMIT);
            let mut rows = events::events_after(conn, timeline, after_seq, limit + 1)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(MAX_HISTORY_LIMIT as usize);
            Ok(CatchUp {
                events: to_events(conn, &a, &rows, &principal, false)?,
                more,
            })
        })
        .await
    }

    /// Pages backwards through a timeline.
    pub async fn history(
        &self,
        p: &Principal,
        c: cmd::History,
    ) -> ServiceResult<(Vec<Event>, bool)> {
        let principal = p.clone();
        self.blocking(move |conn| {
            let a = authorize_read(conn, &principal, c.timeline_id, "history")?;
            let limit = i64::from(
                c.limit
                    .unwrap_or(DEFAULT_HISTORY_LIMIT)
                    .clamp(1, MAX_HISTORY_LIMIT),
            );
            let (rows, more) = events::history(conn, c.timeline_id, c.before_seq, limit)?;
            Ok((to_events(conn, &a, &rows, &principal, true)?, more))
        })
        .await
    }

    /// Who acknowledged a post.
    pub async fn acks(&self, p: &Principal, c: cmd::Acks) -> ServiceResult<Vec<Acknowledgement>> {
        let principal = p.clone();
        self.blocking(move |conn| {
            authorize(conn, &principal, c.timeline_id, TimelineOp::Read, None)?;
            if events::event_at(conn, c.timeline_id, c.target_seq)?.is_none() {
                return Err(ServiceError::NotFound);
            }
            events::acks_of(conn, c.timeline_id, c.target_seq)?
                .into_iter()
                .map(|(a, u)| {
                    Ok(Acknowledgement {
                        timeline_id: c.timeline_id,
                        target_seq: c.target_seq,
                        user: u.author()?,
                        acked_at: a.acked_at,
                    })
                })
                .collect()
        })
        .await
    }

    /// The timelines the caller may read, with unread counts.
    pub async fn timelines(&self, p: &Principal) -> ServiceResult<Vec<TimelineSummary>> {
        let principal = p.clone();
        self.blocking(move |conn| {
            let actor = directory::user(conn, principal.user_id)?.actor()?;
            let mut out = Vec::new();
            for row in directory::timelines_of_user(conn, principal.user_id)? {
                if !super::may_read(&actor, &row)? {
                    continue;
                }
                let (t, g, m, read_seq) = (row.timeline, row.group, row.membership, row.read_seq);
                let unread =
                    events::unread_count(conn, TimelineId(t.id), principal.user_id, read_seq)?;
                out.push(TimelineSummary {
                    timeline_id: TimelineId(t.id),
                    kind: t.kind()?,
                    group_id: GroupId(g.id),
                    group_kind: g.kind()?,
                    group_name: Name::parse(g.name.clone())
                        .map_err(|_| ServiceError::Internal("stored group name invalid".into()))?,
                    role: m.membership()?.role,
                    last_seq: t.last_seq,
                    read_seq,
                    unread,
                });
            }
            Ok(out)
        })
        .await
    }
}
