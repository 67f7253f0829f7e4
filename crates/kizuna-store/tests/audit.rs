//! The audit trail's facility-scoped queries and the "who read this patient"
//! summary, on SQLite always and PostgreSQL when `KIZUNA_TEST_DATABASE_URL` is
//! set.

use kizuna_domain::*;
use kizuna_store::audit::{self, AuditEntry, AuditFilter};
use kizuna_store::directory::{self, NewUser};
use kizuna_store::testing::scratch_databases;
use kizuna_store::{DbConn, StoreError, transaction};

struct Ids {
    f1: FacilityId,
    f2: FacilityId,
    doctor: i64,
    pharmacist: i64,
    clerk: i64,
    patient: PatientId,
    group: i64,
}

fn seed(c: &mut DbConn) -> Ids {
    let f1 = directory::create_facility(c, "Sakura Home Nursing", true).unwrap();
    let f2 = directory::create_facility(c, "Momiji Pharmacy", true).unwrap();
    let mut mk = |login: &str, facility: i64, profession: Profession| {
        directory::create_user(
            c,
            &NewUser {
                login,
                display_name: login,
                kind: UserKind::Staff,
                profession: Some(profession),
                facility_id: Some(FacilityId(facility)),
                facility_role: Some(FacilityRole::Staff),
                password_hash: "x",
            },
        )
        .unwrap()
        .id
    };
    let doctor = mk("doctor", f1.id, Profession::Physician);
    let pharmacist = mk("pharmacist", f2.id, Profession::Pharmacist);
    let clerk = mk("clerk", f2.id, Profession::CareManager);
    let g = directory::create_patient_group(
        c,
        FacilityId(f1.id),
        "Patient A",
        UserId(doctor),
        Some(UserId(doctor)),
    )
    .unwrap();
    Ids {
        f1: FacilityId(f1.id),
        f2: FacilityId(f2.id),
        doctor,
        pharmacist,
        clerk,
        patient: PatientId(g.patient.unwrap().id),
        group: g.group.id,
    }
}

fn read(ids: &Ids, actor: i64, actor_facility: FacilityId, outcome: &'static str) -> AuditEntry {
    AuditEntry {
        actor_user_id: Some(actor),
        actor_facility_id: Some(actor_facility.get()),
        action: "timeline.read",
        outcome,
        facility_id: Some(ids.f1.get()),
        patient_id: Some(ids.patient.get()),
        group_id: Some(ids.group),
        detail: Some("via=subscribe".into()),
        ..Default::default()
    }
}

/// Appends the mixed trail the tests query; returns the entries' ids by name.
fn trail(c: &mut DbConn, ids: &Ids) -> std::collections::HashMap<&'static str, i64> {
    let entries: Vec<(&'static str, AuditEntry)> = vec![
        ("doctor_read", read(ids, ids.doctor, ids.f1, "ok")),
        ("pharmacist_read", read(ids, ids.pharmacist, ids.f2, "ok")),
        ("doctor_read_again", read(ids, ids.doctor, ids.f1, "ok")),
        ("clerk_denied", read(ids, ids.clerk, ids.f2, "denied")),
        (
            "f2_only",
            AuditEntry {
                actor_user_id: Some(ids.clerk),
                actor_facility_id: Some(ids.f2.get()),
                action: "admin.set_user_status",
                outcome: "ok",
                facility_id: Some(ids.f2.get()),
                subject_user_id: Some(ids.pharmacist),
                ..Default::default()
            },
        ),
        (
            "consultation_by_f1",
            AuditEntry {
                actor_user_id: Some(ids.doctor),
                actor_facility_id: Some(ids.f1.get()),
                action: "consultation.post",
                outcome: "ok",
                detail: Some("seq=1".into()),
                ..Default::default()
            },
        ),
        (
            // Even with a facility on it, a consultation entry stays out.
            "consultation_about_f1",
            AuditEntry {
                actor_user_id: Some(ids.pharmacist),
                actor_facility_id: Some(ids.f2.get()),
                action: "consultation.delete",
                outcome: "ok",
                facility_id: Some(ids.f1.get()),
                ..Default::default()
            },
        ),
        (
            "unknown_login",
            AuditEntry {
                action: "auth.login",
                outcome: "failed",
                detail: Some("reason=unknown_login".into()),
                ..Default::default()
            },
        ),
    ];
    entries
        .into_iter()
        .map(|(name, e)| (name, audit::append(c, &e).unwrap().id))
        .collect()
}

