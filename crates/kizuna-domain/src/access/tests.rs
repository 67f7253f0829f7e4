//! The access table. Each row: an actor profile, a group kind and timeline, and
//! the expected outcome of each timeline operation, written out by hand:
//! `A` allow, `N` not visible (→ not_found), `H` timeline hidden, `P` not
//! permitted, `D` account disabled.
//!
//! Column order: read, post, ack, mark_read, edit own, edit other's,
//! delete own, delete other's.

use super::*;
use crate::ids::{FacilityId, UserId};

const ME: UserId = UserId(100);
const SOMEONE_ELSE: UserId = UserId(200);
const OWNING: FacilityId = FacilityId(1);
const OTHER: FacilityId = FacilityId(2);

struct Profile {
    name: &'static str,
    actor: Actor,
    membership: Option<Membership>,
}

fn staff(facility: FacilityId) -> Actor {
    Actor {
        user_id: ME,
        kind: UserKind::Staff,
        status: UserStatus::Active,
        facility_id: Some(facility),
        facility_role: Some(FacilityRole::Staff),
    }
}

fn of_kind(kind: UserKind) -> Actor {
    Actor {
        user_id: ME,
        kind,
        status: UserStatus::Active,
        facility_id: None,
        facility_role: None,
    }
}

fn member(role: GroupRole, visibility: Visibility) -> Option<Membership> {
    Some(Membership { role, visibility })
}

fn profiles() -> Vec<Profile> {
    use GroupRole::*;
    use Visibility::*;
    let mut disabled = staff(OWNING);
    disabled.status = UserStatus::Disabled;
    vec![
        Profile {
            name: "team member",
            actor: staff(OWNING),
            membership: member(Member, All),
        },
        Profile {
            name: "group owner",
            actor: staff(OWNING),
            membership: member(Owner, All),
        },
        Profile {
            name: "moderator",
            actor: staff(OWNING),
            membership: member(Moderator, All),
        },
        Profile {
            name: "other facility's staff in the group",
            actor: staff(OTHER),
            membership: member(Member, All),
        },
        Profile {
            name: "owning facility's staff not in the group",
            actor: staff(OWNING),
            membership: None,
        },
        Profile {
            name: "other facility's staff not in the group",
            actor: staff(OTHER),
            membership: None,
        },
        Profile {
            name: "family member",
            actor: of_kind(UserKind::Family),
            membership: member(Member, FamilyOnly),
        },
        Profile {
            name: "family member stored with visibility all",
            actor: of_kind(UserKind::Family),
            membership: member(Member, All),
        },
        Profile {
            name: "patient",
            actor: of_kind(UserKind::Patient),
            membership: member(Member, FamilyOnly),
        },
        Profile {
            name: "operator not in the group",
            actor: of_kind(UserKind::Operator),
            membership: None,
        },
        Profile {
            name: "operator in the group",
            actor: of_kind(UserKind::Operator),
            membership: member(Member, All),
        },
        Profile {
            name: "company account in the group",
            actor: of_kind(UserKind::Company),
            membership: member(Member, All),
        },
        Profile {
            name: "disabled team member",
            actor: disabled,
            membership: member(Member, All),
        },
    ]
}

