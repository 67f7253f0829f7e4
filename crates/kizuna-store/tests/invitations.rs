//! Invitations and their approvals against real databases: SQLite always,
//! PostgreSQL when `KIZUNA_TEST_DATABASE_URL` is set.

use kizuna_domain::*;
use kizuna_store::directory::{self, NewUser};
use kizuna_store::invitations::{self, NewInvitation};
use kizuna_store::testing::scratch_databases;
use kizuna_store::{DbConn, StoreError};

const DAY: i64 = 24 * 3600 * 1000;

struct World {
    f1: FacilityId,
    f2: FacilityId,
    nurse: UserId,
    outsider: UserId,
    patient: UserId,
    group: GroupId,
}

fn user(c: &mut DbConn, login: &str, kind: UserKind, facility: Option<FacilityId>) -> UserId {
    directory::create_user(
        c,
        &NewUser {
            login,
            display_name: login,
            kind,
            profession: (kind == UserKind::Staff).then_some(Profession::Nurse),
            facility_id: facility,
            facility_role: (kind == UserKind::Staff).then_some(FacilityRole::Staff),
            password_hash: "x",
        },
    )
    .unwrap()
    .user_id()
}

fn world(c: &mut DbConn) -> World {
    let f1 = FacilityId(directory::create_facility(c, "Sakura", false).unwrap().id);
    let f2 = FacilityId(directory::create_facility(c, "Momiji", false).unwrap().id);
    let nurse = user(c, "nurse", UserKind::Staff, Some(f1));
    let outsider = user(c, "outsider", UserKind::Staff, Some(f2));
    let patient = user(c, "patient", UserKind::Patient, Some(f1));
    let g = directory::create_patient_group(c, f1, "Patient A", nurse, Some(nurse)).unwrap();
    let pid = PatientId(g.patient.as_ref().unwrap().id);
    assert!(directory::link_patient_account(c, pid, patient).unwrap());
    World {
        f1,
        f2,
        nurse,
        outsider,
        patient,
        group: GroupId(g.group.id),
    }
}

fn invite(
    c: &mut DbConn,
    w: &World,
    invitee: Option<UserId>,
    code_hash: Option<&str>,
    now: i64,
    approvals: &[(ApprovalRole, Option<FacilityId>)],
) -> i64 {
    invitations::create(
        c,
        &NewInvitation {
            group_id: w.group,
            scope: InvitationScope::Team,
            invitee_kind: UserKind::Staff,
            invitee_user_id: invitee,
            code_hash,
            invited_by: w.nurse,
            now,
            expires_at: now + 14 * DAY,
            approvals,
        },
    )
    .unwrap()
    .invitation
    .id
}

#[test]
fn an_invitation_is_stored_with_its_approvals_and_found_by_each_party() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let w = world(&mut c);
        let now = kizuna_store::now_ms();
        let approvals = [
            (ApprovalRole::InvitingFacility, Some(w.f1)),
            (ApprovalRole::InviteeFacility, Some(w.f2)),
            (ApprovalRole::Patient, None),
        ];
        let id = invite(&mut c, &w, Some(w.outsider), None, now, &approvals);
        let row = invitations::get(&mut c, id).unwrap();
        assert_eq!(row.status().unwrap(), InvitationStatus::Pending);
        assert_eq!((row.send_count, row.sent_at, row.created_at), (1, now, now));
        assert_eq!(row.expires_at, now + 14 * DAY);
        let stored = invitations::approvals(&mut c, id).unwrap();
        assert_eq!(stored.len(), 3);
        assert!(
            stored
                .iter()
                .all(|a| a.state().unwrap() == ApprovalState::Pending)
        );

        let mine = invitations::pending_for_invitee(&mut c, w.outsider, now).unwrap();
        assert_eq!(mine.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
        let f1 = invitations::pending_approvals_for_facility(&mut c, w.f1, now).unwrap();
        assert_eq!(f1.len(), 1);
        assert_eq!(f1[0].1.role().unwrap(), ApprovalRole::InvitingFacility);
        let f2 = invitations::pending_approvals_for_facility(&mut c, w.f2, now).unwrap();
        assert_eq!(f2.len(), 1);
        assert_eq!(f2[0].1.role().unwrap(), ApprovalRole::InviteeFacility);
        let p = invitations::pending_approvals_for_patient(&mut c, w.patient, now).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0.id, id);
        assert!(
            invitations::pending_approvals_for_patient(&mut c, w.nurse, now)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            invitations::pending_of_user_in_group(&mut c, w.group, w.outsider)
                .unwrap()
                .map(|r| r.id),
            Some(id)
        );

        // Past its expiry it no longer shows as waiting.
        let later = now + 15 * DAY;
        assert!(
            invitations::pending_for_invitee(&mut c, w.outsider, later)
                .unwrap()
                .is_empty()
        );
        assert!(
            invitations::pending_approvals_for_facility(&mut c, w.f1, later)
                .unwrap()
                .is_empty()
        );

        // Approving one leaves the other facility's pending; deciding twice conflicts.
        let a = invitations::decide_approval(
            &mut c,
            id,
            ApprovalRole::InvitingFacility,
            ApprovalState::Approved,
            w.nurse,
            now,
        )
        .unwrap();
        assert_eq!(a.state().unwrap(), ApprovalState::Approved);
        assert_eq!(a.decided_by, Some(w.nurse.get()));
        assert!(matches!(
            invitations::decide_approval(
                &mut c,
                id,
                ApprovalRole::InvitingFacility,
                ApprovalState::Refused,
                w.nurse,
                now
            ),
            Err(StoreError::Conflict(_))
        ));
        assert!(
            invitations::pending_approvals_for_facility(&mut c, w.f1, now)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            invitations::pending_approvals_for_facility(&mut c, w.f2, now)
                .unwrap()
                .len(),
            1
        );

        // Closing it records when, and it leaves every waiting list.
        let closed =
            invitations::set_status(&mut c, id, InvitationStatus::Denied, now + 5).unwrap();
        assert_eq!(closed.closed_at, Some(now + 5));
        assert!(
            invitations::pending_for_invitee(&mut c, w.outsider, now)
                .unwrap()
                .is_empty()
        );
        assert!(
            invitations::pending_approvals_for_patient(&mut c, w.patient, now)
                .unwrap()
                .is_empty()
        );
        let rows = invitations::of_group(&mut c, w.group).unwrap();
        let listed = invitations::with_approvals(&mut c, rows).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].approvals.len(), 3);
    }
}