fn ids_of(rows: &[kizuna_store::models::AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

#[test]
fn a_facility_sees_entries_about_it_and_by_its_users_and_no_consultations() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let ids = seed(&mut c);
        let t = trail(&mut c, &ids);
        let all = AuditFilter::default();

        let f1 = ids_of(&audit::facility_entries(&mut c, ids.f1, &all).unwrap());
        assert_eq!(
            f1,
            vec![
                t["doctor_read"],
                t["pharmacist_read"],
                t["doctor_read_again"],
                t["clerk_denied"]
            ],
            "{:?}",
            db.backend()
        );
        // f2's admins see their users' reads of f1's patient and their own
        // facility's entries, nothing of f1 alone.
        let f2 = ids_of(&audit::facility_entries(&mut c, ids.f2, &all).unwrap());
        assert_eq!(
            f2,
            vec![t["pharmacist_read"], t["clerk_denied"], t["f2_only"]]
        );
        // A facility with no entries sees none (another facility's never leak).
        let f3 = directory::create_facility(&mut c, "Empty Clinic", true).unwrap();
        assert!(
            audit::facility_entries(&mut c, FacilityId(f3.id), &all)
                .unwrap()
                .is_empty()
        );
        // Filtering on a consultation action does not bring them back.
        let consult = AuditFilter {
            action: Some("consultation.post".into()),
            ..Default::default()
        };
        assert!(
            audit::facility_entries(&mut c, ids.f1, &consult)
                .unwrap()
                .is_empty()
        );
        // The service-wide view has everything, consultations included.
        let everything = ids_of(&audit::entries(&mut c, &all).unwrap());
        for id in t.values() {
            assert!(everything.contains(id));
        }
        assert_eq!(
            ids_of(&audit::entries(&mut c, &consult).unwrap()),
            vec![t["consultation_by_f1"]]
        );
    }
}

