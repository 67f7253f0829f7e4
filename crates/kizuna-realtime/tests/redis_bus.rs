//! The Redis bus against a real Redis at `KIZUNA_TEST_REDIS_URL`.
//!
//! Each test plays two nodes: two `Bus`es, each with its own `Hub`, on a channel
//! prefix unique to the test. Without `KIZUNA_TEST_REDIS_URL` the tests print a
//! skip notice, except under `CI=true`, where they fail.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kizuna_domain::{SessionId, TimelineId, UserId};
use kizuna_realtime::{
    Bus, BusError, BusMessage, CloseReason, Connection, ConnectionInfo, Hub, HubConfig, Outbound,
    RedisBusConfig, Selector, SharedFrame,
};
use tokio::time::{sleep, timeout};

/// Generous bound for things that should happen (never a performance claim).
const WAIT: Duration = Duration::from_secs(10);

const T1: TimelineId = TimelineId(1);
const T2: TimelineId = TimelineId(2);

/// The Redis URL, or `None` (after a notice) when the tests should be skipped.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("KIZUNA_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "KIZUNA_TEST_REDIS_URL must be set when CI=true (the Redis tests never skip in CI)"
            )
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: set KIZUNA_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379) to run it"
            );
            None
        }
    }
}

/// A channel prefix no other test (or test run) uses.
fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "kizuna-test:{test}:{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn config(url: &str, prefix: &str) -> RedisBusConfig {
    let mut config = RedisBusConfig::new(url).with_channel_prefix(prefix);
    // Ping often, so the liveness check runs during the tests too.
    config.ping_interval = Duration::from_millis(100);
    config.reconnect_min_delay = Duration::from_millis(20);
    config.reconnect_max_delay = Duration::from_millis(500);
    config
}

/// Two nodes on one channel.
async fn two_nodes(url: &str, test: &str) -> (Bus, Bus) {
    let prefix = unique_prefix(test);
    let a = Bus::redis_with_config(config(url, &prefix), new_hub())
        .await
        .expect("node A connects");
    let b = Bus::redis_with_config(config(url, &prefix), new_hub())
        .await
        .expect("node B connects");
    (a, b)
}

fn new_hub() -> Hub {
    Hub::new(HubConfig {
        queue_capacity: 1024,
    })
}

fn info(user: i64, session: i64, serial: Option<&str>) -> ConnectionInfo {
    ConnectionInfo {
        user_id: UserId(user),
        session_id: SessionId(session),
        cert_serial: serial.map(str::to_owned),
    }
}

fn event_frame(timeline: TimelineId, seq: i64) -> SharedFrame {
    Arc::from(format!(
        r#"{{"type":"event","timeline":{},"seq":{seq},"body":"改行\n\"q\""}}"#,
        timeline.get()
    ))
}

fn event(timeline: TimelineId, seq: i64) -> BusMessage {
    BusMessage::Event {
        timeline,
        seq,
        frame: event_frame(timeline, seq),
    }
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

/// A plain connection for inspecting and poking the server.
async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Ids of the server's pub/sub clients.
async fn pubsub_client_ids(admin: &mut redis::aio::MultiplexedConnection) -> HashSet<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(admin)
        .await
        .unwrap();
    list.lines()
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(|id| id.parse().unwrap())
        .collect()
}

/// Starts a node and finds the id Redis gave its subscriber connection: the one
/// pub/sub client that appeared while the node started (ids are never reused).
/// If other clients (other tests, other processes) appeared in the same moment,
/// it starts a fresh node and looks again, so it never picks someone else's.
async fn node_and_subscriber_id(
    url: &str,
    prefix: &str,
    admin: &mut redis::aio::MultiplexedConnection,
) -> (Bus, u64) {
    for _attempt in 0..50 {
        let before = pubsub_client_ids(admin).await;
        let node = Bus::redis_with_config(config(url, prefix), new_hub())
            .await
            .unwrap();
        let appeared: Vec<u64> = pubsub_client_ids(admin)
            .await
            .difference(&before)
            .copied()
            .collect();
        if let [id] = appeared[..] {
            return (node, id);
        }
        node.shutdown().await;
    }
    panic!("could not tell this node's pub/sub connection from others'");
}

