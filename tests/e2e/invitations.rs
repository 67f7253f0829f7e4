//! Invitations into patient groups, end to end: policies, approvals by both
//! facilities' admins and the patient, codes, resend and cancel, and who may
//! see what.

use crate::support::*;
use kizuna_client::{ClientError, Tokens};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::{PatientId, TimelineId, UserId};
use serde_json::{Value, json};

/// The world plus an admin for each facility.
struct Admins {
    f2: i64,
    admin1: Tokens,
    admin2: Tokens,
}

async fn admins(w: &World) -> Admins {
    Admins {
        f2: w.pharmacy,
        admin1: w.facility_admin("admin1", w.facility).await,
        admin2: w.facility_admin("admin2", w.pharmacy).await,
    }
}

/// Changes one facility's policy as the operator.
async fn set_policy(w: &World, facility: i64, body: Value) {
    let (status, _) = w
        .client
        .patch(
            &format!("/v1/admin/facilities/{facility}"),
            Some(&w.operator.access_token),
            &body,
        )
        .await
        .unwrap_or_else(|e| panic!("policy change {body}: {e}"));
    assert_eq!(status, 200);
}

fn invitations_path(w: &World) -> String {
    format!("/v1/groups/{}/invitations", w.group.get())
}

async fn invite(w: &World, who: &Tokens, body: Value) -> Result<Value, ClientError> {
    w.client
        .post(&invitations_path(w), Some(&who.access_token), &body)
        .await
        .map(|(status, v)| {
            assert_eq!(status, 201);
            v
        })
}

/// `POST /v1/invitations/{id}/{verb}` (`accept`, `approvals/patient/approve`…).
async fn act(w: &World, who: &Tokens, id: i64, verb: &str) -> Result<Value, ClientError> {
    w.client
        .post(
            &format!("/v1/invitations/{id}/{verb}"),
            Some(&who.access_token),
            &json!({}),
        )
        .await
        .map(|(_, v)| v)
}

fn code(r: Result<Value, ClientError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected a refusal, got {v}"),
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("not a server refusal: {e}")),
    }
}