#[test]
fn a_refused_probe_of_another_facility_shows_the_probers_admins_no_target() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let ids = seed(&mut c);
        let t = trail(&mut c, &ids);
        // f2's clerk probes f1's group for invitations (told `not_found`).
        let probe = audit::append(
            &mut c,
            &AuditEntry {
                actor_user_id: Some(ids.clerk),
                actor_facility_id: Some(ids.f2.get()),
                action: "invitation.list",
                outcome: "denied",
                facility_id: Some(ids.f1.get()),
                group_id: Some(ids.group),
                subject_user_id: Some(ids.doctor),
                detail: Some("invitation=77 code=not_found".into()),
                remote_addr: Some("192.0.2.9".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let all = AuditFilter::default();
        let find = |rows: &[kizuna_store::models::AuditRow], id: i64| {
            rows.iter()
                .find(|r| r.id == id)
                .cloned()
                .unwrap_or_else(|| panic!("entry {id} missing ({:?})", db.backend()))
        };

        // f2's view: both refusals are there (who tried, when, from where,
        // the answer), but not what they were aimed at.
        let f2 = audit::facility_entries(&mut c, ids.f2, &all).unwrap();
        for id in [t["clerk_denied"], probe.id] {
            let r = find(&f2, id);
            assert_eq!(r.actor_user_id, Some(ids.clerk));
            assert_eq!(r.actor_facility_id, Some(ids.f2.get()));
            assert_eq!(r.outcome, "denied");
            assert_eq!(
                (
                    r.facility_id,
                    r.patient_id,
                    r.group_id,
                    r.timeline_id,
                    r.subject_user_id
                ),
                (None, None, None, None, None),
                "{:?}",
                db.backend()
            );
            // The hash covers the hidden ids, so it is not shown either.
            assert_eq!(r.hash, "");
            assert_eq!(r.prev_hash, "");
        }
        let r = find(&f2, probe.id);
        assert_eq!(r.detail.as_deref(), Some("code=not_found"));
        assert_eq!(r.remote_addr.as_deref(), Some("192.0.2.9"));
        assert_eq!(
            find(&f2, t["clerk_denied"]).detail.as_deref(),
            Some("via=subscribe")
        );
        // f2's own and successful entries keep their ids (and hash).
        let own = find(&f2, t["f2_only"]);
        assert_eq!(own.subject_user_id, Some(ids.pharmacist));
        assert_eq!(own.hash.len(), 64);
        let read = find(&f2, t["pharmacist_read"]);
        assert_eq!(read.patient_id, Some(ids.patient.get()));
        // Filtering f2's view on f1's patient or user does not find them.
        for filter in [
            AuditFilter {
                patient_id: Some(ids.patient.get()),
                ..Default::default()
            },
            AuditFilter {
                subject_user_id: Some(ids.doctor),
                ..Default::default()
            },
        ] {
            let found = ids_of(&audit::facility_entries(&mut c, ids.f2, &filter).unwrap());
            assert!(!found.contains(&probe.id), "{filter:?}");
            assert!(!found.contains(&t["clerk_denied"]), "{filter:?}");
        }

        // f1's view: the probes of its group, with every id.
        let f1 = audit::facility_entries(&mut c, ids.f1, &all).unwrap();
        let r = find(&f1, probe.id);
        assert_eq!(r.facility_id, Some(ids.f1.get()));
        assert_eq!(r.group_id, Some(ids.group));
        assert_eq!(r.subject_user_id, Some(ids.doctor));
        assert_eq!(r.detail.as_deref(), Some("invitation=77 code=not_found"));
        let r = find(&f1, t["clerk_denied"]);
        assert_eq!(r.patient_id, Some(ids.patient.get()));
        assert_eq!(r.group_id, Some(ids.group));
        let by_patient = ids_of(
            &audit::facility_entries(
                &mut c,
                ids.f1,
                &AuditFilter {
                    patient_id: Some(ids.patient.get()),
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        assert!(by_patient.contains(&t["clerk_denied"]));

        // The operator's service-wide view keeps everything, and the chain
        // is whole.
        let everything = audit::entries(&mut c, &all).unwrap();
        let r = find(&everything, probe.id);
        assert_eq!(r.group_id, Some(ids.group));
        assert_eq!(r.hash, probe.hash);
        assert_eq!(r.prev_hash, probe.prev_hash);
        assert!(audit::verify_chain(&mut c).unwrap().is_ok());
    }
}

#[test]
fn facility_query_filters_narrow_and_page() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let ids = seed(&mut c);
        let t = trail(&mut c, &ids);
        let q = |c: &mut DbConn, f: AuditFilter| {
            ids_of(&audit::facility_entries(c, ids.f1, &f).unwrap())
        };

        let by_doctor = q(
            &mut c,
            AuditFilter {
                actor_user_id: Some(ids.doctor),
                ..Default::default()
            },
        );
        assert_eq!(by_doctor, vec![t["doctor_read"], t["doctor_read_again"]]);
        let about_pharmacist = q(
            &mut c,
            AuditFilter {
                subject_user_id: Some(ids.pharmacist),
                ..Default::default()
            },
        );
        assert!(
            about_pharmacist.is_empty(),
            "f2's entry about its user stays f2's"
        );
        let f2_subject = ids_of(
            &audit::facility_entries(
                &mut c,
                ids.f2,
                &AuditFilter {
                    subject_user_id: Some(ids.pharmacist),
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        assert_eq!(f2_subject, vec![t["f2_only"]]);
        let patient = q(
            &mut c,
            AuditFilter {
                patient_id: Some(ids.patient.get()),
                action: Some("timeline.read".into()),
                ..Default::default()
            },
        );
        assert_eq!(patient.len(), 4);
        // Paging: after_id and limit.
        let first = q(
            &mut c,
            AuditFilter {
                limit: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(first, vec![t["doctor_read"], t["pharmacist_read"]]);
        let rest = q(
            &mut c,
            AuditFilter {
                after_id: Some(first[1]),
                ..Default::default()
            },
        );
        assert_eq!(rest, vec![t["doctor_read_again"], t["clerk_denied"]]);
        let bounded = q(
            &mut c,
            AuditFilter {
                until_id: Some(t["pharmacist_read"]),
                ..Default::default()
            },
        );
        assert_eq!(bounded, vec![t["doctor_read"], t["pharmacist_read"]]);
        // A limit beyond the cap is capped, not refused; zero means one.
        assert_eq!(
            q(
                &mut c,
                AuditFilter {
                    limit: Some(0),
                    ..Default::default()
                }
            )
            .len(),
            1
        );
        // Time: from inclusive, to exclusive.
        let rows = audit::facility_entries(&mut c, ids.f1, &AuditFilter::default()).unwrap();
        let (lo, hi) = (rows[0].at, rows.last().unwrap().at);
        let timed = |c: &mut DbConn, from, to| {
            q(
                c,
                AuditFilter {
                    from_ms: from,
                    to_ms: to,
                    ..Default::default()
                },
            )
            .len()
        };
        assert_eq!(timed(&mut c, Some(lo), Some(hi + 1)), 4);
        assert_eq!(timed(&mut c, Some(hi + 1), None), 0);
        assert_eq!(timed(&mut c, None, Some(lo)), 0);
    }
}

#[test]
fn who_read_a_patient_counts_successful_reads_per_reader() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let ids = seed(&mut c);
        let t = trail(&mut c, &ids);
        let rows = audit::entries(&mut c, &AuditFilter::default()).unwrap();
        let at = |name: &str| rows.iter().find(|r| r.id == t[name]).unwrap().at;
        let access = audit::patient_access(&mut c, ids.patient).unwrap();
        // The clerk's refused read is not an access.
        assert_eq!(access.len(), 2, "{access:?}");
        let doctor = access.iter().find(|a| a.user_id == ids.doctor).unwrap();
        assert_eq!(doctor.reads, 2);
        assert_eq!(doctor.first_at, at("doctor_read"));
        assert_eq!(doctor.last_at, at("doctor_read_again"));
        assert_eq!(doctor.profession.as_deref(), Some("physician"));
        assert_eq!(doctor.facility_id, Some(ids.f1.get()));
        let pharmacist = access.iter().find(|a| a.user_id == ids.pharmacist).unwrap();
        assert_eq!(pharmacist.reads, 1);
        assert_eq!(pharmacist.facility_id, Some(ids.f2.get()));
        assert_eq!(pharmacist.kind, "staff");
        // Debug never shows the name.
        assert!(!format!("{doctor:?}").contains("doctor\""));
        // Another patient: nobody.
        assert!(
            audit::patient_access(&mut c, PatientId(ids.patient.get() + 1000))
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn an_append_inside_a_transaction_commits_or_rolls_back_with_it() {
    for db in scratch_databases() {
        let store = db.open();
        let mut c = store.conn().unwrap();
        let ids = seed(&mut c);
        trail(&mut c, &ids);
        let before = audit::entries(&mut c, &AuditFilter::default())
            .unwrap()
            .len();
        let rolled_back: Result<(), StoreError> = transaction(&mut c, |c| {
            audit::append(c, &read(&ids, ids.doctor, ids.f1, "ok"))?;
            Err(StoreError::Conflict("the write failed"))
        });
        assert!(rolled_back.is_err());
        transaction(&mut c, |c| {
            audit::append(c, &read(&ids, ids.doctor, ids.f1, "ok")).map(drop)
        })
        .unwrap();
        let after = audit::entries(&mut c, &AuditFilter::default())
            .unwrap()
            .len();
        assert_eq!(after, before + 1);
        assert_eq!(audit::verify_chain(&mut c).unwrap(), Ok(after));
    }
}
