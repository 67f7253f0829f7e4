//! Kizuna's HTTP edge: an actix-web application behind rustls, serving the
//! REST API (auth, admin), the WebSocket endpoint `/v1/ws`, and health checks.
//! It is thin: it parses requests, calls `kizuna-service`, and maps errors. It
//! never touches the database directly.

pub mod error;
mod extract;
mod routes;
pub mod tls;
pub(crate) mod ws;

pub use error::ApiError;
pub use extract::ConnInfo;

use actix_web::dev::{Extensions, ServerHandle};
use actix_web::{App, HttpServer, web};
use kizuna_service::Service;
use std::any::Any;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// Largest REST request body (JSON), bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Settings of the HTTP edge.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Allowed `Origin` values for the WebSocket upgrade. Requests without an
    /// `Origin` header (native apps) are allowed; browsers always send one.
    pub allowed_origins: Vec<String>,
    /// Seconds between server pings on a WebSocket.
    pub heartbeat_secs: u64,
    /// A WebSocket with no frame from the client for this long is closed.
    pub client_timeout_secs: u64,
    /// Most WebSocket connections per user (all devices).
    pub max_sockets_per_user: usize,
    /// Seconds to let WebSockets close on shutdown before workers stop.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8443)),
            workers: 0,
            allowed_origins: Vec::new(),
            heartbeat_secs: 20,
            client_timeout_secs: 60,
            max_sockets_per_user: 20,
            shutdown_grace_secs: 5,
        }
    }
}

/// What handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) service: Service,
    pub(crate) settings: Arc<ServerSettings>,
    pub(crate) sockets: ws::SocketCounter,
}

/// A bound, not yet running server.
pub struct Application {
    addr: SocketAddr,
    server: actix_web::dev::Server,
}

fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    ext.insert(extract::conn_info(conn));
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Binds the listener (TLS only) and builds the server.
    pub fn build(
        settings: ServerSettings,
        service: Service,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(settings.bind)?;
        let addr = listener.local_addr()?;
        let state = AppState {
            service,
            settings: Arc::new(settings.clone()),
            sockets: ws::SocketCounter::default(),
        };
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_JSON_BYTES)
                        .error_handler(error::json_error),
                )
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .on_connect(on_connect)
        .shutdown_timeout(settings.shutdown_grace_secs)
        .client_request_timeout(Duration::from_secs(10))
        .listen_rustls_0_23(listener, (*tls).clone())?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        Ok(Application {
            addr,
            server: server.run(),
        })
    }

    /// The bound address (with the real port when `:0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
