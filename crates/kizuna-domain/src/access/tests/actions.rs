//! Invitations, approvals and communities, by actor profile.

use super::members::{account, staff_of};
use super::*;

/// `Invite` by each profile, default policies everywhere.
///
/// Patient group columns: team scope: own-facility staff, other-facility
/// staff, a staff code (no facility yet) | family scope: a family member, a
/// family code | refused invitees: the patient (family scope), the patient
/// (team), a company account (team), an operator (team) | wrong scopes:
/// own-facility staff into the family timeline, a family member into the
/// team. Then one column each for a free group and a community (own-facility
/// staff, team scope): invitations are for patient groups only.
#[rustfmt::skip]
pub(super) const INVITE: Table = &[
    //                     team family refused scopes free community
    ("operator",          "NNN  NN     NNNN    NN     N    N"),
    ("operator in group", "PPP  PP     PPPP    PP     P    P"),
    ("admin",             "NNN  NN     NNNN    NN     N    N"),
    ("other admin",       "NNN  NN     NNNN    NN     N    N"),
    ("owner",             "AAA  AA     PPPP    PP     P    P"),
    ("moderator",         "AAA  AA     PPPP    PP     P    P"),
    ("member",            "AAA  AA     PPPP    PP     P    P"),
    ("staff outside",     "NNN  NN     NNNN    NN     N    N"),
    ("other member",      "AAA  AA     PPPP    PP     P    P"),
    ("other outside",     "NNN  NN     NNNN    NN     N    N"),
    ("family",            "PPP  PP     PPPP    PP     P    P"),
    ("family as all",     "PPP  PP     PPPP    PP     P    P"),
    ("patient",           "PPP  PP     PPPP    PP     P    P"),
    ("company member",    "PPP  PP     PPPP    PP     P    P"),
    ("company moderator", "PPP  PP     PPPP    PP     P    P"),
    ("company outside",   "NNN  NN     NNNN    NN     N    N"),
    ("disabled",          "DDD  DD     DDDD    DD     D    D"),
];

/// `ManageInvitation` (resend, cancel) in a patient group: the actor's own
/// invitation, someone else's | `ViewInvitations` in a patient group, a free
/// group, a community.
#[rustfmt::skip]
pub(super) const INVITATIONS: Table = &[
    //                     manage  view
    ("operator",          "NN    | NNN"),
    ("operator in group", "AP    | APP"),
    ("admin",             "NN    | NNN"),
    ("other admin",       "NN    | NNN"),
    ("owner",             "AA    | APP"),
    ("moderator",         "AA    | APP"),
    ("member",            "AP    | APP"),
    ("staff outside",     "NN    | NNN"),
    ("other member",      "AP    | APP"),
    ("other outside",     "NN    | NNN"),
    ("family",            "PP    | PPP"),
    ("family as all",     "PP    | PPP"),
    ("patient",           "PP    | PPP"),
    ("company member",    "PP    | PPP"),
    ("company moderator", "PP    | PPP"),
    ("company outside",   "NN    | NNN"),
    ("disabled",          "DD    | DDD"),
];

/// `DecideApproval` on an invitation into a patient group owned by
/// [`OWNING`]: role inviting_facility (invitee of [`OTHER`]), role
/// invitee_facility (invitee of [`OTHER`]), role invitee_facility with no
/// invitee facility (a code), role patient | `RespondToInvitation`: the
/// actor's own invitation, someone else's, an unredeemed code.
#[rustfmt::skip]
pub(super) const APPROVALS_AND_RESPONSES: Table = &[
    //                     approvals respond
    ("operator",          "NNNN    | ANN"),
    ("operator in group", "PPPP    | ANN"),
    ("admin",             "ANNN    | ANN"),
    ("other admin",       "NANN    | ANN"),
    ("owner",             "PPPP    | ANN"),
    ("moderator",         "PPPP    | ANN"),
    ("member",            "PPPP    | ANN"),
    ("staff outside",     "NNNN    | ANN"),
    ("other member",      "PPPP    | ANN"),
    ("other outside",     "NNNN    | ANN"),
    ("family",            "PPPP    | ANN"),
    ("family as all",     "PPPP    | ANN"),
    ("patient",           "PPPA    | ANN"),
    ("company member",    "PPPP    | ANN"),
    ("company moderator", "PPPP    | ANN"),
    ("company outside",   "NNNN    | ANN"),
    ("disabled",          "DDDD    | DDD"),
];

