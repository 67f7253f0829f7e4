//! Communities: finding them, and the applications to join them (one pending
//! per person and community, enforced by a unique partial index).

use crate::db::{DbConn, now_ms};
use crate::error::{StoreError, is_unique_violation};
use crate::models::*;
use crate::schema::*;
use diesel::prelude::*;
use kizuna_domain::*;
use std::collections::{HashMap, HashSet};

diesel::define_sql_function!(
    /// SQL `lower(text)` (both backends).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
);

/// Most communities one search returns.
pub const MAX_COMMUNITIES: i64 = 100;

/// A community as found by [`find`].
#[derive(Debug, Clone)]
pub struct FoundCommunity {
    /// The group.
    pub group: GroupRow,
    /// How many members it has.
    pub member_count: i64,
    /// Whether the viewer is one of them.
    pub member: bool,
}

/// A `LIKE` pattern matching names that contain `q` (case-insensitively for
/// ASCII), with the pattern characters in `q` taken literally.
fn contains_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Communities whose name contains `query` (all when `None`), by name then
/// id, at most [`MAX_COMMUNITIES`], each with its member count and whether
/// `viewer` is a member.
pub fn find(
    conn: &mut DbConn,
    query: Option<&str>,
    viewer: UserId,
) -> Result<Vec<FoundCommunity>, StoreError> {
    let mut q = care_groups::table
        .filter(care_groups::kind.eq(GroupKind::Community.as_str()))
        .into_boxed();
    if let Some(text) = query.filter(|t| !t.is_empty()) {
        q = q.filter(
            lower(care_groups::name)
                .like(contains_pattern(text))
                .escape('\\'),
        );
    }
    let groups: Vec<GroupRow> = q
        .order((care_groups::name.asc(), care_groups::id.asc()))
        .limit(MAX_COMMUNITIES)
        .load(conn)?;
    let ids: Vec<i64> = groups.iter().map(|g| g.id).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let counts: HashMap<i64, i64> = group_members::table
        .filter(group_members::group_id.eq_any(&ids))
        .group_by(group_members::group_id)
        .select((group_members::group_id, diesel::dsl::count_star()))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .collect();
    let joined: HashSet<i64> = group_members::table
        .filter(group_members::group_id.eq_any(&ids))
        .filter(group_members::user_id.eq(viewer.get()))
        .select(group_members::group_id)
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    Ok(groups
        .into_iter()
        .map(|group| FoundCommunity {
            member_count: counts.get(&group.id).copied().unwrap_or(0),
            member: joined.contains(&group.id),
            group,
        })
        .collect())
}

/// Records a pending application; `Conflict` when the user already has one
/// pending for this community.
pub fn apply(
    conn: &mut DbConn,
    group: GroupId,
    user: UserId,
) -> Result<ApplicationRow, StoreError> {
    diesel::insert_into(community_applications::table)
        .values((
            community_applications::group_id.eq(group.get()),
            community_applications::user_id.eq(user.get()),
            community_applications::status.eq(ApplicationStatus::Pending.as_str()),
            community_applications::created_at.eq(now_ms()),
        ))
        .returning(community_applications::all_columns)
        .get_result(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("an application is already pending")
            } else {
                e.into()
            }
        })
}

/// An application by id.
pub fn application(conn: &mut DbConn, id: ApplicationId) -> Result<ApplicationRow, StoreError> {
    Ok(community_applications::table
        .find(id.get())
        .get_result(conn)?)
}

/// A community's applications (of one status, or all), oldest first, with
/// each applicant as readers see them.
pub fn applications_of_group(
    conn: &mut DbConn,
    group: GroupId,
    status: Option<ApplicationStatus>,
) -> Result<Vec<(ApplicationRow, AuthorRow)>, StoreError> {
    let mut q = community_applications::table
        .inner_join(users::table.on(users::id.eq(community_applications::user_id)))
        .filter(community_applications::group_id.eq(group.get()))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(community_applications::status.eq(s.as_str()));
    }
    Ok(q.order(community_applications::id.asc())
        .select((community_applications::all_columns, AUTHOR_COLUMNS))
        .load(conn)?)
}

/// The user's own applications with their communities, newest first.
pub fn applications_of_user(
    conn: &mut DbConn,
    user: UserId,
) -> Result<Vec<(ApplicationRow, GroupRow)>, StoreError> {
    Ok(community_applications::table
        .inner_join(care_groups::table)
        .filter(community_applications::user_id.eq(user.get()))
        .order(community_applications::id.desc())
        .select((
            community_applications::all_columns,
            care_groups::all_columns,
        ))
        .load(conn)?)
}

/// Moves a pending application to `to`; `NotFound` when it does not exist,
/// `Conflict` when it is no longer pending.
fn close(
    conn: &mut DbConn,
    id: ApplicationId,
    to: ApplicationStatus,
    decided_by: Option<UserId>,
) -> Result<ApplicationRow, StoreError> {
    let updated: Option<ApplicationRow> = diesel::update(
        community_applications::table
            .find(id.get())
            .filter(community_applications::status.eq(ApplicationStatus::Pending.as_str())),
    )
    .set((
        community_applications::status.eq(to.as_str()),
        community_applications::decided_by.eq(decided_by.map(UserId::get)),
        community_applications::decided_at.eq(Some(now_ms())),
    ))
    .returning(community_applications::all_columns)
    .get_result(conn)
    .optional()?;
    match updated {
        Some(row) => Ok(row),
        None => {
            application(conn, id)?;
            Err(StoreError::Conflict("the application is no longer pending"))
        }
    }
}

/// Approves (the applicant becomes a `member` seeing every timeline, in the
/// same transaction) or denies a pending application.
pub fn decide(
    conn: &mut DbConn,
    id: ApplicationId,
    moderator: Option<UserId>,
    approve: bool,
) -> Result<ApplicationRow, StoreError> {
    conn.transaction(|conn| {
        let status = if approve {
            ApplicationStatus::Approved
        } else {
            ApplicationStatus::Denied
        };
        let row = close(conn, id, status, moderator)?;
        if approve {
            let (group, user) = (GroupId(row.group_id), UserId(row.user_id));
            // Someone may have added the applicant directly meanwhile; they
            // keep the role they were given.
            if crate::directory::membership(conn, group, user)?.is_none() {
                crate::directory::add_member(
                    conn,
                    group,
                    user,
                    GroupRole::Member,
                    Visibility::All,
                )?;
            }
        }
        Ok(row)
    })
}

/// Withdraws the applicant's own pending application.
pub fn withdraw(conn: &mut DbConn, id: ApplicationId) -> Result<ApplicationRow, StoreError> {
    close(conn, id, ApplicationStatus::Withdrawn, None)
}
