//! Communities: finding them, applying to join, moderating applications, and
//! revealing who wrote an anonymous consultation post.
//!
//! Every decision goes through `kizuna_domain::access::decide` (via the admin
//! module's `allow`), and every change is audited in the transaction that
//! makes it. An id the caller may not learn exists (a free or patient group,
//! someone else's application, a timeline of a group one is not in) answers
//! `not_found`, exactly like an id that does not exist.

use crate::Service;
use crate::admin::{CallerInfo, allow, audit, denied, facts};
use crate::auth::{Caller, Principal};
use crate::error::{ServiceError, ServiceResult};
use kizuna_domain::access::Action;
use kizuna_domain::protocol::Author;
use kizuna_domain::text::Name;
use kizuna_domain::*;
use kizuna_store::audit::AuditEntry;
use kizuna_store::communities;
use kizuna_store::models::{ApplicationRow, GroupRow};
use kizuna_store::{DbConn, StoreError, directory, events, transaction};
use serde::Serialize;

/// Longest community search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// A community, as listed by [`Service::communities`].
#[derive(Debug, Clone, Serialize)]
pub struct CommunityView {
    /// The group.
    pub group_id: GroupId,
    /// Its name.
    pub name: Name,
    /// How many members it has.
    pub member_count: i64,
    /// Whether the caller is one of them.
    pub member: bool,
}

/// An application to join a community.
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationView {
    /// Id.
    pub id: ApplicationId,
    /// The community.
    pub group_id: GroupId,
    /// The community's name (in the applicant's own list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_name: Option<Name>,
    /// The applicant (in a moderator's list and in answers to moderators).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applicant: Option<Author>,
    /// Where it stands.
    pub status: ApplicationStatus,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When it was decided or withdrawn (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
}

fn view(row: &ApplicationRow) -> ServiceResult<ApplicationView> {
    Ok(ApplicationView {
        id: ApplicationId(row.id),
        group_id: GroupId(row.group_id),
        group_name: None,
        applicant: None,
        status: row.status()?,
        created_at: row.created_at,
        decided_at: row.decided_at,
    })
}

/// The audit entry of a change to an application (ids only).
fn application_entry(action: &'static str, group: GroupId, row: &ApplicationRow) -> AuditEntry {
    AuditEntry {
        action,
        outcome: "ok",
        group_id: Some(group.get()),
        detail: Some(format!("application={}", row.id)),
        ..Default::default()
    }
}

fn stored_name(name: &str) -> ServiceResult<Name> {
    Name::parse(name.to_owned())
        .map_err(|_| ServiceError::Internal("stored group name invalid".into()))
}

/// The group named in a path, or a refusal (audited under `action`) that an
/// unknown id and an invisible one share.
fn load_group(
    conn: &mut DbConn,
    caller: &CallerInfo,
    group: GroupId,
    action: &'static str,
) -> ServiceResult<GroupRow> {
    match directory::group(conn, group) {
        Ok(g) => Ok(g),
        Err(StoreError::NotFound) => denied(conn, caller, action, ServiceError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Checks the caller may moderate the community's applications; refusals
/// are audited under `action`.
fn moderate(
    conn: &mut DbConn,
    caller: &CallerInfo,
    group: GroupId,
    action: &'static str,
) -> ServiceResult<GroupRow> {
    let g = load_group(conn, caller, group, action)?;
    let group_facts = facts(conn, caller, &g)?;
    if let Err(e) = allow(
        conn,
        caller,
        Action::DecideApplication { group: group_facts },
    ) {
        return denied(conn, caller, action, e);
    }
    Ok(g)
}

/// The application `id` of community `group`; one of another community is
/// not found.
fn application_in(
    conn: &mut DbConn,
    group: GroupId,
    id: ApplicationId,
) -> ServiceResult<ApplicationRow> {
    let row = communities::application(conn, id)?;
    if row.group_id != group.get() {
        return Err(ServiceError::NotFound);
    }
    Ok(row)
}

/// Parses a search text: trimmed, at most [`MAX_QUERY_CHARS`] characters, no
/// control characters; empty means everything.
pub fn parse_query(raw: Option<&str>) -> ServiceResult<Option<String>> {
    let Some(q) = raw.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    if q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "q must be at most {MAX_QUERY_CHARS} characters without control characters"
        )));
    }
    Ok(Some(q.to_owned()))
}

