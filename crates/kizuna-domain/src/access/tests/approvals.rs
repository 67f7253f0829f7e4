//! The facility policies' side: invitations under every combination of the
//! crossing rules and the family timeline switch, `required_approvals`, and
//! the default policy.

use super::members::account;
use super::*;
use CrossFacility::{AdminApproval as Approval, Allowed, Never};

/// A policy holding the row's rules; both facilities hold it.
fn policy(outside: CrossFacility, join: CrossFacility, family_timeline: bool) -> FacilityPolicy {
    FacilityPolicy {
        outside_invitations: outside,
        staff_join_other_facilities: join,
        family_timeline,
        ..FacilityPolicy::default()
    }
}

/// Invitations and direct adds under every policy combination. Both
/// facilities hold the row's rules: (owning facility's `outside_invitations`,
/// invitee facility's `staff_join_other_facilities`, `family_timeline`).
///
/// Columns: `Invite` by a team member (staff of the owning facility):
/// own-facility staff, other-facility staff, a staff code (no facility yet) |
/// a family member, a family code | `ManageMembers::Add` by the owner, with
/// `approvals_needed` from [`required_approvals`] (the patient has not
/// joined): own-facility staff, other-facility staff, a family member.
#[rustfmt::skip]
const INVITE_BY_POLICY: &[(CrossFacility, CrossFacility, bool, &str)] = &[
    // outside   join      family  invite        add
    (Never,    Never,    true,  "APP | AA | APA"),
    (Never,    Never,    false, "APP | PP | APP"),
    (Never,    Approval, true,  "APP | AA | APA"),
    (Never,    Approval, false, "APP | PP | APP"),
    (Never,    Allowed,  true,  "APP | AA | APA"),
    (Never,    Allowed,  false, "APP | PP | APP"),
    (Approval, Never,    true,  "APA | AA | APA"),
    (Approval, Never,    false, "APA | PP | APP"),
    (Approval, Approval, true,  "AAA | AA | APA"),
    (Approval, Approval, false, "AAA | PP | APP"),
    (Approval, Allowed,  true,  "AAA | AA | APA"),
    (Approval, Allowed,  false, "AAA | PP | APP"),
    (Allowed,  Never,    true,  "APA | AA | APA"),
    (Allowed,  Never,    false, "APA | PP | APP"),
    (Allowed,  Approval, true,  "AAA | AA | APA"),
    (Allowed,  Approval, false, "AAA | PP | APP"),
    (Allowed,  Allowed,  true,  "AAA | AA | AAA"),
    (Allowed,  Allowed,  false, "AAA | PP | AAP"),
];

/// `required_approvals` for every pair of crossing rules (both facilities
/// hold the row's: owning facility's `outside_invitations`, invitee
/// facility's `staff_join_other_facilities`).
///
/// Each cell is three characters: `I` inviting_facility, `E`
/// invitee_facility, `P` patient, `.` not needed. Columns: own-facility
/// staff, other-facility staff, a staff code (no facility yet), a family
/// member, a company account; first with the patient not a member of the
/// group, then (after `|`) with the patient joined.
#[rustfmt::skip]
const REQUIRED_APPROVALS: &[(CrossFacility, CrossFacility, &str)] = &[
    // outside   join       own other code fam  co    own other code fam  co
    (Never,    Never,    "... ... ... ... ... | ..P ..P ..P ..P ..P"),
    (Never,    Approval, "... .E. ... ... ... | ..P .EP ..P ..P ..P"),
    (Never,    Allowed,  "... ... ... ... ... | ..P ..P ..P ..P ..P"),
    (Approval, Never,    "... I.. I.. ... ... | ..P I.P I.P ..P ..P"),
    (Approval, Approval, "... IE. I.. ... ... | ..P IEP I.P ..P ..P"),
    (Approval, Allowed,  "... I.. I.. ... ... | ..P I.P I.P ..P ..P"),
    (Allowed,  Never,    "... ... ... ... ... | ..P ..P ..P ..P ..P"),
    (Allowed,  Approval, "... .E. ... ... ... | ..P .EP ..P ..P ..P"),
    (Allowed,  Allowed,  "... ... ... ... ... | ..P ..P ..P ..P ..P"),
];

fn patient_group(p: FacilityPolicy, membership: Option<Membership>) -> GroupFacts {
    GroupFacts {
        kind: GroupKind::Patient,
        owner_facility: Some(OWNING),
        membership,
        owner_policy: Some(p),
    }
}

fn staff_under(facility: FacilityId, p: FacilityPolicy) -> Invitee {
    Invitee {
        kind: UserKind::Staff,
        facility: Some((facility, p)),
    }
}

