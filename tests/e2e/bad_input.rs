//! Bad input gets a clear error code, and loses nothing: the connection stays
//! usable where that makes sense, and stored data is untouched.

use crate::support::*;
use kizuna_client::ClientError;
use kizuna_domain::protocol::{ErrorCode, ServerFrame, close_code};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

async fn error_for(
    ws: &mut kizuna_client::WsConnection,
    text: &str,
) -> (Option<String>, ErrorCode, String) {
    ws.send_text(text).await.unwrap();
    loop {
        match ws.next_frame(WAIT).await.unwrap() {
            ServerFrame::Error { id, code, message } => return (id, code, message),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_error_codes_and_the_socket_stays_usable() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut ws = w.ws(&w.nurse).await;
        let (stored, _) = ws
            .post(w.team, "keep", "Must survive bad input")
            .await
            .unwrap();
        let team = w.team.get();
        let cases: Vec<(String, Option<&str>, ErrorCode)> = vec![
            ("{this is not json".into(), None, ErrorCode::BadFrame),
            ("[1,2,3]".into(), None, ErrorCode::BadFrame),
            (r#"{"type":"post"}"#.into(), None, ErrorCode::BadFrame),
            (
                r#"{"type":"launch_rocket","id":"u1"}"#.into(),
                Some("u1"),
                ErrorCode::UnknownCommand,
            ),
            (
                format!(
                    r#"{{"type":"post","id":"t1","timeline_id":"{team}","client_msg_id":"m","body":"x"}}"#
                ),
                Some("t1"),
                ErrorCode::InvalidField,
            ),
            (
                format!(r#"{{"type":"post","id":"t2","timeline_id":{team},"body":"x"}}"#),
                Some("t2"),
                ErrorCode::InvalidField,
            ),
            (
                format!(
                    r#"{{"type":"post","id":"t3","timeline_id":{team},"client_msg_id":"m","body":"x","author_id":1}}"#
                ),
                Some("t3"),
                ErrorCode::InvalidField,
            ),
            (
                format!(
                    r#"{{"type":"post","id":"t4","timeline_id":{team},"client_msg_id":"m","body":"   "}}"#
                ),
                Some("t4"),
                ErrorCode::InvalidBody,
            ),
            (
                format!(
                    r#"{{"type":"post","id":"t5","timeline_id":{team},"client_msg_id":"m","body":"{}"}}"#,
                    "長".repeat(6000)
                ),
                Some("t5"),
                ErrorCode::InvalidBody,
            ),
            (
                format!(r#"{{"type":"history","id":"t6","timeline_id":{team},"limit":100000}}"#),
                Some("t6"),
                ErrorCode::InvalidField,
            ),
            (
                r#"{"type":"subscribe","id":"t7","timelines":[]}"#.into(),
                Some("t7"),
                ErrorCode::InvalidField,
            ),
        ];
        for (text, id, code) in cases {
            let (got_id, got_code, message) = error_for(&mut ws, &text).await;
            assert_eq!((got_id.as_deref(), got_code), (id, code), "for {text:.80}");
            assert!(
                !message.contains("長") && !message.contains("x\""),
                "messages never echo content: {message}"
            );
            ws.ping().await.expect("the socket stays usable");
        }
        let (hist, _) = ws.history(w.team, None, None).await.unwrap();
        assert_eq!(hist.len(), 1);
        assert_eq!(hist[0].seq, stored.seq);
        assert_eq!(
            hist[0].body.as_ref().unwrap().expose(),
            "Must survive bad input"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_binary_and_invalid_utf8_frames_close_with_documented_codes() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;

    let mut ws = w.ws(&w.nurse).await;
    ws.send_text("x".repeat(70 * 1024)).await.unwrap();
    assert_eq!(close_code(&mut ws, WAIT).await, close_code::MESSAGE_TOO_BIG);

    let mut ws = w.ws(&w.nurse).await;
    ws.send_message(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut ws, WAIT).await,
        close_code::UNSUPPORTED_DATA
    );

    let mut ws = w.ws(&w.nurse).await;
    let frame = Frame::message(vec![0xff, 0xfe, 0x7b], OpCode::Data(Data::Text), true);
    ws.send_message(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut ws, WAIT).await, close_code::INVALID_PAYLOAD);

    let mut ws = w.ws(&w.nurse).await;
    for _ in 0..20 {
        ws.send_text("nope").await.unwrap();
    }
    assert_eq!(
        close_code(&mut ws, WAIT).await,
        close_code::POLICY_VIOLATION
    );

    // The server is fine afterwards.
    let mut ws = w.ws(&w.nurse).await;
    ws.post(w.team, "after", "still working").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_bad_input_gets_a_fixed_error_body() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    let op = Some(w.operator.access_token.as_str());
    let code = |r: Result<(u16, serde_json::Value), ClientError>| match r {
        Err(ClientError::Server { status, code, .. }) => (status.unwrap_or(0), code),
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(
        code(
            w.client
                .post_raw(
                    "/v1/admin/facilities",
                    op,
                    "application/json",
                    b"{nope".to_vec()
                )
                .await
        ),
        (400, ErrorCode::BadFrame)
    );
    assert_eq!(
        code(
            w.client
                .post_raw("/v1/admin/facilities", op, "text/plain", b"{}".to_vec())
                .await
        ),
        (400, ErrorCode::BadFrame)
    );
    assert_eq!(
        code(
            w.client
                .post("/v1/admin/facilities", op, &json!({"name": 12}))
                .await
        ),
        (400, ErrorCode::InvalidField)
    );
    assert_eq!(
        code(
            w.client
                .post("/v1/admin/facilities", op, &json!({"name": "X", "id": 1}))
                .await
        ),
        (400, ErrorCode::InvalidField)
    );
    let huge = json!({"name": "x".repeat(70 * 1024)});
    assert_eq!(
        code(w.client.post("/v1/admin/facilities", op, &huge).await),
        (413, ErrorCode::PayloadTooLarge)
    );
    assert_eq!(
        code(w.client.get("/v1/nothing-here", op).await),
        (404, ErrorCode::NotFound)
    );
    assert_eq!(
        code(w.client.get("/v1/me", None).await),
        (401, ErrorCode::Unauthorized)
    );
    // Mass assignment: a staff account cannot be slipped an author or facility it does not name.
    let body = json!({"login": "sneaky", "display_name": "s", "kind": "family", "password": PASSWORD, "role": "admin"});
    assert_eq!(
        code(w.client.post("/v1/admin/users", op, &body).await),
        (400, ErrorCode::InvalidField)
    );
    let (_, me) = w.client.get("/v1/me", op).await.unwrap();
    assert_eq!(me["kind"], "operator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_need_a_token_and_an_allowed_origin() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::with_env(
        &db,
        &[(
            "KIZUNA__SERVER__ALLOWED_ORIGINS",
            "https://app.kizuna.example",
        )],
    )
    .await;
    let err = w.client.connect_ws("not-a-token").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized));
    let err = w
        .client
        .connect_ws_with_origin(&w.nurse.access_token, Some("https://evil.example"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OriginNotAllowed));
    let mut ok = w
        .client
        .connect_ws_with_origin(&w.nurse.access_token, Some("https://app.kizuna.example"))
        .await
        .unwrap();
    ok.ping().await.unwrap();
}
