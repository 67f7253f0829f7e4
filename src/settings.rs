//! Configuration in two phases: raw values layered from defaults, an optional
//! TOML file and `KIZUNA__SECTION__KEY` environment variables, then validated
//! into the settings each crate takes.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything configurable. Defaults give the embedded single-node setup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite file, dev CA, keys and attachments live.
    pub data_dir: PathBuf,
    /// Database.
    pub database: DatabaseSettings,
    /// HTTP edge.
    pub server: ServerSection,
    /// TLS.
    pub tls: TlsSection,
    /// Tokens.
    pub tokens: TokenSection,
    /// Fan-out.
    pub realtime: RealtimeSection,
    /// The certificate authority.
    pub ca: CaSection,
    /// Login protection.
    pub auth: AuthSection,
}

/// `[ca]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// CA directory; empty = `<data_dir>/ca`. Key passphrase: the environment
    /// variable `KIZUNA_CA_PASSPHRASE`.
    pub dir: String,
    /// Host named in client certificates' SAN URI (`https://<host>/users/<id>`).
    pub service_host: String,
    /// How often each node polls the database for revocations made elsewhere
    /// (the CLI, other nodes), milliseconds.
    pub revocation_poll_ms: u64,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Login attempts per login name per minute.
    pub attempts_per_login_per_minute: u32,
    /// Login attempts per client address per minute.
    pub attempts_per_address_per_minute: u32,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…`, `sqlite://PATH`; empty = `sqlite://<data_dir>/kizuna.db`.
    pub url: String,
    /// Pool size.
    pub pool_size: u32,
    /// SQLite durability: `full` (survives power loss) or `normal`.
    pub sqlite_sync: kizuna_store::SqliteSync,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Listen address.
    pub bind: SocketAddr,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Allowed `Origin` values for WebSocket upgrades.
    pub allowed_origins: Vec<String>,
    /// Seconds between server pings.
    pub heartbeat_secs: u64,
    /// Seconds of silence before a socket is closed.
    pub client_timeout_secs: u64,
    /// Open WebSockets allowed per user.
    pub max_sockets_per_user: usize,
    /// Seconds given to sockets to close on shutdown.
    pub shutdown_grace_secs: u64,
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain file; empty = development certificate from the
    /// CA in `<data_dir>/ca`.
    pub cert_chain: String,
    /// PEM private key file (with `cert_chain`).
    pub private_key: String,
    /// DNS names of the development certificate.
    pub dev_hostnames: Vec<String>,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Access token lifetime, seconds (at most 900).
    pub access_ttl_secs: u64,
    /// Session (refresh) lifetime, seconds.
    pub refresh_ttl_secs: u64,
    /// Clock-skew leeway, seconds (at most 30).
    pub leeway_secs: u64,
    /// Signing key directory; empty = `<data_dir>/keys`.
    pub key_dir: String,
}

/// `[realtime]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeSection {
    /// Frames queued per connection before it must resync.
    pub queue_capacity: usize,
    /// `redis://…` to fan out between several nodes; empty = in-process.
    pub redis_url: String,
    /// Redis channel prefix.
    pub redis_channel_prefix: String,
}

const DEFAULTS: &str = r#"
data_dir = "kizuna-data"

[database]
url = ""
pool_size = 8
sqlite_sync = "full"

[server]
bind = "127.0.0.1:8443"
workers = 0
allowed_origins = []
heartbeat_secs = 20
client_timeout_secs = 60
max_sockets_per_user = 20
shutdown_grace_secs = 5

[tls]
cert_chain = ""
private_key = ""
dev_hostnames = ["localhost"]

[tokens]
issuer = "kizuna"
audience = "kizuna-api"
access_ttl_secs = 600
refresh_ttl_secs = 2592000
leeway_secs = 5
key_dir = ""

[realtime]
queue_capacity = 256
redis_url = ""
redis_channel_prefix = "kizuna"

