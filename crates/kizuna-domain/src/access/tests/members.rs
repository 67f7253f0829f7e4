//! Membership: leaving, removing and adding members directly, and seeing a
//! group's member list.

use super::*;

/// `ManageMembers` in a patient group owned by [`OWNING`], default policy.
///
/// Columns: leave, remove, remove the group's own patient |
/// add own-facility staff to the team: no approvals needed, approvals needed |
/// add other-facility staff to the team: no approvals, approvals needed |
/// add a family member to the family timeline: no approvals, approvals needed |
/// add the patient (family scope; refused: patients are linked to their
/// record instead) | add a company account (team) |
/// add an operator (team) |
/// wrong scopes: own-facility staff into the family timeline, a family member
/// into the team.
#[rustfmt::skip]
pub(super) const PATIENT_GROUP: Table = &[
    //                     leave    own   other family pt co op scopes
    ("operator",          "AAP      AP    AP    AP     P  P  P  PP"),
    ("operator in group", "AAP      AP    AP    AP     P  P  P  PP"),
    ("admin",             "NNN      NN    NN    NN     N  N  N  NN"),
    ("other admin",       "NNN      NN    NN    NN     N  N  N  NN"),
    ("owner",             "AAP      AP    AP    AP     P  P  P  PP"),
    ("moderator",         "AAP      AP    AP    AP     P  P  P  PP"),
    ("member",            "APP      PP    PP    PP     P  P  P  PP"),
    ("staff outside",     "NNN      NN    NN    NN     N  N  N  NN"),
    ("other member",      "APP      PP    PP    PP     P  P  P  PP"),
    ("other outside",     "NNN      NN    NN    NN     N  N  N  NN"),
    ("family",            "APP      PP    PP    PP     P  P  P  PP"),
    ("family as all",     "APP      PP    PP    PP     P  P  P  PP"),
    ("patient",           "APP      PP    PP    PP     P  P  P  PP"),
    ("company member",    "APP      PP    PP    PP     P  P  P  PP"),
    ("company moderator", "APP      PP    PP    PP     P  P  P  PP"),
    ("company outside",   "NNN      NN    NN    NN     N  N  N  NN"),
    ("disabled",          "DDD      DD    DD    DD     D  D  D  DD"),
];

/// `ManageMembers` in a free group, then in a community (no approvals there).
///
/// Columns of each block: leave, remove | add own-facility staff, add
/// other-facility staff | add a family member, add a company account, add a
/// patient.
#[rustfmt::skip]
pub(super) const FREE_AND_COMMUNITY: Table = &[
    //                     free         community
    ("operator",          "AA AA PPP | AA AA PAP"),
    ("operator in group", "AA AA PPP | AA AA PAP"),
    ("admin",             "NN NN NNN | NN NN NNN"),
    ("other admin",       "NN NN NNN | NN NN NNN"),
    ("owner",             "AA AA PPP | AA AA PAP"),
    ("moderator",         "AA AA PPP | AA AA PAP"),
    ("member",            "AP PP PPP | AP PP PPP"),
    ("staff outside",     "NN NN NNN | NN NN NNN"),
    ("other member",      "AP PP PPP | AP PP PPP"),
    ("other outside",     "NN NN NNN | NN NN NNN"),
    ("family",            "AP PP PPP | AP PP PPP"),
    ("family as all",     "AP PP PPP | AP PP PPP"),
    ("patient",           "AP PP PPP | AP PP PPP"),
    ("company member",    "AP PP PPP | AP PP PPP"),
    ("company moderator", "AP PP PPP | AA AA PAP"),
    ("company outside",   "NN NN NNN | NN NN NNN"),
    ("disabled",          "DD DD DDD | DD DD DDD"),
];

