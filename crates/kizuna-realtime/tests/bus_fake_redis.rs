//! Failure paths of the Redis bus that a shared real Redis cannot be made to
//! show without disturbing everyone else using it, against a minimal RESP
//! server: a subscriber connection that stops answering pings (a stand-in for a
//! half-open TCP connection) and a PUBLISH that fails. Runs without Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kizuna_domain::{SessionId, TimelineId, UserId};
use kizuna_realtime::{
    Bus, BusError, BusMessage, CloseReason, ConnectionInfo, Hub, HubConfig, Outbound,
    RedisBusConfig, Selector,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

/// Reads one RESP command (an array of bulk strings); `None` at end of stream.
async fn read_command(reader: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        reader.read_line(&mut line).await.ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut data = vec![0; len + 2];
        reader.read_exact(&mut data).await.ok()?;
        data.truncate(len);
        parts.push(String::from_utf8(data).ok()?);
    }
    Some(parts)
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// Serves one client: OK to everything, a proper confirmation to SUBSCRIBE,
/// an error to PUBLISH, and pongs — except that the first connection to
/// subscribe (of the whole server) never gets a pong.
async fn serve(socket: TcpStream, blackholed_one: Arc<AtomicBool>) {
    let mut reader = BufReader::new(socket);
    let mut swallow_pings = false;
    while let Some(command) = read_command(&mut reader).await {
        let reply = match command[0].to_ascii_uppercase().as_str() {
            "SUBSCRIBE" => {
                swallow_pings = !blackholed_one.swap(true, Ordering::SeqCst);
                format!("*3\r\n{}{}:1\r\n", bulk("subscribe"), bulk(&command[1]))
            }
            "PING" if swallow_pings => continue,
            "PING" => format!("*2\r\n{}{}", bulk("pong"), bulk("")),
            "PUBLISH" => "-ERR simulated failure\r\n".to_owned(),
            _ => "+OK\r\n".to_owned(),
        };
        if reader.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Starts the fake server; returns its URL and the accept loop to abort.
async fn fake_redis() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let blackholed_one = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(socket, Arc::clone(&blackholed_one)));
        }
    });
    (format!("redis://{address}"), server)
}

fn connection_info() -> ConnectionInfo {
    ConnectionInfo {
        user_id: UserId(1),
        session_id: SessionId(1),
        cert_serial: None,
    }
}

#[tokio::test]
async fn a_subscriber_connection_that_stops_answering_pings_is_replaced_and_resyncs() {
    let (url, server) = fake_redis().await;
    let mut config = RedisBusConfig::new(url).with_channel_prefix("liveness");
    config.ping_interval = Duration::from_millis(50);
    config.timeout = Duration::from_millis(200);
    config.reconnect_min_delay = Duration::from_millis(10);
    let hub = Hub::new(HubConfig { queue_capacity: 8 });
    let bus = Bus::redis_with_config(config, hub.clone()).await.unwrap();
    let conn = hub.connect(connection_info());
    hub.subscribe(conn.id(), TimelineId(5)).unwrap();

    timeout(WAIT, conn.lagged())
        .await
        .expect("the silent connection is replaced, then everything resyncs");
    assert_eq!(conn.take_lagged(), vec![TimelineId(5)]);
    assert_eq!(bus.stats().reconnects, 1);
    bus.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn a_failed_publish_still_reaches_this_nodes_clients() {
    let (url, server) = fake_redis().await;
    let hub = Hub::new(HubConfig { queue_capacity: 8 });
    let bus = Bus::redis_with_config(RedisBusConfig::new(url), hub.clone())
        .await
        .unwrap();
    let mut conn = hub.connect(connection_info());
    hub.subscribe(conn.id(), TimelineId(5)).unwrap();

    let result = bus
        .publish(BusMessage::Event {
            timeline: TimelineId(5),
            seq: 1,
            frame: Arc::from("{}"),
        })
        .await;
    assert!(matches!(result, Err(BusError::Publish(_))), "{result:?}");
    match timeout(WAIT, conn.recv()).await.unwrap() {
        Some(Outbound::Event { seq: 1, .. }) => {}
        other => panic!("expected the event locally, got {other:?}"),
    }

    let result = bus
        .publish(BusMessage::Close {
            selector: Selector::User(UserId(1)),
            reason: CloseReason::AccountDisabled,
        })
        .await;
    assert!(matches!(result, Err(BusError::Publish(_))), "{result:?}");
    assert_eq!(
        timeout(WAIT, conn.closed()).await.unwrap(),
        CloseReason::AccountDisabled
    );
    assert_eq!(bus.stats().publish_errors, 2);
    assert_eq!(bus.stats().published, 0);
    bus.shutdown().await;
    server.abort();
}