[ca]
dir = ""
service_host = "localhost"
revocation_poll_ms = 1000

[auth]
attempts_per_login_per_minute = 10
attempts_per_address_per_minute = 60
"#;

impl Settings {
    /// Loads defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(f) = file {
            builder = builder.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("KIZUNA")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("server.allowed_origins")
                .with_list_parse_key("tls.dev_hostnames")
                .try_parsing(true),
        );
        let settings: Settings = builder
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("configuration has an invalid value")?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<()> {
        if self.tokens.access_ttl_secs == 0 || self.tokens.access_ttl_secs > 900 {
            bail!("tokens.access_ttl_secs must be 1 to 900");
        }
        if self.tokens.leeway_secs > 30 {
            bail!("tokens.leeway_secs must be at most 30");
        }
        if self.ca.revocation_poll_ms < 100 {
            bail!("ca.revocation_poll_ms must be at least 100");
        }
        if self.realtime.queue_capacity < 16 {
            bail!("realtime.queue_capacity must be at least 16");
        }
        if self.tls.cert_chain.is_empty() != self.tls.private_key.is_empty() {
            bail!("tls.cert_chain and tls.private_key go together");
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("kizuna.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The signing key directory in force.
    pub fn key_dir(&self) -> PathBuf {
        if self.tokens.key_dir.is_empty() {
            self.data_dir.join("keys")
        } else {
            PathBuf::from(&self.tokens.key_dir)
        }
    }

    /// The CA directory.
    pub fn ca_dir(&self) -> PathBuf {
        if self.ca.dir.is_empty() {
            self.data_dir.join("ca")
        } else {
            PathBuf::from(&self.ca.dir)
        }
    }

    /// Whether this is the embedded development setup (no TLS configured).
    pub fn is_dev(&self) -> bool {
        self.tls.cert_chain.is_empty()
    }

    /// Store options.
    pub fn store_options(&self) -> kizuna_store::StoreOptions {
        kizuna_store::StoreOptions {
            url: self.database_url(),
            pool_size: self.database.pool_size,
            sqlite_sync: self.database.sqlite_sync,
        }
    }

    /// Token settings.
    pub fn token_settings(&self) -> kizuna_service::auth::tokens::TokenSettings {
        kizuna_service::auth::tokens::TokenSettings {
            issuer: self.tokens.issuer.clone(),
            audience: self.tokens.audience.clone(),
            access_ttl_secs: self.tokens.access_ttl_secs,
            leeway_secs: self.tokens.leeway_secs,
        }
    }

    /// Server settings.
    pub fn server_settings(&self) -> kizuna_server::ServerSettings {
        kizuna_server::ServerSettings {
            bind: self.server.bind,
            workers: self.server.workers,
            allowed_origins: self.server.allowed_origins.clone(),
            heartbeat_secs: self.server.heartbeat_secs,
            client_timeout_secs: self.server.client_timeout_secs,
            max_sockets_per_user: self.server.max_sockets_per_user,
            shutdown_grace_secs: self.server.shutdown_grace_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let s = Settings::load(None).unwrap();
        assert!(s.database_url().starts_with("sqlite://"));
        assert_eq!(s.server.bind.ip().to_string(), "127.0.0.1");
        assert_eq!(s.tokens.access_ttl_secs, 600);
    }

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k.toml");
        std::fs::write(&f, "[database]\nurl = \"postgres://h/db\"\n").unwrap();
        assert_eq!(
            Settings::load(Some(&f)).unwrap().database_url(),
            "postgres://h/db"
        );
        std::fs::write(&f, "[database]\nurll = \"x\"\n").unwrap();
        assert!(Settings::load(Some(&f)).is_err());
        std::fs::write(&f, "[tokens]\naccess_ttl_secs = 86400\n").unwrap();
        assert!(
            Settings::load(Some(&f)).is_err(),
            "long-lived access tokens are refused"
        );
    }
}
