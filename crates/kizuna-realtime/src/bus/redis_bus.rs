//! The Redis transport: publish through a `ConnectionManager`, receive in one
//! background task that owns a classic pub/sub connection and re-establishes it
//! (with backoff) whenever it ends, then asks the hub to resync everything.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, sleep, timeout};

use super::{BusCounters, BusError, BusMessage, deliver_local, envelope};
use crate::hub::Hub;
use crate::sync::lock;

/// Settings of the Redis bus.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisBusConfig {
    /// `redis://` or `rediss://` URL. May contain a password: never logged, and
    /// `Debug` does not show it.
    pub url: String,
    /// The channel is `"{channel_prefix}:bus:v1"`. Default `kizuna`; nodes of one
    /// deployment must agree, tests use a unique prefix each.
    pub channel_prefix: String,
    /// Limit for connecting, subscribing, publishing and each liveness ping.
    pub timeout: Duration,
    /// How often the idle subscriber connection is pinged, so a half-open TCP
    /// connection is noticed.
    pub ping_interval: Duration,
    /// First delay before retrying a failed reconnect; doubles up to
    /// `reconnect_max_delay`.
    pub reconnect_min_delay: Duration,
    /// Longest delay between reconnect attempts.
    pub reconnect_max_delay: Duration,
}

impl RedisBusConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> RedisBusConfig {
        RedisBusConfig {
            url: url.into(),
            channel_prefix: "kizuna".to_owned(),
            timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(10),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
        }
    }

    /// The same settings on the channel prefix `prefix`.
    pub fn with_channel_prefix(mut self, prefix: impl Into<String>) -> RedisBusConfig {
        self.channel_prefix = prefix.into();
        self
    }

    /// The pub/sub channel name.
    pub fn channel(&self) -> String {
        format!("{}:bus:v1", self.channel_prefix)
    }
}

impl fmt::Debug for RedisBusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBusConfig")
            .field("url", &"<redacted>")
            .field("channel_prefix", &self.channel_prefix)
            .field("timeout", &self.timeout)
            .field("ping_interval", &self.ping_interval)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .finish()
    }
}

/// The publishing side plus control of the subscriber task.
pub(crate) struct RedisTransport {
    /// The bus channel.
    channel: String,
    /// Publishing connection. A `ConnectionManager` reconnects by itself; it is
    /// a cheap multiplexed handle, cloned per publish because commands need
    /// `&mut`.
    publisher: ConnectionManager,
    /// Command timeout for publishing.
    timeout: Duration,
    /// Stop signal for the subscriber task (`true` = stop). A `watch` so the
    /// task sees both an explicit [`RedisTransport::shutdown`] and this sender
    /// being dropped with the last `Bus` clone.
    shutdown_tx: watch::Sender<bool>,
    /// The subscriber task, taken by `shutdown` to wait for its end. A `Mutex`
    /// because `shutdown(&self)` may run from any clone; held only to `take()`.
    task: Mutex<Option<JoinHandle<()>>>,
    /// Shared with the `Bus` and the subscriber task.
    counters: Arc<BusCounters>,
}

impl RedisTransport {
    /// Connects both sides, subscribes, and spawns the subscriber task.
    pub(crate) async fn start(
        config: RedisBusConfig,
        hub: Hub,
        counters: Arc<BusCounters>,
    ) -> Result<RedisTransport, BusError> {
        let client = redis::Client::open(config.url.as_str()).map_err(BusError::InvalidUrl)?;
        let channel = config.channel();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_max_delay(config.reconnect_max_delay)
            // Few quick retries: a publish that cannot get through soon is
            // delivered locally instead (see `publish`), and startup should
            // fail fast on a wrong address.
            .set_number_of_retries(2);
        let publisher = timeout(
            // Bounded even if the manager's own retries would take longer.
            config.timeout.saturating_mul(4),
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_elapsed| BusError::Timeout)?
        .map_err(BusError::Connect)?;
        let subscriber = Subscriber {
            client,
            channel: channel.clone(),
            hub,
            counters: Arc::clone(&counters),
            timeout: config.timeout,
            ping_interval: config.ping_interval,
            reconnect_min_delay: config.reconnect_min_delay,
            reconnect_max_delay: config.reconnect_max_delay.max(config.reconnect_min_delay),
        };
        let connection = subscriber.connect().await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(subscriber.run(connection, shutdown_rx));
        tracing::info!(channel = %channel, "redis bus subscribed");
        Ok(RedisTransport {
            channel,
            publisher,
            timeout: config.timeout,
            shutdown_tx,
            task: Mutex::new(Some(task)),
            counters,
        })
    }

    /// Publishes `msg`; on failure delivers it locally and reports the error.
    pub(crate) async fn publish(&self, hub: &Hub, msg: BusMessage) -> Result<(), BusError> {
        if *self.shutdown_tx.borrow() {
            return Err(BusError::ShutDown);
        }
        let payload = envelope::encode(&msg).map_err(BusError::Encode)?;
        let mut publisher = self.publisher.clone();
        let sent = timeout(
            self.timeout,
            publisher.publish::<_, _, ()>(&self.channel, payload),
        )
        .await;
        let error = match sent {
            Ok(Ok(())) => {
                BusCounters::bump(&self.counters.published);
                return Ok(());
            }
            Ok(Err(error)) => BusError::Publish(error),
            Err(_elapsed) => BusError::Timeout,
        };
        // Other nodes may miss it, but this node's clients need not: deliver
        // here. If Redis did take it after all, the hub drops the duplicate
        // event by its `seq` (a close is idempotent; a notice may repeat).
        BusCounters::bump(&self.counters.publish_errors);
        tracing::warn!(error = %error, "bus publish failed; delivered locally only");
        deliver_local(hub, msg);
        Err(error)
    }