/// Resolves once Redis no longer lists the client `id`.
async fn client_gone(admin: &mut redis::aio::MultiplexedConnection, id: u64) {
    while pubsub_client_ids(admin).await.contains(&id) {
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_event_published_on_one_node_reaches_subscribers_on_every_node_in_order() {
    let Some(url) =
        redis_url("an_event_published_on_one_node_reaches_subscribers_on_every_node_in_order")
    else {
        return;
    };
    let (a, b) = two_nodes(&url, "order").await;
    let mut on_b = b.hub().connect(info(1, 1, None));
    let mut on_a = a.hub().connect(info(2, 2, None));
    let mut other_timeline = b.hub().connect(info(3, 3, None));
    b.hub().subscribe(on_b.id(), T1).unwrap();
    a.hub().subscribe(on_a.id(), T1).unwrap();
    b.hub().subscribe(other_timeline.id(), T2).unwrap();

    for seq in 1..=200 {
        a.publish(event(T1, seq)).await.unwrap();
    }
    a.publish(BusMessage::Notice {
        timeline: T1,
        frame: Arc::from(r#"{"type":"ack"}"#),
    })
    .await
    .unwrap();
    b.publish(event(T2, 1)).await.unwrap();

    for seq in 1..=200 {
        let (timeline, got) = next_seq(&mut on_b).await;
        assert_eq!((timeline, got), (T1, seq));
        assert_eq!(
            next_seq(&mut on_a).await,
            (T1, seq),
            "the publisher's node too"
        );
    }
    match next(&mut on_b).await {
        Outbound::Notice { timeline, frame } => {
            assert_eq!(timeline, T1);
            assert_eq!(&*frame, r#"{"type":"ack"}"#);
        }
        other => panic!("expected the notice, got {other:?}"),
    }
    match next(&mut other_timeline).await {
        Outbound::Event {
            timeline,
            seq,
            frame,
        } => {
            assert_eq!((timeline, seq), (T2, 1));
            assert_eq!(frame, event_frame(T2, 1), "the frame arrives byte for byte");
        }
        other => panic!("expected an event, got {other:?}"),
    }
    assert!(on_b.take_lagged().is_empty());
    // Let several liveness pings (every 100 ms here) run on the idle
    // subscriber connections: answered pings cause no reconnect.
    sleep(Duration::from_millis(350)).await;
    a.publish(event(T1, 201)).await.unwrap();
    assert_eq!(next_seq(&mut on_b).await, (T1, 201));
    assert!(on_b.take_lagged().is_empty());
    assert_eq!((a.stats().reconnects, b.stats().reconnects), (0, 0));
    assert_eq!(a.stats().published, 202);
    assert_eq!(b.stats().decode_errors, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn close_selectors_reach_connections_on_other_nodes() {
    let Some(url) = redis_url("close_selectors_reach_connections_on_other_nodes") else {
        return;
    };
    let (a, b) = two_nodes(&url, "close").await;
    let hub = b.hub();
    let by_user = hub.connect(info(10, 100, None));
    let by_session = hub.connect(info(11, 110, None));
    let by_serial = hub.connect(info(12, 120, Some("00:0a:bc")));
    let mut bystander = hub.connect(info(13, 130, Some("0abd")));
    hub.subscribe(bystander.id(), T1).unwrap();
    let steps = [
        (
            Selector::User(UserId(10)),
            CloseReason::AccountDisabled,
            &by_user,
        ),
        (
            Selector::Session(SessionId(110)),
            CloseReason::SessionEnded,
            &by_session,
        ),
        (
            Selector::CertSerial("ABC".into()),
            CloseReason::CertificateRevoked,
            &by_serial,
        ),
    ];

    for (step, (selector, reason, target)) in steps.iter().enumerate() {
        a.publish(BusMessage::Close {
            selector: selector.clone(),
            reason: *reason,
        })
        .await
        .unwrap();
        assert_eq!(timeout(WAIT, target.closed()).await.unwrap(), *reason);
        // Messages on the channel are ordered: once a later marker event
        // reached the bystander, the close has been fully handled, so the
        // connections it did not select must still be open.
        let marker = step as i64 + 1;
        a.publish(event(T1, marker)).await.unwrap();
        assert_eq!(next_seq(&mut bystander).await, (T1, marker));
        assert_eq!(bystander.signals().close_reason(), None);
        for (_, _, later) in &steps[step + 1..] {
            assert_eq!(later.signals().close_reason(), None, "step {step}");
        }
    }

    a.publish(BusMessage::Close {
        selector: Selector::All,
        reason: CloseReason::ServerShutdown,
    })
    .await
    .unwrap();
    assert_eq!(
        timeout(WAIT, bystander.closed()).await.unwrap(),
        CloseReason::ServerShutdown
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_killed_subscriber_reconnects_resubscribes_and_marks_subscriptions_lagged() {
    let Some(url) =
        redis_url("a_killed_subscriber_reconnects_resubscribes_and_marks_subscriptions_lagged")
    else {
        return;
    };
    let mut admin = admin(&url).await;
    let prefix = unique_prefix("kill");
    let a = Bus::redis_with_config(config(&url, &prefix), new_hub())
        .await
        .unwrap();
    let (b, b_subscriber) = node_and_subscriber_id(&url, &prefix, &mut admin).await;

    let mut conn = b.hub().connect(info(1, 1, None));
    b.hub().subscribe(conn.id(), T1).unwrap();
    b.hub().subscribe(conn.id(), T2).unwrap();
    a.publish(event(T1, 1)).await.unwrap();
    assert_eq!(next_seq(&mut conn).await, (T1, 1));

    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .arg("ID")
        .arg(b_subscriber)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);

    // The subscriber notices, reconnects, resubscribes, then resyncs.
    timeout(WAIT, conn.lagged())
        .await
        .expect("subscriptions are marked lagged after the reconnect");
    assert_eq!(conn.take_lagged(), vec![T1, T2]);
    assert_eq!(b.stats().reconnects, 1);
    assert!(!pubsub_client_ids(&mut admin).await.contains(&b_subscriber));

    // Suspended until the client re-subscribes; then live again across nodes.
    a.publish(event(T2, 1)).await.unwrap();
    b.hub().subscribe(conn.id(), T1).unwrap();
    a.publish(event(T1, 2)).await.unwrap();
    assert_eq!(next_seq(&mut conn).await, (T1, 2));
    assert_eq!(conn.queued(), 0, "nothing arrived for the suspended T2");
    assert_eq!(a.stats().reconnects, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn undecodable_messages_are_skipped_and_counted() {
    let Some(url) = redis_url("undecodable_messages_are_skipped_and_counted") else {
        return;
    };
    let prefix = unique_prefix("garbage");
    let node = Bus::redis_with_config(config(&url, &prefix), new_hub())
        .await
        .unwrap();
    let mut conn = node.hub().connect(info(1, 1, None));
    node.hub().subscribe(conn.id(), T1).unwrap();
    let mut admin = admin(&url).await;
    let channel = config(&url, &prefix).channel();
    let _receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("not a bus message")
        .query_async(&mut admin)
        .await
        .unwrap();
    node.publish(event(T1, 1)).await.unwrap();
    assert_eq!(next_seq(&mut conn).await, (T1, 1));
    assert_eq!(node.stats().decode_errors, 1);
    assert_eq!(node.stats().received, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_the_subscriber_and_refuses_further_publishes() {
    let Some(url) = redis_url("shutdown_ends_the_subscriber_and_refuses_further_publishes") else {
        return;
    };
    let mut admin = admin(&url).await;
    let (node, subscriber) =
        node_and_subscriber_id(&url, &unique_prefix("shutdown"), &mut admin).await;
    let clone = node.clone();
    node.shutdown().await;
    node.shutdown().await; // idempotent
    assert!(matches!(
        clone.publish(event(T1, 1)).await,
        Err(BusError::ShutDown)
    ));
    // The task has ended, so its connection is closed.
    timeout(WAIT, client_gone(&mut admin, subscriber))
        .await
        .expect("the subscriber connection is closed");
}

#[tokio::test]
async fn dropping_every_clone_ends_the_subscriber() {
    let Some(url) = redis_url("dropping_every_clone_ends_the_subscriber") else {
        return;
    };
    let mut admin = admin(&url).await;
    let (node, subscriber) = node_and_subscriber_id(&url, &unique_prefix("drop"), &mut admin).await;
    let clone = node.clone();
    drop(node);
    drop(clone);
    timeout(WAIT, client_gone(&mut admin, subscriber))
        .await
        .expect("the subscriber connection is closed");
}
