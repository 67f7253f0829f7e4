//! What a facility admin does for their own facility — policy, staff, roles,
//! deactivation — and nothing for anyone else's (SECURITY-NOTES 17, 21–24).

use crate::support::*;
use kizuna_domain::TimelineId;
use kizuna_domain::protocol::{ErrorCode, close_code};
use serde_json::{Value, json};
use std::time::Duration;

async fn code_of(
    fut: impl std::future::Future<Output = kizuna_client::Result<(u16, Value)>>,
) -> Option<ErrorCode> {
    fut.await.err().and_then(|e| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_facility_admin_sets_every_policy_rule_of_their_own_facility_only() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let t = Some(admin.access_token.as_str());
        let f1 = format!("/v1/admin/facilities/{}", w.facility);
        let (_, f) = w.client.get(&f1, t).await.unwrap();
        assert_eq!(f["patient_group_creators"], "staff");
        assert_eq!(f["staff_join_other_facilities"], "allowed");
        assert_eq!(f["outside_invitations"], "allowed");
        assert_eq!(f["family_timeline"], true);
        assert_eq!(f["require_client_cert"], false);
        assert_eq!(f["notification_hours"], Value::Null);

        let (_, f) = w
            .client
            .patch(
                &f1,
                t,
                &json!({"patient_group_creators": "admins",
                        "staff_join_other_facilities": "admin_approval",
                        "outside_invitations": "never",
                        "notification_hours": "08:30-18:00"}),
            )
            .await
            .unwrap();
        assert_eq!(f["patient_group_creators"], "admins");
        assert_eq!(f["staff_join_other_facilities"], "admin_approval");
        assert_eq!(f["outside_invitations"], "never");
        assert_eq!(f["notification_hours"], "08:30-18:00");
        assert_eq!(f["family_timeline"], true, "rules not given stay");
        // Staff of the facility see the notification window on /v1/me.
        let (_, me) = w
            .client
            .get("/v1/me", Some(&w.nurse.access_token))
            .await
            .unwrap();
        assert_eq!(me["notification_hours"], "08:30-18:00");
        assert!(me["notifications_allowed_now"].is_boolean());
        // null clears the window.
        let (_, f) = w
            .client
            .patch(&f1, t, &json!({"notification_hours": null}))
            .await
            .unwrap();
        assert_eq!(f["notification_hours"], Value::Null);

        // Bad values and fields that are not policy are refused, nothing changes.
        for bad in [
            json!({"notification_hours": "25:00-06:00"}),
            json!({"outside_invitations": "sometimes"}),
            json!({"name": "Renamed"}),
            json!({"ca_revoked_at": 1}),
        ] {
            assert_eq!(
                code_of(w.client.patch(&f1, t, &bad)).await,
                Some(ErrorCode::InvalidField),
                "{bad}"
            );
        }
        let (_, f) = w.client.get(&f1, t).await.unwrap();
        assert_eq!(f["outside_invitations"], "never");

        // Another facility: exactly like a facility that does not exist.
        let f2 = format!("/v1/admin/facilities/{}", w.pharmacy);
        for path in [f2.as_str(), "/v1/admin/facilities/999999"] {
            assert_eq!(
                code_of(w.client.get(path, t)).await,
                Some(ErrorCode::NotFound)
            );
            assert_eq!(
                code_of(w.client.patch(path, t, &json!({"family_timeline": false}))).await,
                Some(ErrorCode::NotFound)
            );
            assert_eq!(
                code_of(w.client.get(&format!("{path}/users"), t)).await,
                Some(ErrorCode::NotFound)
            );
        }
        // Staff of the facility who are not admins: forbidden (they know it exists).
        let nurse = Some(w.nurse.access_token.as_str());
        assert_eq!(
            code_of(
                w.client
                    .patch(&f1, nurse, &json!({"family_timeline": false}))
            )
            .await,
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            code_of(w.client.get(&f1, nurse)).await,
            Some(ErrorCode::Forbidden)
        );
        let (_, f) = w.client.get(&f1, t).await.unwrap();
        assert_eq!(f["family_timeline"], true, "refused changes change nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_only_may_register_patients_when_the_policy_says_so() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let t = Some(admin.access_token.as_str());
        let nurse = Some(w.nurse.access_token.as_str());
        let patient = json!({"facility_id": w.facility, "name": "Suzuki Hanako"});
        w.client
            .post("/v1/admin/patients", nurse, &patient)
            .await
            .expect("staff register patients by default");
        w.client
            .patch(
                &format!("/v1/admin/facilities/{}", w.facility),
                t,
                &json!({"patient_group_creators": "admins"}),
            )
            .await
            .unwrap();
        assert_eq!(
            code_of(w.client.post("/v1/admin/patients", nurse, &patient)).await,
            Some(ErrorCode::Forbidden)
        );
        let (status, _) = w
            .client
            .post("/v1/admin/patients", t, &patient)
            .await
            .unwrap();
        assert_eq!(status, 201);
        // Another facility's staff: as if the facility did not exist.
        let other = json!({"facility_id": w.facility, "name": "Suzuki Hanako"});
        assert_eq!(
            code_of(w.client.post(
                "/v1/admin/patients",
                Some(&w.pharmacist.access_token),
                &other
            ))
            .await,
            Some(ErrorCode::NotFound)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_family_timeline_off_hides_it_from_everyone_until_switched_on() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let t = Some(admin.access_token.as_str());
        let f1 = format!("/v1/admin/facilities/{}", w.facility);
        let mut family = w.ws(&w.family).await;
        family.subscribe(&[(w.family_tl, 0)]).await.unwrap();
        w.client
            .patch(&f1, t, &json!({"family_timeline": false}))
            .await
            .unwrap();
        // The family member's socket closes at once; they come back to nothing.
        assert_eq!(
            close_code(&mut family, Duration::from_secs(2)).await,
            close_code::GOING_AWAY
        );
        let mut family = w.ws(&w.family).await;
        let err = family.subscribe(&[(w.family_tl, 0)]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotFound));
        assert!(family.timelines().await.unwrap().is_empty());
        let mut nurse = w.ws(&w.nurse).await;
        let err = nurse.subscribe(&[(w.family_tl, 0)]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::NotFound));
        let kinds: Vec<TimelineId> = nurse
            .timelines()
            .await
            .unwrap()
            .iter()
            .map(|s| s.timeline_id)
            .collect();
        assert!(kinds.contains(&w.team) && !kinds.contains(&w.family_tl));
        nurse.subscribe(&[(w.team, 0)]).await.unwrap();
        // Family members cannot be added while it is off.
        let op = Some(w.operator.access_token.as_str());
        let (_, fam2) = w
            .client
            .post(
                "/v1/admin/users",
                op,
                &json!({"login": "family2", "display_name": "Yamada Jiro", "kind": "family", "password": PASSWORD}),
            )
            .await
            .unwrap();
        assert_eq!(
            code_of(w.client.post(
                &format!("/v1/admin/groups/{}/members", w.group.get()),
                Some(&w.nurse.access_token),
                &json!({"user_id": fam2["id"]}),
            ))
            .await,
            Some(ErrorCode::Forbidden)
        );
        // On again: the timeline and what was written there are back.
        w.client
            .patch(&f1, t, &json!({"family_timeline": true}))
            .await
            .unwrap();
        let mut family = w.ws(&w.family).await;
        family.subscribe(&[(w.family_tl, 0)]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_facility_admin_manages_roles_and_professions_of_their_own_staff() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let t = Some(admin.access_token.as_str());
        let (_, list) = w
            .client
            .get(&format!("/v1/admin/facilities/{}/users", w.facility), t)
            .await
            .unwrap();
        let logins: Vec<&str> = list["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["login"].as_str().unwrap())
            .collect();
        assert!(logins.contains(&"nurse") && logins.contains(&"doctor"));
        assert!(!logins.contains(&"pharmacist"), "{logins:?}");

        let doctor = format!("/v1/admin/users/{}", uid(&w.doctor).get());
        let (_, u) = w
            .client
            .patch(
                &doctor,
                t,
                &json!({"profession": "dental", "facility_role": "admin"}),
            )
            .await
            .unwrap();
        assert_eq!(u["profession"], "dental");
        assert_eq!(u["facility_role"], "admin");
        // The new admin's rights work at once (read from the database, not the token).
        let (status, _) = w
            .client
            .get(
                &format!("/v1/admin/facilities/{}", w.facility),
                Some(&w.doctor.access_token),
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
        // Taking the role away ends them at once, with the same token (case 17).
        w.client
            .patch(&doctor, t, &json!({"facility_role": "staff"}))
            .await
            .unwrap();
        assert_eq!(
            code_of(w.client.get(
                &format!("/v1/admin/facilities/{}", w.facility),
                Some(&w.doctor.access_token),
            ))
            .await,
            Some(ErrorCode::Forbidden)
        );

        // Mass assignment (case 23): kind, facility, status, login are not editable.
        for bad in [
            json!({"kind": "operator"}),
            json!({"facility_id": 2}),
            json!({"status": "active"}),
            json!({"login": "root"}),
            json!({"profession": "surgeon-general"}),
        ] {
            assert_eq!(
                code_of(w.client.patch(&doctor, t, &bad)).await,
                Some(ErrorCode::InvalidField),
                "{bad}"
            );
        }

        // The groups a staff member belongs to.
        let (_, groups) = w.client.get(&format!("{doctor}/groups"), t).await.unwrap();
        let g = &groups["groups"].as_array().unwrap()[0];
        assert_eq!(g["group_id"], w.group.get());
        assert_eq!(g["kind"], "patient");
        assert_eq!(g["name"], PATIENT_NAME);

        // Another facility's staff: like an id that does not exist (case 21).
        let pharmacist = format!("/v1/admin/users/{}", uid(&w.pharmacist).get());
        for path in [pharmacist.as_str(), "/v1/admin/users/999999"] {
            assert_eq!(
                code_of(w.client.patch(path, t, &json!({"profession": "nurse"}))).await,
                Some(ErrorCode::NotFound),
                "{path}"
            );
            assert_eq!(
                code_of(w.client.get(&format!("{path}/groups"), t)).await,
                Some(ErrorCode::NotFound),
                "{path}"
            );
            assert_eq!(
                code_of(w.client.post(&format!("{path}/disable"), t, &json!(null))).await,
                Some(ErrorCode::NotFound),
                "{path}"
            );
        }
        // The pharmacy's admin sees the pharmacist's groups, but not the name
        // of the patient another facility cares for.
        let pharmacy_admin = w.facility_admin("momiji-admin", w.pharmacy).await;
        let (_, groups) = w
            .client
            .get(
                &format!("{pharmacist}/groups"),
                Some(&pharmacy_admin.access_token),
            )
            .await
            .unwrap();
        let g = &groups["groups"].as_array().unwrap()[0];
        assert_eq!(g["group_id"], w.group.get());
        assert!(g.get("name").is_none(), "{g}");
        assert!(!groups.to_string().contains(PATIENT_NAME));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_a_staff_member_revokes_certificates_ends_sessions_and_memberships() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let t = Some(admin.access_token.as_str());
        let doctor = uid(&w.doctor).get();
        // Two devices.
        for label in ["phone", "tablet"] {
            let key = rcgen::KeyPair::generate().unwrap();
            let csr = rcgen::CertificateParams::new(Vec::<String>::new())
                .unwrap()
                .serialize_request(&key)
                .unwrap();
            w.client
                .post(
                    &format!("/v1/admin/users/{doctor}/certificates"),
                    t,
                    &json!({"device_label": label, "csr_pem": csr.pem().unwrap()}),
                )
                .await
                .expect("issue");
        }
        let mut ws = w.ws(&w.doctor).await;
        ws.subscribe(&[(w.team, 0)]).await.unwrap();
        ws.post(w.team, "d1", "Visited today, stable")
            .await
            .unwrap();

        let started = std::time::Instant::now();
        w.client
            .post(
                &format!("/v1/admin/users/{doctor}/disable"),
                t,
                &json!(null),
            )
            .await
            .unwrap();
        assert_eq!(
            close_code(&mut ws, Duration::from_secs(1)).await,
            close_code::ACCOUNT_DISABLED
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        // Every certificate is revoked.
        let (_, certs) = w
            .client
            .get(&format!("/v1/admin/users/{doctor}/certificates"), t)
            .await
            .unwrap();
        let certs = certs["certificates"].as_array().unwrap();
        assert_eq!(certs.len(), 2);
        assert!(certs.iter().all(|c| c["status"] == "revoked"), "{certs:?}");
        // Tokens stop working; the refresh token too; login is refused.
        assert_eq!(
            code_of(w.client.get("/v1/me", Some(&w.doctor.access_token))).await,
            Some(ErrorCode::Unauthorized)
        );
        assert!(w.client.refresh(&w.doctor.refresh_token).await.is_err());
        assert_eq!(
            w.client.login("doctor", PASSWORD).await.unwrap_err().code(),
            Some(ErrorCode::AccountDisabled)
        );
        // No longer a member; what they wrote stays, attributed.
        let g = w.patient_group().await;
        assert!(
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["user_id"] != doctor)
        );
        let mut nurse = w.ws(&w.nurse).await;
        let (hist, _) = nurse.history(w.team, None, None).await.unwrap();
        assert!(
            hist.iter()
                .any(|e| e.author.as_ref().map(|a| a.user_id.get()) == Some(doctor))
        );
        // Re-enabled: may log in again, but certificates and groups are given anew.
        w.client
            .post(&format!("/v1/admin/users/{doctor}/enable"), t, &json!(null))
            .await
            .unwrap();
        let again = w.client.login("doctor", PASSWORD).await.unwrap();
        let mut ws = w.ws(&again).await;
        assert_eq!(
            ws.subscribe(&[(w.team, 0)]).await.unwrap_err().code(),
            Some(ErrorCode::NotFound)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_other_facilities_answer_exactly_like_ids_that_do_not_exist() {
    for db in backends() {
        let w = World::new(&db).await;
        let pharmacy_admin = w.facility_admin("momiji-admin", w.pharmacy).await;
        let outsider = Some(w.outsider.access_token.as_str());
        let t = Some(pharmacy_admin.access_token.as_str());
        let real = w.group.get();
        // Case 21/22: the patient group of another facility, its timelines, a
        // post in it — each answers as a missing id does, to an admin of
        // another facility and to staff not in the group.
        for token in [t, outsider] {
            // The same answer, to the letter (but the request id).
            let answer = |r: kizuna_client::Result<(u16, Value)>| match r {
                Ok((status, _)) => format!("ok {status}"),
                Err(e) => e
                    .to_string()
                    .split("request_id")
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            };
            assert_eq!(
                answer(
                    w.client
                        .get(&format!("/v1/admin/groups/{real}"), token)
                        .await
                ),
                answer(w.client.get("/v1/admin/groups/999999", token).await)
            );
            let me = json!({"user_id": 1});
            assert_eq!(
                answer(
                    w.client
                        .post(&format!("/v1/admin/groups/{real}/members"), token, &me)
                        .await
                ),
                answer(
                    w.client
                        .post("/v1/admin/groups/999999/members", token, &me)
                        .await
                )
            );
            let who = if token == t {
                &pharmacy_admin
            } else {
                &w.outsider
            };
            let mut ws = w.ws(who).await;
            for tl in [w.team, w.family_tl, TimelineId(999_999)] {
                assert_eq!(
                    ws.subscribe(&[(tl, 0)]).await.unwrap_err().code(),
                    Some(ErrorCode::NotFound)
                );
                assert_eq!(
                    ws.read(tl, 1).await.unwrap_err().code(),
                    Some(ErrorCode::NotFound)
                );
                assert_eq!(
                    ws.ack(tl, 1).await.unwrap_err().code(),
                    Some(ErrorCode::NotFound)
                );
                assert_eq!(
                    ws.history(tl, None, None).await.unwrap_err().code(),
                    Some(ErrorCode::NotFound)
                );
            }
        }
        // Case 24: the family member and the team timeline: forbidden, and
        // nothing of it in any answer.
        let mut nurse = w.ws(&w.nurse).await;
        nurse
            .post(w.team, "t1", "Team-only note about the dressing")
            .await
            .unwrap();
        let mut family = w.ws(&w.family).await;
        assert_eq!(
            family.subscribe(&[(w.team, 0)]).await.unwrap_err().code(),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            family.history(w.team, None, None).await.unwrap_err().code(),
            Some(ErrorCode::Forbidden)
        );
        let err = family
            .post(w.team, "f1", "trying the team timeline")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));
        assert_eq!(
            code_of(w.client.get(
                &format!("/v1/admin/groups/{real}"),
                Some(&w.family.access_token)
            ))
            .await,
            Some(ErrorCode::Forbidden)
        );
        let (_, list) = w
            .client
            .get("/v1/timelines", Some(&w.family.access_token))
            .await
            .unwrap();
        assert!(!list.to_string().contains("\"team\""), "{list}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_patient_account_joins_the_family_timeline_and_approves_invitations() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let t = Some(admin.access_token.as_str());
        let g = w.patient_group().await;
        let patient = g["patient_id"].as_i64().unwrap();
        let (_, account) = w
            .client
            .post(
                "/v1/admin/users",
                t,
                &json!({"login": "tanaka.patient", "display_name": "Tanaka", "kind": "patient",
                        "facility_id": w.facility, "password": PASSWORD}),
            )
            .await
            .unwrap();
        let link = format!("/v1/admin/patients/{patient}/account");
        let body = json!({"user_id": account["id"]});
        // Only the patient's facility's admins (others: as if no such patient).
        let pharmacy_admin = w.facility_admin("momiji-admin", w.pharmacy).await;
        for (token, code) in [
            (
                Some(pharmacy_admin.access_token.as_str()),
                ErrorCode::NotFound,
            ),
            (Some(w.nurse.access_token.as_str()), ErrorCode::Forbidden),
        ] {
            assert_eq!(
                code_of(w.client.post(&link, token, &body)).await,
                Some(code)
            );
        }
        assert_eq!(
            code_of(w.client.post(
                "/v1/admin/patients/999999/account",
                Some(&pharmacy_admin.access_token),
                &body
            ))
            .await,
            Some(ErrorCode::NotFound)
        );
        // A staff account cannot be linked as the patient.
        assert_eq!(
            code_of(
                w.client
                    .post(&link, t, &json!({"user_id": uid(&w.doctor).get()}))
            )
            .await,
            Some(ErrorCode::InvalidField)
        );
        let (status, member) = w.client.post(&link, t, &body).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(member["visibility"], "family_only");
        assert_eq!(
            code_of(w.client.post(&link, t, &body)).await,
            Some(ErrorCode::Conflict)
        );
        // The patient reads the family timeline, never the team timeline.
        let me = w.client.login("tanaka.patient", PASSWORD).await.unwrap();
        let mut ws = w.ws(&me).await;
        ws.subscribe(&[(w.family_tl, 0)]).await.unwrap();
        assert_eq!(
            ws.subscribe(&[(w.team, 0)]).await.unwrap_err().code(),
            Some(ErrorCode::Forbidden)
        );
        // From now on an invitation into the group waits for the patient.
        let (_, inv) = w
            .client
            .post(
                &format!("/v1/groups/{}/invitations", w.group.get()),
                Some(&w.nurse.access_token),
                &json!({"user_id": uid(&w.outsider).get()}),
            )
            .await
            .unwrap();
        let roles: Vec<&str> = inv["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["patient"]);
        let (_, mine) = w
            .client
            .get("/v1/me/invitations", Some(&me.access_token))
            .await
            .unwrap();
        assert_eq!(mine["approvals"][0]["id"], inv["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_pending_brings_a_deactivated_account_back_and_tightened_policies_hold() {
    for db in backends() {
        let w = World::new(&db).await;
        let sakura = w.facility_admin("sakura-admin", w.facility).await;
        let f1 = format!("/v1/admin/facilities/{}", w.facility);
        w.client
            .patch(
                &f1,
                Some(&sakura.access_token),
                &json!({"outside_invitations": "admin_approval"}),
            )
            .await
            .unwrap();
        let pharmacy_id = w.pharmacy;
        let momiji = w.facility_admin("momiji-admin", pharmacy_id).await;
        let invite = |who: i64| {
            let w = &w;
            async move {
                w.client
                    .post(
                        &format!("/v1/groups/{}/invitations", w.group.get()),
                        Some(&w.nurse.access_token),
                        &json!({"user_id": who}),
                    )
                    .await
                    .unwrap()
                    .1
            }
        };
        let approve = |id: i64| {
            let (w, t) = (&w, sakura.access_token.clone());
            async move {
                w.client
                    .post(
                        &format!("/v1/invitations/{id}/approvals/inviting_facility/approve"),
                        Some(&t),
                        &json!(null),
                    )
                    .await
                    .unwrap()
                    .1
            }
        };
        // 1. The outsider accepts, then leaves their pharmacy (deactivated):
        //    the invitation is cancelled and approving it later changes nothing.
        let outsider = uid(&w.outsider).get();
        let inv = invite(outsider).await;
        let id = inv["id"].as_i64().unwrap();
        w.client
            .post(
                &format!("/v1/invitations/{id}/accept"),
                Some(&w.outsider.access_token),
                &json!(null),
            )
            .await
            .unwrap();
        w.client
            .post(
                &format!("/v1/admin/users/{outsider}/disable"),
                Some(&momiji.access_token),
                &json!(null),
            )
            .await
            .unwrap();
        let (_, list) = w
            .client
            .get(
                &format!("/v1/groups/{}/invitations", w.group.get()),
                Some(&w.nurse.access_token),
            )
            .await
            .unwrap();
        let listed = list["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone();
        assert_eq!(listed["status"], "cancelled");
        assert_eq!(
            code_of(w.client.post(
                &format!("/v1/invitations/{id}/approvals/inviting_facility/approve"),
                Some(&sakura.access_token),
                &json!(null),
            ))
            .await,
            Some(ErrorCode::Conflict)
        );

        // 2. A second pharmacy employee is invited and accepts; then the
        //    pharmacy forbids joining other facilities' groups: the last
        //    approval cancels the invitation instead of letting them in.
        let (_, second) = w
            .client
            .post(
                "/v1/admin/users",
                Some(&momiji.access_token),
                &json!({"login": "helper2", "display_name": "helper2", "kind": "staff",
                        "facility_id": pharmacy_id, "profession": "care_worker", "password": PASSWORD}),
            )
            .await
            .unwrap();
        let second_id = second["id"].as_i64().unwrap();
        let second_tokens = w.client.login("helper2", PASSWORD).await.unwrap();
        let inv = invite(second_id).await;
        let id = inv["id"].as_i64().unwrap();
        w.client
            .post(
                &format!("/v1/invitations/{id}/accept"),
                Some(&second_tokens.access_token),
                &json!(null),
            )
            .await
            .unwrap();
        w.client
            .patch(
                &format!("/v1/admin/facilities/{pharmacy_id}"),
                Some(&momiji.access_token),
                &json!({"staff_join_other_facilities": "never"}),
            )
            .await
            .unwrap();
        let done = approve(id).await;
        assert_eq!(done["status"], "cancelled", "{done}");
        let g = w.patient_group().await;
        assert!(
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["user_id"] != second_id && m["user_id"] != outsider)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_removes_the_patient_from_their_own_group_but_the_patient() {
    for db in backends() {
        let w = World::new(&db).await;
        let admin = w.facility_admin("sakura-admin", w.facility).await;
        let g = w.patient_group().await;
        let (_, account) = w
            .client
            .post(
                "/v1/admin/users",
                Some(&admin.access_token),
                &json!({"login": "tanaka.patient", "display_name": "Tanaka", "kind": "patient",
                        "facility_id": w.facility, "password": PASSWORD}),
            )
            .await
            .unwrap();
        let patient = account["id"].as_i64().unwrap();
        w.client
            .post(
                &format!("/v1/admin/patients/{}/account", g["patient_id"]),
                Some(&admin.access_token),
                &json!({"user_id": patient}),
            )
            .await
            .unwrap();
        let path = format!("/v1/admin/groups/{}/members/{patient}", w.group.get());
        // The group's owner (the nurse) may remove others, not the patient.
        assert_eq!(
            code_of(w.client.delete(&path, Some(&w.nurse.access_token))).await,
            Some(ErrorCode::Forbidden)
        );
        // Nor can the patient's account be added anywhere directly.
        assert_eq!(
            code_of(w.client.post(
                &format!("/v1/admin/groups/{}/members", w.group.get()),
                Some(&w.nurse.access_token),
                &json!({"user_id": patient}),
            ))
            .await,
            Some(ErrorCode::NotFound)
        );
        // The patient leaves by themselves.
        let me = w.client.login("tanaka.patient", PASSWORD).await.unwrap();
        let (status, _) = w
            .client
            .delete(&path, Some(&me.access_token))
            .await
            .unwrap();
        assert_eq!(status, 204);
    }
}