/// `ViewGroup` (details and member list). Columns: patient group, free
/// group, community. Family members and patients see their timeline but not
/// who is on the team.
#[rustfmt::skip]
pub(super) const VIEW_GROUP: Table = &[
    ("operator",          "AAA"),
    ("operator in group", "AAA"),
    ("admin",             "NNN"),
    ("other admin",       "NNN"),
    ("owner",             "AAA"),
    ("moderator",         "AAA"),
    ("member",            "AAA"),
    ("staff outside",     "NNN"),
    ("other member",      "AAA"),
    ("other outside",     "NNN"),
    ("family",            "PNN"),
    ("family as all",     "PNN"),
    ("patient",           "PNN"),
    ("company member",    "NNA"),
    ("company moderator", "NNA"),
    ("company outside",   "NNN"),
    ("disabled",          "DDD"),
];

/// A staff invitee of a facility with the default policy.
pub(super) fn staff_of(facility: FacilityId) -> Invitee {
    Invitee {
        kind: UserKind::Staff,
        facility: Some((facility, FacilityPolicy::default())),
    }
}

/// An invitee without a facility (family, patient, company, operator).
pub(super) fn account(kind: UserKind) -> Invitee {
    Invitee {
        kind,
        facility: None,
    }
}

fn add(invitee: Invitee, scope: InvitationScope, approvals_needed: bool) -> MemberChange {
    MemberChange::Add {
        invitee,
        scope,
        approvals_needed,
    }
}

#[test]
fn managing_members_of_a_patient_group() {
    use InvitationScope::{Family, Team};
    let changes = [
        MemberChange::Leave,
        MemberChange::Remove,
        MemberChange::RemovePatient,
        add(staff_of(OWNING), Team, false),
        add(staff_of(OWNING), Team, true),
        add(staff_of(OTHER), Team, false),
        add(staff_of(OTHER), Team, true),
        add(account(UserKind::Family), Family, false),
        add(account(UserKind::Family), Family, true),
        add(account(UserKind::Patient), Family, false),
        add(account(UserKind::Company), Team, false),
        add(account(UserKind::Operator), Team, false),
        add(staff_of(OWNING), Family, false),
        add(account(UserKind::Family), Team, false),
    ];
    let policy = Some(FacilityPolicy::default());
    check("members::PATIENT_GROUP", PATIENT_GROUP, |p| {
        let group = group_for(p, GroupKind::Patient, policy);
        letters(
            changes
                .iter()
                .map(|&change| decide(&p.actor, &Action::ManageMembers { group, change })),
        )
    });
}

#[test]
fn managing_members_of_free_groups_and_communities() {
    use InvitationScope::Team;
    let changes = [
        MemberChange::Leave,
        MemberChange::Remove,
        add(staff_of(OWNING), Team, false),
        add(staff_of(OTHER), Team, false),
        add(account(UserKind::Family), Team, false),
        add(account(UserKind::Company), Team, false),
        add(account(UserKind::Patient), Team, false),
    ];
    check("members::FREE_AND_COMMUNITY", FREE_AND_COMMUNITY, |p| {
        letters(
            [GroupKind::Free, GroupKind::Community]
                .into_iter()
                .flat_map(|kind| {
                    let group = group_for(p, kind, None);
                    changes.iter().map(move |&change| {
                        decide(&p.actor, &Action::ManageMembers { group, change })
                    })
                }),
        )
    });
}

#[test]
fn viewing_groups() {
    check("members::VIEW_GROUP", VIEW_GROUP, |p| {
        let policy = Some(FacilityPolicy::default());
        letters([
            decide(
                &p.actor,
                &Action::ViewGroup {
                    group: group_for(p, GroupKind::Patient, policy),
                },
            ),
            decide(
                &p.actor,
                &Action::ViewGroup {
                    group: group_for(p, GroupKind::Free, None),
                },
            ),
            decide(
                &p.actor,
                &Action::ViewGroup {
                    group: group_for(p, GroupKind::Community, None),
                },
            ),
        ])
    });
}