impl Service {
    /// Open communities whose name contains `query` (all when `None`), with
    /// member counts. Staff, company and operator accounts.
    pub async fn communities(
        &self,
        p: &Principal,
        query: Option<String>,
    ) -> ServiceResult<Vec<CommunityView>> {
        let caller = CallerInfo::from(Caller::User(p));
        let viewer = p.user_id;
        self.blocking(move |conn| {
            allow(conn, &caller, Action::ListCommunities)?;
            communities::find(conn, query.as_deref(), viewer)?
                .into_iter()
                .map(|c| {
                    Ok(CommunityView {
                        group_id: GroupId(c.group.id),
                        name: stored_name(&c.group.name)?,
                        member_count: c.member_count,
                        member: c.member,
                    })
                })
                .collect()
        })
        .await
    }

    /// Applies to join a community (one pending application per person:
    /// `conflict` otherwise). Free and patient groups answer `not_found`,
    /// as an unknown id does.
    pub async fn apply_to_community(
        &self,
        p: &Principal,
        group: GroupId,
    ) -> ServiceResult<ApplicationView> {
        const ACTION: &str = "community.apply";
        let caller = CallerInfo::from(Caller::User(p));
        let applicant = p.user_id;
        self.blocking(move |conn| {
            let g = load_group(conn, &caller, group, ACTION)?;
            let group_facts = facts(conn, &caller, &g)?;
            if let Err(e) = allow(
                conn,
                &caller,
                Action::ApplyToCommunity { group: group_facts },
            ) {
                return denied(conn, &caller, ACTION, e);
            }
            let row = transaction(conn, |conn| {
                let row = communities::apply(conn, group, applicant)?;
                audit(conn, &caller, application_entry(ACTION, group, &row))?;
                Ok::<_, ServiceError>(row)
            })?;
            Ok(ApplicationView {
                group_name: Some(stored_name(&g.name)?),
                ..view(&row)?
            })
        })
        .await
    }

    /// A community's applications (of one status, or all), oldest first,
    /// with the applicants. Owners and moderators (and the operator).
    pub async fn community_applications(
        &self,
        p: &Principal,
        group: GroupId,
        status: Option<ApplicationStatus>,
    ) -> ServiceResult<Vec<ApplicationView>> {
        let caller = CallerInfo::from(Caller::User(p));
        self.blocking(move |conn| {
            moderate(conn, &caller, group, "community.applications")?;
            communities::applications_of_group(conn, group, status)?
                .into_iter()
                .map(|(row, applicant)| {
                    Ok(ApplicationView {
                        applicant: Some(applicant.author()?),
                        ..view(&row)?
                    })
                })
                .collect()
        })
        .await
    }

