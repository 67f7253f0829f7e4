//! Single cases named as sentences, kept from the first access table. The
//! timeline rows that used to live here are all in `timelines.rs` now.

use super::*;

#[test]
fn family_member_cannot_read_team_timeline() {
    let facts = GroupFacts {
        kind: GroupKind::Patient,
        owner_facility: Some(OWNING),
        membership: member(GroupRole::Member, Visibility::FamilyOnly),
        owner_policy: None,
    };
    let d = decide(
        &of_kind(UserKind::Family),
        &Action::Timeline {
            op: TimelineOp::Read,
            timeline: TimelineKind::Team,
            group: facts,
            author: None,
        },
    );
    assert_eq!(d, Decision::Deny(Denial::TimelineHidden));
}

#[test]
fn member_management_table() {
    use GroupRole::*;
    let cases: &[(&str, Actor, Option<Membership>, char)] = &[
        ("owner", staff(OWNING), member(Owner, Visibility::All), 'A'),
        (
            "moderator",
            staff(OWNING),
            member(Moderator, Visibility::All),
            'A',
        ),
        (
            "member",
            staff(OWNING),
            member(Member, Visibility::All),
            'P',
        ),
        ("non-member", staff(OTHER), None, 'N'),
        ("operator", of_kind(UserKind::Operator), None, 'A'),
        (
            // The service never gives a family member a role (they are
            // added as plain members) and they do not see the member list
            // (`ViewGroup` says `P`): a stored owner role does not let them
            // remove the team's members.
            "family member stored as owner",
            of_kind(UserKind::Family),
            member(Owner, Visibility::FamilyOnly),
            'P',
        ),
    ];
    for (name, actor, membership, expected) in cases {
        let group = GroupFacts {
            kind: GroupKind::Patient,
            owner_facility: Some(OWNING),
            membership: *membership,
            owner_policy: None,
        };
        let got = outcome(decide(
            actor,
            &Action::ManageMembers {
                group,
                change: MemberChange::Remove,
            },
        ));
        assert_eq!(got, *expected, "{name}");
    }
}

#[test]
fn leaving_and_viewing_groups() {
    use GroupRole::*;
    let in_group = |m| GroupFacts {
        kind: GroupKind::Patient,
        owner_facility: Some(OWNING),
        membership: m,
        owner_policy: None,
    };
    let leave = |actor: &Actor, m| {
        outcome(decide(
            actor,
            &Action::ManageMembers {
                group: in_group(m),
                change: MemberChange::Leave,
            },
        ))
    };
    let view = |actor: &Actor, m| outcome(decide(actor, &Action::ViewGroup { group: in_group(m) }));
    assert_eq!(
        leave(&staff(OWNING), member(Member, Visibility::All)),
        'A',
        "a member may leave"
    );
    assert_eq!(
        leave(&staff(OTHER), None),
        'N',
        "a non-member cannot 'leave'"
    );
    assert_eq!(view(&staff(OTHER), member(Member, Visibility::All)), 'A');
    assert_eq!(view(&staff(OTHER), None), 'N');
    assert_eq!(
        view(
            &of_kind(UserKind::Family),
            member(Member, Visibility::FamilyOnly)
        ),
        'P',
        "family do not see the team list"
    );
    assert_eq!(view(&of_kind(UserKind::Operator), None), 'A');
    assert_eq!(
        view(&of_kind(UserKind::Company), member(Member, Visibility::All)),
        'N'
    );
}

