//! The access tables. Every table has one row per actor profile (the list in
//! [`profiles`]) and a string of outcome letters, one per column, written out
//! by hand from ADR 0003 and the issue:
//!
//! `A` allow, `N` not visible (→ `not_found`), `H` timeline hidden, `P` not
//! permitted (→ `forbidden`), `D` account disabled.
//!
//! Spaces (and `|`) in an outcome string only group columns for the reader.
//! Each table's legend names its columns. [`check`] refuses a table that
//! misses a profile, names an unknown one, or has the wrong number of
//! letters, so no cell can be forgotten.
//!
//! Some profiles are states the service never creates (a family member
//! stored with visibility `all`, a company account inside a patient group):
//! they are there so that `decide` stays safe if the facts are ever wrong.
//! For them any refusal is right; the tables pin the one `decide` gives.

use super::*;
use crate::ids::{FacilityId, UserId};

mod actions;
mod admin;
mod approvals;
mod members;
mod named_cases;
mod timelines;

/// The actor of every profile.
const ME: UserId = UserId(100);
/// Another user: the author of someone else's post, another inviter.
const SOMEONE_ELSE: UserId = UserId(200);
/// The facility that owns the group.
const OWNING: FacilityId = FacilityId(1);
/// Another facility.
const OTHER: FacilityId = FacilityId(2);

/// An actor and their membership in the group the action targets.
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

