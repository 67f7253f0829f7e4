//! Timeline operations on every timeline kind of every group kind.
//!
//! Each outcome string has four blocks, one per timeline kind:
//! team, family, main, consultation. Each block has eight columns:
//! read, post, ack, mark_read, edit own, edit other's, delete own,
//! delete other's.

use super::*;

/// A patient group (team and family timelines), default policy. The same
/// table holds when the facts carry no loaded policy.
#[rustfmt::skip]
pub(super) const PATIENT_GROUP: Table = &[
    //                      team     family   main     consultation
    ("operator",          "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("operator in group", "AAAAAPAP AAAAAPAP NNNNNNNN NNNNNNNN"),
    ("admin",             "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other admin",       "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("owner",             "AAAAAPAA AAAAAPAA NNNNNNNN NNNNNNNN"),
    ("moderator",         "AAAAAPAA AAAAAPAA NNNNNNNN NNNNNNNN"),
    ("member",            "AAAAAPAP AAAAAPAP NNNNNNNN NNNNNNNN"),
    ("staff outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other member",      "AAAAAPAP AAAAAPAP NNNNNNNN NNNNNNNN"),
    ("other outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family",            "HHHHHHHH AAAAAPAP NNNNNNNN NNNNNNNN"),
    ("family as all",     "HHHHHHHH AAAAAPAP NNNNNNNN NNNNNNNN"),
    ("patient",           "HHHHHHHH AAAAAPAP NNNNNNNN NNNNNNNN"),
    ("company member",    "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company moderator", "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company outside",   "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("disabled",          "DDDDDDDD DDDDDDDD DDDDDDDD DDDDDDDD"),
];

/// A patient group whose facility has switched the family timeline off: it
/// is not there for anyone (members included); the team timeline is as usual.
#[rustfmt::skip]
pub(super) const PATIENT_GROUP_FAMILY_OFF: Table = &[
    //                      team     family   main     consultation
    ("operator",          "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("operator in group", "AAAAAPAP NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("admin",             "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other admin",       "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("owner",             "AAAAAPAA NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("moderator",         "AAAAAPAA NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("member",            "AAAAAPAP NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("staff outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other member",      "AAAAAPAP NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family",            "HHHHHHHH NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family as all",     "HHHHHHHH NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("patient",           "HHHHHHHH NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company member",    "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company moderator", "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company outside",   "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("disabled",          "DDDDDDDD DDDDDDDD DDDDDDDD DDDDDDDD"),
];

/// A free group (one main timeline; staff and the operator only).
#[rustfmt::skip]
pub(super) const FREE_GROUP: Table = &[
    //                      team     family   main     consultation
    ("operator",          "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("operator in group", "NNNNNNNN NNNNNNNN AAAAAPAP NNNNNNNN"),
    ("admin",             "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other admin",       "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("owner",             "NNNNNNNN NNNNNNNN AAAAAPAA NNNNNNNN"),
    ("moderator",         "NNNNNNNN NNNNNNNN AAAAAPAA NNNNNNNN"),
    ("member",            "NNNNNNNN NNNNNNNN AAAAAPAP NNNNNNNN"),
    ("staff outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other member",      "NNNNNNNN NNNNNNNN AAAAAPAP NNNNNNNN"),
    ("other outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family",            "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family as all",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("patient",           "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company member",    "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company moderator", "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company outside",   "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("disabled",          "DDDDDDDD DDDDDDDD DDDDDDDD DDDDDDDD"),
];

/// A community (main and consultation timelines; staff, company accounts
/// and the operator).
#[rustfmt::skip]
pub(super) const COMMUNITY: Table = &[
    //                      team     family   main     consultation
    ("operator",          "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("operator in group", "NNNNNNNN NNNNNNNN AAAAAPAP AAAAAPAP"),
    ("admin",             "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other admin",       "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("owner",             "NNNNNNNN NNNNNNNN AAAAAPAA AAAAAPAA"),
    ("moderator",         "NNNNNNNN NNNNNNNN AAAAAPAA AAAAAPAA"),
    ("member",            "NNNNNNNN NNNNNNNN AAAAAPAP AAAAAPAP"),
    ("staff outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("other member",      "NNNNNNNN NNNNNNNN AAAAAPAP AAAAAPAP"),
    ("other outside",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family",            "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("family as all",     "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("patient",           "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("company member",    "NNNNNNNN NNNNNNNN AAAAAPAP AAAAAPAP"),
    ("company moderator", "NNNNNNNN NNNNNNNN AAAAAPAA AAAAAPAA"),
    ("company outside",   "NNNNNNNN NNNNNNNN NNNNNNNN NNNNNNNN"),
    ("disabled",          "DDDDDDDD DDDDDDDD DDDDDDDD DDDDDDDD"),
];

/// The 32 outcomes of one profile on every timeline of a group.
fn cells(profile: &Profile, group: GroupFacts) -> String {
    let ops: [(TimelineOp, Option<UserId>); 8] = [
        (TimelineOp::Read, None),
        (TimelineOp::Post, None),
        (TimelineOp::Ack, None),
        (TimelineOp::MarkRead, None),
        (TimelineOp::Edit, Some(ME)),
        (TimelineOp::Edit, Some(SOMEONE_ELSE)),
        (TimelineOp::Delete, Some(ME)),
        (TimelineOp::Delete, Some(SOMEONE_ELSE)),
    ];
    let timelines = [
        TimelineKind::Team,
        TimelineKind::Family,
        TimelineKind::Main,
        TimelineKind::Consultation,
    ];
    letters(timelines.into_iter().flat_map(|timeline| {
        ops.into_iter().map(move |(op, author)| {
            decide(
                &profile.actor,
                &Action::Timeline {
                    op,
                    timeline,
                    group,
                    author,
                },
            )
        })
    }))
}

#[test]
fn every_timeline_op_and_kind_is_a_column() {
    assert_eq!(TimelineOp::ALL.len(), 6, "a new op needs its columns");
    assert_eq!(TimelineKind::ALL.len(), 4, "a new timeline needs its block");
}

#[test]
fn patient_group_timelines_under_the_default_policy() {
    let policy = Some(FacilityPolicy::default());
    check("timelines::PATIENT_GROUP", PATIENT_GROUP, |p| {
        cells(p, group_for(p, GroupKind::Patient, policy))
    });
}

#[test]
fn patient_group_timelines_without_a_loaded_policy_behave_as_the_default() {
    check("timelines::PATIENT_GROUP (no policy)", PATIENT_GROUP, |p| {
        cells(p, group_for(p, GroupKind::Patient, None))
    });
}

#[test]
fn other_policy_rules_do_not_change_timeline_access_of_members() {
    // Tightening the crossing rules stops new invitations; it does not
    // throw out the members already there.
    let strict = FacilityPolicy {
        patient_group_creators: PatientGroupCreators::Admins,
        staff_join_other_facilities: CrossFacility::Never,
        outside_invitations: CrossFacility::Never,
        family_timeline: true,
        require_client_cert: false,
        notification_hours: Some("08:00-20:00".parse().expect("a valid window")),
    };
    check("timelines::PATIENT_GROUP (strict)", PATIENT_GROUP, |p| {
        cells(p, group_for(p, GroupKind::Patient, Some(strict)))
    });
}

#[test]
fn family_timeline_switched_off_is_not_there() {
    let policy = Some(FacilityPolicy {
        family_timeline: false,
        ..FacilityPolicy::default()
    });
    check(
        "timelines::PATIENT_GROUP_FAMILY_OFF",
        PATIENT_GROUP_FAMILY_OFF,
        |p| cells(p, group_for(p, GroupKind::Patient, policy)),
    );
}

#[test]
fn free_group_timelines() {
    check("timelines::FREE_GROUP", FREE_GROUP, |p| {
        cells(p, group_for(p, GroupKind::Free, None))
    });
}

#[test]
fn community_timelines() {
    check("timelines::COMMUNITY", COMMUNITY, |p| {
        cells(p, group_for(p, GroupKind::Community, None))
    });
}
