//! Timeline events: append with a gapless per-timeline `seq`, edits and
//! tombstones, catch-up and history.
//!
//! Every write transaction starts by incrementing `timelines.last_seq`: that
//! statement takes SQLite's write lock at once (a deferred read→write upgrade
//! could fail with SQLITE_BUSY) and PostgreSQL's row lock on the timeline, so
//! appends to one timeline are serialised and `seq` has no gaps.

use crate::db::{DbConn, now_ms};
use crate::error::{StoreError, is_unique_violation};
use crate::models::*;
use crate::schema::*;
use diesel::prelude::*;
use kizuna_domain::*;
use std::collections::HashMap;

/// A post to append.
#[derive(Clone, Copy)]
pub struct NewPost<'a> {
    /// Where.
    pub timeline_id: TimelineId,
    /// Who.
    pub author_id: UserId,
    /// The author's idempotency key.
    pub client_msg_id: &'a str,
    /// The text.
    pub body: &'a str,
}

impl std::fmt::Debug for NewPost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPost")
            .field("timeline_id", &self.timeline_id)
            .field("author_id", &self.author_id)
            .finish_non_exhaustive()
    }
}

/// Result of appending a post.
#[derive(Debug, Clone)]
pub enum Appended {
    /// Stored now.
    New(EventRow),
    /// The author already stored a post with this `client_msg_id`; here it is.
    Duplicate(EventRow),
}

fn by_client_msg_id(
    conn: &mut DbConn,
    author: UserId,
    client_msg_id: &str,
) -> Result<Option<EventRow>, StoreError> {
    Ok(events::table
        .filter(events::author_id.eq(author.get()))
        .filter(events::client_msg_id.eq(client_msg_id))
        .get_result(conn)
        .optional()?)
}