fn admin_of(facility: FacilityId) -> Actor {
    Actor {
        facility_role: Some(FacilityRole::Admin),
        ..staff(facility)
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

/// Every actor profile. Each table has exactly one row for each.
fn profiles() -> Vec<Profile> {
    use GroupRole::*;
    use Visibility::*;
    let disabled = Actor {
        status: UserStatus::Disabled,
        ..staff(OWNING)
    };
    #[rustfmt::skip]
    let list = [
        // The operator of the service, not a member / a member of the group.
        ("operator", of_kind(UserKind::Operator), None),
        ("operator in group", of_kind(UserKind::Operator), member(Member, All)),
        // An admin of the owning facility, not a member of the group.
        ("admin", admin_of(OWNING), None),
        // An admin of the other facility, not a member of the group.
        ("other admin", admin_of(OTHER), None),
        // Staff of the owning facility: owner, moderator, plain member, outside.
        ("owner", staff(OWNING), member(Owner, All)),
        ("moderator", staff(OWNING), member(Moderator, All)),
        ("member", staff(OWNING), member(Member, All)),
        ("staff outside", staff(OWNING), None),
        // Staff of another facility: in the group / not in it.
        ("other member", staff(OTHER), member(Member, All)),
        ("other outside", staff(OTHER), None),
        // Family and patient see the family timeline only.
        ("family", of_kind(UserKind::Family), member(Member, FamilyOnly)),
        ("family as all", of_kind(UserKind::Family), member(Member, All)),
        ("patient", of_kind(UserKind::Patient), member(Member, FamilyOnly)),
        // Company accounts: member, moderator (a community's host), outside.
        ("company member", of_kind(UserKind::Company), member(Member, All)),
        ("company moderator", of_kind(UserKind::Company), member(Moderator, All)),
        ("company outside", of_kind(UserKind::Company), None),
        // A disabled account that is still a member.
        ("disabled", disabled, member(Member, All)),
    ];
    list.into_iter()
        .map(|(name, actor, membership)| Profile {
            name,
            actor,
            membership,
        })
        .collect()
}

/// Rows of (profile name, expected outcome letters).
type Table = &'static [(&'static str, &'static str)];

/// Every table with one row per profile, for the completeness test.
const ACTOR_TABLES: &[(&str, Table)] = &[
    ("timelines::PATIENT_GROUP", timelines::PATIENT_GROUP),
    (
        "timelines::PATIENT_GROUP_FAMILY_OFF",
        timelines::PATIENT_GROUP_FAMILY_OFF,
    ),
    ("timelines::FREE_GROUP", timelines::FREE_GROUP),
    ("timelines::COMMUNITY", timelines::COMMUNITY),
    ("members::PATIENT_GROUP", members::PATIENT_GROUP),
    ("members::FREE_AND_COMMUNITY", members::FREE_AND_COMMUNITY),
    ("members::VIEW_GROUP", members::VIEW_GROUP),
    ("actions::INVITE", actions::INVITE),
    ("actions::INVITATIONS", actions::INVITATIONS),
    (
        "actions::APPROVALS_AND_RESPONSES",
        actions::APPROVALS_AND_RESPONSES,
    ),
    ("actions::COMMUNITIES", actions::COMMUNITIES),
    ("admin::FACILITY_OPS", admin::FACILITY_OPS),
    ("admin::ACCOUNT_OPS", admin::ACCOUNT_OPS),
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

/// The outcome letters of a list of decisions.
fn letters(decisions: impl IntoIterator<Item = Decision>) -> String {
    decisions.into_iter().map(outcome).collect()
}

/// The group facts for a profile: a group of `kind` owned by [`OWNING`].
fn group_for(profile: &Profile, kind: GroupKind, policy: Option<FacilityPolicy>) -> GroupFacts {
    GroupFacts {
        kind,
        owner_facility: Some(OWNING),
        membership: profile.membership,
        owner_policy: policy,
    }
}

/// `got` with the spacing of `expected`, so mismatches line up.
fn spaced_like(expected: &str, got: &str) -> String {
    let mut got = got.chars();
    let mut out = String::new();
    for c in expected.chars() {
        if c.is_whitespace() || c == '|' {
            out.push(c);
        } else {
            out.push(got.next().unwrap_or('?'));
        }
    }
    out.extend(got);
    out
}

/// Problems with a table's rows: missing, unknown or repeated profiles.
fn coverage_problems(table_name: &str, table: Table) -> Vec<String> {
    let names: Vec<&str> = profiles().iter().map(|p| p.name).collect();
    let mut problems = Vec::new();
    for name in &names {
        let rows = table.iter().filter(|(n, _)| n == name).count();
        if rows != 1 {
            problems.push(format!("{table_name}: profile {name:?} has {rows} rows"));
        }
    }
    for (n, _) in table {
        if !names.contains(n) {
            problems.push(format!("{table_name}: row for unknown profile {n:?}"));
        }
    }
    problems
}

/// Checks a table: every profile has a row, and each row's letters are what
/// `cells` computes for that profile.
fn check(table_name: &str, table: Table, cells: impl Fn(&Profile) -> String) {
    let mut failures = coverage_problems(table_name, table);
    for profile in profiles() {
        let Some((_, expected)) = table.iter().find(|(n, _)| *n == profile.name) else {
            continue;
        };
        let want: String = expected
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '|')
            .collect();
        let got = cells(&profile);
        if got != want {
            failures.push(format!(
                "{table_name} / {}:\n    expected {expected}\n    got      {}",
                profile.name,
                spaced_like(expected, &got)
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
fn every_profile_has_exactly_one_row_in_every_actor_table() {
    let problems: Vec<String> = ACTOR_TABLES
        .iter()
        .flat_map(|(name, table)| coverage_problems(name, table))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_actor_kind_and_a_disabled_account_has_a_profile() {
    let profiles = profiles();
    for kind in UserKind::ALL {
        assert!(
            profiles.iter().any(|p| p.actor.kind == *kind),
            "no profile for {kind}"
        );
    }
    let has = |f: &dyn Fn(&Profile) -> bool| profiles.iter().any(f);
    assert!(has(&|p| p.actor.facility_role == Some(FacilityRole::Admin)
        && p.actor.facility_id == Some(OWNING)));
    assert!(has(&|p| p.actor.facility_id == Some(OWNING)
        && p.actor.facility_role == Some(FacilityRole::Staff)
        && p.membership.is_some()));
    assert!(has(&|p| p.actor.facility_id == Some(OWNING)
        && p.actor.facility_role == Some(FacilityRole::Staff)
        && p.membership.is_none()));
    assert!(has(
        &|p| p.actor.facility_id == Some(OTHER) && p.membership.is_some()
    ));
    assert!(has(
        &|p| p.actor.facility_id == Some(OTHER) && p.membership.is_none()
    ));
    assert!(has(&|p| p.actor.status == UserStatus::Disabled));
    let mut names: Vec<&str> = profiles.iter().map(|p| p.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), profiles.len(), "profile names are unique");
}