#[test]
fn resend_renews_counts_reopens_and_replaces_the_code() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let w = world(&mut c);
        let now = kizuna_store::now_ms();
        let id = invite(&mut c, &w, None, Some("hash-one"), now, &[]);
        invitations::set_status(&mut c, id, InvitationStatus::Expired, now).unwrap();
        let later = now + 20 * DAY;
        let r = invitations::resend(&mut c, id, later, later + 14 * DAY, Some("hash-two")).unwrap();
        assert_eq!(r.send_count, 2);
        assert_eq!(r.sent_at, later);
        assert_eq!(r.expires_at, later + 14 * DAY);
        assert_eq!(r.status().unwrap(), InvitationStatus::Pending);
        assert_eq!(r.closed_at, None);
        assert!(
            invitations::by_code_hash(&mut c, "hash-one")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            invitations::by_code_hash(&mut c, "hash-two")
                .unwrap()
                .map(|r| r.id),
            Some(id)
        );
        let r = invitations::resend(&mut c, id, later + 1, later + 1 + 14 * DAY, None).unwrap();
        assert_eq!(r.send_count, 3);
        assert_eq!(r.code_hash.as_deref(), Some("hash-two"));
    }
}

#[test]
fn a_code_binds_one_account_once() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let w = world(&mut c);
        let now = kizuna_store::now_ms();
        let id = invite(&mut c, &w, None, Some("code-hash"), now, &[]);
        // Another invitation cannot reuse the code's hash.
        assert!(matches!(
            invitations::create(
                &mut c,
                &NewInvitation {
                    group_id: w.group,
                    scope: InvitationScope::Team,
                    invitee_kind: UserKind::Staff,
                    invitee_user_id: None,
                    code_hash: Some("code-hash"),
                    invited_by: w.nurse,
                    now,
                    expires_at: now + DAY,
                    approvals: &[],
                }
            ),
            Err(StoreError::Conflict(_))
        ));
        let bound = invitations::bind_invitee(
            &mut c,
            id,
            w.outsider,
            &[(ApprovalRole::InviteeFacility, Some(w.f2))],
        )
        .unwrap();
        assert_eq!(bound.invitation.invitee_user_id, Some(w.outsider.get()));
        assert_eq!(bound.approvals.len(), 1);
        assert_eq!(bound.approvals[0].facility_id, Some(w.f2.get()));
        assert!(matches!(
            invitations::bind_invitee(&mut c, id, w.patient, &[]),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            invitations::bind_invitee(&mut c, id + 1000, w.patient, &[]),
            Err(StoreError::NotFound)
        ));
        let accepted = invitations::set_accepted(&mut c, id, now + 1).unwrap();
        assert_eq!(accepted.accepted_at, Some(now + 1));
    }
}

#[test]
fn locks_and_lookups_of_missing_rows_say_not_found() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let w = world(&mut c);
        let now = kizuna_store::now_ms();
        let id = invite(&mut c, &w, Some(w.outsider), None, now, &[]);
        assert_eq!(invitations::lock(&mut c, id).unwrap().id, id);
        invitations::lock_group(&mut c, w.group).unwrap();
        assert!(matches!(
            invitations::lock(&mut c, id + 1000),
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            invitations::lock_group(&mut c, GroupId(w.group.get() + 1000)),
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            invitations::get(&mut c, id + 1000),
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            invitations::decide_approval(
                &mut c,
                id,
                ApprovalRole::Patient,
                ApprovalState::Approved,
                w.nurse,
                now
            ),
            Err(StoreError::NotFound)
        ));
        assert!(invitations::by_code_hash(&mut c, "nope").unwrap().is_none());
    }
}

