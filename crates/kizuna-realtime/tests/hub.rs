//! The hub, its connections and the in-process bus, through the public API.

use std::sync::Arc;
use std::time::Duration;

use kizuna_domain::{SessionId, TimelineId, UserId};
use kizuna_realtime::{
    Bus, BusMessage, CloseReason, Connection, ConnectionEvent, ConnectionInfo, Hub, HubConfig,
    HubError, Outbound, Selector, SharedFrame,
};
use tokio::time::timeout;

/// Generous bound for things that should happen (never a performance claim).
const WAIT: Duration = Duration::from_secs(5);
/// How long we watch for something that must *not* happen.
const QUIET: Duration = Duration::from_millis(50);

const T1: TimelineId = TimelineId(1);
const T2: TimelineId = TimelineId(2);

fn hub(capacity: usize) -> Hub {
    Hub::new(HubConfig {
        queue_capacity: capacity,
    })
}

fn info(user: i64, session: i64, serial: Option<&str>) -> ConnectionInfo {
    ConnectionInfo {
        user_id: UserId(user),
        session_id: SessionId(session),
        cert_serial: serial.map(str::to_owned),
    }
}

fn frame(text: &str) -> SharedFrame {
    Arc::from(text)
}

fn event_frame(timeline: TimelineId, seq: i64) -> SharedFrame {
    Arc::from(format!(
        r#"{{"type":"event","timeline":{},"seq":{seq}}}"#,
        timeline.get()
    ))
}

async fn next(conn: &mut Connection) -> Outbound {
    timeout(WAIT, conn.recv())
        .await
        .expect("a frame should arrive")
        .expect("the queue should be open")
}