    /// Stops the subscriber task and waits for it.
    pub(crate) async fn shutdown(&self) {
        self.shutdown_tx.send_replace(true);
        let task = lock(&self.task).take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(error = %error, "bus subscriber task failed");
        }
    }
}

/// Everything the subscriber task owns.
struct Subscriber {
    /// To open new pub/sub connections.
    client: redis::Client,
    /// The bus channel.
    channel: String,
    /// Where received messages go.
    hub: Hub,
    /// Shared counters.
    counters: Arc<BusCounters>,
    /// Connect/subscribe/ping timeout.
    timeout: Duration,
    /// Liveness ping interval.
    ping_interval: Duration,
    /// Backoff bounds.
    reconnect_min_delay: Duration,
    reconnect_max_delay: Duration,
}

/// Why [`Subscriber::pump`] returned.
enum PumpEnd {
    /// Asked to stop.
    Shutdown,
    /// The connection is gone or unresponsive.
    Lost(&'static str),
}

/// Resolves when the task should stop: `true` was sent, or every sender is gone.
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // `Err` means the sender was dropped with the last `Bus` clone: stop too.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

impl Subscriber {
    /// Opens a pub/sub connection and subscribes to the channel.
    async fn connect(&self) -> Result<(PubSubSink, PubSubStream), BusError> {
        let mut pubsub = timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_elapsed| BusError::Timeout)?
            .map_err(BusError::Connect)?;
        timeout(self.timeout, pubsub.subscribe(&self.channel))
            .await
            .map_err(|_elapsed| BusError::Timeout)?
            .map_err(BusError::Connect)?;
        Ok(pubsub.split())
    }

    /// The task body: pump messages; when the connection is lost, reconnect
    /// and resync; until asked to stop.
    async fn run(
        self,
        mut connection: (PubSubSink, PubSubStream),
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (sink, stream) = &mut connection;
            match self.pump(sink, stream, &mut shutdown).await {
                PumpEnd::Shutdown => break,
                PumpEnd::Lost(cause) => {
                    tracing::warn!(cause, channel = %self.channel, "redis bus subscription lost; reconnecting");
                }
            }
            match self.reconnect(&mut shutdown).await {
                Some(fresh) => {
                    connection = fresh;
                    BusCounters::bump(&self.counters.reconnects);
                    // Subscribed again: anything published while we were away
                    // is lost to this node, so every client must catch up from
                    // the store. Done only now, so nothing published after the
                    // resync can be missed.
                    let suspended = self.hub.resync_all();
                    tracing::info!(channel = %self.channel, suspended, "redis bus resubscribed");
                }
                None => break,
            }
        }
        tracing::debug!(channel = %self.channel, "redis bus subscriber stopped");
    }

    /// Delivers messages until the connection ends, stops answering pings, or
    /// a stop is requested.
    async fn pump(
        &self,
        sink: &mut PubSubSink,
        stream: &mut PubSubStream,
        shutdown: &mut watch::Receiver<bool>,
    ) -> PumpEnd {
        let mut ping =
            tokio::time::interval_at(Instant::now() + self.ping_interval, self.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop_requested(shutdown) => return PumpEnd::Shutdown,
                msg = stream.next() => match msg {
                    Some(msg) => self.handle(msg.get_payload_bytes()),
                    // The driver task ended: the connection dropped.
                    None => return PumpEnd::Lost("stream ended"),
                },
                _ = ping.tick() => {
                    match timeout(self.timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_pong)) => {}
                        Ok(Err(_error)) => return PumpEnd::Lost("ping failed"),
                        Err(_elapsed) => return PumpEnd::Lost("ping timed out"),
                    }
                }
            }
        }
    }

    /// Decodes one received payload and hands it to the hub.
    fn handle(&self, payload: &[u8]) {
        match envelope::decode(payload) {
            Ok(msg) => {
                BusCounters::bump(&self.counters.received);
                deliver_local(&self.hub, msg);
            }
            Err(error) => {
                // The error names a position, never the content.
                BusCounters::bump(&self.counters.decode_errors);
                tracing::warn!(error = %error, len = payload.len(), "undecodable bus message skipped");
            }
        }
    }

    /// Reconnects with exponential backoff. `None` if asked to stop first.
    async fn reconnect(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(PubSubSink, PubSubStream)> {
        let mut delay = self.reconnect_min_delay;
        loop {
            tokio::select! {
                biased;
                () = stop_requested(shutdown) => return None,
                result = self.connect() => match result {
                    Ok(connection) => return Some(connection),
                    Err(error) => {
                        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "redis bus reconnect failed");
                    }
                },
            }
            tokio::select! {
                biased;
                () = stop_requested(shutdown) => return None,
                () = sleep(delay) => {}
            }
            delay = delay.saturating_mul(2).min(self.reconnect_max_delay);
        }
    }
}
