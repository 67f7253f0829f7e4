//! Administrative operations. They do not depend on group membership, so
//! profiles that differ only in membership have the same rows.

use super::*;

/// Facility-level operations. Columns: create facility, list facilities,
/// revoke a facility CA | for [`OWNING`]: manage certificates, edit policy,
/// view facility, view audit, link a patient's account | the same five for
/// [`OTHER`] | view the
/// service-wide audit (`None`) | register a patient: for `OWNING` under
/// creators `staff`, under `admins`, for `OTHER` under `staff`, under
/// `admins` | create a group: free, community, patient (patient groups come
/// only with a registered patient).
#[rustfmt::skip]
pub(super) const FACILITY_OPS: Table = &[
    //                     service own   other all patient group
    ("operator",          "AAA     AAAAA AAAAA  A   PPPP    AAP"),
    ("operator in group", "AAA     AAAAA AAAAA  A   PPPP    AAP"),
    ("admin",             "PPP     AAAAA PPPPP  P   AAPP    AAP"),
    ("other admin",       "PPP     PPPPP AAAAA  P   PPAA    AAP"),
    ("owner",             "PPP     PPPPP PPPPP  P   APPP    AAP"),
    ("moderator",         "PPP     PPPPP PPPPP  P   APPP    AAP"),
    ("member",            "PPP     PPPPP PPPPP  P   APPP    AAP"),
    ("staff outside",     "PPP     PPPPP PPPPP  P   APPP    AAP"),
    ("other member",      "PPP     PPPPP PPPPP  P   PPAP    AAP"),
    ("other outside",     "PPP     PPPPP PPPPP  P   PPAP    AAP"),
    ("family",            "PPP     PPPPP PPPPP  P   PPPP    PPP"),
    ("family as all",     "PPP     PPPPP PPPPP  P   PPPP    PPP"),
    ("patient",           "PPP     PPPPP PPPPP  P   PPPP    PPP"),
    ("company member",    "PPP     PPPPP PPPPP  P   PPPP    PAP"),
    ("company moderator", "PPP     PPPPP PPPPP  P   PPPP    PAP"),
    ("company outside",   "PPP     PPPPP PPPPP  P   PPPP    PAP"),
    ("disabled",          "DDD     DDDDD DDDDD  D   DDDD    DDD"),
];

/// Account operations: create user | edit user (role, profession) | set
/// user status (disable, enable). Each block's columns, by the target
/// account: staff of [`OWNING`], staff of [`OTHER`], a patient of `OWNING`,
/// a patient of `OTHER`, a family member, a company account, an operator.
#[rustfmt::skip]
pub(super) const ACCOUNT_OPS: Table = &[
    //                     create    edit      status
    ("operator",          "AAAAAAA | AAAAAAA | AAAAAAA"),
    ("operator in group", "AAAAAAA | AAAAAAA | AAAAAAA"),
    ("admin",             "APAPAPP | APPPPPP | APAPPPP"),
    ("other admin",       "PAPAAPP | PAPPPPP | PAPAPPP"),
    ("owner",             "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("moderator",         "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("member",            "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("staff outside",     "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("other member",      "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("other outside",     "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("family",            "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("family as all",     "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("patient",           "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("company member",    "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("company moderator", "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("company outside",   "PPPPPPP | PPPPPPP | PPPPPPP"),
    ("disabled",          "DDDDDDD | DDDDDDD | DDDDDDD"),
];

fn admin(p: &Profile, ops: &[AdminOp]) -> String {
    letters(ops.iter().map(|&op| decide(&p.actor, &Action::Admin(op))))
}

#[test]
fn facility_operations() {
    use AdminOp::*;
    use PatientGroupCreators::{Admins, Staff};
    let per_facility = |facility| {
        [
            ManageCertificates { facility },
            EditFacilityPolicy { facility },
            ViewFacility { facility },
            ViewAudit {
                facility: Some(facility),
            },
            LinkPatientAccount { facility },
        ]
    };
    let mut ops = vec![CreateFacility, ListFacilities, RevokeFacilityCa];
    ops.extend(per_facility(OWNING));
    ops.extend(per_facility(OTHER));
    ops.push(ViewAudit { facility: None });
    for (facility, creators) in [
        (OWNING, Staff),
        (OWNING, Admins),
        (OTHER, Staff),
        (OTHER, Admins),
    ] {
        ops.push(CreatePatient { facility, creators });
    }
    for kind in [GroupKind::Free, GroupKind::Community, GroupKind::Patient] {
        ops.push(CreateGroup { kind });
    }
    check("admin::FACILITY_OPS", FACILITY_OPS, |p| admin(p, &ops));
}

#[test]
fn account_operations() {
    let targets = [
        (Some(OWNING), UserKind::Staff),
        (Some(OTHER), UserKind::Staff),
        (Some(OWNING), UserKind::Patient),
        (Some(OTHER), UserKind::Patient),
        (None, UserKind::Family),
        (None, UserKind::Company),
        (None, UserKind::Operator),
    ];
    let mut ops = Vec::new();
    for make in [
        (|facility, kind| AdminOp::CreateUser { facility, kind })
            as fn(Option<FacilityId>, UserKind) -> AdminOp,
        |facility, kind| AdminOp::EditUser { facility, kind },
        |facility, kind| AdminOp::SetUserStatus { facility, kind },
    ] {
        ops.extend(targets.iter().map(|&(f, k)| make(f, k)));
    }
    check("admin::ACCOUNT_OPS", ACCOUNT_OPS, |p| admin(p, &ops));
}
