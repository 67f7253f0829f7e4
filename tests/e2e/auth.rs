//! Login, tokens, refresh rotation, logout, deactivation, admin rights.

use crate::support::*;
use kizuna_client::ClientError;
use kizuna_domain::protocol::{ErrorCode, close_code};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_say_the_same_for_unknown_users_and_wrong_passwords() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    for (login, password) in [("nurse", "wrong password!"), ("nobody-here", PASSWORD)] {
        match w.client.login(login, password).await.unwrap_err() {
            ClientError::Server {
                status,
                code,
                message,
            } => {
                assert_eq!((status, code), (Some(401), ErrorCode::InvalidCredentials));
                assert_eq!(message, "login or password is wrong");
            }
            other => panic!("{other}"),
        }
    }
    let tampered = format!("{}x", w.nurse.access_token);
    assert_eq!(
        w.client
            .get("/v1/me", Some(&tampered))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthorized)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_a_replayed_one_ends_the_session_everywhere() {
    for db in backends() {
        let w = World::new(&db).await;
        let first = w.client.login("doctor", PASSWORD).await.unwrap();
        let second = w.client.refresh(&first.refresh_token).await.unwrap();
        assert_eq!(second.session_id, first.session_id);
        assert_ne!(second.refresh_token, first.refresh_token);
        let (_, me) = w
            .client
            .get("/v1/me", Some(&second.access_token))
            .await
            .unwrap();
        assert_eq!(me["user_id"], uid(&w.doctor).get());
        let mut ws = w.client.connect_ws(&second.access_token).await.unwrap();
        // A thief replays the first refresh token: the whole session ends.
        let err = w.client.refresh(&first.refresh_token).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
        assert_eq!(
            close_code(&mut ws, Duration::from_secs(2)).await,
            close_code::SESSION_ENDED
        );
        assert_eq!(
            w.client
                .refresh(&second.refresh_token)
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Unauthorized)
        );
        assert_eq!(
            w.client
                .get("/v1/me", Some(&second.access_token))
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Unauthorized)
        );
        // Other sessions of the same person are untouched.
        w.client
            .get("/v1/me", Some(&w.doctor.access_token))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_closes_that_sessions_sockets_and_its_token_stops_working() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    let mut ws = w.ws(&w.nurse).await;
    w.client.logout(&w.nurse.access_token).await.unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(1)).await,
        close_code::SESSION_ENDED
    );
    assert_eq!(
        w.client
            .get("/v1/me", Some(&w.nurse.access_token))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthorized)
    );
    assert_eq!(
        w.client
            .connect_ws(&w.nurse.access_token)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthorized)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_account_closes_its_sockets_within_a_second_and_keeps_its_posts() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut pharmacist = w.ws(&w.pharmacist).await;
        pharmacist
            .post(w.team, "ph1", "Delivered medication")
            .await
            .unwrap();
        let op = Some(w.operator.access_token.as_str());
        w.client
            .post(
                &format!("/v1/admin/users/{}/disable", uid(&w.pharmacist).get()),
                op,
                &json!(null),
            )
            .await
            .unwrap();
        assert_eq!(
            close_code(&mut pharmacist, Duration::from_secs(1)).await,
            close_code::ACCOUNT_DISABLED
        );
        assert_eq!(
            w.client
                .get("/v1/me", Some(&w.pharmacist.access_token))
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Unauthorized)
        );
        let err = w.client.login("pharmacist", PASSWORD).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::AccountDisabled));
        let mut nurse = w.ws(&w.nurse).await;
        let (hist, _) = nurse.history(w.team, None, None).await.unwrap();
        assert_eq!(
            hist[0].author.as_ref().map(|a| a.user_id),
            Some(uid(&w.pharmacist)),
            "what they wrote stays, attributed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_right_people_administer() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    let nurse = Some(w.nurse.access_token.as_str());
    let doctor = Some(w.doctor.access_token.as_str());
    let outsider = Some(w.outsider.access_token.as_str());
    let code = |r: Result<(u16, serde_json::Value), ClientError>| r.unwrap_err().code();
    assert_eq!(
        code(
            w.client
                .post("/v1/admin/facilities", nurse, &json!({"name": "Mine"}))
                .await
        ),
        Some(ErrorCode::Forbidden)
    );
    let body = json!({"login": "newbie", "display_name": "n", "kind": "staff", "facility_id": w.facility, "password": PASSWORD});
    assert_eq!(
        code(w.client.post("/v1/admin/users", nurse, &body).await),
        Some(ErrorCode::Forbidden)
    );
    // A plain member cannot add people; a non-member cannot even see the group.
    let add = json!({"user_id": uid(&w.outsider).get()});
    let path = format!("/v1/admin/groups/{}/members", w.group.get());
    assert_eq!(
        code(w.client.post(&path, doctor, &add).await),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(w.client.post(&path, outsider, &add).await),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(
            w.client
                .get(&format!("/v1/admin/groups/{}", w.group.get()), outsider)
                .await
        ),
        Some(ErrorCode::NotFound)
    );
    // The owner (the nurse) can, and family members are limited to the family timeline.
    let (_, g) = w
        .client
        .get(&format!("/v1/admin/groups/{}", w.group.get()), nurse)
        .await
        .unwrap();
    let family = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "family")
        .unwrap()
        .clone();
    assert_eq!(family["visibility"], "family_only");
    // A company account cannot be put into a patient group.
    let op = Some(w.operator.access_token.as_str());
    let (_, company) = w.client.post("/v1/admin/users", op, &json!({"login": "acme", "display_name": "ACME Pharma", "kind": "company", "password": PASSWORD})).await.unwrap();
    let err = w
        .client
        .post(&path, nurse, &json!({"user_id": company["id"]}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_patient_timelines_are_audited_and_the_chain_verifies() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    let mut doctor = w.ws(&w.doctor).await;
    doctor.subscribe(&[(w.team, 0)]).await.unwrap();
    doctor.history(w.team, None, None).await.unwrap();
    let mut outsider = w.ws(&w.outsider).await;
    outsider.subscribe(&[(w.team, 0)]).await.unwrap_err();
    let v = w.server.admin(&["verify-audit"]);
    assert_eq!(v["audit_chain"], "intact");
    // logins (7) + admin actions + 2 reads + 1 denied read
    assert!(v["entries"].as_u64().unwrap() >= 20, "{v}");
}
