//! `kizuna serve`.

use crate::settings::Settings;
use anyhow::{Context, Result};
use kizuna_realtime::{Bus, CloseReason, Hub, HubConfig, RedisBusConfig, Selector};
use kizuna_server::tls::{ClientTrust, ReloadableVerifier};
use kizuna_service::auth::tokens::TokenKeys;
use kizuna_service::pki::Pki;
use kizuna_service::{Service, ServiceConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Flags of `kizuna serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen address (overrides `server.bind`); port 0 picks a free port.
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the bound address (`host:port`) to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

/// Validity of the development server certificate, days.
const DEV_CERT_DAYS: u32 = 90;

/// How `build_service` treats the certificate authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaMode {
    /// `serve` without TLS configuration: create a development CA if none.
    Dev,
    /// `serve` in production: the CA must exist (`kizuna ca init`).
    Required,
    /// Command-line tools that never issue: no CA (so no passphrase needed).
    None,
}

/// Re-signs the root CRL when it expires within 30 days (`force`: now).
/// Needs the root key; where it is kept offline, says loudly what to do.
/// Returns whether a new root CRL was written.
pub fn renew_root_crl(settings: &Settings, force: bool) -> Result<bool> {
    let dir = kizuna_ca::CaDirectory::new(settings.ca_dir());
    let current = dir.read_root_crl().context("reading the root CRL")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let due = current.next_update_unix() - 30 * 86_400;
    if !force && now < due {
        return Ok(false);
    }
    if !dir.root_key_path().exists() {
        tracing::error!(
            next_update = current.next_update_unix(),
            "the root CRL expires soon and the root key is offline: bring it online and run `kizuna ca root-crl`, or every client-certificate handshake will fail once it expires"
        );
        return Ok(false);
    }
    let root = dir
        .load_root(ca_passphrase().as_deref())
        .context("loading the root CA")?;
    let next = root
        .root_crl(
            &[],
            current.crl_number() + 1,
            kizuna_ca::ROOT_CRL_NEXT_UPDATE_SECONDS,
        )
        .context("signing the root CRL")?;
    dir.write_root_crl(&next).context("writing the root CRL")?;
    tracing::warn!(
        next_update = next.next_update_unix(),
        "re-signed the root CRL"
    );
    Ok(true)
}

fn ca_passphrase() -> Option<String> {
    std::env::var(kizuna_ca::PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
}

fn load_ca(settings: &Settings, mode: CaMode) -> Result<Option<kizuna_ca::CertificateAuthority>> {
    let dir = settings.ca_dir();
    match mode {
        CaMode::Dev => {
            let (ca, created) = kizuna_ca::load_or_init_dev(&dir).context("development CA")?;
            if created {
                tracing::warn!(dir = %dir.display(), "created a DEVELOPMENT certificate authority; clients must trust root.pem in it");
            }
            Ok(Some(ca))
        }
        CaMode::Required => Ok(Some(
            kizuna_ca::load(&dir, ca_passphrase().as_deref()).with_context(|| {
                format!(
                    "loading the CA from {} (create it once with `kizuna ca init`)",
                    dir.display()
                )
            })?,
        )),
        CaMode::None => Ok(None),
    }
}

/// Builds the shared service from settings (also used by `kizuna admin` and
/// `kizuna ca`).
pub async fn build_service(settings: &Settings, mode: CaMode) -> Result<Service> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let opts = settings.store_options();
    let store = tokio::task::spawn_blocking(move || kizuna_store::Store::open(&opts))
        .await?
        .context("opening the database")?;
    let hub = Hub::new(HubConfig {
        queue_capacity: settings.realtime.queue_capacity,
    });
    let bus = if settings.realtime.redis_url.is_empty() {
        Bus::in_process(hub)
    } else {
        let config = RedisBusConfig::new(settings.realtime.redis_url.clone())
            .with_channel_prefix(settings.realtime.redis_channel_prefix.clone());
        Bus::redis_with_config(config, hub)
            .await
            .context("connecting to Redis")?
    };
    let (tokens, created) =
        TokenKeys::load_or_create(&settings.key_dir(), settings.token_settings())
            .map_err(anyhow::Error::msg)
            .context("loading token signing keys")?;
    if created {
        tracing::info!(dir = %settings.key_dir().display(), kid = tokens.kid(), "created a token signing key");
    }
    let pki = load_ca(settings, mode)?.map(|ca| Pki::new(ca, settings.ca.service_host.clone()));
    let config = ServiceConfig {
        refresh_ttl_secs: settings.tokens.refresh_ttl_secs,
        login_attempts_per_login: settings.auth.attempts_per_login_per_minute,
        login_attempts_per_address: settings.auth.attempts_per_address_per_minute,
    };
    Ok(Service::new(store, bus, tokens, config, pki))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The development TLS certificate: issued by the dev CA (created on first
/// start) for localhost, 127.0.0.1 and ::1; re-issued when missing or within
/// 30 days of expiry.
fn dev_tls(settings: &Settings, ca: &kizuna_ca::CertificateAuthority) -> Result<(String, String)> {
    let dir = settings.data_dir.join("tls");
    std::fs::create_dir_all(&dir)?;
    let chain_path = dir.join("server-chain.pem");
    let key_path = dir.join("server-key.pem");
    let fresh_until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64
        + 30 * 86_400;
    let expiry_path = dir.join("server-chain.not-after");
    let stored_expiry = std::fs::read_to_string(&expiry_path)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    if let (Ok(chain), Ok(key), Some(not_after)) = (
        std::fs::read_to_string(&chain_path),
        std::fs::read_to_string(&key_path),
        stored_expiry,
    ) && not_after > fresh_until
        // Re-issue when the CA was replaced (the chain must name this issuing CA).
        && chain.contains(ca.issuing_certificate().pem().trim())
    {
        return Ok((chain, key));
    }
    let ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let cert = ca
        .issue_server_certificate(&settings.tls.dev_hostnames, &ips, DEV_CERT_DAYS)
        .context("issuing the development server certificate")?;
    std::fs::write(&chain_path, &cert.chain_pem)?;
    write_private(&key_path, &cert.key_pem)?;
    std::fs::write(&expiry_path, cert.not_after_unix.to_string())?;
    tracing::warn!(chain = %chain_path.display(), "issued a DEVELOPMENT server certificate for {:?}, 127.0.0.1 and ::1", settings.tls.dev_hostnames);
    Ok((cert.chain_pem.clone(), cert.key_pem.to_string()))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(mut settings: Settings, args: ServeArgs) -> Result<()> {
    if let Some(bind) = args.bind {
        settings.server.bind = bind;
    }
    if let Some(dir) = args.data_dir {
        settings.data_dir = dir;
    }
    let mode = if settings.is_dev() {
        CaMode::Dev
    } else {
        CaMode::Required
    };
    let service = build_service(&settings, mode).await?;
    let pki = service.pki_handle().context("the CA is loaded")?;
    renew_root_crl(&settings, false)?;
    let (chain, key) = if settings.is_dev() {
        dev_tls(&settings, pki.ca())?
    } else {
        (
            std::fs::read_to_string(&settings.tls.cert_chain).context("reading tls.cert_chain")?,
            std::fs::read_to_string(&settings.tls.private_key)
                .context("reading tls.private_key")?,
        )
    };
    // Client certificates: verified against our root with a CRL per issuer;
    // every rebuild of the CRLs (revocations here, on other nodes, or from
    // the CLI) swaps the verifier's trust without a restart.
    let root_der = pki.ca().root_certificate().der().as_ref().to_vec();
    let crls = service.refresh_crls().await.context("building CRLs")?;
    let verifier = ReloadableVerifier::new(&ClientTrust {
        root_der: root_der.clone(),
        crls_der: crls.ders(),
    })?;
    let sink_verifier = verifier.clone();
    service
        .publish_crls_to(Arc::new(move |set| {
            let trust = ClientTrust { root_der: root_der.clone(), crls_der: set.ders() };
            match sink_verifier.reload(&trust) {
                Ok(()) => tracing::info!(crls = set.crls.len(), "client-certificate CRLs reloaded"),
                Err(e) => tracing::error!(error = %e, "CRL reload failed; the previous CRLs stay in force"),
            }
        }))
        .await
        .context("installing CRLs")?;
    let _watcher =
        service.spawn_revocation_watcher(Duration::from_millis(settings.ca.revocation_poll_ms));
    let tls = kizuna_server::tls::server_config(&chain, &key, Some(verifier))?;
    let app = kizuna_server::Application::build(settings.server_settings(), service.clone(), tls)
        .with_context(|| format!("binding {}", settings.server.bind))?;
    let addr = app.local_addr();
    tracing::info!(%addr, backend = ?service.store().backend(), data_dir = %settings.data_dir.display(), "listening on https://{addr} (WebSocket: wss://{addr}/v1/ws)");
    if let Some(path) = args.addr_file {
        std::fs::write(&path, addr.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let handle = app.handle();
    let hub = service.hub().clone();
    let grace = settings.server.shutdown_grace_secs;
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "shutting down: closing WebSockets with 1001 so clients reconnect elsewhere"
        );
        hub.close(&Selector::All, CloseReason::ServerShutdown);
        tokio::time::sleep(Duration::from_millis(500).min(Duration::from_secs(grace))).await;
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    service.bus().shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