fn next_seq(conn: &mut DbConn, timeline: TimelineId) -> Result<i64, StoreError> {
    diesel::update(timelines::table.find(timeline.get()))
        .set(timelines::last_seq.eq(timelines::last_seq + 1))
        .returning(timelines::last_seq)
        .get_result(conn)
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// Appends a post. A retry with the same `(author, client_msg_id)` returns the
/// stored event instead of a second one (also when two retries race).
pub fn append_post(conn: &mut DbConn, post: NewPost<'_>) -> Result<Appended, StoreError> {
    append_posts(conn, &[post], |_, _, _| Ok::<(), StoreError>(()))?
        .pop()
        .unwrap_or(Err(StoreError::NotFound))
}

/// Why one post's savepoint in [`append_posts`] ended.
enum AppendFailure<E> {
    Store(StoreError),
    After(E),
}

impl<E> From<StoreError> for AppendFailure<E> {
    fn from(e: StoreError) -> Self {
        AppendFailure::Store(e)
    }
}

/// Appends several posts (any timelines, any authors) in **one**
/// transaction — group commit: one WAL write and one `fsync` for all of
/// them. Each post runs in its own savepoint, so one post's failure (its
/// `after` hook failed; or a retry whose `(author, client_msg_id)` is taken,
/// which answers `Duplicate` with the stored post) leaves the others; `seq`s
/// on one timeline follow the order of `posts`. `after` runs on each new row
/// inside its savepoint (the service writes the post's audit entry there).
///
/// There is no idempotency read before the writes: the transaction's first
/// statement is a `seq` increment (SQLite takes its write lock at once), and
/// a retry is recognised by the unique index on `(author, client_msg_id)`.
///
/// Returns one result per post, in order; `Err` only when the transaction
/// as a whole failed (nothing is stored then).
pub fn append_posts<E, F>(
    conn: &mut DbConn,
    posts: &[NewPost<'_>],
    mut after: F,
) -> Result<Vec<Result<Appended, E>>, E>
where
    E: From<StoreError>,
    F: FnMut(&mut DbConn, usize, &EventRow) -> Result<(), E>,
{
    crate::db::transaction(conn, |conn| {
        let mut out = Vec::with_capacity(posts.len());
        for (i, post) in posts.iter().enumerate() {
            let one = crate::db::transaction(conn, |conn| {
                let row = insert_post(conn, post)?;
                after(conn, i, &row).map_err(AppendFailure::After)?;
                Ok::<_, AppendFailure<E>>(row)
            });
            out.push(match one {
                Ok(row) => Ok(Appended::New(row)),
                Err(AppendFailure::After(e)) => Err(e),
                // The only unique constraint a fresh `seq` can hit.
                Err(AppendFailure::Store(StoreError::Conflict(_))) => {
                    match by_client_msg_id(conn, post.author_id, post.client_msg_id)? {
                        Some(existing) => Ok(Appended::Duplicate(existing)),
                        None => Err(StoreError::Conflict("client_msg_id").into()),
                    }
                }
                Err(AppendFailure::Store(StoreError::NotFound)) => Err(StoreError::NotFound.into()),
                Err(AppendFailure::Store(e)) => return Err(e.into()),
            });
        }
        Ok(out)
    })
}

fn insert_post(conn: &mut DbConn, post: &NewPost<'_>) -> Result<EventRow, StoreError> {
    let seq = next_seq(conn, post.timeline_id)?;
    Ok(diesel::insert_into(events::table)
        .values((
            events::timeline_id.eq(post.timeline_id.get()),
            events::seq.eq(seq),
            events::kind.eq(EventKind::Post.as_str()),
            events::author_id.eq(post.author_id.get()),
            events::body.eq(Some(post.body)),
            events::client_msg_id.eq(Some(post.client_msg_id)),
            events::created_at.eq(now_ms()),
        ))
        .returning(events::all_columns)
        .get_result(conn)?)
}

/// The event at `seq` on a timeline.
pub fn event_at(
    conn: &mut DbConn,
    timeline: TimelineId,
    seq: Seq,
) -> Result<Option<EventRow>, StoreError> {
    Ok(events::table
        .filter(events::timeline_id.eq(timeline.get()))
        .filter(events::seq.eq(seq))
        .get_result(conn)
        .optional()?)
}

/// Why an edit or delete could not be applied.
fn live_post(target: Option<EventRow>) -> Result<EventRow, StoreError> {
    let target = target.ok_or(StoreError::NotFound)?;
    if target.kind != EventKind::Post.as_str() {
        return Err(StoreError::NotFound);
    }
    if target.deleted_at.is_some() {
        return Err(StoreError::Conflict("post deleted"));
    }
    Ok(target)
}

/// Replaces a post's body, keeps the old body as a revision and appends an
/// `edit` event carrying the new body. Returns the edit event.
pub fn edit_post(
    conn: &mut DbConn,
    timeline: TimelineId,
    target_seq: Seq,
    editor: UserId,
    body: &str,
) -> Result<EventRow, StoreError> {
    change_post(conn, timeline, target_seq, editor, Some(body))
}

/// Deletes a post's body (keeping it as a revision, never shown to clients)
/// and appends a `delete` tombstone. Returns the tombstone.
pub fn delete_post(
    conn: &mut DbConn,
    timeline: TimelineId,
    target_seq: Seq,
    actor: UserId,
) -> Result<EventRow, StoreError> {
    change_post(conn, timeline, target_seq, actor, None)
}

fn change_post(
    conn: &mut DbConn,
    timeline: TimelineId,
    target_seq: Seq,
    actor: UserId,
    new_body: Option<&str>,
) -> Result<EventRow, StoreError> {
    conn.transaction::<EventRow, StoreError, _>(|conn| {
        let seq = next_seq(conn, timeline)?;
        let target = live_post(event_at(conn, timeline, target_seq)?)?;
        let now = now_ms();
        if let Some(old) = &target.body {
            diesel::insert_into(event_revisions::table)
                .values((
                    event_revisions::event_id.eq(target.id),
                    event_revisions::body.eq(old),
                    event_revisions::replaced_at.eq(now),
                    event_revisions::replaced_by_seq.eq(seq),
                ))
                .execute(conn)?;
        }
        let kind = if new_body.is_some() {
            diesel::update(events::table.find(target.id))
                .set((events::body.eq(new_body), events::edited_at.eq(Some(now))))
                .execute(conn)?;
            EventKind::Edit
        } else {
            diesel::update(events::table.find(target.id))
                .set((
                    events::body.eq(None::<String>),
                    events::deleted_at.eq(Some(now)),
                ))
                .execute(conn)?;
            // Earlier `edit` events carry bodies of this post too; each is
            // already kept as a revision (the next change saved it), so
            // clearing them loses nothing and leaves no readable copy.
            diesel::update(
                events::table
                    .filter(events::timeline_id.eq(timeline.get()))
                    .filter(events::target_seq.eq(Some(target_seq)))
                    .filter(events::kind.eq(EventKind::Edit.as_str())),
            )
            .set(events::body.eq(None::<String>))
            .execute(conn)?;
            EventKind::Delete
        };
        Ok(diesel::insert_into(events::table)
            .values((
                events::timeline_id.eq(timeline.get()),
                events::seq.eq(seq),
                events::kind.eq(kind.as_str()),
                events::author_id.eq(actor.get()),
                events::body.eq(new_body),
                events::target_seq.eq(Some(target_seq)),
                events::created_at.eq(now),
            ))
            .returning(events::all_columns)
            .get_result(conn)?)
    })
}

/// Events after `after_seq`, oldest first, at most `limit`.
pub fn events_after(
    conn: &mut DbConn,
    timeline: TimelineId,
    after_seq: Seq,
    limit: i64,
) -> Result<Vec<(EventRow, AuthorRow)>, StoreError> {
    Ok(events::table
        .inner_join(users::table)
        .filter(events::timeline_id.eq(timeline.get()))
        .filter(events::seq.gt(after_seq))
        .order(events::seq.asc())
        .limit(limit)
        .select((events::all_columns, AUTHOR_COLUMNS))
        .load(conn)?)
}

/// Events before `before_seq` (or from the newest), newest first, at most
/// `limit`; the flag says whether older ones exist.
pub fn history(
    conn: &mut DbConn,
    timeline: TimelineId,
    before_seq: Option<Seq>,
    limit: i64,
) -> Result<(Vec<(EventRow, AuthorRow)>, bool), StoreError> {
    let mut q = events::table
        .inner_join(users::table)
        .filter(events::timeline_id.eq(timeline.get()))
        .into_boxed();
    if let Some(before) = before_seq {
        q = q.filter(events::seq.lt(before));
    }
    let mut rows: Vec<(EventRow, AuthorRow)> = q
        .order(events::seq.desc())
        .limit(limit + 1)
        .select((events::all_columns, AUTHOR_COLUMNS))
        .load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

/// Acknowledgement counts for posts on a timeline.
pub fn ack_counts(
    conn: &mut DbConn,
    timeline: TimelineId,
    seqs: &[Seq],
) -> Result<HashMap<Seq, u32>, StoreError> {
    if seqs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, i64)> = acks::table
        .filter(acks::timeline_id.eq(timeline.get()))
        .filter(acks::target_seq.eq_any(seqs))
        .group_by(acks::target_seq)
        .select((acks::target_seq, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(s, n)| (s, u32::try_from(n).unwrap_or(u32::MAX)))
        .collect())
}

/// Newest `seq` on a timeline.
pub fn last_seq(conn: &mut DbConn, timeline: TimelineId) -> Result<Seq, StoreError> {
    Ok(timelines::table
        .find(timeline.get())
        .select(timelines::last_seq)
        .get_result(conn)?)
}

/// Stored revisions (earlier bodies) of a post, oldest first. For audits and
/// record requests; never sent to ordinary clients.
pub fn revisions(conn: &mut DbConn, event: EventId) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(event_revisions::table
        .filter(event_revisions::event_id.eq(event.get()))
        .order(event_revisions::id)
        .select((event_revisions::replaced_by_seq, event_revisions::body))
        .load(conn)?)
}

/// Posts by others after `read_seq` that are not deleted.
pub fn unread_count(
    conn: &mut DbConn,
    timeline: TimelineId,
    user: UserId,
    read_seq: Seq,
) -> Result<u32, StoreError> {
    let n: i64 = events::table
        .filter(events::timeline_id.eq(timeline.get()))
        .filter(events::seq.gt(read_seq))
        .filter(events::kind.eq(EventKind::Post.as_str()))
        .filter(events::author_id.ne(user.get()))
        .filter(events::deleted_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Records a 了解 on a post. Returns the acknowledgement and whether it is new.
/// `NotFound` unless the target is a live post.
pub fn ack(
    conn: &mut DbConn,
    timeline: TimelineId,
    target_seq: Seq,
    user: UserId,
) -> Result<(AckRow, bool), StoreError> {
    live_post(event_at(conn, timeline, target_seq)?).map_err(|_| StoreError::NotFound)?;
    let key = (timeline.get(), target_seq, user.get());
    if let Some(existing) = acks::table
        .find(key)
        .get_result::<AckRow>(conn)
        .optional()?
    {
        return Ok((existing, false));
    }
    let inserted = diesel::insert_into(acks::table)
        .values((
            acks::timeline_id.eq(timeline.get()),
            acks::target_seq.eq(target_seq),
            acks::user_id.eq(user.get()),
            acks::acked_at.eq(now_ms()),
        ))
        .returning(acks::all_columns)
        .get_result::<AckRow>(conn);
    match inserted {
        Ok(row) => Ok((row, true)),
        Err(e) if is_unique_violation(&e) => Ok((acks::table.find(key).get_result(conn)?, false)),
        Err(e) => Err(e.into()),
    }
}

/// Who acknowledged a post, oldest first.
pub fn acks_of(
    conn: &mut DbConn,
    timeline: TimelineId,
    target_seq: Seq,
) -> Result<Vec<(AckRow, AuthorRow)>, StoreError> {
    Ok(acks::table
        .inner_join(users::table)
        .filter(acks::timeline_id.eq(timeline.get()))
        .filter(acks::target_seq.eq(target_seq))
        .order((acks::acked_at.asc(), acks::user_id.asc()))
        .select((acks::all_columns, AUTHOR_COLUMNS))
        .load(conn)?)
}

/// Moves a read marker forward (never back, never past the newest event).
/// Returns the marker now stored.
pub fn mark_read(
    conn: &mut DbConn,
    user: UserId,
    timeline: TimelineId,
    seq: Seq,
) -> Result<Seq, StoreError> {
    let newest = last_seq(conn, timeline)?;
    let seq = seq.min(newest);
    let now = now_ms();
    let key = (user.get(), timeline.get());
    for _ in 0..2 {
        let updated = diesel::update(
            read_markers::table
                .find(key)
                .filter(read_markers::read_seq.lt(seq)),
        )
        .set((
            read_markers::read_seq.eq(seq),
            read_markers::updated_at.eq(now),
        ))
        .execute(conn)?;
        if updated > 0 {
            return Ok(seq);
        }
        if let Some(stored) = read_markers::table
            .find(key)
            .select(read_markers::read_seq)
            .get_result::<i64>(conn)
            .optional()?
        {
            return Ok(stored);
        }
        let inserted = diesel::insert_into(read_markers::table)
            .values((
                read_markers::user_id.eq(user.get()),
                read_markers::timeline_id.eq(timeline.get()),
                read_markers::read_seq.eq(seq),
                read_markers::updated_at.eq(now),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => return Ok(seq),
            // A concurrent first marker won; go round once more to move it.
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict("read marker"))
}

/// The user's read marker on a timeline (0 when none).
pub fn read_marker(
    conn: &mut DbConn,
    user: UserId,
    timeline: TimelineId,
) -> Result<Seq, StoreError> {
    Ok(read_markers::table
        .find((user.get(), timeline.get()))
        .select(read_markers::read_seq)
        .get_result(conn)
        .optional()?
        .unwrap_or(0))
}
