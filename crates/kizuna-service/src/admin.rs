//! Administration: facilities, accounts, patients (with their patient groups),
//! free groups and communities, membership, account deactivation. Callers are
//! users (checked by the access function) or the CLI (see [`Caller::Cli`]).
//! Every action is audited.

use crate::Service;
use crate::audit::record;
use crate::auth::{Caller, RequestContext, password};
use crate::error::{ServiceError, ServiceResult};
use kizuna_domain::access::{
    Action, AdminOp, Decision, GroupFacts, decide, may_join, visibility_for,
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

/// A facility, as returned by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct FacilityView {
    /// Id.
    pub id: FacilityId,
    /// Name.
    pub name: Name,
    /// Whether staff need a client certificate as well as a password.
    pub require_client_cert: bool,
}

/// A user account, as returned by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub login: String,
    /// Display name.
    pub display_name: Name,
    /// Kind.
    pub kind: UserKind,
    /// Profession.
    pub profession: Option<Profession>,
    /// Facility.
    pub facility_id: Option<FacilityId>,
    /// Role in the facility.
    pub facility_role: Option<FacilityRole>,
    /// Status.
    pub status: UserStatus,
}

/// A timeline of a group.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineView {
    /// Id.
    pub timeline_id: TimelineId,
    /// Kind.
    pub kind: TimelineKind,
}

/// A member of a group.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    /// The user.
    pub user_id: UserId,
    /// Display name.
    pub display_name: Name,
    /// Account kind.
    pub kind: UserKind,
    /// Role in the group.
    pub role: GroupRole,
    /// Which timelines the member sees.
    pub visibility: Visibility,
}

/// A group, as returned by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    /// Id.
    pub id: GroupId,
    /// Kind.
    pub kind: GroupKind,
    /// Name.
    pub name: Name,
    /// Owning facility.
    pub owner_facility_id: Option<FacilityId>,
    /// The patient, for a patient group.
    pub patient_id: Option<PatientId>,
    /// Its timelines.
    pub timelines: Vec<TimelineView>,
    /// Its members (filled by [`Service::group`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberView>,
}

/// One audit entry, as exported.
#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    /// Id (position in the chain).
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// Who acted.
    pub actor_user_id: Option<i64>,
    /// What.
    pub action: String,
    /// `ok`, `denied`, `failed`.
    pub outcome: String,
    /// Facility concerned.
    pub facility_id: Option<i64>,
    /// Patient concerned.
    pub patient_id: Option<i64>,
    /// Group concerned.
    pub group_id: Option<i64>,
    /// Timeline concerned.
    pub timeline_id: Option<i64>,
    /// User acted upon.
    pub subject_user_id: Option<i64>,
    /// Codes and ids.
    pub detail: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
    /// Client certificate serial.
    pub cert_serial: Option<String>,
    /// Hash of this entry (chained).
    pub hash: String,
}

impl From<kizuna_store::models::AuditRow> for AuditView {
    fn from(r: kizuna_store::models::AuditRow) -> Self {
        AuditView {
            id: r.id,
            at: r.at,
            actor_user_id: r.actor_user_id,
            action: r.action,
            outcome: r.outcome,
            facility_id: r.facility_id,
            patient_id: r.patient_id,
            group_id: r.group_id,
            timeline_id: r.timeline_id,
            subject_user_id: r.subject_user_id,
            detail: r.detail,
            remote_addr: r.remote_addr,
            cert_serial: r.cert_serial,
            hash: r.hash,
        }
    }
}

/// A new account.
pub struct NewAccount {
    /// Login name: 3–64 characters of `a-z A-Z 0-9 . _ - @`.
    pub login: String,
    /// Display name.
    pub display_name: Name,
    /// Kind.
    pub kind: UserKind,
    /// Profession (staff).
    pub profession: Option<Profession>,
    /// Facility (staff and patients: required; others: none).
    pub facility_id: Option<FacilityId>,
    /// Role in the facility (staff; default `staff`).
    pub facility_role: Option<FacilityRole>,
    /// Initial password.
    pub password: SecretString,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("kind", &self.kind)
            .field("facility_id", &self.facility_id)
            .finish_non_exhaustive()
    }
}

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

