//! Community search and applications against real databases: SQLite always,
//! PostgreSQL when `KIZUNA_TEST_DATABASE_URL` is set.

use kizuna_domain::*;
use kizuna_store::communities;
use kizuna_store::directory::{self, NewUser};
use kizuna_store::testing::scratch_databases;
use kizuna_store::{DbConn, StoreError};

fn staff(c: &mut DbConn, facility: FacilityId, login: &str) -> UserId {
    UserId(
        directory::create_user(
            c,
            &NewUser {
                login,
                display_name: login,
                kind: UserKind::Staff,
                profession: Some(Profession::Nurse),
                facility_id: Some(facility),
                facility_role: Some(FacilityRole::Staff),
                password_hash: "x",
            },
        )
        .unwrap()
        .id,
    )
}

#[test]
fn one_pending_application_per_person_and_approval_makes_a_member() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let f = FacilityId(
            directory::create_facility(&mut c, "Sakura", false)
                .unwrap()
                .id,
        );
        let (owner, a, b) = (
            staff(&mut c, f, "owner"),
            staff(&mut c, f, "a"),
            staff(&mut c, f, "b"),
        );
        let g =
            directory::create_group(&mut c, GroupKind::Community, "Wound_care 100%", None, owner)
                .unwrap();
        let g = GroupId(g.group.id);
        directory::create_group(
            &mut c,
            GroupKind::Free,
            "Wound care free group",
            None,
            owner,
        )
        .unwrap();

        let found = communities::find(&mut c, Some("WOUND"), a).unwrap();
        assert_eq!(found.len(), 1, "communities only");
        assert_eq!((found[0].member_count, found[0].member), (1, false));
        assert_eq!(
            communities::find(&mut c, Some("_care 100%"), owner)
                .unwrap()
                .len(),
            1
        );
        assert!(
            communities::find(&mut c, Some("d%c"), a)
                .unwrap()
                .is_empty()
        );
        assert!(
            communities::find(&mut c, Some("woun_"), a)
                .unwrap()
                .is_empty()
        );

        let first = communities::apply(&mut c, g, a).unwrap();
        assert!(matches!(
            communities::apply(&mut c, g, a),
            Err(StoreError::Conflict(_))
        ));
        let id = ApplicationId(first.id);
        let approved = communities::decide(&mut c, id, Some(owner), true).unwrap();
        assert_eq!(approved.status().unwrap(), ApplicationStatus::Approved);
        assert_eq!(approved.decided_by, Some(owner.get()));
        let m = directory::membership(&mut c, g, a)
            .unwrap()
            .unwrap()
            .membership()
            .unwrap();
        assert_eq!((m.role, m.visibility), (GroupRole::Member, Visibility::All));
        assert!(matches!(
            communities::decide(&mut c, id, Some(owner), false),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            communities::decide(&mut c, ApplicationId(9_999), Some(owner), true),
            Err(StoreError::NotFound)
        ));

        // Denied and withdrawn leave no membership; a new application may follow.
        let p = communities::apply(&mut c, g, b).unwrap();
        communities::decide(&mut c, ApplicationId(p.id), Some(owner), false).unwrap();
        let again = communities::apply(&mut c, g, b).unwrap();
        let w = communities::withdraw(&mut c, ApplicationId(again.id)).unwrap();
        assert_eq!(w.status().unwrap(), ApplicationStatus::Withdrawn);
        assert!(directory::membership(&mut c, g, b).unwrap().is_none());
        let pending =
            communities::applications_of_group(&mut c, g, Some(ApplicationStatus::Pending))
                .unwrap();
        assert!(pending.is_empty());
        assert_eq!(
            communities::applications_of_group(&mut c, g, None)
                .unwrap()
                .len(),
            3
        );
        let mine = communities::applications_of_user(&mut c, b).unwrap();
        assert_eq!(
            mine.iter().map(|(r, _)| r.id).collect::<Vec<_>>(),
            vec![again.id, p.id],
            "newest first"
        );
        let found = communities::find(&mut c, None, a).unwrap();
        assert_eq!((found[0].member_count, found[0].member), (2, true));
    }
}
