//! The CA directory: its layout, initialisation and loading.
//!
//! ```text
//! <dir>/                      0700
//!   root.pem                  root certificate (self-signed)
//!   root.key.pem              root key, 0600 — may be moved offline after init
//!   root.crl.pem              root CRL (covers the issuing CA), long-lived
//!   issuing.pem               service issuing CA certificate
//!   issuing.key.pem           its key, 0600
//!   facilities/               0700
//!     <facility_id>.pem       facility CA certificate
//!     <facility_id>.key.pem   its key, 0600
//! ```

use std::path::{Path, PathBuf};

use rcgen::Issuer;
use time::Duration;

use crate::authority::{CertificateAuthority, LoadedCa, RootAuthority};
use crate::certinfo::CaCertificate;
use crate::crl::Crl;
use crate::error::{CaError, Result};
use crate::files;
use crate::keys::{self, Passphrase};
use crate::profile::{self, Basics, Window};

/// Default organisation name in CA subjects.
pub const DEFAULT_ORGANIZATION: &str = "Kizuna";
/// Validity of the initial root CRL (it must be re-signed with the root key before then).
pub const ROOT_CRL_NEXT_UPDATE_SECONDS: u64 = 366 * 24 * 3600;

/// Settings for a new CA. The passphrase is passed separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// Organisation (O) in the CA subjects, e.g. the operator's name.
    pub organization: String,
    /// Lifetime of the root certificate in days.
    pub root_validity_days: u32,
    /// Lifetime of the issuing CA certificate in days (cut to the root's).
    pub issuing_validity_days: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            organization: DEFAULT_ORGANIZATION.to_owned(),
            root_validity_days: 20 * 365,
            issuing_validity_days: 10 * 365,
        }
    }
}

/// A CA directory on disk; see the module documentation for its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDirectory {
    path: PathBuf,
}

impl CaDirectory {
    /// Names a CA directory (nothing is touched yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `root.pem`.
    pub fn root_cert_path(&self) -> PathBuf {
        self.path.join("root.pem")
    }

    /// `root.key.pem`.
    pub fn root_key_path(&self) -> PathBuf {
        self.path.join("root.key.pem")
    }

    /// `root.crl.pem`.
    pub fn root_crl_path(&self) -> PathBuf {
        self.path.join("root.crl.pem")
    }

    /// `issuing.pem`.
    pub fn issuing_cert_path(&self) -> PathBuf {
        self.path.join("issuing.pem")
    }

    /// `issuing.key.pem`.
    pub fn issuing_key_path(&self) -> PathBuf {
        self.path.join("issuing.key.pem")
    }

    /// `facilities/`.
    pub fn facilities_dir(&self) -> PathBuf {
        self.path.join("facilities")
    }

    /// `facilities/<facility_id>.pem`.
    pub fn facility_cert_path(&self, facility_id: i64) -> PathBuf {
        self.facilities_dir().join(format!("{facility_id}.pem"))
    }

    /// `facilities/<facility_id>.key.pem`.
    pub fn facility_key_path(&self, facility_id: i64) -> PathBuf {
        self.facilities_dir().join(format!("{facility_id}.key.pem"))
    }

    /// Whether a CA has been (at least partly) created here.
    pub fn is_initialized(&self) -> bool {
        [
            self.root_cert_path(),
            self.root_key_path(),
            self.issuing_cert_path(),
            self.issuing_key_path(),
        ]
        .iter()
        .any(|p| files::exists(p))
    }

    /// Creates a new CA: root and issuing CA keys and certificates, and the
    /// root CRL (valid [`ROOT_CRL_NEXT_UPDATE_SECONDS`]). Keys are encrypted
    /// when `passphrase` is given. Refuses if any CA file already exists.
    pub fn init(
        &self,
        options: &InitOptions,
        passphrase: Option<&str>,
    ) -> Result<CertificateAuthority> {
        let passphrase = Passphrase::from_option(passphrase)?;
        profile::check_organization(&options.organization)?;
        if options.root_validity_days == 0 || options.issuing_validity_days == 0 {
            return Err(CaError::InvalidValidity {
                reason: "CA lifetimes must be at least one day",
            });
        }
        files::ensure_private_dir(&self.path)?;
        for path in [
            self.root_cert_path(),
            self.root_key_path(),
            self.root_crl_path(),
            self.issuing_cert_path(),
            self.issuing_key_path(),
        ] {
            if files::exists(&path) {
                return Err(CaError::AlreadyInitialized { path });
            }
        }
        files::ensure_private_dir(&self.facilities_dir())?;

        let org = options.organization.as_str();
        let now = profile::now();

        let root_key = keys::generate()?;
        let root_window =
            Window::within_issuer(now, Duration::days(options.root_validity_days.into()), None)?;
        let root_params = profile::root_params(org, &Basics::new(root_window, &root_key)?);
        let root_cert = root_params.self_signed(&root_key)?;

        let issuing_key = keys::generate()?;
        let issuing_window = Window::within_issuer(
            now,
            Duration::days(options.issuing_validity_days.into()),
            Some(root_window),
        )?;
        let issuing_params =
            profile::issuing_params(org, &Basics::new(issuing_window, &issuing_key)?);
        let root_issuer = Issuer::from_ca_cert_der(root_cert.der(), root_key)?;
        let issuing_cert = issuing_params.signed_by(&issuing_key, &root_issuer)?;

        // Keys first, each created exclusively with mode 0600; root.pem last,
        // so `load` never sees a half-written CA as complete.
        let root_key_pem = keys::to_pem(root_issuer.key(), passphrase.as_ref())?;
        files::write_new_file(
            &self.root_key_path(),
            root_key_pem.as_bytes(),
            files::PRIVATE_FILE_MODE,
        )?;
        let issuing_key_pem = keys::to_pem(&issuing_key, passphrase.as_ref())?;
        files::write_new_file(
            &self.issuing_key_path(),
            issuing_key_pem.as_bytes(),
            files::PRIVATE_FILE_MODE,
        )?;
        files::write_new_file(
            &self.issuing_cert_path(),
            issuing_cert.pem().as_bytes(),
            files::PUBLIC_FILE_MODE,
        )?;

        let root_info = CaCertificate::from_pem_file(
            &self.root_cert_path(),
            root_cert.pem().as_bytes(),
            None,
            None,
        )?;
        let root = RootAuthority::new(LoadedCa::new(root_info, root_issuer));
        let root_crl = root.root_crl(&[], 1, ROOT_CRL_NEXT_UPDATE_SECONDS)?;
        files::write_new_file(
            &self.root_crl_path(),
            root_crl.pem().as_bytes(),
            files::PUBLIC_FILE_MODE,
        )?;
        files::write_new_file(
            &self.root_cert_path(),
            root_cert.pem().as_bytes(),
            files::PUBLIC_FILE_MODE,
        )?;
        files::sync_dir(&self.path)?;

        self.load_with(passphrase)
    }