/// (profile, group kind, timeline, expected outcomes)
const TABLE: &[(&str, GroupKind, TimelineKind, &str)] = &[
    // Patient group, team timeline.
    (
        "team member",
        GroupKind::Patient,
        TimelineKind::Team,
        "AAAAAPAP",
    ),
    (
        "group owner",
        GroupKind::Patient,
        TimelineKind::Team,
        "AAAAAPAA",
    ),
    (
        "moderator",
        GroupKind::Patient,
        TimelineKind::Team,
        "AAAAAPAA",
    ),
    (
        "other facility's staff in the group",
        GroupKind::Patient,
        TimelineKind::Team,
        "AAAAAPAP",
    ),
    (
        "owning facility's staff not in the group",
        GroupKind::Patient,
        TimelineKind::Team,
        "NNNNNNNN",
    ),
    (
        "other facility's staff not in the group",
        GroupKind::Patient,
        TimelineKind::Team,
        "NNNNNNNN",
    ),
    (
        "family member",
        GroupKind::Patient,
        TimelineKind::Team,
        "HHHHHHHH",
    ),
    (
        "family member stored with visibility all",
        GroupKind::Patient,
        TimelineKind::Team,
        "HHHHHHHH",
    ),
    (
        "patient",
        GroupKind::Patient,
        TimelineKind::Team,
        "HHHHHHHH",
    ),
    (
        "operator not in the group",
        GroupKind::Patient,
        TimelineKind::Team,
        "NNNNNNNN",
    ),
    (
        "operator in the group",
        GroupKind::Patient,
        TimelineKind::Team,
        "AAAAAPAP",
    ),
    (
        "company account in the group",
        GroupKind::Patient,
        TimelineKind::Team,
        "NNNNNNNN",
    ),
    (
        "disabled team member",
        GroupKind::Patient,
        TimelineKind::Team,
        "DDDDDDDD",
    ),
    // Patient group, family timeline.
    (
        "team member",
        GroupKind::Patient,
        TimelineKind::Family,
        "AAAAAPAP",
    ),
    (
        "group owner",
        GroupKind::Patient,
        TimelineKind::Family,
        "AAAAAPAA",
    ),
    (
        "other facility's staff in the group",
        GroupKind::Patient,
        TimelineKind::Family,
        "AAAAAPAP",
    ),
    (
        "owning facility's staff not in the group",
        GroupKind::Patient,
        TimelineKind::Family,
        "NNNNNNNN",
    ),
    (
        "other facility's staff not in the group",
        GroupKind::Patient,
        TimelineKind::Family,
        "NNNNNNNN",
    ),
    (
        "family member",
        GroupKind::Patient,
        TimelineKind::Family,
        "AAAAAPAP",
    ),
    (
        "family member stored with visibility all",
        GroupKind::Patient,
        TimelineKind::Family,
        "AAAAAPAP",
    ),
    (
        "patient",
        GroupKind::Patient,
        TimelineKind::Family,
        "AAAAAPAP",
    ),
    (
        "operator not in the group",
        GroupKind::Patient,
        TimelineKind::Family,
        "NNNNNNNN",
    ),
    (
        "company account in the group",
        GroupKind::Patient,
        TimelineKind::Family,
        "NNNNNNNN",
    ),
    (
        "disabled team member",
        GroupKind::Patient,
        TimelineKind::Family,
        "DDDDDDDD",
    ),
    // A patient group has no main timeline.
    (
        "team member",
        GroupKind::Patient,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    // Free group.
    (
        "team member",
        GroupKind::Free,
        TimelineKind::Main,
        "AAAAAPAP",
    ),
    (
        "group owner",
        GroupKind::Free,
        TimelineKind::Main,
        "AAAAAPAA",
    ),
    (
        "other facility's staff in the group",
        GroupKind::Free,
        TimelineKind::Main,
        "AAAAAPAP",
    ),
    (
        "other facility's staff not in the group",
        GroupKind::Free,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    (
        "family member",
        GroupKind::Free,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    ("patient", GroupKind::Free, TimelineKind::Main, "NNNNNNNN"),
    (
        "operator not in the group",
        GroupKind::Free,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    (
        "operator in the group",
        GroupKind::Free,
        TimelineKind::Main,
        "AAAAAPAP",
    ),
    (
        "company account in the group",
        GroupKind::Free,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    (
        "team member",
        GroupKind::Free,
        TimelineKind::Team,
        "NNNNNNNN",
    ),
    // Community.
    (
        "team member",
        GroupKind::Community,
        TimelineKind::Main,
        "AAAAAPAP",
    ),
    (
        "moderator",
        GroupKind::Community,
        TimelineKind::Main,
        "AAAAAPAA",
    ),
    (
        "team member",
        GroupKind::Community,
        TimelineKind::Consultation,
        "AAAAAPAP",
    ),
    (
        "other facility's staff not in the group",
        GroupKind::Community,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    (
        "company account in the group",
        GroupKind::Community,
        TimelineKind::Main,
        "AAAAAPAP",
    ),
    (
        "family member",
        GroupKind::Community,
        TimelineKind::Main,
        "NNNNNNNN",
    ),
    (
        "disabled team member",
        GroupKind::Community,
        TimelineKind::Main,
        "DDDDDDDD",
    ),
];

fn outcome(d: Decision) -> char {
    match d {
        Decision::Allow => 'A',
        Decision::Deny(Denial::NotVisible) => 'N',
        Decision::Deny(Denial::TimelineHidden) => 'H',
        Decision::Deny(Denial::NotPermitted) => 'P',
        Decision::Deny(Denial::AccountDisabled) => 'D',
    }
}

fn row(profile: &Profile, group: GroupKind, timeline: TimelineKind) -> String {
    let facts = GroupFacts {
        kind: group,
        owner_facility: Some(OWNING),
        membership: profile.membership,
        owner_policy: None,
    };
    let cells: [(TimelineOp, Option<UserId>); 8] = [
        (TimelineOp::Read, None),
        (TimelineOp::Post, None),
        (TimelineOp::Ack, None),
        (TimelineOp::MarkRead, None),
        (TimelineOp::Edit, Some(ME)),
        (TimelineOp::Edit, Some(SOMEONE_ELSE)),
        (TimelineOp::Delete, Some(ME)),
        (TimelineOp::Delete, Some(SOMEONE_ELSE)),
    ];
    cells
        .iter()
        .map(|&(op, author)| {
            outcome(decide(
                &profile.actor,
                &Action::Timeline {
                    op,
                    timeline,
                    group: facts,
                    author,
                },
            ))
        })
        .collect()
}

#[test]
fn timeline_access_table() {
    let profiles = profiles();
    let mut failures = Vec::new();
    for &(name, group, timeline, expected) in TABLE {
        let profile = profiles
            .iter()
            .find(|p| p.name == name)
            .expect("profile named in table");
        let got = row(profile, group, timeline);
        if got != expected {
            failures.push(format!(
                "{name} / {group} / {timeline}: expected {expected}, got {got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "access table mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_profile_appears_in_the_table_for_the_team_timeline() {
    for p in profiles() {
        assert!(
            TABLE.iter().any(|&(n, g, t, _)| n == p.name
                && g == GroupKind::Patient
                && t == TimelineKind::Team),
            "{} missing",
            p.name
        );
    }
}

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
            "family owner?",
            of_kind(UserKind::Family),
            member(Owner, Visibility::FamilyOnly),
            'A',
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