#[test]
fn admin_table() {
    let mut admin = staff(OWNING);
    admin.facility_role = Some(FacilityRole::Admin);
    let operator = of_kind(UserKind::Operator);
    let nurse = staff(OWNING);
    let family = of_kind(UserKind::Family);
    let company = of_kind(UserKind::Company);
    let cases: &[(&str, Actor, AdminOp, char)] = &[
        (
            "operator creates facility",
            operator,
            AdminOp::CreateFacility,
            'A',
        ),
        (
            "facility admin creates facility",
            admin,
            AdminOp::CreateFacility,
            'P',
        ),
        (
            "nurse creates facility",
            nurse,
            AdminOp::CreateFacility,
            'P',
        ),
        (
            "operator creates staff anywhere",
            operator,
            AdminOp::CreateUser {
                facility: Some(OTHER),
                kind: UserKind::Staff,
            },
            'A',
        ),
        (
            "admin creates own staff",
            admin,
            AdminOp::CreateUser {
                facility: Some(OWNING),
                kind: UserKind::Staff,
            },
            'A',
        ),
        (
            "admin creates other facility's staff",
            admin,
            AdminOp::CreateUser {
                facility: Some(OTHER),
                kind: UserKind::Staff,
            },
            'P',
        ),
        (
            "admin creates family account",
            admin,
            AdminOp::CreateUser {
                facility: None,
                kind: UserKind::Family,
            },
            'A',
        ),
        (
            "admin creates operator",
            admin,
            AdminOp::CreateUser {
                facility: None,
                kind: UserKind::Operator,
            },
            'P',
        ),
        (
            "admin creates company",
            admin,
            AdminOp::CreateUser {
                facility: None,
                kind: UserKind::Company,
            },
            'P',
        ),
        (
            "nurse creates staff",
            nurse,
            AdminOp::CreateUser {
                facility: Some(OWNING),
                kind: UserKind::Staff,
            },
            'P',
        ),
        (
            "nurse registers patient of own facility",
            nurse,
            AdminOp::CreatePatient {
                facility: OWNING,
                creators: PatientGroupCreators::Staff,
            },
            'A',
        ),
        (
            "nurse registers patient of other facility",
            nurse,
            AdminOp::CreatePatient {
                facility: OTHER,
                creators: PatientGroupCreators::Staff,
            },
            'P',
        ),
        (
            "family registers patient",
            family,
            AdminOp::CreatePatient {
                facility: OWNING,
                creators: PatientGroupCreators::Staff,
            },
            'P',
        ),
        (
            "nurse creates free group",
            nurse,
            AdminOp::CreateGroup {
                kind: GroupKind::Free,
            },
            'A',
        ),
        (
            "nurse creates community",
            nurse,
            AdminOp::CreateGroup {
                kind: GroupKind::Community,
            },
            'A',
        ),
        (
            "nurse creates bare patient group",
            nurse,
            AdminOp::CreateGroup {
                kind: GroupKind::Patient,
            },
            'P',
        ),
        (
            "family creates free group",
            family,
            AdminOp::CreateGroup {
                kind: GroupKind::Free,
            },
            'P',
        ),
        (
            "company creates free group",
            company,
            AdminOp::CreateGroup {
                kind: GroupKind::Free,
            },
            'P',
        ),
    ];
    for (name, actor, op, expected) in cases {
        assert_eq!(
            outcome(decide(actor, &Action::Admin(*op))),
            *expected,
            "{name}"
        );
    }
}

#[test]
fn admin_table_for_accounts_certificates_and_policies() {
    let mut admin = staff(OWNING);
    admin.facility_role = Some(FacilityRole::Admin);
    let operator = of_kind(UserKind::Operator);
    let nurse = staff(OWNING);
    let family = of_kind(UserKind::Family);
    use AdminOp::*;
    #[rustfmt::skip]
    let cases: &[(&str, Actor, AdminOp, char)] = &[
        ("operator registers a patient", operator, CreatePatient { facility: OWNING, creators: PatientGroupCreators::Staff }, 'P'),
        ("operator lists facilities", operator, ListFacilities, 'A'),
        ("facility admin lists facilities", admin, ListFacilities, 'P'),
        ("admin disables own staff", admin, SetUserStatus { facility: Some(OWNING), kind: UserKind::Staff }, 'A'),
        ("admin disables own patient", admin, SetUserStatus { facility: Some(OWNING), kind: UserKind::Patient }, 'A'),
        ("admin disables other facility's staff", admin, SetUserStatus { facility: Some(OTHER), kind: UserKind::Staff }, 'P'),
        ("admin disables a family account", admin, SetUserStatus { facility: None, kind: UserKind::Family }, 'P'),
        ("admin disables the operator", admin, SetUserStatus { facility: None, kind: UserKind::Operator }, 'P'),
        ("nurse disables a colleague", nurse, SetUserStatus { facility: Some(OWNING), kind: UserKind::Staff }, 'P'),
        ("operator disables anyone", operator, SetUserStatus { facility: None, kind: UserKind::Company }, 'A'),
        ("admin manages own facility's certificates", admin, ManageCertificates { facility: OWNING }, 'A'),
        ("admin manages other facility's certificates", admin, ManageCertificates { facility: OTHER }, 'P'),
        ("nurse manages certificates", nurse, ManageCertificates { facility: OWNING }, 'P'),
        ("family manages certificates", family, ManageCertificates { facility: OWNING }, 'P'),
        ("operator manages any facility's certificates", operator, ManageCertificates { facility: OTHER }, 'A'),
        ("admin revokes a facility CA", admin, RevokeFacilityCa, 'P'),
        ("operator revokes a facility CA", operator, RevokeFacilityCa, 'A'),
        ("admin edits own facility's policy", admin, EditFacilityPolicy { facility: OWNING }, 'A'),
        ("admin edits other facility's policy", admin, EditFacilityPolicy { facility: OTHER }, 'P'),
        ("nurse edits the policy", nurse, EditFacilityPolicy { facility: OWNING }, 'P'),
        ("operator edits any policy", operator, EditFacilityPolicy { facility: OTHER }, 'A'),
    ];
    for (name, actor, op, expected) in cases {
        assert_eq!(
            outcome(decide(actor, &Action::Admin(*op))),
            *expected,
            "{name}"
        );
    }
}
