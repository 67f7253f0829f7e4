//! Persist, then acknowledge: acknowledged posts survive `kill -9`. Slow
//! clients resync instead of growing the server. Shutdown drains sockets. No
//! patient information in the server's log.

use crate::support::*;
use kizuna_domain::protocol::{ErrorCode, ServerFrame, close_code};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_posts_survive_kill_9() {
    for db in backends() {
        let mut w = World::with_env(&db, &[("KIZUNA__DATABASE__SQLITE_SYNC", "full")]).await;
        let mut nurse = w.ws(&w.nurse).await;
        let mut acknowledged = Vec::new();
        for i in 0..30 {
            let (ev, _) = nurse
                .post(w.team, &format!("k{i}"), &format!("report {i}"))
                .await
                .unwrap();
            acknowledged.push(ev.seq);
        }
        // Keep posting from another task while the process is killed: whatever
        // was acknowledged must be there afterwards.
        let client = w.client.clone();
        let token = w.nurse.access_token.clone();
        let team = w.team;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let background = tokio::spawn(async move {
            let mut ws = client.connect_ws(&token).await.unwrap();
            for i in 0.. {
                match ws.post(team, &format!("bg{i}"), "during crash").await {
                    Ok((ev, _)) => tx.send(ev.seq).unwrap(),
                    Err(_) => break,
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.server.kill9();
        background.await.unwrap();
        while let Ok(seq) = rx.try_recv() {
            acknowledged.push(seq);
        }
        w.server.restart();
        let client = w.server.client();
        let nurse = client.login("nurse", PASSWORD).await.unwrap();
        let mut ws = client.connect_ws(&nurse.access_token).await.unwrap();
        let (stored, _) = ws.subscribe(&[(w.team, 0)]).await.unwrap();
        let stored: BTreeSet<i64> = stored.iter().map(|e| e.seq).collect();
        for seq in &acknowledged {
            assert!(
                stored.contains(seq),
                "acknowledged seq {seq} lost after kill -9 ({:?})",
                db.backend()
            );
        }
        let max = *stored.iter().max().unwrap();
        assert_eq!(stored, (1..=max).collect(), "no gaps after recovery");
        let _ = w.client;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gets_a_resync_and_catches_up_from_the_store() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::with_env(&db, &[("KIZUNA__REALTIME__QUEUE_CAPACITY", "16")]).await;
    let mut slow = w.ws(&w.doctor).await;
    slow.subscribe(&[(w.team, 0)]).await.unwrap();
    let client = w.client.clone();
    let token = w.nurse.access_token.clone();
    let tl = w.team;
    let total = 1500;
    let big = "x".repeat(12_000);
    // The slow client reads nothing while 18 MB of posts go out.
    let mut poster = client.connect_ws(&token).await.unwrap();
    for i in 0..total {
        poster.post(tl, &format!("b{i}"), &big).await.unwrap();
    }
    let mut seqs = Vec::new();
    let mut resynced = false;
    while seqs.len() < total || !resynced {
        match slow.next_frame(WAIT).await {
            Ok(ServerFrame::Event { event }) => {
                if seqs.last().is_none_or(|&l| event.seq > l) {
                    seqs.push(event.seq);
                }
            }
            Ok(ServerFrame::Resync {
                timeline_id,
                after_seq,
            }) => {
                assert_eq!(timeline_id, tl);
                resynced = true;
                let last = *seqs.last().unwrap_or(&0);
                assert!(after_seq >= last, "the server says where it stopped");
                let (caught_up, _) = slow.subscribe(&[(tl, last)]).await.unwrap();
                seqs.extend(caught_up.iter().map(|e| e.seq));
            }
            Ok(_) => {}
            Err(e) => panic!("slow client: {e} after {} events", seqs.len()),
        }
        if seqs.len() >= total && !resynced {
            break;
        }
    }
    assert!(
        resynced,
        "the server must tell a slow client to resync rather than queue without bound"
    );
    assert_eq!(
        seqs,
        (1..=total as i64).collect::<Vec<_>>(),
        "complete, in order, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients_to_reconnect() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let mut w = World::new(&db).await;
    let mut ws = w.ws(&w.nurse).await;
    let status = w.server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let code = close_code(&mut ws, WAIT).await;
    assert_eq!(code, close_code::GOING_AWAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_information_never_reaches_the_servers_log() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    let secret = "褥瘡 stage III on sacrum";
    let mut nurse = w.ws(&w.nurse).await;
    let (ev, _) = nurse.post(w.team, "s1", secret).await.unwrap();
    nurse
        .edit(w.team, ev.seq, &format!("{secret} (edited)"))
        .await
        .unwrap();
    let mut family = w.ws(&w.family).await;
    family.subscribe(&[(w.team, 0)]).await.unwrap_err();
    nurse
        .send_text(format!(
            r#"{{"type":"post","id":"z","timeline_id":"{secret}"}}"#
        ))
        .await
        .unwrap();
    nurse.ping().await.unwrap_or(());
    let log = w.server.log();
    assert!(log.contains("listening on"), "the log was captured");
    for needle in [secret, "褥瘡", PATIENT_NAME, "Yamada", "Hanako", PASSWORD] {
        assert!(!log.contains(needle), "log leaks {needle:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_administers_the_same_service_and_running_sockets_follow() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::with_env(&db, &[("KIZUNA__SERVER__HEARTBEAT_SECS", "1")]).await;
    let f = w.server.admin(&[
        "create-facility",
        "--name",
        "Kaede Visiting Care",
        "--password-only",
    ]);
    assert_eq!(f["require_client_cert"], false);
    let fid = f["id"].as_i64().unwrap().to_string();
    let helper_args = [
        "create-user",
        "--login",
        "helper1",
        "--name",
        "Helper One",
        "--kind",
        "staff",
    ];
    w.server.admin(
        &[
            &helper_args[..],
            &["--facility", &fid, "--profession", "care_worker"],
        ]
        .concat(),
    );
    let g = w.server.admin(&[
        "create-patient",
        "--facility",
        &fid,
        "--name",
        "Patient B",
        "--owner",
        "helper1",
    ]);
    let gid = g["id"].as_i64().unwrap().to_string();
    w.server
        .admin(&["add-member", "--group", &gid, "--user", "doctor"]);
    let shown = w.server.admin(&["show-group", "--group", &gid]);
    assert_eq!(shown["members"].as_array().unwrap().len(), 2);
    let team = kizuna_domain::TimelineId(shown["timelines"][0]["timeline_id"].as_i64().unwrap());
    let helper = w.client.login("helper1", PASSWORD).await.unwrap();
    let mut ws = w.client.connect_ws(&helper.access_token).await.unwrap();
    ws.post(team, "h1", "Bathing assistance done")
        .await
        .unwrap();
    let mut doctor = w.ws(&w.doctor).await;
    let (events, _) = doctor.subscribe(&[(team, 0)]).await.unwrap();
    assert_eq!(events.len(), 1);

    // Removed from the group by another process: the doctor's socket stops
    // that timeline at the next heartbeat, and re-subscribing is refused.
    w.server
        .admin(&["remove-member", "--group", &gid, "--user", "doctor"]);
    let resynced = loop {
        match doctor.next_frame(Duration::from_secs(5)).await.unwrap() {
            ServerFrame::Resync { timeline_id, .. } => break timeline_id,
            _ => continue,
        }
    };
    assert_eq!(resynced, team);
    let err = doctor.subscribe(&[(team, 1)]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));

    // Disabled from another process: the socket closes at the next heartbeat.
    w.server.admin(&["disable-user", "--user", "helper1"]);
    let code = close_code(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, close_code::ACCOUNT_DISABLED);
    let err = w.client.login("helper1", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AccountDisabled));
}
