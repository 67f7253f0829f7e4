//! Patients, groups and membership.

use super::*;

impl Service {
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
            // Staff of another facility learn nothing about this one: an
            // unknown facility and someone else's answer alike.
            let creators = match directory::facility(conn, facility) {
                Ok(f) => f.policy()?.patient_group_creators,
                Err(kizuna_store::StoreError::NotFound) if caller.user.is_some() => {
                    return denied(
                        conn,
                        &caller,
                        "admin.create_patient",
                        ServiceError::NotFound,
                    );
                }
                Err(kizuna_store::StoreError::NotFound) => {
                    return Err(invalid("facility_id names no facility"));
                }
                Err(e) => return Err(e.into()),
            };
            let op = AdminOp::CreatePatient { facility, creators };
            if let Err(e) = allow(conn, &caller, Action::Admin(op)) {
                let other_facility =
                    caller_actor(conn, &caller)?.is_some_and(|a| a.facility_id != Some(facility));
                let e = if other_facility {
                    ServiceError::NotFound
                } else {
                    e
                };
                return denied(conn, &caller, "admin.create_patient", e);
            }
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
            let group_facts = facts(conn, &caller, &g)?;
            // Refused callers learn nothing about the user id they named.
            let any = Action::ManageMembers {
                group: group_facts,
                change: MemberChange::Remove,
            };
            if let Err(e) = allow(conn, &caller, any) {
                return denied(conn, &caller, "admin.add_member", e);
            }
            // A missing, disabled or foreign account that could never be
            // added answers like a missing one: the id tells nothing.
            let u = match directory::user(conn, user) {
                Ok(u) if u.status()? == UserStatus::Active => u,
                Ok(_) | Err(kizuna_store::StoreError::NotFound) => {
                    return denied(conn, &caller, "admin.add_member", ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let kind = u.kind()?;
            // Patients' own accounts are linked to their record, never added.
            if !may_join(kind, g.kind()?) || kind == UserKind::Patient {
                return denied(conn, &caller, "admin.add_member", ServiceError::NotFound);
            }
            let invitee = invitee_facts(conn, &u)?;
            let scope = if visibility_for(kind, Visibility::All) == Visibility::FamilyOnly {
                InvitationScope::Family
            } else {
                InvitationScope::Team
            };
            let approvals_needed = g.kind()? == GroupKind::Patient
                && !required_approvals(&group_facts, &invitee, patient_joined(conn, &g)?)
                    .is_empty();
            let action = Action::ManageMembers {
                group: group_facts,
                change: MemberChange::Add {
                    invitee,
                    scope,
                    approvals_needed,
                },
            };
            if let Err(e) = allow(conn, &caller, action) {
                return denied(conn, &caller, "admin.add_member", e);
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
            let change = if caller.user == Some(user) {
                MemberChange::Leave
            } else if patient_account(conn, &g)? == Some(user) {
                MemberChange::RemovePatient
            } else {
                MemberChange::Remove
            };
            let action = Action::ManageMembers {
                group: facts(conn, &caller, &g)?,
                change,
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
}

/// The access-control facts of someone to be added or invited.
pub(crate) fn invitee_facts(conn: &mut DbConn, u: &UserRow) -> ServiceResult<Invitee> {
    let facility = match u.facility_id {
        Some(f) if u.kind()? == UserKind::Staff => Some((
            FacilityId(f),
            directory::facility(conn, FacilityId(f))?.policy()?,
        )),
        _ => None,
    };
    Ok(Invitee {
        kind: u.kind()?,
        facility,
    })
}

/// The patient's own account, for a patient group whose patient has one.
fn patient_account(conn: &mut DbConn, g: &GroupRow) -> ServiceResult<Option<UserId>> {
    let Some(pid) = g.patient_id else {
        return Ok(None);
    };
    Ok(directory::patient(conn, PatientId(pid))?
        .user_id
        .map(UserId))
}

/// Whether the patient's own account is a member of their patient group.
pub(crate) fn patient_joined(conn: &mut DbConn, g: &GroupRow) -> ServiceResult<bool> {
    Ok(match patient_account(conn, g)? {
        Some(u) => directory::membership(conn, GroupId(g.id), u)?.is_some(),
        None => false,
    })
}

/// The access-control facts of a group for a caller.
pub(crate) fn facts(
    conn: &mut DbConn,
    caller: &CallerInfo,
    g: &GroupRow,
) -> ServiceResult<GroupFacts> {
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
        owner_policy: directory::group_policy(conn, g)?,
    })
}

impl Service {
    /// Links a patient's own account to their patient record (an admin of
    /// the patient's facility, or the operator) and, while the facility's
    /// family timeline is on, makes it a member of the family timeline. From
    /// then on the patient approves every invitation into their group.
    pub async fn link_patient_account(
        &self,
        caller: Caller<'_>,
        patient: PatientId,
        user: UserId,
    ) -> ServiceResult<MemberView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let record = match directory::patient(conn, patient) {
                Ok(r) => r,
                Err(kizuna_store::StoreError::NotFound) => {
                    return denied(
                        conn,
                        &caller,
                        "admin.link_patient_account",
                        ServiceError::NotFound,
                    );
                }
                Err(e) => return Err(e.into()),
            };
            let facility = FacilityId(record.facility_id);
            let op = AdminOp::LinkPatientAccount { facility };
            allow_in_facility(
                conn,
                &caller,
                Some(facility.get()),
                op,
                "admin.link_patient_account",
            )?;
            let account =
                directory::user(conn, user).map_err(|_| invalid("user_id names no user"))?;
            if account.kind()? != UserKind::Patient || account.facility_id != Some(facility.get()) {
                return Err(invalid(
                    "user_id must name a patient account of the patient's facility",
                ));
            }
            if account.status()? != UserStatus::Active {
                return Err(invalid("the account is disabled"));
            }
            if record.user_id.is_some() {
                return Err(ServiceError::Conflict("the patient already has an account"));
            }
            let group = directory::patient_group(conn, patient)?;
            let family_on =
                directory::group_policy(conn, &group)?.is_none_or(|p| p.family_timeline);
            transaction(conn, |conn| {
                // First statement a write (SQLite takes its lock at once);
                // only links a record that has no account yet, so two
                // concurrent links cannot both succeed.
                if !directory::link_patient_account(conn, patient, user)? {
                    return Err(ServiceError::Conflict("the patient already has an account"));
                }
                if family_on && directory::membership(conn, GroupId(group.id), user)?.is_none() {
                    directory::add_member(
                        conn,
                        GroupId(group.id),
                        user,
                        GroupRole::Member,
                        Visibility::FamilyOnly,
                    )?;
                }
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.link_patient_account",
                        outcome: "ok",
                        facility_id: Some(facility.get()),
                        patient_id: Some(patient.get()),
                        group_id: Some(group.id),
                        subject_user_id: Some(user.get()),
                        detail: Some(format!("family_member={family_on}")),
                        ..Default::default()
                    },
                )
            })?;
            Ok(MemberView {
                user_id: user,
                display_name: account.author()?.display_name,
                kind: UserKind::Patient,
                role: GroupRole::Member,
                visibility: Visibility::FamilyOnly,
            })
        })
        .await
    }
}