fn user_view(u: &UserRow) -> ServiceResult<UserView> {
    let actor = u.actor()?;
    Ok(UserView {
        id: u.user_id(),
        login: u.login.clone(),
        display_name: Name::parse(u.display_name.clone())
            .map_err(|_| ServiceError::Internal("stored name invalid".into()))?,
        kind: actor.kind,
        profession: u
            .profession
            .as_deref()
            .map(|p| p.parse())
            .transpose()
            .map_err(|_| ServiceError::Internal("stored profession invalid".into()))?,
        facility_id: actor.facility_id,
        facility_role: actor.facility_role,
        status: actor.status,
    })
}

fn group_view(g: &GroupWithTimelines) -> ServiceResult<GroupView> {
    let mut v = group_row_view(&g.group)?;
    v.timelines = g
        .timelines
        .iter()
        .map(|t| {
            Ok(TimelineView {
                timeline_id: TimelineId(t.id),
                kind: t.kind()?,
            })
        })
        .collect::<ServiceResult<_>>()?;
    Ok(v)
}

fn group_row_view(g: &GroupRow) -> ServiceResult<GroupView> {
    Ok(GroupView {
        id: GroupId(g.id),
        kind: g.kind()?,
        name: Name::parse(g.name.clone())
            .map_err(|_| ServiceError::Internal("stored group name invalid".into()))?,
        owner_facility_id: g.owner_facility_id.map(FacilityId),
        patient_id: g.patient_id.map(PatientId),
        timelines: Vec::new(),
        members: Vec::new(),
    })
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

impl Service {
    /// Creates a facility (operator). `require_client_cert`: whether its staff
    /// log in with a client certificate and a password (default) or a
    /// password only.
    pub async fn create_facility(
        &self,
        caller: Caller<'_>,
        name: Name,
        require_client_cert: bool,
    ) -> ServiceResult<FacilityView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            if let Err(e) = allow(conn, &caller, Action::Admin(AdminOp::CreateFacility)) {
                return denied(conn, &caller, "admin.create_facility", e);
            }
            transaction(conn, |conn| {
                let f = directory::create_facility(conn, name.expose(), require_client_cert)?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.create_facility",
                        outcome: "ok",
                        facility_id: Some(f.id),
                        detail: Some(format!("require_client_cert={require_client_cert}")),
                        ..Default::default()
                    },
                )?;
                Ok(FacilityView {
                    id: FacilityId(f.id),
                    name,
                    require_client_cert,
                })
            })
        })
        .await
    }

    /// Lists facilities (operator).
    pub async fn facilities(&self, caller: Caller<'_>) -> ServiceResult<Vec<FacilityView>> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            allow(conn, &caller, Action::Admin(AdminOp::ListFacilities))?;
            directory::facilities(conn)?
                .into_iter()
                .map(|f| {
                    Ok(FacilityView {
                        id: FacilityId(f.id),
                        name: Name::parse(f.name)
                            .map_err(|_| ServiceError::Internal("stored name invalid".into()))?,
                        require_client_cert: f.require_client_cert,
                    })
                })
                .collect()
        })
        .await
    }

    /// Creates an account. Authorization comes before the (deliberately
    /// expensive) password hash, so refused callers cost nothing.
    pub async fn create_user(
        &self,
        caller: Caller<'_>,
        new: NewAccount,
    ) -> ServiceResult<UserView> {
        check_login(&new.login)?;
        password::check_new(new.password.expose_secret()).map_err(ServiceError::Invalid)?;
        match new.kind {
            UserKind::Staff | UserKind::Patient if new.facility_id.is_none() => {
                return Err(invalid("staff and patient accounts need a facility_id"));
            }
            UserKind::Family | UserKind::Company | UserKind::Operator
                if new.facility_id.is_some() =>
            {
                return Err(invalid(
                    "only staff and patient accounts belong to a facility",
                ));
            }
            _ => {}
        }
        if new.kind != UserKind::Staff && (new.profession.is_some() || new.facility_role.is_some())
        {
            return Err(invalid(
                "profession and facility_role are for staff accounts",
            ));
        }
        let caller = CallerInfo::from(caller);
        let (facility, kind) = (new.facility_id, new.kind);
        let check = caller.clone();
        self.blocking(move |conn| {
            let op = AdminOp::CreateUser { facility, kind };
            if let Err(e) = allow(conn, &check, Action::Admin(op)) {
                return denied(conn, &check, "admin.create_user", e);
            }
            if let Some(f) = facility {
                directory::facility(conn, f)
                    .map_err(|_| invalid("facility_id names no facility"))?;
            }
            Ok(())
        })
        .await?;
        let hash = {
            let pw = new.password.clone();
            tokio::task::spawn_blocking(move || password::hash(pw.expose_secret()))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(ServiceError::Internal)?
        };
        self.blocking(move |conn| {
            let role = if new.kind == UserKind::Staff {
                Some(new.facility_role.unwrap_or(FacilityRole::Staff))
            } else {
                None
            };
            transaction(conn, |conn| {
                let row = directory::create_user(
                    conn,
                    &NewUser {
                        login: &new.login,
                        display_name: new.display_name.expose(),
                        kind: new.kind,
                        profession: new.profession,
                        facility_id: new.facility_id,
                        facility_role: role,
                        password_hash: &hash,
                    },
                )?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.create_user",
                        outcome: "ok",
                        facility_id: row.facility_id,
                        subject_user_id: Some(row.id),
                        detail: Some(format!("kind={}", new.kind)),
                        ..Default::default()
                    },
                )?;
                user_view(&row)
            })
        })
        .await
    }

    /// Looks up a user by login (the CLI's way of naming people).
    pub async fn user_by_login(&self, login: String) -> ServiceResult<UserView> {
        self.blocking(move |conn| {
            user_view(&directory::user_by_login(conn, &login)?.ok_or(ServiceError::NotFound)?)
        })
        .await
    }

    /// Registers a patient and creates the patient group; the registering staff
    /// member (or, from the CLI, the named `owner`) owns the group.
    pub async fn create_patient(
        &self,
        caller: Caller<'_>,
        facility: FacilityId,
        name: Name,
        owner: Option<UserId>,
    ) -> ServiceResult<GroupView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            if let Err(e) = allow(
                conn,
                &caller,
                Action::Admin(AdminOp::CreatePatient { facility }),
            ) {
                return denied(conn, &caller, "admin.create_patient", e);
            }
            directory::facility(conn, facility)
                .map_err(|_| invalid("facility_id names no facility"))?;
            let Some(owner) = caller.user.or(owner) else {
                return Err(invalid(
                    "the CLI must name an owner for a new patient group (--owner)",
                ));
            };
            let u = directory::user(conn, owner).map_err(|_| invalid("owner names no user"))?;
            if u.kind()? != UserKind::Staff || u.facility_id != Some(facility.get()) {
                return Err(invalid("the owner must be staff of the patient's facility"));
            }
            transaction(conn, |conn| {
                let g = directory::create_patient_group(
                    conn,
                    facility,
                    name.expose(),
                    owner,
                    Some(owner),
                )?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.create_patient",
                        outcome: "ok",
                        facility_id: Some(facility.get()),
                        patient_id: g.patient.as_ref().map(|p| p.id),
                        group_id: Some(g.group.id),
                        ..Default::default()
                    },
                )?;
                group_view(&g)
            })
        })
        .await
    }

    /// Creates a free group or community owned by the caller (or, from the
    /// CLI, the named `owner`).
    pub async fn create_group(
        &self,
        caller: Caller<'_>,
        kind: GroupKind,
        name: Name,
        owner: Option<UserId>,
    ) -> ServiceResult<GroupView> {
        if kind == GroupKind::Patient {
            return Err(invalid(
                "patient groups are created by registering a patient",
            ));
        }
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            if let Err(e) = allow(conn, &caller, Action::Admin(AdminOp::CreateGroup { kind })) {
                return denied(conn, &caller, "admin.create_group", e);
            }
            let Some(owner_id) = caller.user.or(owner) else {
                return Err(invalid(
                    "the CLI must name an owner for a new group (--owner)",
                ));
            };
            let owner_row =
                directory::user(conn, owner_id).map_err(|_| invalid("owner names no user"))?;
            if !may_join(owner_row.kind()?, kind) {
                return Err(invalid(
                    "this kind of account cannot own this kind of group",
                ));
            }
            transaction(conn, |conn| {
                let g = directory::create_group(
                    conn,
                    kind,
                    name.expose(),
                    owner_row.facility_id.map(FacilityId),
                    owner_id,
                )?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.create_group",
                        outcome: "ok",
                        group_id: Some(g.group.id),
                        facility_id: owner_row.facility_id,
                        ..Default::default()
                    },
                )?;
                group_view(&g)
            })
        })
        .await
    }

    /// A group with its timelines and members.
    pub async fn group(&self, caller: Caller<'_>, group: GroupId) -> ServiceResult<GroupView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let g = directory::group(conn, group)?;
            let group_facts = facts(conn, &caller, &g)?;
            allow(conn, &caller, Action::ViewGroup { group: group_facts })?;
            let timelines = directory::group_timelines(conn, group)?;
            let mut v = group_view(&GroupWithTimelines {
                group: g,
                timelines,
                patient: None,
            })?;
            v.members = directory::members(conn, group)?
                .into_iter()
                .map(|(m, a)| {
                    let author = a.author()?;
                    let mm = m.membership()?;
                    Ok(MemberView {
                        user_id: author.user_id,
                        display_name: author.display_name,
                        kind: author.kind,
                        role: mm.role,
                        visibility: mm.visibility,
                    })
                })
                .collect::<ServiceResult<_>>()?;
            Ok(v)
        })
        .await
    }

    /// Adds a member. Patients and family members see the family timeline only,
    /// whatever is asked.
    pub async fn add_member(
        &self,
        caller: Caller<'_>,
        group: GroupId,
        user: UserId,
        role: GroupRole,
    ) -> ServiceResult<MemberView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let g = match directory::group(conn, group) {
                Ok(g) => g,
                Err(kizuna_store::StoreError::NotFound) => {
                    return denied(conn, &caller, "admin.add_member", ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let action = Action::ManageMembers {
                group: facts(conn, &caller, &g)?,
                target_is_self: false,
            };
            if let Err(e) = allow(conn, &caller, action) {
                return denied(conn, &caller, "admin.add_member", e);
            }
            let u = directory::user(conn, user).map_err(|_| invalid("user_id names no user"))?;
            let kind = u.kind()?;
            if !may_join(kind, g.kind()?) {
                return Err(invalid(
                    "this kind of account cannot join this kind of group",
                ));
            }
            if u.status()? != UserStatus::Active {
                return Err(invalid("the account is disabled"));
            }
            let visibility = visibility_for(kind, Visibility::All);
            let role = if visibility == Visibility::FamilyOnly {
                GroupRole::Member
            } else {
                role
            };
            transaction(conn, |conn| {
                directory::add_member(conn, group, user, role, visibility)?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.add_member",
                        outcome: "ok",
                        group_id: Some(group.get()),
                        patient_id: g.patient_id,
                        subject_user_id: Some(user.get()),
                        detail: Some(format!("role={role} visibility={visibility}")),
                        ..Default::default()
                    },
                )
            })?;
            let author = u.author()?;
            Ok(MemberView {
                user_id: user,
                display_name: author.display_name,
                kind,
                role,
                visibility,
            })
        })
        .await
    }

    /// Removes a member (or lets a member leave) and closes their live
    /// connections; they reconnect without the group's timelines.
    pub async fn remove_member(
        &self,
        caller: Caller<'_>,
        group: GroupId,
        user: UserId,
    ) -> ServiceResult<()> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let g = directory::group(conn, group)?;
            let action = Action::ManageMembers {
                group: facts(conn, &caller, &g)?,
                target_is_self: caller.user == Some(user),
            };
            if let Err(e) = allow(conn, &caller, action) {
                return denied(conn, &caller, "admin.remove_member", e);
            }
            transaction(conn, |conn| {
                directory::remove_member(conn, group, user)?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.remove_member",
                        outcome: "ok",
                        group_id: Some(group.get()),
                        patient_id: g.patient_id,
                        subject_user_id: Some(user.get()),
                        ..Default::default()
                    },
                )
            })
        })
        .await?;
        self.close_connections(Selector::User(user), CloseReason::MembershipChanged)
            .await;
        Ok(())
    }

    /// Disables or re-enables an account. Disabling ends every session and
    /// closes every live connection of the account at once.
    pub async fn set_user_status(
        &self,
        caller: Caller<'_>,
        user: UserId,
        status: UserStatus,
    ) -> ServiceResult<()> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            // Only someone who administers accounts at all learns whether an
            // id exists.
            let target = match directory::user(conn, user) {
                Ok(t) => t,
                Err(kizuna_store::StoreError::NotFound) => {
                    let any = AdminOp::SetUserStatus {
                        facility: None,
                        kind: UserKind::Staff,
                    };
                    allow(conn, &caller, Action::Admin(any))
                        .or_else(|_| {
                            let own = caller_actor(conn, &caller)?.and_then(|a| a.facility_id);
                            allow(
                                conn,
                                &caller,
                                Action::Admin(AdminOp::SetUserStatus {
                                    facility: own,
                                    kind: UserKind::Staff,
                                }),
                            )
                        })
                        .or_else(|e| denied(conn, &caller, "admin.set_user_status", e))?;
                    return Err(ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let op = AdminOp::SetUserStatus {
                facility: target.facility_id.map(FacilityId),
                kind: target.kind()?,
            };
            if let Err(e) = allow(conn, &caller, Action::Admin(op)) {
                return denied(conn, &caller, "admin.set_user_status", e);
            }
            transaction(conn, |conn| {
                directory::set_user_status(conn, user, status)?;
                if status == UserStatus::Disabled {
                    sessions::revoke_user_sessions(conn, user, "account_disabled")?;
                }
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.set_user_status",
                        outcome: "ok",
                        facility_id: target.facility_id,
                        subject_user_id: Some(user.get()),
                        detail: Some(format!("status={status}")),
                        ..Default::default()
                    },
                )
            })
        })
        .await?;
        if status == UserStatus::Disabled {
            self.close_connections(Selector::User(user), CloseReason::AccountDisabled)
                .await;
        }
        Ok(())
    }

    /// Audit entries matching a filter (the CLI; the facility-scoped REST
    /// query comes with the audit issue).
    pub async fn audit_entries(
        &self,
        caller: Caller<'_>,
        filter: kizuna_store::audit::AuditFilter,
    ) -> ServiceResult<Vec<AuditView>> {
        if !matches!(caller, Caller::Cli) {
            return Err(ServiceError::Forbidden(
                "the audit trail is read from the command line for now",
            ));
        }
        self.blocking(move |conn| {
            Ok(kizuna_store::audit::entries(conn, &filter)?
                .into_iter()
                .map(AuditView::from)
                .collect())
        })
        .await
    }

    /// Recomputes the audit trail's hash chain; returns how many entries were
    /// checked, or an error naming the first broken entry.
    pub async fn verify_audit(&self) -> ServiceResult<usize> {
        self.blocking(|conn| match kizuna_store::audit::verify_chain(conn)? {
            Ok(n) => Ok(n),
            Err(broken) => Err(ServiceError::Internal(broken.to_string())),
        })
        .await
    }
}

/// The access-control facts of a group for a caller.
fn facts(conn: &mut DbConn, caller: &CallerInfo, g: &GroupRow) -> ServiceResult<GroupFacts> {
    let membership = match caller.user {
        Some(uid) => directory::membership(conn, GroupId(g.id), uid)?
            .map(|m| m.membership())
            .transpose()?,
        None => None,
    };
    Ok(GroupFacts {
        kind: g.kind()?,
        owner_facility: g.owner_facility_id.map(FacilityId),
        membership,
    })
}
