//! The store against real databases: SQLite always, PostgreSQL when
//! `KIZUNA_TEST_DATABASE_URL` is set (CI sets it).

use diesel::RunQueryDsl;
use kizuna_domain::*;
use kizuna_store::directory::{self, NewUser};
use kizuna_store::events::{self, Appended, NewPost};
use kizuna_store::testing::scratch_databases;
use kizuna_store::{Store, audit, sessions};

struct World {
    store: Store,
    nurse: UserId,
    doctor: UserId,
    team: TimelineId,
    family: TimelineId,
}

fn world(store: Store) -> World {
    let mut c = store.conn().unwrap();
    let f = directory::create_facility(&mut c, "Sakura Home Nursing", true).unwrap();
    let mk = |c: &mut kizuna_store::DbConn, login: &str| {
        directory::create_user(
            c,
            &NewUser {
                login,
                display_name: login,
                kind: UserKind::Staff,
                profession: Some(Profession::Nurse),
                facility_id: Some(FacilityId(f.id)),
                facility_role: Some(FacilityRole::Staff),
                password_hash: "x",
            },
        )
        .unwrap()
    };
    let nurse = mk(&mut c, "nurse");
    let doctor = mk(&mut c, "doctor");
    let g = directory::create_patient_group(
        &mut c,
        FacilityId(f.id),
        "Patient A",
        UserId(nurse.id),
        Some(UserId(nurse.id)),
    )
    .unwrap();
    directory::add_member(
        &mut c,
        GroupId(g.group.id),
        UserId(doctor.id),
        GroupRole::Member,
        Visibility::All,
    )
    .unwrap();
    let team = TimelineId(g.timelines[0].id);
    let family = TimelineId(g.timelines[1].id);
    assert_eq!(g.timelines[0].kind, "team");
    assert_eq!(g.timelines[1].kind, "family");
    drop(c);
    World {
        store,
        nurse: UserId(nurse.id),
        doctor: UserId(doctor.id),
        team,
        family,
    }
}

fn post(w: &World, author: UserId, timeline: TimelineId, key: &str, body: &str) -> Appended {
    let mut c = w.store.conn().unwrap();
    events::append_post(
        &mut c,
        NewPost {
            timeline_id: timeline,
            author_id: author,
            client_msg_id: key,
            body,
        },
    )
    .unwrap()
}

fn new_seq(a: Appended) -> i64 {
    match a {
        Appended::New(r) => r.seq,
        Appended::Duplicate(r) => panic!("unexpected duplicate at seq {}", r.seq),
    }
}

#[test]
fn migrations_survive_up_down_up() {
    for db in scratch_databases() {
        let store = db.open();
        store.revert_all().unwrap();
        assert!(store.migrate().unwrap() >= 1, "{:?}", db.backend());
        assert_eq!(store.migrate().unwrap(), 0);
        world(store);
    }
}