/// Strips the grouping spaces and bars.
fn squeeze(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect()
}

#[test]
fn every_policy_combination_has_a_row() {
    for &outside in CrossFacility::ALL {
        for &join in CrossFacility::ALL {
            let approvals = REQUIRED_APPROVALS
                .iter()
                .filter(|r| (r.0, r.1) == (outside, join))
                .count();
            assert_eq!(approvals, 1, "REQUIRED_APPROVALS: {outside}/{join}");
            for family in [true, false] {
                let invites = INVITE_BY_POLICY
                    .iter()
                    .filter(|r| (r.0, r.1, r.2) == (outside, join, family))
                    .count();
                assert_eq!(invites, 1, "INVITE_BY_POLICY: {outside}/{join}/{family}");
            }
        }
    }
}

#[test]
fn invitations_and_direct_adds_under_every_policy() {
    let team_member = member(GroupRole::Member, Visibility::All);
    let owner = member(GroupRole::Owner, Visibility::All);
    let mut failures = Vec::new();
    for &(outside, join, family, expected) in INVITE_BY_POLICY {
        let p = policy(outside, join, family);
        let own = staff_under(OWNING, p);
        let other = staff_under(OTHER, p);
        let invite = |scope, invitee| {
            decide(
                &staff(OWNING),
                &Action::Invite {
                    group: patient_group(p, team_member),
                    scope,
                    invitee,
                },
            )
        };
        let add = |scope, invitee: Invitee| {
            let group = patient_group(p, owner);
            let approvals_needed = !required_approvals(&group, &invitee, false).is_empty();
            decide(
                &staff(OWNING),
                &Action::ManageMembers {
                    group,
                    change: MemberChange::Add {
                        invitee,
                        scope,
                        approvals_needed,
                    },
                },
            )
        };
        use InvitationScope::{Family, Team};
        let got = letters([
            invite(Team, own),
            invite(Team, other),
            invite(Team, account(UserKind::Staff)),
            invite(Family, account(UserKind::Family)),
            invite(Family, account(UserKind::Family)),
            add(Team, own),
            add(Team, other),
            add(Family, account(UserKind::Family)),
        ]);
        if got != squeeze(expected) {
            failures.push(format!(
                "{outside}/{join}/family {family}: expected {expected}, got {}",
                spaced_like(expected, &got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn approval_cell(a: Approvals) -> String {
    [
        if a.inviting_facility { 'I' } else { '.' },
        if a.invitee_facility { 'E' } else { '.' },
        if a.patient { 'P' } else { '.' },
    ]
    .iter()
    .collect()
}

#[test]
fn required_approvals_for_every_policy_invitee_and_patient() {
    let mut failures = Vec::new();
    for &(outside, join, expected) in REQUIRED_APPROVALS {
        let p = policy(outside, join, true);
        let group = patient_group(p, None);
        let invitees = [
            staff_under(OWNING, p),
            staff_under(OTHER, p),
            account(UserKind::Staff),
            account(UserKind::Family),
            account(UserKind::Company),
        ];
        let got: String = [false, true]
            .into_iter()
            .flat_map(|joined| {
                invitees
                    .iter()
                    .map(move |i| approval_cell(required_approvals(&group, i, joined)))
            })
            .collect();
        if got != squeeze(expected) {
            failures.push(format!(
                "{outside}/{join}: expected {expected}, got {}",
                spaced_like(expected, &got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn approvals_list_their_roles_in_a_fixed_order() {
    let all = Approvals {
        inviting_facility: true,
        invitee_facility: true,
        patient: true,
    };
    assert_eq!(
        all.roles(),
        [
            ApprovalRole::InvitingFacility,
            ApprovalRole::InviteeFacility,
            ApprovalRole::Patient
        ]
    );
    assert!(!all.is_empty());
    assert!(Approvals::default().is_empty());
    assert!(Approvals::default().roles().is_empty());
    let patient_only = Approvals {
        patient: true,
        ..Approvals::default()
    };
    assert_eq!(patient_only.roles(), [ApprovalRole::Patient]);
    assert!(!patient_only.is_empty());
}

#[test]
fn a_new_facility_starts_with_the_adr_defaults() {
    // ADR 0003's table: staff create patient groups, staff may join other
    // facilities' groups and outsiders may be invited freely, family
    // timeline on, client certificate required, notifications at any time.
    assert_eq!(
        FacilityPolicy::default(),
        FacilityPolicy {
            patient_group_creators: PatientGroupCreators::Staff,
            staff_join_other_facilities: CrossFacility::Allowed,
            outside_invitations: CrossFacility::Allowed,
            family_timeline: true,
            require_client_cert: true,
            notification_hours: None,
        }
    );
}
