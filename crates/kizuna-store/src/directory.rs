//! Facilities, users, patients, groups and memberships.

use crate::db::{DbConn, now_ms};
use crate::error::StoreError;
use crate::models::*;
use crate::schema::*;
use diesel::prelude::*;
use kizuna_domain::*;

/// A new user account.
#[derive(Clone)]
pub struct NewUser<'a> {
    /// Login name (unique).
    pub login: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Kind.
    pub kind: UserKind,
    /// Profession (staff).
    pub profession: Option<Profession>,
    /// Facility (staff, patients).
    pub facility_id: Option<FacilityId>,
    /// Role in the facility (staff).
    pub facility_role: Option<FacilityRole>,
    /// argon2id PHC string.
    pub password_hash: &'a str,
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("kind", &self.kind)
            .field("facility_id", &self.facility_id)
            .finish_non_exhaustive()
    }
}

/// Creates a facility. `require_client_cert`: whether its staff need a
/// client certificate as well as a password to log in.
pub fn create_facility(
    conn: &mut DbConn,
    name: &str,
    require_client_cert: bool,
) -> Result<FacilityRow, StoreError> {
    Ok(diesel::insert_into(facilities::table)
        .values((
            facilities::name.eq(name),
            facilities::created_at.eq(now_ms()),
            facilities::require_client_cert.eq(require_client_cert),
        ))
        .returning(facilities::all_columns)
        .get_result(conn)?)
}

/// Looks up a facility.
pub fn facility(conn: &mut DbConn, id: FacilityId) -> Result<FacilityRow, StoreError> {
    Ok(facilities::table.find(id.get()).get_result(conn)?)
}

/// All facilities, by id.
pub fn facilities(conn: &mut DbConn) -> Result<Vec<FacilityRow>, StoreError> {
    Ok(facilities::table.order(facilities::id).load(conn)?)
}

/// Creates a user; `Conflict` when the login is taken.
pub fn create_user(conn: &mut DbConn, new: &NewUser<'_>) -> Result<UserRow, StoreError> {
    let now = now_ms();
    diesel::insert_into(users::table)
        .values((
            users::login.eq(new.login),
            users::display_name.eq(new.display_name),
            users::kind.eq(new.kind.as_str()),
            users::profession.eq(new.profession.map(|p| p.as_str())),
            users::facility_id.eq(new.facility_id.map(FacilityId::get)),
            users::facility_role.eq(new.facility_role.map(|r| r.as_str())),
            users::status.eq(UserStatus::Active.as_str()),
            users::password_hash.eq(new.password_hash),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .returning(users::all_columns)
        .get_result(conn)
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("login taken"),
            other => other,
        })
}

/// A user by login.
pub fn user_by_login(conn: &mut DbConn, login: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::login.eq(login))
        .get_result(conn)
        .optional()?)
}

/// A user by id.
pub fn user(conn: &mut DbConn, id: UserId) -> Result<UserRow, StoreError> {
    Ok(users::table.find(id.get()).get_result(conn)?)
}