#[test]
fn seq_is_gapless_per_timeline_under_concurrent_posters() {
    for db in scratch_databases() {
        let w = std::sync::Arc::new(world(db.open()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let author = if t % 2 == 0 { w.nurse } else { w.doctor };
                    (0..25)
                        .map(|i| new_seq(post(&w, author, w.team, &format!("t{t}-{i}"), "report")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        seqs.sort();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "{:?}", db.backend());
        // The other timeline of the same group has its own sequence.
        assert_eq!(
            new_seq(post(&w, w.nurse, w.family, "f1", "hello family")),
            1
        );
        let mut c = w.store.conn().unwrap();
        assert_eq!(events::last_seq(&mut c, w.team).unwrap(), 100);
    }
}

#[test]
fn a_retried_post_returns_the_stored_event() {
    for db in scratch_databases() {
        let w = world(db.open());
        let first = new_seq(post(&w, w.nurse, w.team, "m-1", "started day service"));
        match post(&w, w.nurse, w.team, "m-1", "started day service") {
            Appended::Duplicate(r) => assert_eq!(r.seq, first),
            Appended::New(_) => panic!("retry stored a second post"),
        }
        // Another author may use the same key.
        assert_eq!(new_seq(post(&w, w.doctor, w.team, "m-1", "ok")), first + 1);
        let mut c = w.store.conn().unwrap();
        assert_eq!(events::last_seq(&mut c, w.team).unwrap(), 2);
    }
}

#[test]
fn concurrent_retries_store_one_post() {
    for db in scratch_databases() {
        let w = std::sync::Arc::new(world(db.open()));
        let results: Vec<Appended> = (0..6)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || post(&w, w.nurse, w.team, "same-key", "once"))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let new = results
            .iter()
            .filter(|r| matches!(r, Appended::New(_)))
            .count();
        assert_eq!(new, 1, "{:?}", db.backend());
        let mut c = w.store.conn().unwrap();
        assert_eq!(events::last_seq(&mut c, w.team).unwrap(), 1);
    }
}

#[test]
fn edit_and_delete_keep_history_and_leave_a_tombstone() {
    for db in scratch_databases() {
        let w = world(db.open());
        let s = new_seq(post(&w, w.nurse, w.team, "m", "BP 140/90"));
        let mut c = w.store.conn().unwrap();
        let edit = events::edit_post(&mut c, w.team, s, w.nurse, "BP 130/85").unwrap();
        assert_eq!(
            (edit.seq, edit.kind.as_str(), edit.target_seq),
            (2, "edit", Some(s))
        );
        let tomb = events::delete_post(&mut c, w.team, s, w.nurse).unwrap();
        let edit_after = events::event_at(&mut c, w.team, edit.seq).unwrap().unwrap();
        assert_eq!(
            edit_after.body, None,
            "no edit event keeps a deleted post's text"
        );
        assert_eq!(
            (tomb.seq, tomb.kind.as_str(), tomb.body.as_deref()),
            (3, "delete", None)
        );
        let original = events::event_at(&mut c, w.team, s).unwrap().unwrap();
        assert!(
            original.body.is_none()
                && original.deleted_at.is_some()
                && original.edited_at.is_some()
        );
        let revs = events::revisions(&mut c, EventId(original.id)).unwrap();
        assert_eq!(
            revs,
            vec![(2, "BP 140/90".to_owned()), (3, "BP 130/85".to_owned())]
        );
        assert!(matches!(
            events::edit_post(&mut c, w.team, s, w.nurse, "again"),
            Err(kizuna_store::StoreError::Conflict(_))
        ));
        // A failed change consumes no seq.
        assert_eq!(events::last_seq(&mut c, w.team).unwrap(), 3);
        assert!(matches!(
            events::delete_post(&mut c, w.team, 99, w.nurse),
            Err(kizuna_store::StoreError::NotFound)
        ));
        assert_eq!(events::last_seq(&mut c, w.team).unwrap(), 3);
    }
}

#[test]
fn catch_up_and_history_page_in_order() {
    for db in scratch_databases() {
        let w = world(db.open());
        for i in 1..=30 {
            post(&w, w.nurse, w.team, &format!("k{i}"), &format!("post {i}"));
        }
        let mut c = w.store.conn().unwrap();
        let after: Vec<i64> = events::events_after(&mut c, w.team, 25, 100)
            .unwrap()
            .iter()
            .map(|(e, _)| e.seq)
            .collect();
        assert_eq!(after, vec![26, 27, 28, 29, 30]);
        let (page, more) = events::history(&mut c, w.team, None, 10).unwrap();
        assert_eq!(
            page.iter().map(|(e, _)| e.seq).collect::<Vec<_>>(),
            (21..=30).rev().collect::<Vec<_>>()
        );
        assert!(more);
        let (page, more) = events::history(&mut c, w.team, Some(11), 10).unwrap();
        assert_eq!(
            page.iter().map(|(e, _)| e.seq).collect::<Vec<_>>(),
            (1..=10).rev().collect::<Vec<_>>()
        );
        assert!(!more);
        let (e, a) = &page[0];
        let ev = e.to_event(a, 0, Some(w.nurse)).unwrap();
        assert_eq!(ev.client_msg_id.as_deref(), Some("k10"));
        assert_eq!(
            e.to_event(a, 0, Some(w.doctor)).unwrap().client_msg_id,
            None
        );
    }
}

#[test]
fn acknowledgements_and_read_markers() {
    for db in scratch_databases() {
        let w = world(db.open());
        let s1 = new_seq(post(&w, w.nurse, w.team, "a", "please prescribe ointment"));
        let s2 = new_seq(post(&w, w.nurse, w.team, "b", "visited today"));
        let mut c = w.store.conn().unwrap();
        let (_, new) = events::ack(&mut c, w.team, s1, w.doctor).unwrap();
        assert!(new);
        let (_, new) = events::ack(&mut c, w.team, s1, w.doctor).unwrap();
        assert!(!new, "a second 了解 is not a new one");
        events::ack(&mut c, w.team, s1, w.nurse).unwrap();
        let mut who: Vec<i64> = events::acks_of(&mut c, w.team, s1)
            .unwrap()
            .iter()
            .map(|(a, _)| a.user_id)
            .collect();
        who.sort();
        assert_eq!(who, vec![w.nurse.get(), w.doctor.get()]);
        assert_eq!(
            events::ack_counts(&mut c, w.team, &[s1, s2])
                .unwrap()
                .get(&s1),
            Some(&2)
        );
        assert!(matches!(
            events::ack(&mut c, w.team, 77, w.doctor),
            Err(kizuna_store::StoreError::NotFound)
        ));

        assert_eq!(
            events::unread_count(&mut c, w.team, w.doctor, 0).unwrap(),
            2
        );
        assert_eq!(
            events::unread_count(&mut c, w.team, w.nurse, 0).unwrap(),
            0,
            "own posts are not unread"
        );
        assert_eq!(events::mark_read(&mut c, w.doctor, w.team, s1).unwrap(), s1);
        assert_eq!(
            events::mark_read(&mut c, w.doctor, w.team, 0).unwrap(),
            s1,
            "markers never move back"
        );
        assert_eq!(
            events::mark_read(&mut c, w.doctor, w.team, 1000).unwrap(),
            s2,
            "nor past the newest event"
        );
        assert_eq!(events::read_marker(&mut c, w.doctor, w.team).unwrap(), s2);
        let mine = directory::timelines_of_user(&mut c, w.doctor).unwrap();
        assert_eq!(mine.len(), 2);
        assert_eq!(
            mine.iter()
                .find(|u| u.timeline.id == w.team.get())
                .unwrap()
                .read_seq,
            s2
        );
    }
}

#[test]
fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    for db in scratch_databases() {
        let w = world(db.open());
        let mut c = w.store.conn().unwrap();
        let far = kizuna_store::now_ms() + 86_400_000;
        let s = sessions::create_session(&mut c, w.nurse, "h1", Some("thumb"), far).unwrap();
        let r = sessions::rotate_refresh(&mut c, "h1", "h2", far).unwrap();
        assert!(
            matches!(r, sessions::Rotation::Rotated(ref row) if row.id == s.id && row.refresh_hash == "h2")
        );
        assert!(matches!(
            sessions::rotate_refresh(&mut c, "zz", "h3", far).unwrap(),
            sessions::Rotation::Unknown
        ));
        // Replaying the old token revokes the session for everyone.
        assert!(matches!(
            sessions::rotate_refresh(&mut c, "h1", "h3", far).unwrap(),
            sessions::Rotation::Reused(_)
        ));
        assert!(matches!(
            sessions::rotate_refresh(&mut c, "h2", "h4", far).unwrap(),
            sessions::Rotation::Ended(_)
        ));
        let row = sessions::session(&mut c, SessionId(s.id)).unwrap();
        assert_eq!(row.revoke_reason.as_deref(), Some("refresh_reuse"));
    }
}

#[test]
fn audit_chain_verifies_and_detects_tampering() {
    for db in scratch_databases() {
        let w = world(db.open());
        let mut c = w.store.conn().unwrap();
        for i in 0..5 {
            audit::append(
                &mut c,
                &audit::AuditEntry {
                    actor_user_id: Some(w.doctor.get()),
                    action: "timeline.read",
                    outcome: "ok",
                    timeline_id: Some(w.team.get()),
                    detail: Some(format!("after_seq={i}")),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        assert_eq!(audit::verify_chain(&mut c).unwrap(), Ok(5));
        let third = audit::entries(&mut c, &audit::AuditFilter::default()).unwrap()[2].id;
        // The database refuses to change an entry...
        let refused = diesel::sql_query(format!(
            "UPDATE audit_log SET actor_user_id = 1 WHERE id = {third}"
        ))
        .execute(&mut *c);
        assert!(refused.is_err(), "an UPDATE of audit_log must be refused");
        let refused =
            diesel::sql_query(format!("DELETE FROM audit_log WHERE id = {third}")).execute(&mut *c);
        assert!(refused.is_err(), "a DELETE from audit_log must be refused");
        assert_eq!(audit::verify_chain(&mut c).unwrap(), Ok(5));
        // ...and one who owns the database and drops the guard is still caught
        // by the chain.
        let drop_guard = match db.backend() {
            kizuna_store::Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
            kizuna_store::Backend::Postgres => "DROP TRIGGER audit_log_no_change ON audit_log",
        };
        diesel::sql_query(drop_guard).execute(&mut *c).unwrap();
        diesel::sql_query(format!(
            "UPDATE audit_log SET actor_user_id = 1 WHERE id = {third}"
        ))
        .execute(&mut *c)
        .unwrap();
        assert_eq!(
            audit::verify_chain(&mut c).unwrap(),
            Err(audit::ChainBroken { id: third })
        );
    }
}

#[test]
fn timeline_context_reports_membership() {
    for db in scratch_databases() {
        let w = world(db.open());
        let mut c = w.store.conn().unwrap();
        let ctx = directory::timeline_context(&mut c, w.team, w.doctor)
            .unwrap()
            .unwrap();
        assert_eq!(ctx.group.kind, "patient");
        assert!(ctx.membership.is_some());
        let outsider = directory::create_user(
            &mut c,
            &NewUser {
                login: "outsider",
                display_name: "o",
                kind: UserKind::Staff,
                profession: None,
                facility_id: None,
                facility_role: None,
                password_hash: "x",
            },
        )
        .unwrap();
        let ctx = directory::timeline_context(&mut c, w.team, UserId(outsider.id))
            .unwrap()
            .unwrap();
        assert!(ctx.membership.is_none());
        assert!(
            directory::timeline_context(&mut c, TimelineId(9_999), w.doctor)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            directory::create_user(
                &mut c,
                &NewUser {
                    login: "nurse",
                    display_name: "dup",
                    kind: UserKind::Staff,
                    profession: None,
                    facility_id: None,
                    facility_role: None,
                    password_hash: "x"
                }
            ),
            Err(kizuna_store::StoreError::Conflict("login taken"))
        ));
    }
}

#[test]
fn libpq_key_value_strings_are_refused_rather_than_becoming_sqlite_files() {
    assert!(kizuna_store::Backend::parse("host=127.0.0.1 dbname=test").is_err());
    assert!(kizuna_store::Backend::parse("mysql://x").is_err());
    assert_eq!(
        kizuna_store::Backend::parse("postgresql://h/db").unwrap().0,
        kizuna_store::Backend::Postgres
    );
    assert_eq!(
        kizuna_store::Backend::parse("sqlite:///tmp/x.db").unwrap(),
        (kizuna_store::Backend::Sqlite, "/tmp/x.db".to_owned())
    );
}

#[test]
fn a_group_commit_stores_each_post_or_refuses_it_alone() {
    for db in scratch_databases() {
        let w = world(db.open());
        let first = new_seq(post(&w, w.nurse, w.team, "n-0", "before the batch"));
        let mut c = w.store.conn().unwrap();
        let p = |author, timeline, key: &'static str, body: &'static str| NewPost {
            timeline_id: timeline,
            author_id: author,
            client_msg_id: key,
            body,
        };
        let batch = [
            p(w.nurse, w.team, "n-1", "one"),
            p(w.doctor, w.team, "d-1", "two"),
            // A retry of a post stored earlier: answered with the stored one.
            p(w.nurse, w.team, "n-0", "before the batch"),
            // Its hook fails: this post alone is not stored.
            p(w.doctor, w.family, "d-2", "refused by the hook"),
            // A retry of a post earlier in the same batch.
            p(w.nurse, w.team, "n-1", "one"),
            p(w.doctor, w.family, "d-3", "three"),
        ];
        let mut hooked = Vec::new();
        let results = events::append_posts(&mut c, &batch, |_, i, row| {
            hooked.push((i, row.seq));
            if i == 3 {
                Err(kizuna_store::StoreError::Conflict("hook said no"))
            } else {
                Ok(())
            }
        })
        .unwrap();
        let outcome: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(Appended::New(row)) => format!("new {}", row.seq),
                Ok(Appended::Duplicate(row)) => format!("dup {}", row.seq),
                Err(_) => "err".into(),
            })
            .collect();
        assert_eq!(
            outcome,
            [
                format!("new {}", first + 1),
                format!("new {}", first + 2),
                format!("dup {first}"),
                "err".into(),
                format!("dup {}", first + 1),
                "new 1".into(),
            ]
        );
        // The refused post left no seq behind: the family timeline's first
        // post is seq 1, and the team timeline has no gap.
        assert_eq!(events::last_seq(&mut c, w.family).unwrap(), 1);
        assert_eq!(events::last_seq(&mut c, w.team).unwrap(), first + 2);
        let seqs: Vec<i64> = events::events_after(&mut c, w.team, 0, 100)
            .unwrap()
            .iter()
            .map(|(e, _)| e.seq)
            .collect();
        assert_eq!(seqs, (1..=first + 2).collect::<Vec<_>>());
        assert_eq!(
            hooked.len(),
            4,
            "the hook runs for new rows only: {hooked:?}"
        );
    }
}
