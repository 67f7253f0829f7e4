//! Facility certificate policy changes and the second factor at refresh.

use crate::support::*;
use kizuna_client::{Client, ClientConfig};
use kizuna_domain::protocol::{ErrorCode, close_code};
use serde_json::json;
use std::time::Duration;

/// A device certificate for `user_id` issued over REST from a CSR made here;
/// returns a client that presents it.
async fn device_client(w: &World, user_id: i64) -> Client {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let (_, issued) = w
        .client
        .post(
            &format!("/v1/admin/users/{user_id}/certificates"),
            Some(&w.operator.access_token),
            &json!({"device_label": "test device", "csr_pem": csr.pem().unwrap()}),
        )
        .await
        .unwrap();
    Client::new(ClientConfig {
        addr: w.server.addr,
        server_name: "localhost".into(),
        root_pem: w.server.root_pem(),
        client_identity: Some((
            issued["chain_pem"].as_str().unwrap().to_owned(),
            key.serialize_pem(),
        )),
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiring_certificates_ends_certificate_less_sessions_at_once() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        let patched = w
            .client
            .patch(
                &format!("/v1/admin/facilities/{}", w.facility),
                Some(&w.operator.access_token),
                &json!({"require_client_cert": true}),
            )
            .await
            .unwrap();
        assert_eq!(patched.1["require_client_cert"], true);
        let code = close_code(&mut nurse, Duration::from_secs(2)).await;
        assert_eq!(code, close_code::SESSION_ENDED, "{:?}", db.backend());
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
                .refresh(&w.nurse.refresh_token)
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Unauthorized)
        );
        assert_eq!(
            w.client.login("nurse", PASSWORD).await.unwrap_err().code(),
            Some(ErrorCode::CertificateRequired)
        );
        // The other facility (still password-only) is untouched.
        w.client
            .get("/v1/me", Some(&w.pharmacist.access_token))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_with_someone_elses_certificate_is_refused_and_ends_the_session() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    // The pharmacist's session was made without a certificate (password-only
    // facility); the doctor's device certificate must not refresh it.
    let doctors_device = device_client(&w, uid(&w.doctor).get()).await;
    let err = doctors_device
        .refresh(&w.pharmacist.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::CertificateRejected));
    assert_eq!(
        w.client
            .get("/v1/me", Some(&w.pharmacist.access_token))
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Unauthorized)
    );
    // The doctor's own login with that device works.
    doctors_device.login("doctor", PASSWORD).await.unwrap();
}