fn already_invited<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(invitations::ALREADY_INVITED)))
}

#[test]
fn one_person_has_at_most_one_pending_invitation_per_group() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let w = world(&mut c);
        let now = kizuna_store::now_ms();
        let first = invite(&mut c, &w, Some(w.outsider), None, now, &[]);
        let second = NewInvitation {
            group_id: w.group,
            scope: InvitationScope::Team,
            invitee_kind: UserKind::Staff,
            invitee_user_id: Some(w.outsider),
            code_hash: None,
            invited_by: w.nurse,
            now,
            expires_at: now + DAY,
            approvals: &[],
        };
        // The index refuses a second pending one, whatever the code checked.
        assert!(
            already_invited(invitations::create(&mut c, &second)),
            "{:?}",
            db.backend()
        );
        // Codes nobody redeemed yet have no invitee and do not count.
        let code = invite(&mut c, &w, None, Some("code-a"), now, &[]);
        invite(&mut c, &w, None, Some("code-b"), now, &[]);
        // Once the first is no longer pending, another may be.
        invitations::set_status(&mut c, first, InvitationStatus::Expired, now).unwrap();
        let again = invitations::create(&mut c, &second).unwrap().invitation.id;
        // Reopening the expired one, or binding a code to the same person,
        // would make two.
        assert!(already_invited(invitations::resend(
            &mut c,
            first,
            now,
            now + DAY,
            None
        )));
        assert_eq!(
            invitations::get(&mut c, first).unwrap().status().unwrap(),
            InvitationStatus::Expired
        );
        assert!(already_invited(invitations::bind_invitee(
            &mut c,
            code,
            w.outsider,
            &[(ApprovalRole::InviteeFacility, Some(w.f2))]
        )));
        let unbound = invitations::get(&mut c, code).unwrap();
        assert_eq!(unbound.invitee_user_id, None);
        assert!(invitations::approvals(&mut c, code).unwrap().is_empty());
        // Another person, or another status, is no conflict.
        invitations::bind_invitee(&mut c, code, w.patient, &[]).unwrap();
        invitations::set_status(&mut c, again, InvitationStatus::Declined, now).unwrap();
        invitations::resend(&mut c, first, now, now + DAY, None).unwrap();
        // A code hash in use is a conflict of its own kind.
        let reused = invitations::create(
            &mut c,
            &NewInvitation {
                invitee_user_id: None,
                code_hash: Some("code-b"),
                ..second
            },
        );
        assert!(matches!(reused, Err(StoreError::Conflict(_))) && !already_invited(reused));
    }
}

#[test]
fn refreshing_approvals_adds_missing_roles_and_reopens_a_moved_facility() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let w = world(&mut c);
        let now = kizuna_store::now_ms();
        let id = invite(
            &mut c,
            &w,
            Some(w.outsider),
            None,
            now,
            &[(ApprovalRole::InviteeFacility, Some(w.f2))],
        );
        invitations::decide_approval(
            &mut c,
            id,
            ApprovalRole::InviteeFacility,
            ApprovalState::Approved,
            w.nurse,
            now,
        )
        .unwrap();
        // Same facility: the decision stands; a new role is added.
        invitations::refresh_approvals(
            &mut c,
            id,
            &[
                (ApprovalRole::InviteeFacility, Some(w.f2)),
                (ApprovalRole::InvitingFacility, Some(w.f1)),
            ],
        )
        .unwrap();
        let state = |c: &mut DbConn, role: ApprovalRole| {
            let a = invitations::approvals(c, id)
                .unwrap()
                .into_iter()
                .find(|a| a.role().unwrap() == role)
                .unwrap();
            (a.state().unwrap(), a.facility_id, a.decided_by)
        };
        assert_eq!(
            state(&mut c, ApprovalRole::InviteeFacility),
            (
                ApprovalState::Approved,
                Some(w.f2.get()),
                Some(w.nurse.get())
            )
        );
        assert_eq!(
            state(&mut c, ApprovalRole::InvitingFacility),
            (ApprovalState::Pending, Some(w.f1.get()), None)
        );
        // The invitee moved to f1: f1's admins decide afresh.
        invitations::refresh_approvals(&mut c, id, &[(ApprovalRole::InviteeFacility, Some(w.f1))])
            .unwrap();
        assert_eq!(
            state(&mut c, ApprovalRole::InviteeFacility),
            (ApprovalState::Pending, Some(w.f1.get()), None)
        );
        assert_eq!(invitations::approvals(&mut c, id).unwrap().len(), 2);
    }
}
