//! `kizuna ca …`: the operator's certificate-authority commands. `init`
//! creates the root and issuing CA (keys encrypted when
//! `KIZUNA_CA_PASSPHRASE` is set); the others issue, list and revoke client
//! certificates through the same use cases as the REST admin API, and write
//! the current CRLs for publication.

use crate::serve::{CaMode, build_service};
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Subcommand;
use kizuna_domain::{FacilityId, UserId};
use kizuna_service::Caller;
use kizuna_service::pki::IssueMethod;
use secrecy::SecretString;
use std::path::PathBuf;

/// `kizuna ca` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the root CA and the issuing CA in the CA directory (once).
    /// Keep `root.key.pem` offline afterwards: the server does not need it.
    Init {
        /// Organization name in the CA certificates.
        #[arg(long, default_value = "Kizuna")]
        organization: String,
    },
    /// Issue a client certificate for a user's device.
    Issue {
        /// Login of the certificate's owner.
        #[arg(long)]
        user: String,
        /// Device label (e.g. "Sato's iPhone").
        #[arg(long)]
        device: String,
        /// PEM CSR made on the device (its key never leaves it).
        #[arg(long, conflicts_with = "p12")]
        csr: Option<PathBuf>,
        /// Or: write a PKCS#12 bundle with a new key here (password from the
        /// environment variable named by --bundle-password-env).
        #[arg(long)]
        p12: Option<PathBuf>,
        /// Environment variable holding the bundle password.
        #[arg(long, default_value = "KIZUNA_BUNDLE_PASSWORD")]
        bundle_password_env: String,
        /// Where to write the certificate chain (PEM).
        #[arg(long)]
        chain_out: Option<PathBuf>,
        /// Validity in days (default 365).
        #[arg(long)]
        days: Option<u32>,
    },
    /// List a user's certificates.
    List {
        /// Login.
        #[arg(long)]
        user: String,
    },
    /// Revoke a certificate (by record id, see `list`).
    Revoke {
        /// Certificate record id.
        #[arg(long)]
        id: i64,
        /// unspecified, key_compromise, affiliation_changed, superseded,
        /// cessation_of_operation or privilege_withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Revoke a facility's whole CA: every certificate it issued stops working.
    RevokeFacilityCa {
        /// Facility id.
        #[arg(long)]
        facility: i64,
    },
    /// Re-sign the root CRL (needs the root key; `serve` does it by itself when
    /// the key is present and the CRL expires within 30 days).
    RootCrl,
    /// Write the current CRLs (PEM bundle and one DER file each) for publication.
    Crl {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn print(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// Runs one CA command.
pub async fn run(settings: Settings, cmd: CaCommand) -> Result<()> {
    if let CaCommand::Init { organization } = &cmd {
        let dir = settings.ca_dir();
        let passphrase = std::env::var(kizuna_ca::PASSPHRASE_ENV)
            .ok()
            .filter(|p| !p.is_empty());
        let options = kizuna_ca::InitOptions {
            organization: organization.clone(),
            ..Default::default()
        };
        kizuna_ca::init(&dir, &options, passphrase.as_deref())
            .with_context(|| format!("initializing the CA in {}", dir.display()))?;
        return print(&serde_json::json!({
            "ca_dir": dir,
            "keys_encrypted": passphrase.is_some(),
            "root": dir.join("root.pem"),
            "issuing": dir.join("issuing.pem"),
        }));
    }
    if let CaCommand::RootCrl = &cmd {
        let written = crate::serve::renew_root_crl(&settings, true)?;
        if !written {
            bail!("the root key is not in the CA directory; bring it online and retry");
        }
        return print(&serde_json::json!({"root_crl": settings.ca_dir().join("root.crl.pem")}));
    }
    let svc = build_service(&settings, CaMode::Required).await?;
    let cli = Caller::Cli;
    let user_id = |login: String| {
        let svc = svc.clone();
        async move {
            svc.user_by_login(login)
                .await
                .map(|u| u.id)
                .map_err(|_| anyhow::anyhow!("no such user"))
        }
    };
    match cmd {
        CaCommand::Init { .. } | CaCommand::RootCrl => unreachable_init()?,
        CaCommand::Issue {
            user,
            device,
            csr,
            p12,
            bundle_password_env,
            chain_out,
            days,
        } => {
            let uid: UserId = user_id(user).await?;
            let method = match (&csr, &p12) {
                (Some(path), None) => IssueMethod::Csr(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                (None, Some(_)) => {
                    let pw = std::env::var(&bundle_password_env).with_context(|| {
                        format!("set the bundle password in {bundle_password_env}")
                    })?;
                    IssueMethod::Bundle(SecretString::from(pw))
                }
                _ => bail!("give --csr FILE or --p12 OUT"),
            };
            let issued = svc
                .issue_certificate(cli, uid, device, method, days)
                .await?;
            if let (Some(path), Some(b64)) = (&p12, &issued.pkcs12_base64) {
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
                write_private(path, &bytes)?;
            }
            if let Some(path) = &chain_out {
                std::fs::write(path, &issued.chain_pem)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print(&issued.certificate)?;
        }
        CaCommand::List { user } => {
            let uid = user_id(user).await?;
            print(&svc.certificates_of(cli, uid).await?)?;
        }
        CaCommand::Revoke { id, reason } => {
            print(&svc.revoke_certificate(cli, id, &reason).await?)?
        }
        CaCommand::RevokeFacilityCa { facility } => {
            svc.revoke_facility_ca(cli, FacilityId(facility)).await?;
            print(&serde_json::json!({"revoked_facility_ca": facility}))?;
        }
        CaCommand::Crl { out } => {
            let set = svc.refresh_crls().await?;
            std::fs::create_dir_all(&out)?;
            let mut all = String::new();
            for c in &set.crls {
                std::fs::write(out.join(format!("{}.crl.der", c.name)), &c.der)?;
                all.push_str(&c.pem);
            }
            std::fs::write(out.join("crls.pem"), all)?;
            print(
                &serde_json::json!({"written": set.crls.iter().map(|c| &c.name).collect::<Vec<_>>(), "dir": out}),
            )?;
        }
    }
    svc.bus().shutdown().await;
    Ok(())
}

fn unreachable_init() -> Result<()> {
    bail!("init and root-crl are handled before the service is built")
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
