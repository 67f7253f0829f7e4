//! Group commit for posts. Every post on this node is handed to one
//! committer task, which takes whatever posts are waiting (up to
//! [`MAX_BATCH`]), stores them and their audit entries in **one**
//! transaction (one WAL write and one `fsync` on SQLite, one commit on
//! PostgreSQL), then publishes the new events in commit order and only then
//! answers each poster. Persist, then publish, then `ok` — as for a single
//! post — but the expensive commit is shared by every post that arrived
//! while the previous batch was being stored.
//!
//! Ordering: the committer publishes a batch's events in the order they were
//! committed, so posts to one timeline reach subscribers in `seq` order
//! without holding a per-timeline lock across the commit (which would
//! serialize a busy timeline's posts, one commit each). Each publish still
//! takes the timeline's publish-order lock, which edits and deletes hold
//! across their own commit and publish.

use super::Authorized;
use super::write::author_row;
use crate::audit::{self, TimelineWrite};
use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::{Inner, Service};
use kizuna_domain::protocol::cmd;
use kizuna_store::events::{self, Appended, NewPost};
use kizuna_store::models::{AuthorRow, EventRow};
use std::sync::Weak;
use tokio::sync::{mpsc, oneshot};

/// At most this many posts share one transaction.
pub(crate) const MAX_BATCH: usize = 64;

/// Posts waiting for the committer, per node. Bounded: when the database
/// falls behind, posters wait here instead of growing memory.
pub(crate) const QUEUE: usize = 1_024;

/// One authorized post on its way to the store.
pub(crate) struct PostJob {
    pub(crate) principal: Principal,
    pub(crate) auth: Authorized,
    pub(crate) cmd: cmd::Post,
    pub(crate) reply: oneshot::Sender<ServiceResult<Committed>>,
}

/// What the committer answers a poster.
pub(crate) struct Committed {
    pub(crate) row: EventRow,
    pub(crate) author: AuthorRow,
    pub(crate) duplicate: bool,
    pub(crate) anonymous: bool,
}

/// Runs until the service is gone (the last sender dropped with it).
pub(crate) async fn run(service: Weak<Inner>, mut jobs: mpsc::Receiver<PostJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(inner) = service.upgrade() else {
            break;
        };
        Service { inner }.commit_batch(batch).await;
    }
}

/// A retry must carry the same content as the post it matched. (Once that
/// post was edited or deleted its body no longer matches, and the retry is
/// still the same post.)
fn check_duplicate(row: &EventRow, c: &cmd::Post) -> ServiceResult<()> {
    let changed_since = row.edited_at.is_some() || row.deleted_at.is_some();
    let same_body = row.body.as_deref() == Some(c.body.expose());
    if row.timeline_id != c.timeline_id.get()
        || row.kind != "post"
        || (!changed_since && !same_body)
    {
        return Err(ServiceError::Conflict(
            "client_msg_id was used for different content",
        ));
    }
    Ok(())
}

/// The error every poster of a batch that failed as a whole receives.
fn batch_failure(e: &ServiceError) -> ServiceError {
    match e {
        ServiceError::Unavailable(m) => ServiceError::Unavailable(m.clone()),
        other => ServiceError::Internal(format!("group commit failed: {other}")),
    }
}

impl Service {
    async fn commit_batch(&self, batch: Vec<PostJob>) {
        let mut replies = Vec::with_capacity(batch.len());
        let mut work = Vec::with_capacity(batch.len());
        for job in batch {
            replies.push(job.reply);
            work.push((job.principal, job.auth, job.cmd));
        }
        let stored = self
            .blocking(move |conn| {
                let posts: Vec<NewPost<'_>> = work
                    .iter()
                    .map(|(p, _, c)| NewPost {
                        timeline_id: c.timeline_id,
                        author_id: p.user_id,
                        client_msg_id: &c.client_msg_id,
                        body: c.body.expose(),
                    })
                    .collect();
                let appended = events::append_posts(conn, &posts, |conn, i, row| {
                    let (p, a, _) = &work[i];
                    audit::timeline_write(conn, p, a, TimelineWrite::Post, row.seq)
                })?;
                let results = appended
                    .into_iter()
                    .zip(work.iter())
                    .map(|(appended, (_, a, c))| {
                        let anonymous = a.is_anonymous()?;
                        let author = author_row(&a.user);
                        match appended? {
                            Appended::New(row) => Ok(Committed {
                                row,
                                author,
                                duplicate: false,
                                anonymous,
                            }),
                            Appended::Duplicate(row) => {
                                check_duplicate(&row, c)?;
                                Ok(Committed {
                                    row,
                                    author,
                                    duplicate: true,
                                    anonymous,
                                })
                            }
                        }
                    })
                    .collect::<Vec<ServiceResult<Committed>>>();
                Ok(results)
            })
            .await;
        let results = match stored {
            Ok(results) => results,
            Err(e) => {
                tracing::warn!(error = %e, posts = replies.len(), "a group commit failed; every post in it is refused");
                for reply in replies {
                    let _ = reply.send(Err(batch_failure(&e)));
                }
                return;
            }
        };
        // Committed: publish in commit order, then answer.
        for c in results.iter().flatten() {
            if !c.duplicate {
                let _order = self
                    .publish_lock(kizuna_domain::TimelineId(c.row.timeline_id))
                    .lock()
                    .await;
                self.publish_event(&c.row, &c.author, c.anonymous).await;
            }
        }
        for (reply, result) in replies.into_iter().zip(results) {
            // A poster that went away (socket closed) still has its post stored.
            let _ = reply.send(result);
        }
    }

    /// Hands an authorized post to this node's committer and waits for it to
    /// be stored and published.
    pub(crate) async fn commit_post(
        &self,
        principal: Principal,
        auth: Authorized,
        cmd: cmd::Post,
    ) -> ServiceResult<Committed> {
        let (reply, answer) = oneshot::channel();
        let sender = self.committer();
        sender
            .send(PostJob {
                principal,
                auth,
                cmd,
                reply,
            })
            .await
            .map_err(|_| ServiceError::Internal("the committer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ServiceError::Internal("the committer dropped a post".into()))?
    }
}