async fn next_seq(conn: &mut Connection) -> (TimelineId, i64) {
    match next(conn).await {
        Outbound::Event { timeline, seq, .. } => (timeline, seq),
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Asserts nothing is queued right now (deliveries are synchronous, so this is
/// not a race).
fn assert_empty(conn: &Connection) {
    assert_eq!(
        conn.queued(),
        0,
        "nothing should be queued for {:?}",
        conn.id()
    );
}

#[test]
fn hub_bus_and_connection_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Hub>();
    send_sync::<Bus>();
    send::<Connection>();
    send_sync::<kizuna_realtime::ConnectionSignals>();
}

#[tokio::test]
async fn subscribers_receive_events_in_order_and_others_receive_nothing() {
    let hub = hub(32);
    let mut a = hub.connect(info(1, 1, None));
    let mut b = hub.connect(info(2, 2, None));
    let other = hub.connect(info(3, 3, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.subscribe(b.id(), T1).unwrap();
    hub.subscribe(other.id(), T2).unwrap();

    for seq in 1..=10 {
        assert_eq!(hub.deliver_event(T1, seq, event_frame(T1, seq)), 2);
    }
    for seq in 1..=10 {
        assert_eq!(next_seq(&mut a).await, (T1, seq));
        assert_eq!(next_seq(&mut b).await, (T1, seq));
    }
    assert_empty(&other);
    assert_eq!(hub.deliver_event(TimelineId(99), 1, frame("{}")), 0);
}

#[tokio::test]
async fn one_serialized_frame_is_shared_by_every_recipient() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    let mut b = hub.connect(info(2, 2, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.subscribe(b.id(), T1).unwrap();
    let sent = event_frame(T1, 1);
    hub.deliver_event(T1, 1, Arc::clone(&sent));
    let got_a = next(&mut a).await;
    let got_b = next(&mut b).await;
    assert!(Arc::ptr_eq(got_a.frame(), &sent));
    assert!(Arc::ptr_eq(got_b.frame(), &sent));
}

#[tokio::test]
async fn notices_reach_subscribers_of_their_timeline() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    assert_eq!(hub.deliver_notice(T1, frame(r#"{"type":"ack"}"#)), 1);
    assert_eq!(hub.deliver_notice(T2, frame(r#"{"type":"ack"}"#)), 0);
    match next(&mut a).await {
        Outbound::Notice { timeline, frame } => {
            assert_eq!(timeline, T1);
            assert_eq!(&*frame, r#"{"type":"ack"}"#);
        }
        other => panic!("expected a notice, got {other:?}"),
    }
}

#[tokio::test]
async fn unsubscribed_connection_receives_nothing_more() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.subscribe(a.id(), T2).unwrap();
    hub.deliver_event(T1, 1, event_frame(T1, 1));
    assert!(hub.unsubscribe(a.id(), T1));
    assert!(
        !hub.unsubscribe(a.id(), T1),
        "second unsubscribe is a no-op"
    );
    assert_eq!(hub.deliver_event(T1, 2, event_frame(T1, 2)), 0);
    hub.deliver_event(T2, 1, event_frame(T2, 1));
    assert_eq!(next_seq(&mut a).await, (T1, 1));
    assert_eq!(next_seq(&mut a).await, (T2, 1));
    assert_empty(&a);
    assert_eq!(hub.stats().subscriptions, 1);
}

#[tokio::test]
async fn dropping_a_connection_unregisters_it_and_its_subscriptions() {
    let hub = hub(8);
    let a = hub.connect(info(1, 1, None));
    let id = a.id();
    hub.subscribe(id, T1).unwrap();
    hub.subscribe(id, T2).unwrap();
    assert_eq!(hub.stats().connections, 1);
    assert_eq!(hub.stats().subscriptions, 2);
    drop(a);
    assert_eq!(hub.stats().connections, 0);
    assert_eq!(hub.stats().subscriptions, 0);
    assert_eq!(hub.deliver_event(T1, 1, frame("{}")), 0);
    assert_eq!(hub.subscribe(id, T1), Err(HubError::UnknownConnection(id)));
    assert!(!hub.disconnect(id));
}

#[tokio::test]
async fn explicit_disconnect_ends_the_connection_stream() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    assert!(hub.disconnect(a.id()));
    assert!(timeout(WAIT, a.recv()).await.unwrap().is_none());
    assert_eq!(
        timeout(WAIT, a.closed()).await.unwrap(),
        CloseReason::ServerShutdown
    );
    assert_eq!(hub.stats().connections, 0);
}

#[tokio::test]
async fn dropping_the_hub_tells_connections_the_server_is_shutting_down() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    drop(hub);
    assert!(timeout(WAIT, a.recv()).await.unwrap().is_none());
    assert_eq!(
        timeout(WAIT, a.closed()).await.unwrap(),
        CloseReason::ServerShutdown
    );
}

/// Connects one connection per selector kind plus a bystander, fills every
/// queue, and checks that each close reaches exactly the selected connections.
#[tokio::test]
async fn close_reaches_selected_connections_even_with_full_queues() {
    let hub = hub(2);
    let by_user = hub.connect(info(10, 100, None));
    let by_user_second_device = hub.connect(info(10, 101, Some("01")));
    let by_session = hub.connect(info(11, 110, None));
    let by_serial = hub.connect(info(12, 120, Some("00:0A:BC")));
    let bystander = hub.connect(info(13, 130, Some("0abd")));
    let all = [
        &by_user,
        &by_user_second_device,
        &by_session,
        &by_serial,
        &bystander,
    ];
    for conn in all {
        hub.subscribe(conn.id(), T1).unwrap();
    }
    for seq in 1..=3 {
        hub.deliver_event(T1, seq, event_frame(T1, seq));
    }
    for conn in all {
        assert_eq!(conn.queued(), 2, "queues are full");
    }

    assert_eq!(
        hub.close(&Selector::User(UserId(10)), CloseReason::AccountDisabled),
        2
    );
    assert_eq!(
        hub.close(
            &Selector::Session(SessionId(110)),
            CloseReason::SessionEnded
        ),
        1
    );
    assert_eq!(
        hub.close(
            &Selector::CertSerial("abc".into()),
            CloseReason::CertificateRevoked
        ),
        1
    );
    assert_eq!(
        hub.close(
            &Selector::CertSerial(String::new()),
            CloseReason::CertificateRevoked
        ),
        0,
        "an empty serial selects nothing"
    );
    for (conn, reason) in [
        (&by_user, CloseReason::AccountDisabled),
        (&by_user_second_device, CloseReason::AccountDisabled),
        (&by_session, CloseReason::SessionEnded),
        (&by_serial, CloseReason::CertificateRevoked),
    ] {
        assert_eq!(timeout(WAIT, conn.closed()).await.unwrap(), reason);
    }
    assert_eq!(bystander.signals().close_reason(), None);

    assert_eq!(
        hub.close(&Selector::All, CloseReason::ServerShutdown),
        1,
        "only the bystander was still open"
    );
    assert_eq!(
        timeout(WAIT, bystander.closed()).await.unwrap(),
        CloseReason::ServerShutdown
    );
    assert_eq!(
        by_user.signals().close_reason(),
        Some(CloseReason::AccountDisabled),
        "the first reason stays"
    );
}

#[tokio::test]
async fn a_closed_connection_gets_no_more_frames_and_no_new_subscriptions() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.deliver_event(T1, 1, event_frame(T1, 1));
    hub.close(&Selector::User(UserId(1)), CloseReason::SessionEnded);
    assert_eq!(hub.deliver_event(T1, 2, event_frame(T1, 2)), 0);
    assert!(
        a.recv().await.is_none(),
        "queued frames are not handed out after close"
    );
    assert_eq!(
        hub.subscribe(a.id(), T2),
        Err(HubError::ConnectionClosed(a.id()))
    );
    assert_eq!(hub.stats().subscriptions, 0);
    assert_eq!(hub.stats().connections, 1, "registered until dropped");
    drop(a);
    assert_eq!(hub.stats().connections, 0);
}

#[tokio::test]
async fn resync_all_suspends_every_subscription_until_resubscribed() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    let mut b = hub.connect(info(2, 2, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.subscribe(a.id(), T2).unwrap();
    hub.subscribe(b.id(), T1).unwrap();

    assert_eq!(hub.resync_all(), 3);
    assert_eq!(hub.resync_all(), 0, "already suspended");
    timeout(WAIT, a.lagged()).await.unwrap();
    timeout(WAIT, b.lagged()).await.unwrap();
    assert_eq!(a.take_lagged(), vec![T1, T2]);
    assert_eq!(b.take_lagged(), vec![T1]);
    assert_eq!(hub.stats().lagged, 3);

    assert_eq!(hub.deliver_event(T1, 5, event_frame(T1, 5)), 0);
    hub.subscribe(a.id(), T1).unwrap();
    assert_eq!(hub.deliver_event(T1, 6, event_frame(T1, 6)), 1);
    assert_eq!(next_seq(&mut a).await, (T1, 6));
    assert_empty(&b);
    assert_eq!(hub.deliver_event(T2, 1, event_frame(T2, 1)), 0);
    assert!(timeout(QUIET, b.recv()).await.is_err());
}

#[tokio::test]
async fn duplicates_and_stale_events_are_dropped_and_jumps_pass_on() {
    let hub = hub(8);
    let mut a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    assert_eq!(
        hub.deliver_event(T1, 7, event_frame(T1, 7)),
        1,
        "first event sets the baseline"
    );
    assert_eq!(hub.deliver_event(T1, 8, event_frame(T1, 8)), 1);
    assert_eq!(hub.deliver_event(T1, 8, event_frame(T1, 8)), 0, "duplicate");
    assert_eq!(hub.deliver_event(T1, 3, event_frame(T1, 3)), 0, "stale");
    assert_eq!(
        hub.deliver_event(T1, 10, event_frame(T1, 10)),
        1,
        "a jump is delivered; the connection fills seq 9 from the store"
    );
    assert_eq!(
        hub.deliver_event(T1, 9, event_frame(T1, 9)),
        0,
        "the late event is older than what was delivered"
    );
    assert_eq!(hub.stats().lagged, 0);
    assert_eq!(next_seq(&mut a).await, (T1, 7));
    assert_eq!(next_seq(&mut a).await, (T1, 8));
    assert_eq!(next_seq(&mut a).await, (T1, 10));
    assert_empty(&a);

    // Re-subscribing learns the position afresh from the next event.
    hub.subscribe(a.id(), T1).unwrap();
    assert_eq!(hub.deliver_event(T1, 11, event_frame(T1, 11)), 1);
    assert_eq!(next_seq(&mut a).await, (T1, 11));
}

#[tokio::test]
async fn a_full_queue_suspends_notices_too() {
    let hub = hub(1);
    let a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    assert_eq!(hub.deliver_notice(T1, frame("{}")), 1);
    assert_eq!(hub.deliver_notice(T1, frame("{}")), 0);
    assert_eq!(a.take_lagged(), vec![T1]);
    assert_eq!(hub.stats().lagged, 1);
}

#[tokio::test]
async fn unsubscribing_forgets_a_pending_lag_mark() {
    let hub = hub(1);
    let a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.deliver_event(T1, 1, frame("{}"));
    hub.deliver_event(T1, 2, frame("{}"));
    hub.unsubscribe(a.id(), T1);
    assert!(a.take_lagged().is_empty());
    assert!(timeout(QUIET, a.lagged()).await.is_err());
}

#[tokio::test]
async fn stats_count_connections_subscriptions_deliveries_and_lags() {
    let hub = hub(1);
    assert_eq!(hub.stats(), Default::default());
    let a = hub.connect(info(1, 1, None));
    let b = hub.connect(info(2, 2, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.subscribe(a.id(), T1).unwrap(); // re-subscribing does not double count
    hub.subscribe(b.id(), T1).unwrap();
    hub.subscribe(b.id(), T2).unwrap();
    hub.deliver_event(T1, 1, frame("{}")); // 2 delivered
    hub.deliver_event(T1, 2, frame("{}")); // both queues full: 2 lagged
    hub.deliver_event(T2, 1, frame("{}")); // b's queue is full: lagged
    let stats = hub.stats();
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.subscriptions, 3);
    assert_eq!(stats.delivered, 2);
    assert_eq!(stats.lagged, 3);
    drop(b);
    assert_eq!(hub.stats().subscriptions, 1);
    assert_eq!(hub.stats().connections, 1);
    drop(a);
}

#[tokio::test]
async fn next_event_gives_close_before_lag_before_frames() {
    let hub = hub(1);
    let mut a = hub.connect(info(1, 1, None));
    hub.subscribe(a.id(), T1).unwrap();
    hub.deliver_event(T1, 1, event_frame(T1, 1));
    hub.deliver_event(T1, 2, event_frame(T1, 2)); // full: lagged
    match timeout(WAIT, a.next_event()).await.unwrap() {
        ConnectionEvent::Lagged(timelines) => assert_eq!(timelines, vec![T1]),
        other => panic!("expected lag first, got {other:?}"),
    }
    match timeout(WAIT, a.next_event()).await.unwrap() {
        ConnectionEvent::Outbound(Outbound::Event { seq: 1, .. }) => {}
        other => panic!("expected the queued event, got {other:?}"),
    }
    hub.subscribe(a.id(), T1).unwrap();
    hub.deliver_event(T1, 3, event_frame(T1, 3));
    hub.resync_all();
    hub.close(&Selector::All, CloseReason::ServerShutdown);
    for _ in 0..2 {
        match timeout(WAIT, a.next_event()).await.unwrap() {
            ConnectionEvent::Closed(CloseReason::ServerShutdown) => {}
            other => panic!("expected close first, got {other:?}"),
        }
    }
}

/// The connection loop shape from the docs: one `select!` over the queue and
/// both signals, with a separate signals handle.
#[tokio::test]
async fn signals_and_recv_work_in_one_select() {
    let hub = hub(4);
    let mut conn = hub.connect(info(1, 1, None));
    let signals = conn.signals();
    hub.subscribe(conn.id(), T1).unwrap();
    let producer = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for seq in 1..=3 {
                hub.deliver_event(T1, seq, event_frame(T1, seq));
            }
            hub.close(&Selector::Session(SessionId(1)), CloseReason::SessionEnded);
        })
    };
    let mut seen = Vec::new();
    let reason = loop {
        tokio::select! {
            biased;
            reason = signals.closed() => break reason,
            () = signals.lagged() => panic!("no lag expected: {:?}", signals.take_lagged()),
            out = conn.recv() => if let Some(Outbound::Event { seq, .. }) = out { seen.push(seq) },
        }
    };
    producer.await.unwrap();
    assert_eq!(reason, CloseReason::SessionEnded);
    assert!(seen.iter().copied().eq(1..=seen.len() as i64), "{seen:?}");
}

/// The backpressure rule: a client that never reads costs at most its queue,
/// loses only its own stream (which it must resync), and does not slow down or
/// disturb anyone else on the same timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_reads_is_suspended_once_and_others_get_every_event() {
    const CAPACITY: usize = 64;
    const BATCH: i64 = 50;
    const EVENTS: i64 = 100_000;
    let hub = hub(CAPACITY);
    let stalled = hub.connect(info(1, 1, None));
    let mut reader = hub.connect(info(2, 2, None));
    let unrelated = hub.connect(info(3, 3, None));
    hub.subscribe(stalled.id(), T1).unwrap();
    hub.subscribe(reader.id(), T1).unwrap();
    hub.subscribe(unrelated.id(), T2).unwrap();

    // The reader acknowledges each batch, so the producer never outruns it:
    // its queue must not overflow, while the stalled one's must.
    let (batch_done_tx, mut batch_done) = tokio::sync::mpsc::channel::<()>(1);
    let reading = tokio::spawn(async move {
        let mut expected = 1;
        while expected <= EVENTS {
            match reader.recv().await {
                Some(Outbound::Event { timeline, seq, .. }) => {
                    assert_eq!((timeline, seq), (T1, expected), "in order, no gaps");
                    if seq % BATCH == 0 {
                        batch_done_tx.send(()).await.unwrap();
                    }
                    expected += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(reader.take_lagged().is_empty(), "the reader never lagged");
        reader
    });

    for seq in 1..=EVENTS {
        hub.deliver_event(T1, seq, event_frame(T1, seq));
        assert!(stalled.queued() <= CAPACITY);
        if seq % BATCH == 0 {
            timeout(WAIT, batch_done.recv()).await.unwrap().unwrap();
        }
    }
    let mut reader = timeout(WAIT, reading).await.unwrap().unwrap();

    assert_eq!(stalled.queued(), CAPACITY);
    timeout(WAIT, stalled.lagged()).await.unwrap();
    assert_eq!(stalled.take_lagged(), vec![T1]);
    assert!(
        timeout(QUIET, stalled.lagged()).await.is_err(),
        "lagged fires once"
    );
    let stats = hub.stats();
    assert_eq!(stats.lagged, 1);
    assert_eq!(stats.delivered, EVENTS as u64 + CAPACITY as u64);
    assert!(unrelated.take_lagged().is_empty());
    assert_eq!(unrelated.queued(), 0);

    // The stalled client finally reads: exactly the first CAPACITY events, then
    // nothing (suspended), until it re-subscribes.
    let mut stalled = stalled;
    for seq in 1..=CAPACITY as i64 {
        assert_eq!(next_seq(&mut stalled).await, (T1, seq));
    }
    assert_empty(&stalled);
    hub.subscribe(stalled.id(), T1).unwrap();
    hub.deliver_event(T1, EVENTS + 1, event_frame(T1, EVENTS + 1));
    assert_eq!(next_seq(&mut stalled).await, (T1, EVENTS + 1));
    assert_eq!(next_seq(&mut reader).await, (T1, EVENTS + 1));
}

#[tokio::test]
async fn the_in_process_bus_delivers_to_its_hub_synchronously() {
    let hub = hub(8);
    let bus = Bus::in_process(hub.clone());
    let mut a = bus.hub().connect(info(1, 1, Some("0f")));
    hub.subscribe(a.id(), T1).unwrap();
    bus.publish(BusMessage::Event {
        timeline: T1,
        seq: 1,
        frame: event_frame(T1, 1),
    })
    .await
    .unwrap();
    bus.publish(BusMessage::Notice {
        timeline: T1,
        frame: frame("{}"),
    })
    .await
    .unwrap();
    assert_eq!(a.queued(), 2, "delivered before publish returned");
    assert_eq!(next_seq(&mut a).await, (T1, 1));
    assert!(matches!(next(&mut a).await, Outbound::Notice { .. }));
    bus.publish(BusMessage::Close {
        selector: Selector::CertSerial("F".into()),
        reason: CloseReason::CertificateRevoked,
    })
    .await
    .unwrap();
    assert_eq!(
        a.signals().close_reason(),
        Some(CloseReason::CertificateRevoked)
    );
    assert_eq!(bus.stats().published, 3);
    bus.shutdown().await; // a no-op in-process
}

#[test]
fn debug_of_bus_messages_does_not_show_frames() {
    let msg = BusMessage::Event {
        timeline: T1,
        seq: 1,
        frame: frame(r#"{"body":"Tanaka-san fell at 3am"}"#),
    };
    let shown = format!("{msg:?}");
    assert!(!shown.contains("Tanaka"), "{shown}");
}

#[tokio::test]
async fn a_redis_bus_with_a_bad_url_or_no_server_fails_to_start() {
    let err = Bus::redis("not a url", hub(1)).await.unwrap_err();
    assert!(
        matches!(err, kizuna_realtime::BusError::InvalidUrl(_)),
        "{err:?}"
    );
    // Port 1 on loopback: nothing listens there.
    let err = Bus::redis("redis://127.0.0.1:1", hub(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            kizuna_realtime::BusError::Connect(_) | kizuna_realtime::BusError::Timeout
        ),
        "{err:?}"
    );
}