    /// Approves (the applicant becomes a member seeing every timeline) or
    /// denies a pending application; `conflict` when it is no longer pending.
    pub async fn decide_application(
        &self,
        p: &Principal,
        group: GroupId,
        id: ApplicationId,
        approve: bool,
    ) -> ServiceResult<ApplicationView> {
        let action = if approve {
            "community.approve"
        } else {
            "community.deny"
        };
        let caller = CallerInfo::from(Caller::User(p));
        self.blocking(move |conn| {
            moderate(conn, &caller, group, action)?;
            let pending = application_in(conn, group, id)?;
            // A disabled account is not let in (deactivation also withdraws
            // its pending applications, in its own transaction).
            if approve
                && directory::user(conn, UserId(pending.user_id))?.status()? != UserStatus::Active
            {
                return Err(ServiceError::Conflict(
                    "the applicant's account is disabled",
                ));
            }
            let row = transaction(conn, |conn| {
                let row = communities::decide(conn, id, caller.user, approve)?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        subject_user_id: Some(pending.user_id),
                        ..application_entry(action, group, &row)
                    },
                )?;
                Ok::<_, ServiceError>(row)
            })?;
            let applicant = directory::user(conn, UserId(row.user_id))?.author()?;
            Ok(ApplicationView {
                applicant: Some(applicant),
                ..view(&row)?
            })
        })
        .await
    }

    /// Withdraws the caller's own pending application. Anybody else's
    /// application is `not_found`.
    pub async fn withdraw_application(
        &self,
        p: &Principal,
        group: GroupId,
        id: ApplicationId,
    ) -> ServiceResult<ApplicationView> {
        const ACTION: &str = "community.withdraw";
        let caller = CallerInfo::from(Caller::User(p));
        let me = p.user_id;
        self.blocking(move |conn| {
            let own = match application_in(conn, group, id) {
                Ok(row) => row.user_id == me.get(),
                Err(ServiceError::NotFound) => false,
                Err(e) => return Err(e),
            };
            if !own {
                return denied(conn, &caller, ACTION, ServiceError::NotFound);
            }
            let row = transaction(conn, |conn| {
                let row = communities::withdraw(conn, id)?;
                audit(conn, &caller, application_entry(ACTION, group, &row))?;
                Ok::<_, ServiceError>(row)
            })?;
            view(&row)
        })
        .await
    }

    /// The caller's own applications, newest first, with community names.
    pub async fn my_applications(&self, p: &Principal) -> ServiceResult<Vec<ApplicationView>> {
        let me = p.user_id;
        self.blocking(move |conn| {
            communities::applications_of_user(conn, me)?
                .into_iter()
                .map(|(row, g)| {
                    Ok(ApplicationView {
                        group_name: Some(stored_name(&g.name)?),
                        ..view(&row)?
                    })
                })
                .collect()
        })
        .await
    }

    /// Who wrote the event at `seq` of a consultation timeline: for staff (or
    /// operator) owners and moderators of the community only. The reveal is
    /// audited (`consultation.reveal`, without the author's id) in the same
    /// transaction that reads the author: if the audit fails, nothing is
    /// revealed. Other members get `forbidden`, everyone else `not_found`.
    pub async fn reveal_author(
        &self,
        p: &Principal,
        timeline: TimelineId,
        seq: Seq,
    ) -> ServiceResult<Author> {
        const ACTION: &str = "consultation.reveal";
        let caller = CallerInfo::from(Caller::User(p));
        let me = p.user_id;
        self.blocking(move |conn| {
            let Some(ctx) = directory::timeline_context(conn, timeline, me)? else {
                return denied(conn, &caller, ACTION, ServiceError::NotFound);
            };
            let group_facts = facts(conn, &caller, &ctx.group)?;
            if let Err(e) = allow(conn, &caller, Action::RevealAuthor { group: group_facts }) {
                return denied(conn, &caller, ACTION, e);
            }
            // Only a consultation timeline has anything to reveal.
            if ctx.timeline.kind()? != TimelineKind::Consultation {
                return denied(conn, &caller, ACTION, ServiceError::NotFound);
            }
            // The audit entry is the transaction's first statement (a write,
            // so SQLite takes its lock at once), and the author is read after
            // it: no entry, no reveal. An unknown seq rolls the entry back and
            // is audited as a refusal instead.
            let revealed = transaction(conn, |conn| {
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: ACTION,
                        outcome: "ok",
                        group_id: Some(ctx.group.id),
                        timeline_id: Some(ctx.timeline.id),
                        detail: Some(format!("seq={seq}")),
                        ..Default::default()
                    },
                )?;
                let Some(event) = events::event_at(conn, timeline, seq)? else {
                    return Err(ServiceError::NotFound);
                };
                Ok(directory::user(conn, UserId(event.author_id))?.author()?)
            });
            match revealed {
                Err(ServiceError::NotFound) => {
                    denied(conn, &caller, ACTION, ServiceError::NotFound)
                }
                other => other,
            }
        })
        .await
    }
}