/// Communities: `ListCommunities` | `ApplyToCommunity` to a community, a
/// free group, a patient group | `DecideApplication` on the same three |
/// `RevealAuthor` on the same three. The profile's membership is in the
/// group applied to. Free and patient groups take no applications and have
/// no consultation tab: for them there is nothing to find (`N`).
#[rustfmt::skip]
pub(super) const COMMUNITIES: Table = &[
    //                     list apply decide reveal
    ("operator",          "A  | PNN | ANN | NNN"),
    ("operator in group", "A  | PNN | ANN | PNN"),
    ("admin",             "A  | ANN | NNN | NNN"),
    ("other admin",       "A  | ANN | NNN | NNN"),
    ("owner",             "A  | PNN | ANN | ANN"),
    ("moderator",         "A  | PNN | ANN | ANN"),
    ("member",            "A  | PNN | PNN | PNN"),
    ("staff outside",     "A  | ANN | NNN | NNN"),
    ("other member",      "A  | PNN | PNN | PNN"),
    ("other outside",     "A  | ANN | NNN | NNN"),
    ("family",            "P  | PNN | PNN | PNN"),
    ("family as all",     "P  | PNN | PNN | PNN"),
    ("patient",           "P  | PNN | PNN | PNN"),
    ("company member",    "A  | PNN | PNN | PNN"),
    ("company moderator", "A  | PNN | ANN | PNN"),
    ("company outside",   "A  | ANN | NNN | NNN"),
    ("disabled",          "D  | DDD | DDD | DDD"),
];

#[test]
fn inviting_by_actor() {
    use InvitationScope::{Family, Team};
    let invites = [
        (Team, staff_of(OWNING)),
        (Team, staff_of(OTHER)),
        (Team, account(UserKind::Staff)),
        (Family, account(UserKind::Family)),
        (Family, account(UserKind::Family)),
        (Family, account(UserKind::Patient)),
        (Team, account(UserKind::Patient)),
        (Team, account(UserKind::Company)),
        (Team, account(UserKind::Operator)),
        (Family, staff_of(OWNING)),
        (Team, account(UserKind::Family)),
    ];
    check("actions::INVITE", INVITE, |p| {
        let patient = group_for(p, GroupKind::Patient, Some(FacilityPolicy::default()));
        let mut out = letters(invites.iter().map(|&(scope, invitee)| {
            decide(
                &p.actor,
                &Action::Invite {
                    group: patient,
                    scope,
                    invitee,
                },
            )
        }));
        for kind in [GroupKind::Free, GroupKind::Community] {
            out += &letters([decide(
                &p.actor,
                &Action::Invite {
                    group: group_for(p, kind, None),
                    scope: Team,
                    invitee: staff_of(OWNING),
                },
            )]);
        }
        out
    });
}

#[test]
fn managing_and_viewing_invitations() {
    check("actions::INVITATIONS", INVITATIONS, |p| {
        let patient = group_for(p, GroupKind::Patient, Some(FacilityPolicy::default()));
        let manage = |inviter| {
            decide(
                &p.actor,
                &Action::ManageInvitation {
                    group: patient,
                    inviter,
                },
            )
        };
        let view = |group| decide(&p.actor, &Action::ViewInvitations { group });
        letters([
            manage(ME),
            manage(SOMEONE_ELSE),
            view(patient),
            view(group_for(p, GroupKind::Free, None)),
            view(group_for(p, GroupKind::Community, None)),
        ])
    });
}

#[test]
fn deciding_approvals_and_responding_to_invitations() {
    assert_eq!(ApprovalRole::ALL.len(), 3, "a new role needs its column");
    check(
        "actions::APPROVALS_AND_RESPONSES",
        APPROVALS_AND_RESPONSES,
        |p| {
            let group = group_for(p, GroupKind::Patient, Some(FacilityPolicy::default()));
            let approve = |role, invitee_facility| {
                decide(
                    &p.actor,
                    &Action::DecideApproval {
                        role,
                        group,
                        invitee_facility,
                    },
                )
            };
            let respond = |invitee| decide(&p.actor, &Action::RespondToInvitation { invitee });
            letters([
                approve(ApprovalRole::InvitingFacility, Some(OTHER)),
                approve(ApprovalRole::InviteeFacility, Some(OTHER)),
                approve(ApprovalRole::InviteeFacility, None),
                approve(ApprovalRole::Patient, None),
                respond(Some(ME)),
                respond(Some(SOMEONE_ELSE)),
                respond(None),
            ])
        },
    );
}

#[test]
fn communities_applications_and_reveals() {
    check("actions::COMMUNITIES", COMMUNITIES, |p| {
        let groups = [
            group_for(p, GroupKind::Community, None),
            group_for(p, GroupKind::Free, None),
            group_for(p, GroupKind::Patient, Some(FacilityPolicy::default())),
        ];
        let mut out = letters([decide(&p.actor, &Action::ListCommunities)]);
        for action in [
            (|group| Action::ApplyToCommunity { group }) as fn(GroupFacts) -> Action,
            |group| Action::DecideApplication { group },
            |group| Action::RevealAuthor { group },
        ] {
            out += &letters(groups.iter().map(|&g| decide(&p.actor, &action(g))));
        }
        out
    });
}
