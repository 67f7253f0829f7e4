//! Post, edit, delete, 了解 and read markers.

use super::{authorize, present};
use crate::Service;
use crate::audit::{self, TimelineWrite};
use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use kizuna_domain::access::TimelineOp;
use kizuna_domain::protocol::{Acknowledgement, Event, ServerFrame, cmd};
use kizuna_domain::{Seq, TimelineId, UserId};
use kizuna_realtime::BusMessage;
use kizuna_store::events;
use kizuna_store::models::{AuthorRow, EventRow};
use kizuna_store::transaction;

/// A stored event, as answered to its author.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The event (with the author's `client_msg_id`).
    pub event: Event,
    /// True when a retried post matched an earlier one.
    pub duplicate: bool,
}

/// How an event names its author, from the author's row.
pub(super) fn author_row(u: &kizuna_store::models::UserRow) -> AuthorRow {
    AuthorRow {
        id: u.id,
        display_name: u.display_name.clone(),
        kind: u.kind.clone(),
        profession: u.profession.clone(),
        facility_id: u.facility_id,
    }
}

impl Service {
    /// Posts a message. A retry with the same `client_msg_id` returns the stored
    /// event (`duplicate: true`) and publishes nothing. The post is stored by
    /// this node's group committer (see `commit.rs`) together with whatever
    /// other posts are waiting; it is answered after its batch committed and
    /// its event was published.
    pub async fn post(&self, p: &Principal, c: cmd::Post) -> ServiceResult<Stored> {
        let principal = p.clone();
        let timeline = c.timeline_id;
        let auth = self
            .blocking(move |conn| authorize(conn, &principal, timeline, TimelineOp::Post, None))
            .await?;
        let committed = self.commit_post(p.clone(), auth, c).await?;
        let (row, author) = (&committed.row, &committed.author);
        let count = if committed.duplicate {
            let (tl, seq) = (TimelineId(row.timeline_id), row.seq);
            self.blocking(move |conn| {
                Ok(events::ack_counts(conn, tl, &[seq])?
                    .get(&seq)
                    .copied()
                    .unwrap_or(0))
            })
            .await?
        } else {
            0
        };
        let event = present(
            row.to_event(author, count, Some(p.user_id))?,
            committed.anonymous,
        );
        Ok(Stored {
            event,
            duplicate: committed.duplicate,
        })
    }

    /// Edits one's own post; appends an `edit` event.
    pub async fn edit(&self, p: &Principal, c: cmd::Edit) -> ServiceResult<Stored> {
        self.change(p, c.timeline_id, c.target_seq, Some(c.body.into_inner()))
            .await
    }

    /// Deletes a post (author, or group owner/moderator); appends a tombstone.
    pub async fn delete(&self, p: &Principal, c: cmd::Delete) -> ServiceResult<Stored> {
        self.change(p, c.timeline_id, c.target_seq, None).await
    }

    async fn change(
        &self,
        p: &Principal,
        timeline: TimelineId,
        target: Seq,
        body: Option<String>,
    ) -> ServiceResult<Stored> {
        // Held until the event is published (see `Service::publish_lock`).
        let _order = self.publish_lock(timeline).lock().await;
        let principal = p.clone();
        let (row, author, anonymous) = self
            .blocking(move |conn| {
                // Existence is only revealed to those who may read the
                // timeline; then authorship decides (in a consultation
                // timeline every non-author gets the same refusal, so it
                // tells nobody who the author is).
                authorize(conn, &principal, timeline, TimelineOp::Read, None)?;
                let target_row = match events::event_at(conn, timeline, target)? {
                    Some(r) if r.kind == "post" => r,
                    _ => return Err(ServiceError::NotFound),
                };
                let op = if body.is_some() {
                    TimelineOp::Edit
                } else {
                    TimelineOp::Delete
                };
                let auth = authorize(
                    conn,
                    &principal,
                    timeline,
                    op,
                    Some(UserId(target_row.author_id)),
                )?;
                // The change and its audit entry commit together.
                let row = transaction(conn, |conn| {
                    let (row, write) = match &body {
                        Some(b) => (
                            events::edit_post(conn, timeline, target, principal.user_id, b)?,
                            TimelineWrite::Edit { target },
                        ),
                        None => (
                            events::delete_post(conn, timeline, target, principal.user_id)?,
                            TimelineWrite::Delete { target },
                        ),
                    };
                    audit::timeline_write(conn, &principal, &auth, write, row.seq)?;
                    Ok::<_, ServiceError>(row)
                })?;
                Ok((row, author_row(&auth.user), auth.is_anonymous()?))
            })
            .await?;
        let event = present(row.to_event(&author, 0, Some(p.user_id))?, anonymous);
        self.publish_event(&row, &author, anonymous).await;
        Ok(Stored {
            event,
            duplicate: false,
        })
    }

    /// 了解: acknowledges a post. Subscribers get an `ack` frame the first time.
    pub async fn ack(&self, p: &Principal, c: cmd::Ack) -> ServiceResult<Acknowledgement> {
        let principal = p.clone();
        let (ack, new) = self
            .blocking(move |conn| {
                let auth = authorize(conn, &principal, c.timeline_id, TimelineOp::Ack, None)?;
                let (row, new) = events::ack(conn, c.timeline_id, c.target_seq, principal.user_id)?;
                let ack = Acknowledgement {
                    timeline_id: c.timeline_id,
                    target_seq: c.target_seq,
                    user: author_row(&auth.user).author()?,
                    acked_at: row.acked_at,
                };
                Ok((ack, new))
            })
            .await?;
        if new {
            match serde_json::to_string(&ServerFrame::Ack { ack: ack.clone() }) {
                Ok(frame) => {
                    let msg = BusMessage::Notice {
                        timeline: ack.timeline_id,
                        frame: frame.into(),
                    };
                    if let Err(e) = self.bus().publish(msg).await {
                        tracing::warn!(error = %e, timeline = %ack.timeline_id, "ack notice not published");
                    }
                }
                Err(e) => tracing::error!(error = %e, "ack frame did not serialize"),
            }
        }
        Ok(ack)
    }

    /// Moves the caller's read marker forward; returns the stored marker.
    pub async fn mark_read(&self, p: &Principal, c: cmd::Read) -> ServiceResult<Seq> {
        let principal = p.clone();
        self.blocking(move |conn| {
            authorize(conn, &principal, c.timeline_id, TimelineOp::MarkRead, None)?;
            Ok(events::mark_read(
                conn,
                principal.user_id,
                c.timeline_id,
                c.seq,
            )?)
        })
        .await
    }

    /// Serializes an event once and publishes it to every node. The event is
    /// already committed; a publish failure loses no data (clients catch up).
    /// `anonymous` (consultation timelines): the one frame every subscriber
    /// gets withholds the author.
    pub(super) async fn publish_event(&self, row: &EventRow, author: &AuthorRow, anonymous: bool) {
        let event = match row.to_event(author, 0, None) {
            Ok(e) => present(e, anonymous),
            Err(e) => {
                tracing::error!(error = %e, "stored event did not convert");
                return;
            }
        };
        let frame = match serde_json::to_string(&ServerFrame::Event { event }) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "event frame did not serialize");
                return;
            }
        };
        let msg = BusMessage::Event {
            timeline: TimelineId(row.timeline_id),
            seq: row.seq,
            frame: frame.into(),
        };
        if let Err(e) = self.bus().publish(msg).await {
            tracing::warn!(error = %e, timeline = row.timeline_id, seq = row.seq, "event not published; subscribers will catch up");
        }
    }
}