/// Sets a user's status.
pub fn set_user_status(
    conn: &mut DbConn,
    id: UserId,
    status: UserStatus,
) -> Result<(), StoreError> {
    let n = diesel::update(users::table.find(id.get()))
        .set((
            users::status.eq(status.as_str()),
            users::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Replaces a user's password hash.
pub fn set_password_hash(conn: &mut DbConn, id: UserId, hash: &str) -> Result<(), StoreError> {
    let n = diesel::update(users::table.find(id.get()))
        .set((
            users::password_hash.eq(hash),
            users::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Number of user accounts of a kind.
pub fn count_users_of_kind(conn: &mut DbConn, kind: UserKind) -> Result<i64, StoreError> {
    Ok(users::table
        .filter(users::kind.eq(kind.as_str()))
        .count()
        .get_result(conn)?)
}

/// A group with its timelines.
#[derive(Debug, Clone)]
pub struct GroupWithTimelines {
    /// The group.
    pub group: GroupRow,
    /// Its timelines, in [`TimelineKind::for_group`] order.
    pub timelines: Vec<TimelineRow>,
    /// The patient, for a patient group.
    pub patient: Option<PatientRow>,
}

fn insert_group(
    conn: &mut DbConn,
    kind: GroupKind,
    name: &str,
    owner_facility: Option<FacilityId>,
    patient_id: Option<i64>,
    created_by: UserId,
) -> Result<(GroupRow, Vec<TimelineRow>), StoreError> {
    let now = now_ms();
    let group: GroupRow = diesel::insert_into(care_groups::table)
        .values((
            care_groups::kind.eq(kind.as_str()),
            care_groups::name.eq(name),
            care_groups::owner_facility_id.eq(owner_facility.map(FacilityId::get)),
            care_groups::patient_id.eq(patient_id),
            care_groups::created_by.eq(created_by.get()),
            care_groups::created_at.eq(now),
        ))
        .returning(care_groups::all_columns)
        .get_result(conn)?;
    let mut timelines = Vec::new();
    for tk in TimelineKind::for_group(kind) {
        let t: TimelineRow = diesel::insert_into(timelines::table)
            .values((
                timelines::group_id.eq(group.id),
                timelines::kind.eq(tk.as_str()),
                timelines::last_seq.eq(0i64),
            ))
            .returning(timelines::all_columns)
            .get_result(conn)?;
        timelines.push(t);
    }
    Ok((group, timelines))
}

/// Creates a free group or community; the creator becomes its owner.
pub fn create_group(
    conn: &mut DbConn,
    kind: GroupKind,
    name: &str,
    owner_facility: Option<FacilityId>,
    created_by: UserId,
) -> Result<GroupWithTimelines, StoreError> {
    conn.transaction(|conn| {
        let (group, timelines) = insert_group(conn, kind, name, owner_facility, None, created_by)?;
        insert_member(
            conn,
            GroupId(group.id),
            created_by,
            GroupRole::Owner,
            Visibility::All,
        )?;
        Ok(GroupWithTimelines {
            group,
            timelines,
            patient: None,
        })
    })
}

/// Registers a patient and creates their patient group (team + family
/// timelines). When `owner` is given, that user becomes the group's owner.
pub fn create_patient_group(
    conn: &mut DbConn,
    facility_id: FacilityId,
    patient_name: &str,
    created_by: UserId,
    owner: Option<UserId>,
) -> Result<GroupWithTimelines, StoreError> {
    conn.transaction(|conn| {
        let patient: PatientRow = diesel::insert_into(patients::table)
            .values((
                patients::facility_id.eq(facility_id.get()),
                patients::display_name.eq(patient_name),
                patients::created_by.eq(created_by.get()),
                patients::created_at.eq(now_ms()),
            ))
            .returning(patients::all_columns)
            .get_result(conn)?;
        let (group, timelines) = insert_group(
            conn,
            GroupKind::Patient,
            patient_name,
            Some(facility_id),
            Some(patient.id),
            created_by,
        )?;
        if let Some(owner) = owner {
            insert_member(
                conn,
                GroupId(group.id),
                owner,
                GroupRole::Owner,
                Visibility::All,
            )?;
        }
        Ok(GroupWithTimelines {
            group,
            timelines,
            patient: Some(patient),
        })
    })
}

fn insert_member(
    conn: &mut DbConn,
    group: GroupId,
    user: UserId,
    role: GroupRole,
    visibility: Visibility,
) -> Result<MemberRow, StoreError> {
    diesel::insert_into(group_members::table)
        .values((
            group_members::group_id.eq(group.get()),
            group_members::user_id.eq(user.get()),
            group_members::role.eq(role.as_str()),
            group_members::visibility.eq(visibility.as_str()),
            group_members::joined_at.eq(now_ms()),
        ))
        .returning(group_members::all_columns)
        .get_result(conn)
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("already a member"),
            other => other,
        })
}

/// Adds a member; `Conflict` when already one.
pub fn add_member(
    conn: &mut DbConn,
    group: GroupId,
    user: UserId,
    role: GroupRole,
    visibility: Visibility,
) -> Result<MemberRow, StoreError> {
    insert_member(conn, group, user, role, visibility)
}

/// Removes a member; `NotFound` when not one.
pub fn remove_member(conn: &mut DbConn, group: GroupId, user: UserId) -> Result<(), StoreError> {
    let n = diesel::delete(group_members::table.find((group.get(), user.get()))).execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// A group by id.
pub fn group(conn: &mut DbConn, id: GroupId) -> Result<GroupRow, StoreError> {
    Ok(care_groups::table.find(id.get()).get_result(conn)?)
}

/// A group's timelines.
pub fn group_timelines(conn: &mut DbConn, id: GroupId) -> Result<Vec<TimelineRow>, StoreError> {
    Ok(timelines::table
        .filter(timelines::group_id.eq(id.get()))
        .order(timelines::id)
        .load(conn)?)
}

/// A user's membership in a group.
pub fn membership(
    conn: &mut DbConn,
    group: GroupId,
    user: UserId,
) -> Result<Option<MemberRow>, StoreError> {
    Ok(group_members::table
        .find((group.get(), user.get()))
        .get_result(conn)
        .optional()?)
}

/// A group's members with their author view, by join time.
pub fn members(
    conn: &mut DbConn,
    group: GroupId,
) -> Result<Vec<(MemberRow, AuthorRow)>, StoreError> {
    Ok(group_members::table
        .inner_join(users::table)
        .filter(group_members::group_id.eq(group.get()))
        .order(group_members::joined_at)
        .select((group_members::all_columns, AUTHOR_COLUMNS))
        .load(conn)?)
}

/// Everything access control needs about a timeline and one user.
#[derive(Debug, Clone)]
pub struct TimelineContext {
    /// The timeline.
    pub timeline: TimelineRow,
    /// Its group.
    pub group: GroupRow,
    /// The user's membership, if any.
    pub membership: Option<MemberRow>,
    /// The owning facility's policy (patient groups only).
    pub owner_policy: Option<FacilityPolicy>,
}

/// The policy that governs a group: its owning facility's, for patient groups
/// (other groups follow no single facility's policy).
pub fn owner_policy(
    group: &GroupRow,
    owner: Option<&FacilityRow>,
) -> Result<Option<FacilityPolicy>, StoreError> {
    match (group.patient_id, owner) {
        (Some(_), Some(f)) => Ok(Some(f.policy()?)),
        _ => Ok(None),
    }
}

/// A group's governing policy, loaded (see [`owner_policy`]).
pub fn group_policy(
    conn: &mut DbConn,
    group: &GroupRow,
) -> Result<Option<FacilityPolicy>, StoreError> {
    match (group.patient_id, group.owner_facility_id) {
        (Some(_), Some(f)) => Ok(Some(facility(conn, FacilityId(f))?.policy()?)),
        _ => Ok(None),
    }
}

/// Loads a timeline, its group and the user's membership; `None` when the
/// timeline does not exist.
pub fn timeline_context(
    conn: &mut DbConn,
    timeline: TimelineId,
    user: UserId,
) -> Result<Option<TimelineContext>, StoreError> {
    let found: Option<(TimelineRow, GroupRow, Option<FacilityRow>)> = timelines::table
        .inner_join(care_groups::table.left_join(facilities::table))
        .filter(timelines::id.eq(timeline.get()))
        .select((
            timelines::all_columns,
            care_groups::all_columns,
            facilities::all_columns.nullable(),
        ))
        .get_result(conn)
        .optional()?;
    let Some((timeline, group, owner)) = found else {
        return Ok(None);
    };
    let membership = membership(conn, GroupId(group.id), user)?;
    let owner_policy = owner_policy(&group, owner.as_ref())?;
    Ok(Some(TimelineContext {
        timeline,
        group,
        membership,
        owner_policy,
    }))
}

/// One of a user's timelines (see [`timelines_of_user`]).
#[derive(Debug, Clone)]
pub struct UserTimeline {
    /// The timeline.
    pub timeline: TimelineRow,
    /// Its group.
    pub group: GroupRow,
    /// The user's membership.
    pub membership: MemberRow,
    /// The user's read marker (0 when none).
    pub read_seq: i64,
    /// The group's governing policy (patient groups).
    pub owner_policy: Option<FacilityPolicy>,
}

/// Every timeline of every group the user belongs to, with the user's
/// membership and read marker (0 when none).
pub fn timelines_of_user(conn: &mut DbConn, user: UserId) -> Result<Vec<UserTimeline>, StoreError> {
    let rows: Vec<(TimelineRow, GroupRow, MemberRow, Option<FacilityRow>)> = timelines::table
        .inner_join(
            care_groups::table
                .inner_join(group_members::table)
                .left_join(facilities::table),
        )
        .filter(group_members::user_id.eq(user.get()))
        .order(timelines::id)
        .select((
            timelines::all_columns,
            care_groups::all_columns,
            group_members::all_columns,
            facilities::all_columns.nullable(),
        ))
        .load(conn)?;
    let markers: Vec<(i64, i64)> = read_markers::table
        .filter(read_markers::user_id.eq(user.get()))
        .select((read_markers::timeline_id, read_markers::read_seq))
        .load(conn)?;
    let markers: std::collections::HashMap<i64, i64> = markers.into_iter().collect();
    rows.into_iter()
        .map(|(timeline, group, membership, owner)| {
            let read_seq = markers.get(&timeline.id).copied().unwrap_or(0);
            let owner_policy = owner_policy(&group, owner.as_ref())?;
            Ok(UserTimeline {
                timeline,
                group,
                membership,
                read_seq,
                owner_policy,
            })
        })
        .collect()
}

/// A patient by id.
pub fn patient(conn: &mut DbConn, id: PatientId) -> Result<PatientRow, StoreError> {
    Ok(patients::table.find(id.get()).get_result(conn)?)
}

/// Stores a facility's whole policy.
pub fn set_facility_policy(
    conn: &mut DbConn,
    facility: FacilityId,
    p: &FacilityPolicy,
) -> Result<FacilityRow, StoreError> {
    let (start, end) = match p.notification_hours {
        Some(h) => (
            Some(i64::from(h.start_minute)),
            Some(i64::from(h.end_minute)),
        ),
        None => (None, None),
    };
    diesel::update(facilities::table.find(facility.get()))
        .set((
            facilities::patient_group_creators.eq(p.patient_group_creators.as_str()),
            facilities::staff_join_other_facilities.eq(p.staff_join_other_facilities.as_str()),
            facilities::outside_invitations.eq(p.outside_invitations.as_str()),
            facilities::family_timeline.eq(p.family_timeline),
            facilities::require_client_cert.eq(p.require_client_cert),
            facilities::notify_start_minute.eq(start),
            facilities::notify_end_minute.eq(end),
        ))
        .returning(facilities::all_columns)
        .get_result(conn)
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// What an admin may change of an account (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserUpdate<'a> {
    /// New role in the facility.
    pub facility_role: Option<FacilityRole>,
    /// New profession.
    pub profession: Option<Profession>,
    /// New display name.
    pub display_name: Option<&'a str>,
}

/// Changes an account's role, profession or display name; returns the row.
pub fn update_user(
    conn: &mut DbConn,
    id: UserId,
    u: &UserUpdate<'_>,
) -> Result<UserRow, StoreError> {
    // Write first: concurrent edits serialize instead of losing a field.
    lock_user(conn, id)?;
    let mut row = user(conn, id)?;
    if let Some(r) = u.facility_role {
        row.facility_role = Some(r.as_str().to_owned());
    }
    if let Some(p) = u.profession {
        row.profession = Some(p.as_str().to_owned());
    }
    if let Some(n) = u.display_name {
        row.display_name = n.to_owned();
    }
    row.updated_at = now_ms();
    diesel::update(users::table.find(id.get()))
        .set((
            users::facility_role.eq(row.facility_role.as_deref()),
            users::profession.eq(row.profession.as_deref()),
            users::display_name.eq(&row.display_name),
            users::updated_at.eq(row.updated_at),
        ))
        .execute(conn)?;
    Ok(row)
}

/// Every account of a facility (staff and patients), by id.
pub fn users_of_facility(
    conn: &mut DbConn,
    facility: FacilityId,
) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::facility_id.eq(facility.get()))
        .order(users::id)
        .load(conn)?)
}

/// The groups a user belongs to, with the membership, by join time.
pub fn groups_of_user(
    conn: &mut DbConn,
    user: UserId,
) -> Result<Vec<(GroupRow, MemberRow)>, StoreError> {
    Ok(care_groups::table
        .inner_join(group_members::table)
        .filter(group_members::user_id.eq(user.get()))
        .order(group_members::joined_at)
        .select((care_groups::all_columns, group_members::all_columns))
        .load(conn)?)
}

/// Removes a user from every group (what they wrote stays); returns the
/// groups they were in.
pub fn remove_from_all_groups(conn: &mut DbConn, user: UserId) -> Result<Vec<GroupId>, StoreError> {
    let groups: Vec<i64> = group_members::table
        .filter(group_members::user_id.eq(user.get()))
        .select(group_members::group_id)
        .load(conn)?;
    diesel::delete(group_members::table.filter(group_members::user_id.eq(user.get())))
        .execute(conn)?;
    Ok(groups.into_iter().map(GroupId).collect())
}

/// The family members and patients (visibility `family_only`) of a facility's
/// patient groups.
pub fn family_members_of_facility_groups(
    conn: &mut DbConn,
    facility: FacilityId,
) -> Result<Vec<UserId>, StoreError> {
    let ids: Vec<i64> = group_members::table
        .inner_join(care_groups::table)
        .filter(care_groups::owner_facility_id.eq(facility.get()))
        .filter(care_groups::patient_id.is_not_null())
        .filter(group_members::visibility.eq(Visibility::FamilyOnly.as_str()))
        .select(group_members::user_id)
        .distinct()
        .load(conn)?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// The patient group of a patient.
pub fn patient_group(conn: &mut DbConn, patient: PatientId) -> Result<GroupRow, StoreError> {
    Ok(care_groups::table
        .filter(care_groups::patient_id.eq(patient.get()))
        .get_result(conn)?)
}

/// Links a patient's own account to their record if it has none yet;
/// returns whether it did (one statement, so two links cannot both win).
pub fn link_patient_account(
    conn: &mut DbConn,
    patient: PatientId,
    user: UserId,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        patients::table
            .find(patient.get())
            .filter(patients::user_id.is_null()),
    )
    .set(patients::user_id.eq(Some(user.get())))
    .execute(conn)?;
    Ok(n == 1)
}

/// Takes the write lock on a facility row (a no-op update) so that a
/// read-modify-write of its policy is serialized, and SQLite's transaction
/// starts with a write.
pub fn lock_facility(conn: &mut DbConn, facility: FacilityId) -> Result<(), StoreError> {
    let n = diesel::update(facilities::table.find(facility.get()))
        .set(facilities::id.eq(facilities::id))
        .execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Takes the write lock on a user row (a no-op update), for the same reason.
pub fn lock_user(conn: &mut DbConn, user: UserId) -> Result<(), StoreError> {
    let n = diesel::update(users::table.find(user.get()))
        .set(users::id.eq(users::id))
        .execute(conn)?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Deactivation: cancels the pending invitations addressed to a user and
/// withdraws their pending community applications; returns how many of each.
/// Run before removing the memberships, in the same transaction, so that a
/// concurrent approval either finishes first (and its membership is then
/// removed) or finds nothing pending.
pub fn close_pending_of_user(
    conn: &mut DbConn,
    user: UserId,
) -> Result<(usize, usize), StoreError> {
    let now = now_ms();
    let invitations = diesel::update(
        invitations::table
            .filter(invitations::invitee_user_id.eq(user.get()))
            .filter(invitations::status.eq(InvitationStatus::Pending.as_str())),
    )
    .set((
        invitations::status.eq(InvitationStatus::Cancelled.as_str()),
        invitations::closed_at.eq(Some(now)),
    ))
    .execute(conn)?;
    let applications = diesel::update(
        community_applications::table
            .filter(community_applications::user_id.eq(user.get()))
            .filter(community_applications::status.eq(ApplicationStatus::Pending.as_str())),
    )
    .set((
        community_applications::status.eq(ApplicationStatus::Withdrawn.as_str()),
        community_applications::decided_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok((invitations, applications))
}
