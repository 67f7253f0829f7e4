//! What the admin API returns.

use super::*;

/// A facility, as returned by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct FacilityView {
    /// Id.
    pub id: FacilityId,
    /// Name.
    pub name: Name,
    /// Its policy (every rule, at the top level of the JSON object).
    #[serde(flatten)]
    pub policy: kizuna_domain::FacilityPolicy,
}

/// A group one account belongs to (the admin's view of a staff member).
#[derive(Debug, Clone, Serialize)]
pub struct UserGroupView {
    /// The group.
    pub group_id: GroupId,
    /// Its kind.
    pub kind: GroupKind,
    /// Its name (for a patient group, the patient's name: shown only to
    /// admins of the facility that owns it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
    /// The group's owning facility.
    pub owner_facility_id: Option<FacilityId>,
    /// The account's role in it.
    pub role: GroupRole,
    /// Which timelines the account sees.
    pub visibility: Visibility,
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

pub(super) fn user_view(u: &UserRow) -> ServiceResult<UserView> {
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

pub(super) fn group_view(g: &GroupWithTimelines) -> ServiceResult<GroupView> {
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

pub(super) fn group_row_view(g: &GroupRow) -> ServiceResult<GroupView> {
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
