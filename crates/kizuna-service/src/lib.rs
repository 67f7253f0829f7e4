//! Kizuna's use cases, shared by REST, WebSocket and CLI: transactions,
//! authorization (always through `kizuna_domain::access::decide`), audit, tokens
//! and publish-after-commit. No actix here.
//!
//! Store calls are synchronous diesel; [`Service::blocking`] runs them on
//! tokio's blocking pool so async callers never stall a runtime thread.

pub mod admin;
mod audit;
pub mod auth;
pub mod communities;
pub mod error;
pub mod invitations;
pub mod pki;
pub mod timeline;

pub use auth::{Caller, LoginRequest, PeerIdentity, Principal, RequestContext, Tokens};
pub use error::{ServiceError, ServiceResult};

use kizuna_realtime::{Bus, BusMessage, Hub, Selector};
use kizuna_store::{DbConn, Store};
use std::sync::Arc;

/// Settings of the use-case layer.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Refresh token (session) lifetime, seconds; each refresh extends it.
    pub refresh_ttl_secs: u64,
    /// Login attempts allowed per login name per minute (burst).
    pub login_attempts_per_login: u32,
    /// Login attempts allowed per client address per minute (burst).
    pub login_attempts_per_address: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            refresh_ttl_secs: 30 * 24 * 3600,
            login_attempts_per_login: 10,
            login_attempts_per_address: 60,
        }
    }
}

/// The use-case layer. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    bus: Bus,
    tokens: auth::tokens::TokenKeys,
    config: ServiceConfig,
    /// The certificate authority, when client certificates are enabled.
    pki: Option<pki::Pki>,
    /// Login attempts per login name and per client address.
    limits: auth::LoginLimits,
    /// Appends to one timeline are serialized by the database anyway; holding
    /// one of these (chosen by timeline id) from before the append until
    /// after the publish also makes this node publish each timeline's events
    /// in `seq` order, so subscribers rarely need to fill a gap from the
    /// store. Striped (a fixed number) to bound memory; async because they
    /// are held across the store call and the publish.
    publish_order: Vec<tokio::sync::Mutex<()>>,
    /// This node's group committer for posts (`timeline/commit.rs`), started
    /// by the first post. The task holds only a weak reference to this
    /// `Inner`; dropping the service drops this sender and ends the task.
    committer: std::sync::OnceLock<tokio::sync::mpsc::Sender<timeline::PostJob>>,
}

/// Number of publish-order stripes.
const PUBLISH_STRIPES: usize = 256;

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.inner.store)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Assembles the service.
    pub fn new(
        store: Store,
        bus: Bus,
        tokens: auth::tokens::TokenKeys,
        config: ServiceConfig,
        pki: Option<pki::Pki>,
    ) -> Service {
        let limits = auth::LoginLimits::new(
            config.login_attempts_per_login,
            config.login_attempts_per_address,
        );
        Service {
            inner: Arc::new(Inner {
                store,
                bus,
                tokens,
                config,
                pki,
                limits,
                publish_order: (0..PUBLISH_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                committer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The local fan-out hub (WebSocket connections register here).
    pub fn hub(&self) -> &Hub {
        self.inner.bus.hub()
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    /// The store (for health checks and the CLI).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Token keys and settings.
    pub fn tokens(&self) -> &auth::tokens::TokenKeys {
        &self.inner.tokens
    }

    /// Runs store work on the blocking pool with a pooled connection.
    pub async fn blocking<T, F>(&self, f: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> ServiceResult<T> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.conn()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> ServiceResult<()> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.ping())
            .await
            .map_err(|e| ServiceError::Internal(format!("blocking task failed: {e}")))?
            .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// The sender to this node's post committer, started on first use
    /// (from within the runtime: the first post).
    pub(crate) fn committer(&self) -> tokio::sync::mpsc::Sender<timeline::PostJob> {
        self.inner
            .committer
            .get_or_init(|| {
                let (tx, rx) = tokio::sync::mpsc::channel(timeline::COMMIT_QUEUE);
                tokio::spawn(timeline::run_committer(Arc::downgrade(&self.inner), rx));
                tx
            })
            .clone()
    }

    /// The publish-order lock of a timeline (see `Inner::publish_order`).
    pub(crate) fn publish_lock(
        &self,
        timeline: kizuna_domain::TimelineId,
    ) -> &tokio::sync::Mutex<()> {
        let i = usize::try_from(timeline.get().rem_euclid(PUBLISH_STRIPES as i64)).unwrap_or(0);
        &self.inner.publish_order[i]
    }

    /// Tells every node to close matching live connections.
    pub(crate) async fn close_connections(
        &self,
        selector: Selector,
        reason: kizuna_realtime::CloseReason,
    ) {
        if let Err(e) = self
            .inner
            .bus
            .publish(BusMessage::Close { selector, reason })
            .await
        {
            // The session rows are already revoked; sockets that stay open are
            // refused on their next command. Still an operator-visible problem.
            tracing::error!(error = %e, "could not publish a close message on the bus");
        }
    }
}
