//! Posting, real-time delivery, resume, visibility, 了解, read markers, edits.

use crate::support::*;
use kizuna_client::ClientError;
use kizuna_domain::protocol::{ErrorCode, ServerFrame};
use kizuna_domain::{EventKind, TimelineKind};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_members_receive_a_nurses_report_in_real_time_and_in_order() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        let mut doctor = w.ws(&w.doctor).await;
        let mut pharmacist = w.ws(&w.pharmacist).await;
        doctor.subscribe(&[(w.team, 0)]).await.unwrap();
        pharmacist.subscribe(&[(w.team, 0)]).await.unwrap();
        let mut seqs = Vec::new();
        for (i, body) in [
            "Visited 10:00, BP 132/84",
            "Started day service",
            "Please prescribe ointment",
        ]
        .iter()
        .enumerate()
        {
            let (ev, dup) = nurse.post(w.team, &format!("r{i}"), body).await.unwrap();
            assert!(!dup);
            assert_eq!(
                ev.client_msg_id.as_deref(),
                Some(format!("r{i}").as_str()),
                "the author sees her key"
            );
            seqs.push(ev.seq);
        }
        assert_eq!(seqs, vec![1, 2, 3]);
        for reader in [&mut doctor, &mut pharmacist] {
            for (expected, body) in [
                (1, "Visited 10:00, BP 132/84"),
                (2, "Started day service"),
                (3, "Please prescribe ointment"),
            ] {
                let ev = reader.next_event(WAIT).await.unwrap();
                assert_eq!(
                    (ev.timeline_id, ev.seq, ev.kind),
                    (w.team, expected, EventKind::Post)
                );
                assert_eq!(ev.body.as_ref().unwrap().expose(), body);
                assert_eq!(ev.author.map(|a| a.user_id), Some(uid(&w.nurse)));
                assert_eq!(ev.client_msg_id, None, "others do not see the author's key");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_physician_resumes_with_exactly_the_posts_he_missed() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        let mut doctor = w.ws(&w.doctor).await;
        doctor.subscribe(&[(w.team, 0)]).await.unwrap();
        for i in 1..=2 {
            nurse
                .post(w.team, &format!("a{i}"), &format!("report {i}"))
                .await
                .unwrap();
        }
        let mut last = 0;
        for _ in 0..2 {
            last = doctor.next_event(WAIT).await.unwrap().seq;
        }
        assert_eq!(last, 2);
        doctor.close().await.unwrap();
        for i in 3..=7 {
            nurse
                .post(w.team, &format!("a{i}"), &format!("report {i}"))
                .await
                .unwrap();
        }
        let mut doctor = w.ws(&w.doctor).await;
        let (missed, subscribed) = doctor.subscribe(&[(w.team, last)]).await.unwrap();
        assert_eq!(
            missed.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7]
        );
        assert_eq!(subscribed[0].last_seq, 7);
        nurse.post(w.team, "a8", "report 8").await.unwrap();
        assert_eq!(
            doctor.next_event(WAIT).await.unwrap().seq,
            8,
            "live events follow the catch-up"
        );
        assert!(
            matches!(
                doctor.next_event(Duration::from_millis(300)).await,
                Err(ClientError::Timeout)
            ),
            "no duplicates"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn family_member_sees_only_the_family_timeline() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut family = w.ws(&w.family).await;
        let err = family.subscribe(&[(w.team, 0)]).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));
        let err = family.history(w.team, None, None).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));
        let err = family.post(w.team, "f1", "hello team").await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));
        // The whole subscribe is refused when one timeline is: nothing leaks.
        let err = family
            .subscribe(&[(w.family_tl, 0), (w.team, 0)])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden));

        let mut nurse = w.ws(&w.nurse).await;
        nurse
            .post(w.team, "t1", "team only: wound worse")
            .await
            .unwrap();
        family.subscribe(&[(w.family_tl, 0)]).await.unwrap();
        nurse
            .post(w.family_tl, "fam1", "We will visit at 14:00")
            .await
            .unwrap();
        let ev = family.next_event(WAIT).await.unwrap();
        assert_eq!((ev.timeline_id, ev.seq), (w.family_tl, 1));
        family.post(w.family_tl, "fam2", "Thank you").await.unwrap();
        let kinds: Vec<TimelineKind> = family
            .timelines()
            .await
            .unwrap()
            .iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![TimelineKind::Family],
            "the team timeline is not even listed"
        );
        assert!(matches!(
            family.next_event(Duration::from_millis(300)).await,
            Err(ClientError::Timeout) | Ok(_)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_members_and_unknown_timelines_get_the_same_not_found() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut outsider = w.ws(&w.outsider).await;
        for tl in [
            w.team,
            w.family_tl,
            w.free_main,
            w.community_main,
            kizuna_domain::TimelineId(99_999),
        ] {
            assert_eq!(
                outsider.subscribe(&[(tl, 0)]).await.unwrap_err().code(),
                Some(ErrorCode::NotFound)
            );
            assert_eq!(
                outsider.post(tl, "x", "hi").await.unwrap_err().code(),
                Some(ErrorCode::NotFound)
            );
            assert_eq!(
                outsider.history(tl, None, None).await.unwrap_err().code(),
                Some(ErrorCode::NotFound)
            );
        }
        // An operator is not a reader of patient timelines by office.
        let mut op = w.ws(&w.operator).await;
        assert_eq!(
            op.subscribe(&[(w.team, 0)]).await.unwrap_err().code(),
            Some(ErrorCode::NotFound)
        );
        outsider.ping().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_post_returns_the_stored_event_and_is_delivered_once() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        let mut doctor = w.ws(&w.doctor).await;
        doctor.subscribe(&[(w.team, 0)]).await.unwrap();
        let (first, dup) = nurse.post(w.team, "retry-me", "Fever 38.2").await.unwrap();
        assert!(!dup);
        // The phone lost the answer and sends the same post again.
        let (again, dup) = nurse.post(w.team, "retry-me", "Fever 38.2").await.unwrap();
        assert!(dup);
        assert_eq!((again.seq, again.event_id), (first.seq, first.event_id));
        assert_eq!(doctor.next_event(WAIT).await.unwrap().seq, first.seq);
        assert!(matches!(
            doctor.next_event(Duration::from_millis(300)).await,
            Err(ClientError::Timeout)
        ));
        // The same key for other content, or on another timeline, is a
        // conflict, not a silent success.
        let err = nurse
            .post(w.team, "retry-me", "Fever 39.0")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Conflict));
        let err = nurse
            .post(w.free_main, "retry-me", "Fever 38.2")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Conflict));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ryokai_acknowledgements_and_read_markers() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        let mut doctor = w.ws(&w.doctor).await;
        nurse.subscribe(&[(w.team, 0)]).await.unwrap();
        let (post, _) = nurse
            .post(w.team, "p1", "Please prescribe ointment")
            .await
            .unwrap();
        nurse.post(w.team, "p2", "Visited today").await.unwrap();
        let ack = doctor.ack(w.team, post.seq).await.unwrap();
        assert_eq!(ack.user.user_id, uid(&w.doctor));
        doctor.ack(w.team, post.seq).await.unwrap();
        // The author sees who pressed 了解, live and on request.
        let pushed = loop {
            match nurse.next_frame(WAIT).await.unwrap() {
                ServerFrame::Ack { ack } => break ack,
                _ => continue,
            }
        };
        assert_eq!(
            (pushed.target_seq, pushed.user.user_id),
            (post.seq, uid(&w.doctor))
        );
        let acks = nurse.acks(w.team, post.seq).await.unwrap();
        assert_eq!(
            acks.len(),
            1,
            "a second 了解 by the same person counts once"
        );
        let (hist, _) = nurse.history(w.team, None, None).await.unwrap();
        assert_eq!(
            hist.iter().find(|e| e.seq == post.seq).unwrap().ack_count,
            1
        );
        assert_eq!(
            doctor.ack(w.team, 99).await.unwrap_err().code(),
            Some(ErrorCode::NotFound)
        );

        let unread = |ts: &[kizuna_domain::protocol::TimelineSummary]| {
            ts.iter().find(|t| t.timeline_id == w.team).unwrap().unread
        };
        assert_eq!(unread(&doctor.timelines().await.unwrap()), 2);
        assert_eq!(doctor.read(w.team, post.seq).await.unwrap(), post.seq);
        assert_eq!(unread(&doctor.timelines().await.unwrap()), 1);
        assert_eq!(
            doctor.read(w.team, 0).await.unwrap(),
            post.seq,
            "markers never move back"
        );
        assert_eq!(
            unread(&nurse.timelines().await.unwrap()),
            0,
            "own posts are not unread"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authors_edit_and_delete_leaving_a_tombstone() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        let mut doctor = w.ws(&w.doctor).await;
        doctor.subscribe(&[(w.team, 0)]).await.unwrap();
        let (post, _) = nurse.post(w.team, "e1", "BP 150/95").await.unwrap();
        assert_eq!(
            doctor
                .edit(w.team, post.seq, "tampered")
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(
            doctor.delete(w.team, post.seq).await.unwrap_err().code(),
            Some(ErrorCode::Forbidden)
        );
        let edit = nurse
            .edit(w.team, post.seq, "BP 135/85 (corrected)")
            .await
            .unwrap();
        assert_eq!(
            (edit.kind, edit.target_seq, edit.seq),
            (EventKind::Edit, Some(post.seq), 2)
        );
        let tomb = nurse.delete(w.team, post.seq).await.unwrap();
        assert_eq!(
            (tomb.kind, tomb.target_seq, tomb.body.is_none()),
            (EventKind::Delete, Some(post.seq), true)
        );
        let live: Vec<EventKind> = vec![
            doctor.next_event(WAIT).await.unwrap().kind,
            doctor.next_event(WAIT).await.unwrap().kind,
            doctor.next_event(WAIT).await.unwrap().kind,
        ];
        assert_eq!(
            live,
            vec![EventKind::Post, EventKind::Edit, EventKind::Delete]
        );
        let (hist, _) = doctor.history(w.team, None, None).await.unwrap();
        let original = hist.iter().find(|e| e.seq == post.seq).unwrap();
        assert!(original.deleted && original.body.is_none() && original.edited_at.is_some());
        assert_eq!(
            nurse
                .edit(w.team, post.seq, "again")
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::Conflict)
        );
        assert_eq!(
            nurse
                .edit(w.team, 999, "nothing there")
                .await
                .unwrap_err()
                .code(),
            Some(ErrorCode::NotFound)
        );
        assert_eq!(
            doctor.delete(w.team, 999).await.unwrap_err().code(),
            Some(ErrorCode::NotFound)
        );
        // A deleted post's text is gone from every event, the edits included.
        let (hist, _) = doctor.history(w.team, None, None).await.unwrap();
        assert!(
            hist.iter().all(|e| e.body.is_none()),
            "no event still shows the deleted text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_backwards() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut nurse = w.ws(&w.nurse).await;
        for i in 1..=12 {
            nurse
                .post(w.free_main, &format!("h{i}"), &format!("note {i}"))
                .await
                .unwrap();
        }
        let (page, more) = nurse.history(w.free_main, None, Some(5)).await.unwrap();
        assert_eq!(
            page.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![12, 11, 10, 9, 8]
        );
        assert!(more);
        let (page, more) = nurse.history(w.free_main, Some(3), Some(5)).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 1]);
        assert!(!more);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posters_produce_one_gapless_ordered_stream() {
    for db in backends() {
        let w = World::new(&db).await;
        let mut reader = w.ws(&w.doctor).await;
        reader.subscribe(&[(w.team, 0)]).await.unwrap();
        let mut tasks = Vec::new();
        for who in [&w.nurse, &w.pharmacist, &w.doctor, &w.nurse] {
            let client = w.client.clone();
            let token = who.access_token.clone();
            let team = w.team;
            let tag = tasks.len();
            tasks.push(tokio::spawn(async move {
                let mut ws = client.connect_ws(&token).await.unwrap();
                for i in 0..25 {
                    ws.post(team, &format!("c{tag}-{i}"), "vitals ok")
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 100 {
            got.push(reader.next_event(WAIT).await.unwrap().seq);
        }
        assert_eq!(
            got,
            (1..=100).collect::<Vec<_>>(),
            "every post once, in seq order"
        );
        assert!(matches!(
            reader.next_event(Duration::from_millis(300)).await,
            Err(ClientError::Timeout)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_while_others_post_misses_nothing() {
    for db in backends() {
        let w = World::new(&db).await;
        let client = w.client.clone();
        let token = w.nurse.access_token.clone();
        let team = w.team;
        let poster = tokio::spawn(async move {
            let mut ws = client.connect_ws(&token).await.unwrap();
            for i in 0..150 {
                ws.post(team, &format!("s{i}"), "continuous report")
                    .await
                    .unwrap();
            }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut reader = w.ws(&w.doctor).await;
        let (caught_up, _) = reader.subscribe(&[(w.team, 0)]).await.unwrap();
        let mut got: Vec<i64> = caught_up.iter().map(|e| e.seq).collect();
        poster.await.unwrap();
        while got.len() < 150 {
            got.push(reader.next_event(WAIT).await.unwrap().seq);
        }
        assert_eq!(got, (1..=150).collect::<Vec<_>>());
    }
}