/// The group's invitations as a team member sees them.
async fn listed(w: &World, id: i64) -> Value {
    let (_, v) = w
        .client
        .get(&invitations_path(w), Some(&w.nurse.access_token))
        .await
        .unwrap();
    v["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("invitation {id} not listed in {v}"))
}

fn approval_state(inv: &Value, role: &str) -> String {
    inv["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == role)
        .unwrap_or_else(|| panic!("no {role} approval in {inv}"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Subscribing to a timeline: `None` when allowed, else the refusal's code.
async fn subscribe(w: &World, who: &Tokens, timeline: TimelineId) -> Option<ErrorCode> {
    let mut ws = w.ws(who).await;
    match ws.subscribe(&[(timeline, 0)]).await {
        Ok(_) => None,
        Err(e) => Some(e.code().unwrap_or_else(|| panic!("subscribe: {e}"))),
    }
}

async fn is_member(w: &World, user: UserId) -> bool {
    let g = w.patient_group().await;
    g["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["user_id"] == user.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_invited_under_open_policies_accepts_and_joins_the_team() {
    for db in backends() {
        let w = World::new(&db).await;
        let outsider = uid(&w.outsider);
        assert_eq!(
            subscribe(&w, &w.outsider, w.team).await,
            Some(ErrorCode::NotFound)
        );
        // Mass assignment: a field the body does not have is refused.
        assert_eq!(
            code(
                invite(
                    &w,
                    &w.nurse,
                    json!({"user_id": outsider, "scope": "team", "status": "joined"})
                )
                .await
            ),
            ErrorCode::InvalidField
        );
        let inv = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        assert_eq!(inv["status"], "pending");
        assert_eq!(inv["approvals"], json!([]));
        assert_eq!(inv["invitee_user_id"], outsider.get());
        assert_eq!(inv["invited_by"], uid(&w.nurse).get());
        assert_eq!(inv["send_count"], 1);
        assert!(inv.get("code").is_none());
        // One pending invitation per person and group.
        assert_eq!(
            code(invite(&w, &w.doctor, json!({"user_id": outsider, "scope": "team"})).await),
            ErrorCode::Conflict
        );
        let (_, mine) = w
            .client
            .get("/v1/me/invitations", Some(&w.outsider.access_token))
            .await
            .unwrap();
        assert_eq!(mine["invitations"][0]["id"], id);
        assert!(!is_member(&w, outsider).await);

        let accepted = act(&w, &w.outsider, id, "accept").await.unwrap();
        assert_eq!(accepted["status"], "joined");
        assert!(is_member(&w, outsider).await);
        assert_eq!(subscribe(&w, &w.outsider, w.team).await, None);
        assert_eq!(listed(&w, id).await["status"], "joined");
        // Accepting twice, or inviting a member, conflicts.
        assert_eq!(
            code(act(&w, &w.outsider, id, "accept").await),
            ErrorCode::Conflict
        );
        assert_eq!(
            code(invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"})).await),
            ErrorCode::Conflict
        );
        assert_eq!(
            code(invite(&w, &w.nurse, json!({"user_id": uid(&w.doctor)})).await),
            ErrorCode::Conflict
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_approval_policies_hold_the_invitation_until_both_admins_approve() {
    for db in backends() {
        let w = World::new(&db).await;
        let a = admins(&w).await;
        set_policy(
            &w,
            w.facility,
            json!({"outside_invitations": "admin_approval"}),
        )
        .await;
        set_policy(
            &w,
            a.f2,
            json!({"staff_join_other_facilities": "admin_approval"}),
        )
        .await;
        let outsider = uid(&w.outsider);
        let inv = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        assert_eq!(approval_state(&inv, "inviting_facility"), "pending");
        assert_eq!(approval_state(&inv, "invitee_facility"), "pending");
        assert_eq!(inv["approvals"].as_array().unwrap().len(), 2);

        // Each admin sees what waits for their facility.
        for (admin, facility) in [(&a.admin1, w.facility), (&a.admin2, a.f2)] {
            let (_, waiting) = w
                .client
                .get(
                    &format!("/v1/admin/facilities/{facility}/approvals"),
                    Some(&admin.access_token),
                )
                .await
                .unwrap();
            assert_eq!(waiting["invitations"][0]["id"], id, "{waiting}");
        }

        assert_eq!(
            act(&w, &w.outsider, id, "accept").await.unwrap()["status"],
            "pending"
        );
        assert!(!is_member(&w, outsider).await);
        // The group's own admin cannot decide for the other facility.
        assert_eq!(
            code(act(&w, &a.admin1, id, "approvals/invitee_facility/approve").await),
            ErrorCode::Forbidden
        );
        // A team member who is no admin cannot approve either.
        assert_eq!(
            code(act(&w, &w.doctor, id, "approvals/inviting_facility/approve").await),
            ErrorCode::Forbidden
        );
        let after_one = act(&w, &a.admin1, id, "approvals/inviting_facility/approve")
            .await
            .unwrap();
        assert_eq!(after_one["status"], "pending");
        let seen = listed(&w, id).await;
        assert_eq!(approval_state(&seen, "inviting_facility"), "approved");
        assert_eq!(approval_state(&seen, "invitee_facility"), "pending");
        assert!(!is_member(&w, outsider).await);
        assert_eq!(
            code(act(&w, &a.admin1, id, "approvals/inviting_facility/approve").await),
            ErrorCode::Conflict
        );

        let done = act(&w, &a.admin2, id, "approvals/invitee_facility/approve")
            .await
            .unwrap();
        assert_eq!(done["status"], "joined");
        assert_eq!(approval_state(&done, "invitee_facility"), "approved");
        assert_eq!(done["approvals"][1]["decided_by"], uid(&a.admin2).get());
        assert!(is_member(&w, outsider).await);
        assert_eq!(subscribe(&w, &w.outsider, w.team).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_approval_denies_and_a_never_policy_forbids() {
    for db in backends() {
        let w = World::new(&db).await;
        let a = admins(&w).await;
        set_policy(
            &w,
            a.f2,
            json!({"staff_join_other_facilities": "admin_approval"}),
        )
        .await;
        let outsider = uid(&w.outsider);
        let inv = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        // Only the invitee's facility approves here.
        assert_eq!(inv["approvals"].as_array().unwrap().len(), 1);
        act(&w, &w.outsider, id, "accept").await.unwrap();
        let refused = act(&w, &a.admin2, id, "approvals/invitee_facility/refuse")
            .await
            .unwrap();
        assert_eq!(refused["status"], "denied");
        assert_eq!(approval_state(&refused, "invitee_facility"), "refused");
        assert!(!is_member(&w, outsider).await);
        assert_eq!(
            subscribe(&w, &w.outsider, w.team).await,
            Some(ErrorCode::NotFound)
        );
        assert_eq!(listed(&w, id).await["status"], "denied");

        // `never` on either side forbids the invitation outright.
        set_policy(&w, a.f2, json!({"staff_join_other_facilities": "never"})).await;
        assert_eq!(
            code(invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"})).await),
            ErrorCode::Forbidden
        );
        set_policy(&w, a.f2, json!({"staff_join_other_facilities": "allowed"})).await;
        set_policy(&w, w.facility, json!({"outside_invitations": "never"})).await;
        assert_eq!(
            code(invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"})).await),
            ErrorCode::Forbidden
        );
        // Staff of the owning facility are not outsiders.
        w.client
            .post(
                "/v1/admin/users",
                Some(&w.operator.access_token),
                &json!({"login": "colleague", "display_name": "colleague", "kind": "staff",
                        "facility_id": w.facility, "password": PASSWORD}),
            )
            .await
            .unwrap();
        let colleague = w.client.login("colleague", PASSWORD).await.unwrap();
        let inv = invite(
            &w,
            &w.nurse,
            json!({"user_id": uid(&colleague), "scope": "team"}),
        )
        .await
        .unwrap();
        assert_eq!(inv["approvals"], json!([]));
        // A family account fits only the family timeline.
        w.client
            .post(
                "/v1/admin/users",
                Some(&w.operator.access_token),
                &json!({"login": "cousin", "display_name": "cousin", "kind": "family",
                        "password": PASSWORD}),
            )
            .await
            .unwrap();
        let cousin = w.client.login("cousin", PASSWORD).await.unwrap();
        assert_eq!(
            code(
                invite(
                    &w,
                    &w.nurse,
                    json!({"user_id": uid(&cousin), "scope": "team"})
                )
                .await
            ),
            ErrorCode::Forbidden
        );
        let fam = invite(&w, &w.nurse, json!({"user_id": uid(&cousin)}))
            .await
            .unwrap();
        assert_eq!(fam["scope"], "family");
        assert_eq!(
            act(&w, &cousin, fam["id"].as_i64().unwrap(), "accept")
                .await
                .unwrap()["status"],
            "joined"
        );
        assert_eq!(subscribe(&w, &cousin, w.family_tl).await, None);
        assert_eq!(
            subscribe(&w, &cousin, w.team).await,
            Some(ErrorCode::Forbidden)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_approves_once_they_have_joined_the_family_timeline() {
    for db in backends() {
        let w = World::new(&db).await;
        let (_, patient) = w
            .client
            .post(
                "/v1/admin/users",
                Some(&w.operator.access_token),
                &json!({"login": "patient", "display_name": "patient", "kind": "patient",
                        "facility_id": w.facility, "password": PASSWORD}),
            )
            .await
            .unwrap();
        let patient_user = UserId(patient["id"].as_i64().unwrap());
        // The operator links the patient's own account to their record: it
        // joins the family timeline of their group.
        let g = w.patient_group().await;
        let patient_id = PatientId(g["patient_id"].as_i64().unwrap());
        w.client
            .post(
                &format!("/v1/admin/patients/{}/account", patient_id.get()),
                Some(&w.operator.access_token),
                &json!({"user_id": patient_user}),
            )
            .await
            .unwrap();
        let patient = w.client.login("patient", PASSWORD).await.unwrap();

        let outsider = uid(&w.outsider);
        let inv = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        assert_eq!(inv["approvals"].as_array().unwrap().len(), 1);
        assert_eq!(approval_state(&inv, "patient"), "pending");
        assert_eq!(inv["approvals"][0]["facility_id"], Value::Null);
        assert_eq!(
            act(&w, &w.outsider, id, "accept").await.unwrap()["status"],
            "pending"
        );
        assert!(!is_member(&w, outsider).await);

        let (_, waiting) = w
            .client
            .get("/v1/me/invitations", Some(&patient.access_token))
            .await
            .unwrap();
        assert_eq!(waiting["approvals"][0]["id"], id, "{waiting}");
        // Nobody else approves as the patient.
        assert_eq!(
            code(act(&w, &w.nurse, id, "approvals/patient/approve").await),
            ErrorCode::Forbidden
        );
        let done = act(&w, &patient, id, "approvals/patient/approve")
            .await
            .unwrap();
        assert_eq!(done["status"], "joined");
        assert_eq!(done["approvals"][0]["decided_by"], patient_user.get());
        assert!(is_member(&w, outsider).await);
        assert_eq!(subscribe(&w, &w.outsider, w.team).await, None);
        let (_, after) = w
            .client
            .get("/v1/me/invitations", Some(&patient.access_token))
            .await
            .unwrap();
        assert_eq!(after["approvals"], json!([]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_code_creates_a_family_account_that_sees_only_the_family_timeline() {
    for db in backends() {
        let w = World::new(&db).await;
        let inv = invite(
            &w,
            &w.nurse,
            json!({"code_for": "family", "scope": "family"}),
        )
        .await
        .unwrap();
        let id = inv["id"].as_i64().unwrap();
        let the_code = inv["code"].as_str().unwrap().to_owned();
        assert_eq!(the_code.len(), 32, "24 bytes in base64url");
        assert_eq!(inv["invitee_user_id"], Value::Null);
        assert_eq!(inv["invitee_kind"], "family");
        // Shown once: the list never carries it.
        assert!(listed(&w, id).await.get("code").is_none());

        let redeem = |body: Value| {
            let client = w.client.clone();
            async move {
                client
                    .post("/v1/invitations/redeem", None, &body)
                    .await
                    .map(|(status, v)| {
                        assert_eq!(status, 201);
                        v
                    })
            }
        };
        let account = |login: &str, c: &str| json!({"code": c, "login": login, "display_name": "Yamada Jiro", "password": PASSWORD});
        assert_eq!(
            code(redeem(account("wrong", "not-the-code-at-all")).await),
            ErrorCode::NotFound
        );
        let mut extra = account("family2", &the_code);
        extra["kind"] = json!("staff");
        assert_eq!(code(redeem(extra).await), ErrorCode::InvalidField);

        let r = redeem(account("family2", &the_code)).await.unwrap();
        assert_eq!(r["invitation"]["status"], "joined");
        let family2 = w.client.login("family2", PASSWORD).await.unwrap();
        assert_eq!(r["user_id"], uid(&family2).get());
        assert_eq!(r["invitation"]["invitee_user_id"], uid(&family2).get());
        let (_, me) = w
            .client
            .get("/v1/me", Some(&family2.access_token))
            .await
            .unwrap();
        assert_eq!(me["kind"], "family");
        assert_eq!(subscribe(&w, &family2, w.family_tl).await, None);
        assert_eq!(
            subscribe(&w, &family2, w.team).await,
            Some(ErrorCode::Forbidden)
        );
        // Single use.
        assert_eq!(
            code(redeem(account("family3", &the_code)).await),
            ErrorCode::Conflict
        );
        assert_eq!(
            w.client
                .login("family3", PASSWORD)
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::InvalidCredentials)
        );

        // The audit trail records the redemption by ids; neither the code
        // nor the patient's name reaches the audit trail or the log.
        let out = w.server.cli(&["admin", "audit", "--limit", "1000"], &[]);
        assert!(out.status.success());
        let trail = String::from_utf8_lossy(&out.stdout);
        assert!(trail.contains("\"invitation.redeem\""), "{trail}");
        assert!(trail.contains("\"invitation.join\""));
        assert!(!trail.contains(&the_code));
        assert!(!w.server.log().contains(&the_code));
        assert!(!w.server.log().contains(PATIENT_NAME));

        // A staff code is redeemed by a professional, logged in.
        let staff = invite(&w, &w.nurse, json!({"code_for": "staff"}))
            .await
            .unwrap();
        assert_eq!(staff["scope"], "team");
        let staff_code = staff["code"].as_str().unwrap().to_owned();
        assert_eq!(
            code(redeem(account("someone", &staff_code)).await),
            ErrorCode::Unauthorized
        );
        assert_eq!(
            code(
                w.client
                    .post(
                        "/v1/invitations/redeem",
                        Some(&family2.access_token),
                        &json!({"code": staff_code}),
                    )
                    .await
                    .map(|(_, v)| v)
            ),
            ErrorCode::Forbidden
        );
        let (status, r) = w
            .client
            .post(
                "/v1/invitations/redeem",
                Some(&w.outsider.access_token),
                &json!({"code": staff_code}),
            )
            .await
            .unwrap();
        assert_eq!(status, 201);
        assert_eq!(r["invitation"]["status"], "joined");
        assert_eq!(r["invitation"]["invitee_user_id"], uid(&w.outsider).get());
        assert_eq!(subscribe(&w, &w.outsider, w.team).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_renews_and_a_cancelled_invitation_cannot_be_accepted() {
    for db in backends() {
        let w = World::new(&db).await;
        let outsider = uid(&w.outsider);
        let inv = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let again = act(&w, &w.nurse, id, "resend").await.unwrap();
        assert_eq!(again["send_count"], 2);
        assert!(again["sent_at"].as_i64() > inv["sent_at"].as_i64());
        assert!(again["expires_at"].as_i64() > inv["expires_at"].as_i64());
        assert_eq!(
            again["expires_at"].as_i64().unwrap() - again["sent_at"].as_i64().unwrap(),
            14 * 24 * 3600 * 1000
        );
        // Another team member who neither sent it nor moderates may not.
        assert_eq!(
            code(act(&w, &w.doctor, id, "cancel").await),
            ErrorCode::Forbidden
        );
        // The invitee sees it but does not manage it.
        assert_eq!(
            code(act(&w, &w.outsider, id, "resend").await),
            ErrorCode::Forbidden
        );
        let cancelled = act(&w, &w.nurse, id, "cancel").await.unwrap();
        assert_eq!(cancelled["status"], "cancelled");
        assert!(cancelled["closed_at"].as_i64().is_some());
        assert_eq!(
            code(act(&w, &w.outsider, id, "accept").await),
            ErrorCode::Conflict
        );
        assert_eq!(
            code(act(&w, &w.nurse, id, "cancel").await),
            ErrorCode::Conflict
        );
        assert!(!is_member(&w, outsider).await);
        let (_, mine) = w
            .client
            .get("/v1/me/invitations", Some(&w.outsider.access_token))
            .await
            .unwrap();
        assert_eq!(mine["invitations"], json!([]));

        // Fourteen days after the last send it expires; re-sending reopens it.
        let inv = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        {
            // Time travel: record the last send three weeks ago.
            let day = 24 * 3600 * 1000;
            let now = kizuna_store::now_ms();
            let store = db.open();
            let mut conn = store.conn().unwrap();
            kizuna_store::invitations::resend(&mut conn, id, now - 21 * day, now - 7 * day, None)
                .unwrap();
        }
        assert_eq!(listed(&w, id).await["status"], "expired");
        assert_eq!(listed(&w, id).await["closed_at"], Value::Null);
        let (_, mine) = w
            .client
            .get("/v1/me/invitations", Some(&w.outsider.access_token))
            .await
            .unwrap();
        assert_eq!(mine["invitations"], json!([]));
        assert_eq!(
            code(act(&w, &w.outsider, id, "accept").await),
            ErrorCode::Conflict
        );
        // The expiry is now recorded.
        assert!(listed(&w, id).await["closed_at"].as_i64().is_some());
        let reopened = act(&w, &w.nurse, id, "resend").await.unwrap();
        assert_eq!(reopened["status"], "pending");
        assert_eq!(reopened["send_count"], 3);
        assert_eq!(reopened["closed_at"], Value::Null);
        let declined = act(&w, &w.outsider, id, "decline").await.unwrap();
        assert_eq!(declined["status"], "declined");
        assert!(!is_member(&w, outsider).await);

        // Re-sending a code invitation replaces the code.
        let c = invite(&w, &w.doctor, json!({"code_for": "staff"}))
            .await
            .unwrap();
        let cid = c["id"].as_i64().unwrap();
        let renewed = act(&w, &w.doctor, cid, "resend").await.unwrap();
        let new_code = renewed["code"].as_str().unwrap();
        assert_ne!(new_code, c["code"].as_str().unwrap());
        let old = w
            .client
            .post(
                "/v1/invitations/redeem",
                Some(&w.outsider.access_token),
                &json!({"code": c["code"]}),
            )
            .await
            .map(|(_, v)| v);
        assert_eq!(code(old), ErrorCode::NotFound);
        // The new one works.
        w.client
            .post(
                "/v1/invitations/redeem",
                Some(&w.outsider.access_token),
                &json!({"code": new_code}),
            )
            .await
            .unwrap();
        assert!(is_member(&w, outsider).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_stay_hidden_from_those_who_may_not_see_them() {
    for db in backends() {
        let w = World::new(&db).await;
        let a = admins(&w).await;
        let outsider = uid(&w.outsider);
        let inv = invite(&w, &w.nurse, json!({"code_for": "staff"}))
            .await
            .unwrap();
        let id = inv["id"].as_i64().unwrap();
        let path = invitations_path(&w);
        let get = |who: &Tokens, p: String| {
            let client = w.client.clone();
            let token = who.access_token.clone();
            async move { client.get(&p, Some(&token)).await.map(|(_, v)| v) }
        };
        // Another facility's admin: the group and its invitations do not exist.
        assert_eq!(
            code(get(&a.admin2, path.clone()).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(
                get(
                    &a.admin2,
                    format!("/v1/admin/facilities/{}/approvals", w.facility)
                )
                .await
            ),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(act(&w, &a.admin2, id, "cancel").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(act(&w, &a.admin2, id, "accept").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(act(&w, &a.admin2, id, "approvals/invitee_facility/approve").await),
            ErrorCode::NotFound
        );
        // Its own facility's approvals are there (none waiting).
        assert_eq!(
            get(
                &a.admin1,
                format!("/v1/admin/facilities/{}/approvals", w.facility)
            )
            .await
            .unwrap()["invitations"],
            json!([])
        );
        // A staff member who is not in the group: the same 404 as for no group.
        assert_eq!(
            code(get(&w.outsider, path.clone()).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(get(&w.outsider, "/v1/groups/999999/invitations".into()).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(invite(&w, &w.outsider, json!({"user_id": uid(&w.doctor)})).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(act(&w, &w.outsider, id, "cancel").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(act(&w, &w.outsider, 999_999, "accept").await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(
                w.client
                    .post(
                        "/v1/invitations/abc/accept",
                        Some(&w.outsider.access_token),
                        &json!({})
                    )
                    .await
                    .map(|(_, v)| v)
            ),
            ErrorCode::NotFound
        );
        // A family member of the group sees it but may not invite or list.
        assert_eq!(
            code(invite(&w, &w.family, json!({"user_id": outsider, "scope": "team"})).await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(get(&w.family, path.clone()).await),
            ErrorCode::Forbidden
        );
        // A team member sees the invitation but cannot accept someone else's.
        assert_eq!(
            code(act(&w, &w.pharmacist, id, "accept").await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(act(&w, &w.pharmacist, id, "approvals/patient/approve").await),
            ErrorCode::NotFound
        );
        // And no token at all.
        assert_eq!(
            w.client.get(&path, None).await.unwrap_err().code(),
            Some(ErrorCode::Unauthorized)
        );
    }
}

/// Records an invitation's last send three weeks ago: past its expiry, but
/// still `pending` until someone acts on it.
fn time_travel(db: &kizuna_store::testing::ScratchDb, id: i64) {
    let day = 24 * 3600 * 1000;
    let now = kizuna_store::now_ms();
    let store = db.open();
    let mut conn = store.conn().unwrap();
    kizuna_store::invitations::resend(&mut conn, id, now - 21 * day, now - 7 * day, None).unwrap();
}

async fn redeem_as(w: &World, who: &Tokens, code: &Value) -> Result<Value, ClientError> {
    w.client
        .post(
            "/v1/invitations/redeem",
            Some(&who.access_token),
            &json!({ "code": code }),
        )
        .await
        .map(|(_, v)| v)
}

/// The operator's view of one action's refusals by one actor.
async fn refusals(w: &World, action: &str, actor: UserId) -> usize {
    let (_, page) = w
        .client
        .get(
            &format!("/v1/admin/audit?action={action}"),
            Some(&w.operator.access_token),
        )
        .await
        .unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_user_id"] == actor.get() && e["outcome"] == "denied")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_checks_again_and_a_person_has_one_pending_invitation_per_group() {
    for db in backends() {
        let w = World::new(&db).await;
        let a = admins(&w).await;
        let outsider = uid(&w.outsider);
        // An invitation whose time ran out, still marked pending.
        let stale = invite(&w, &w.nurse, json!({"user_id": outsider, "scope": "team"}))
            .await
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        time_travel(&db, stale);
        // A code redeemed by the same person: the stale one is recorded as
        // expired and the code's invitation becomes the pending one (it
        // waits for f2's admins).
        set_policy(
            &w,
            a.f2,
            json!({"staff_join_other_facilities": "admin_approval"}),
        )
        .await;
        let code_inv = invite(&w, &w.doctor, json!({"code_for": "staff"}))
            .await
            .unwrap();
        let bound = redeem_as(&w, &w.outsider, &code_inv["code"]).await.unwrap();
        let pending = bound["invitation"]["id"].as_i64().unwrap();
        assert_eq!(bound["invitation"]["status"], "pending");
        let old = listed(&w, stale).await;
        assert_eq!(old["status"], "expired");
        assert!(old["closed_at"].as_i64().is_some(), "{old}");
        // Reopening the stale one would make two.
        let err = act(&w, &w.nurse, stale, "resend").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Conflict));
        assert!(err.to_string().contains("already invited"), "{err}");
        assert_eq!(listed(&w, stale).await["status"], "expired");

        // The invitee's facility now says never: resending is refused (and
        // audited), and so is redeeming another code.
        set_policy(&w, a.f2, json!({"staff_join_other_facilities": "never"})).await;
        assert_eq!(
            code(act(&w, &w.doctor, pending, "resend").await),
            ErrorCode::Forbidden
        );
        assert_eq!(listed(&w, pending).await["send_count"], 1);
        assert_eq!(refusals(&w, "invitation.resend", uid(&w.doctor)).await, 1);
        let other_code = invite(&w, &w.nurse, json!({"code_for": "staff"}))
            .await
            .unwrap();
        assert_eq!(
            code(redeem_as(&w, &w.pharmacist, &other_code["code"]).await),
            ErrorCode::Forbidden
        );
        assert_eq!(
            refusals(&w, "invitation.redeem", uid(&w.pharmacist)).await,
            1
        );

        // A resend waits for what the policies ask today: f1 now wants its
        // admins' approval of outside staff too.
        set_policy(
            &w,
            a.f2,
            json!({"staff_join_other_facilities": "admin_approval"}),
        )
        .await;
        set_policy(
            &w,
            w.facility,
            json!({"outside_invitations": "admin_approval"}),
        )
        .await;
        let renewed = act(&w, &w.doctor, pending, "resend").await.unwrap();
        assert_eq!(renewed["send_count"], 2);
        assert_eq!(approval_state(&renewed, "inviting_facility"), "pending");
        assert_eq!(approval_state(&renewed, "invitee_facility"), "pending");
        // f2's admin decides the approval stored for f2.
        let approved = act(&w, &a.admin2, pending, "approvals/invitee_facility/approve")
            .await
            .unwrap();
        assert_eq!(approval_state(&approved, "invitee_facility"), "approved");

        // Someone who became a member meanwhile is not invited again.
        act(&w, &w.doctor, pending, "cancel").await.unwrap();
        for (facility, body) in [
            (a.f2, json!({"staff_join_other_facilities": "allowed"})),
            (w.facility, json!({"outside_invitations": "allowed"})),
        ] {
            set_policy(&w, facility, body).await;
        }
        w.client
            .post(
                &format!("/v1/admin/groups/{}/members", w.group.get()),
                Some(&w.nurse.access_token),
                &json!({ "user_id": outsider }),
            )
            .await
            .unwrap();
        let err = act(&w, &w.nurse, stale, "resend").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Conflict));
        assert!(err.to_string().contains("already a member"), "{err}");
        assert_eq!(listed(&w, stale).await["status"], "expired");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_lists_of_unknown_facilities_are_not_found_even_for_the_operator() {
    for db in backends() {
        let w = World::new(&db).await;
        let op = Some(w.operator.access_token.as_str());
        let known = w
            .client
            .get(
                &format!("/v1/admin/facilities/{}/approvals", w.facility),
                op,
            )
            .await
            .unwrap();
        assert_eq!(known.1["invitations"], json!([]));
        let unknown = w
            .client
            .get("/v1/admin/facilities/999999/approvals", op)
            .await
            .map(|(_, v)| v);
        assert_eq!(code(unknown), ErrorCode::NotFound);
    }
}