    /// Loads the CA for issuing: root certificate and CRL, issuing CA
    /// certificate and key. The root key is not read (it may be offline).
    pub fn load(&self, passphrase: Option<&str>) -> Result<CertificateAuthority> {
        self.load_with(Passphrase::from_option(passphrase)?)
    }

    fn load_with(&self, passphrase: Option<Passphrase>) -> Result<CertificateAuthority> {
        files::check_private_dir(&self.path).map_err(|e| match e {
            CaError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                CaError::NotInitialized {
                    path: self.path.clone(),
                }
            }
            other => other,
        })?;
        let root = self.read_root_cert()?;
        let issuing_path = self.issuing_cert_path();
        let issuing_info = CaCertificate::from_pem_file(
            &issuing_path,
            &files::read_public(&issuing_path)?,
            Some(&root),
            None,
        )?;
        let issuing =
            LoadedCa::load_key(issuing_info, &self.issuing_key_path(), passphrase.as_ref())?;
        let organization = issuing
            .certificate()
            .organization()
            .unwrap_or_else(|| DEFAULT_ORGANIZATION.to_owned());
        let root_crl = self.read_root_crl_checked(&root)?;
        Ok(CertificateAuthority::new(
            self.clone(),
            passphrase,
            organization,
            root,
            issuing,
            root_crl,
        ))
    }

    /// For `kizuna serve` without configuration: loads the CA here, or
    /// creates a development CA (default options, no passphrase) if the
    /// directory holds none. Returns whether it was created.
    pub fn load_or_init_dev(&self) -> Result<(CertificateAuthority, bool)> {
        if files::exists(&self.root_cert_path()) {
            Ok((self.load(None)?, false))
        } else {
            Ok((self.init(&InitOptions::default(), None)?, true))
        }
    }

    /// Loads the root CA with its key, to re-sign the root CRL (or, later,
    /// a new issuing CA). Needs `root.key.pem` back in the directory.
    pub fn load_root(&self, passphrase: Option<&str>) -> Result<RootAuthority> {
        let passphrase = Passphrase::from_option(passphrase)?;
        files::check_private_dir(&self.path)?;
        let root = self.read_root_cert()?;
        let loaded = LoadedCa::load_key(root, &self.root_key_path(), passphrase.as_ref())?;
        Ok(RootAuthority::new(loaded))
    }

    /// Reads and checks `root.crl.pem` (e.g. after it was regenerated).
    pub fn read_root_crl(&self) -> Result<Crl> {
        let root = self.read_root_cert()?;
        self.read_root_crl_checked(&root)
    }

    /// Replaces `root.crl.pem` atomically with `crl` (which must be signed by the root).
    pub fn write_root_crl(&self, crl: &Crl) -> Result<()> {
        let root = self.read_root_cert()?;
        let path = self.root_crl_path();
        // Refuse to install something the loader would reject.
        Crl::from_pem_file(&path, crl.pem().as_bytes(), &root)?;
        files::replace_public_file(&path, crl.pem().as_bytes())
    }

    fn read_root_cert(&self) -> Result<CaCertificate> {
        let path = self.root_cert_path();
        CaCertificate::from_pem_file(&path, &files::read_public(&path)?, None, None)
    }

    fn read_root_crl_checked(&self, root: &CaCertificate) -> Result<Crl> {
        let path = self.root_crl_path();
        Crl::from_pem_file(&path, &files::read_public(&path)?, root)
    }
}

/// Shorthand for [`CaDirectory::init`].
pub fn init(
    dir: impl Into<PathBuf>,
    options: &InitOptions,
    passphrase: Option<&str>,
) -> Result<CertificateAuthority> {
    CaDirectory::new(dir).init(options, passphrase)
}

/// Shorthand for [`CaDirectory::load`].
pub fn load(dir: impl Into<PathBuf>, passphrase: Option<&str>) -> Result<CertificateAuthority> {
    CaDirectory::new(dir).load(passphrase)
}

/// Shorthand for [`CaDirectory::load_or_init_dev`].
pub fn load_or_init_dev(dir: impl Into<PathBuf>) -> Result<(CertificateAuthority, bool)> {
    CaDirectory::new(dir).load_or_init_dev()
}
