//! The loaded CA: the issuing CA online, facility CAs on demand, the root
//! certificate (its key stays offline), and CRLs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{Issuer, KeyPair, PublicKeyData};
use time::Duration;

use crate::certinfo::CaCertificate;
use crate::crl::{self, Crl, RevokedEntry};
use crate::directory::CaDirectory;
use crate::error::{CaError, Result};
use crate::files;
use crate::keys::{self, Passphrase};
use crate::profile::{self, Basics, Window};

/// Lifetime of a facility CA (cut to the issuing CA's).
pub const FACILITY_CA_VALIDITY_DAYS: i64 = 5 * 365;

/// A CA certificate together with its signing key.
#[derive(Debug)]
pub(crate) struct LoadedCa {
    certificate: CaCertificate,
    /// Debug output of `Issuer` elides the key.
    issuer: Issuer<'static, KeyPair>,
}

impl LoadedCa {
    pub(crate) fn new(certificate: CaCertificate, issuer: Issuer<'static, KeyPair>) -> Self {
        Self {
            certificate,
            issuer,
        }
    }

    /// Reads the key for `certificate` from `key_path` and checks they match.
    pub(crate) fn load_key(
        certificate: CaCertificate,
        key_path: &Path,
        passphrase: Option<&Passphrase>,
    ) -> Result<Self> {
        let pem = files::read_private(key_path)?;
        let key = keys::from_pem(&pem, passphrase, key_path)?;
        if key.subject_public_key_info() != certificate.spki {
            return Err(CaError::KeyMismatch {
                path: key_path.to_path_buf(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(certificate.der(), key)?;
        Ok(Self::new(certificate, issuer))
    }

    pub(crate) fn certificate(&self) -> &CaCertificate {
        &self.certificate
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    fn crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        next_update_seconds: u64,
    ) -> Result<Crl> {
        crl::sign(
            &self.issuer,
            &self.certificate,
            revoked,
            crl_number,
            next_update_seconds,
        )
    }
}

/// The root CA with its key — only for the rare operations that need it.
#[derive(Debug)]
pub struct RootAuthority {
    root: LoadedCa,
}

impl RootAuthority {
    pub(crate) fn new(root: LoadedCa) -> Self {
        Self { root }
    }

    /// The root certificate.
    pub fn certificate(&self) -> &CaCertificate {
        self.root.certificate()
    }

    /// Signs a root CRL listing revoked issuing CAs. Install it with
    /// [`CaDirectory::write_root_crl`]; give it a `crl_number` above the
    /// current one ([`CaDirectory::read_root_crl`]).
    pub fn root_crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        next_update_seconds: u64,
    ) -> Result<Crl> {
        self.root.crl(revoked, crl_number, next_update_seconds)
    }
}

/// A facility's CA, as returned by [`CertificateAuthority::facility_ca`].
#[derive(Debug, Clone)]
pub struct FacilityCa {
    facility_id: i64,
    created: bool,
    ca: Arc<LoadedCa>,
}

impl FacilityCa {
    /// The facility.
    pub fn facility_id(&self) -> i64 {
        self.facility_id
    }

    /// Whether this call created the CA (the service should record its serial).
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// Its certificate.
    pub fn certificate(&self) -> &CaCertificate {
        self.ca.certificate()
    }

    pub(crate) fn loaded(&self) -> &LoadedCa {
        &self.ca
    }
}

/// The service's certificate authority, loaded from a [`CaDirectory`].
///
/// Holds the issuing CA's key; facility CA keys are loaded (or created) on
/// first use and kept. `Send + Sync`: share it behind an `Arc`.
#[derive(Debug)]
pub struct CertificateAuthority {
    pub(crate) dir: CaDirectory,
    /// Encrypts new facility keys and decrypts existing ones; wiped on drop.
    passphrase: Option<Passphrase>,
    pub(crate) organization: String,
    pub(crate) root: CaCertificate,
    pub(crate) issuing: LoadedCa,
    root_crl: Crl,
    /// Facility CAs loaded so far. The lock is held while a facility CA is
    /// loaded or created, so one process never creates the same one twice
    /// (another process racing is caught by exclusive file creation).
    facilities: Mutex<HashMap<i64, Arc<LoadedCa>>>,
}

impl CertificateAuthority {
    pub(crate) fn new(
        dir: CaDirectory,
        passphrase: Option<Passphrase>,
        organization: String,
        root: CaCertificate,
        issuing: LoadedCa,
        root_crl: Crl,
    ) -> Self {
        Self {
            dir,
            passphrase,
            organization,
            root,
            issuing,
            root_crl,
            facilities: Mutex::new(HashMap::new()),
        }
    }

    /// The directory this CA was loaded from.
    pub fn directory(&self) -> &CaDirectory {
        &self.dir
    }

    /// The organisation named in the CA subjects.
    pub fn organization(&self) -> &str {
        &self.organization
    }

    /// The root certificate (the trust anchor for clients and the server).
    pub fn root_certificate(&self) -> &CaCertificate {
        &self.root
    }

    /// The service issuing CA certificate.
    pub fn issuing_certificate(&self) -> &CaCertificate {
        self.issuing.certificate()
    }

    /// The root CRL as loaded (covers the issuing CA). To pick up a
    /// regenerated one, use [`CaDirectory::read_root_crl`].
    pub fn root_crl(&self) -> &Crl {
        &self.root_crl
    }

    /// The facility's CA, loaded from `facilities/<id>.pem`, or created
    /// (signed by the issuing CA, pathlen 0) if the facility has none yet.
    pub fn facility_ca(&self, facility_id: i64) -> Result<FacilityCa> {
        if facility_id <= 0 {
            return Err(CaError::InvalidFacilityId(facility_id));
        }
        // A poisoned lock only means another thread panicked between a
        // lookup and an insert of a fully built Arc: the map is still sound.
        let mut cache = self
            .facilities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ca) = cache.get(&facility_id) {
            return Ok(FacilityCa {
                facility_id,
                created: false,
                ca: Arc::clone(ca),
            });
        }
        let cert_path = self.dir.facility_cert_path(facility_id);
        let key_path = self.dir.facility_key_path(facility_id);
        let (ca, created) = if files::exists(&cert_path) {
            (self.load_facility(facility_id)?, false)
        } else if files::exists(&key_path) {
            return Err(CaError::FacilityCaIncomplete { facility_id });
        } else {
            self.create_facility(facility_id)?
        };
        let ca = Arc::new(ca);
        cache.insert(facility_id, Arc::clone(&ca));
        Ok(FacilityCa {
            facility_id,
            created,
            ca,
        })
    }

    fn load_facility(&self, facility_id: i64) -> Result<LoadedCa> {
        let cert_path = self.dir.facility_cert_path(facility_id);
        let expected_cn = format!("facility-{facility_id} CA");
        let info = CaCertificate::from_pem_file(
            &cert_path,
            &files::read_public(&cert_path)?,
            Some(self.issuing.certificate()),
            Some(&expected_cn),
        )?;
        let key_path = self.dir.facility_key_path(facility_id);
        if !files::exists(&key_path) {
            return Err(CaError::FacilityCaIncomplete { facility_id });
        }
        LoadedCa::load_key(info, &key_path, self.passphrase.as_ref())
    }

    /// Creates the facility CA. Returns `(ca, true)`, or loads the one another
    /// process created meanwhile (`(ca, false)`).
    fn create_facility(&self, facility_id: i64) -> Result<(LoadedCa, bool)> {
        files::ensure_private_dir(&self.dir.facilities_dir())?;
        let key = keys::generate()?;
        let window = Window::within_issuer(
            profile::now(),
            Duration::days(FACILITY_CA_VALIDITY_DAYS),
            Some(self.issuing.certificate().window()),
        )?;
        let params =
            profile::facility_params(&self.organization, facility_id, &Basics::new(window, &key)?);
        let cert = params.signed_by(&key, self.issuing.issuer())?;
        let key_pem = keys::to_pem(&key, self.passphrase.as_ref())?;

        // Publish the key (complete, 0600) first, then the certificate:
        // whoever links the key first owns the creation.
        let key_path = self.dir.facility_key_path(facility_id);
        let tmp_key = files::temp_path_for(&key_path)?;
        files::write_new_file(&tmp_key, key_pem.as_bytes(), files::PRIVATE_FILE_MODE)?;
        if !files::publish_new(&tmp_key, &key_path)? {
            return Ok((self.load_facility(facility_id)?, false));
        }
        let cert_path = self.dir.facility_cert_path(facility_id);
        let tmp_cert = files::temp_path_for(&cert_path)?;
        files::write_new_file(&tmp_cert, cert.pem().as_bytes(), files::PUBLIC_FILE_MODE)?;
        if !files::publish_new(&tmp_cert, &cert_path)? {
            return Err(CaError::FacilityCaIncomplete { facility_id });
        }
        files::sync_dir(&self.dir.facilities_dir())?;

        let info = CaCertificate::from_pem_file(
            &cert_path,
            cert.pem().as_bytes(),
            Some(self.issuing.certificate()),
            None,
        )?;
        let issuer = Issuer::from_ca_cert_der(info.der(), key)?;
        Ok((LoadedCa::new(info, issuer), true))
    }

    /// The CRL of a facility CA (revoked client certificates), signed by it.
    /// Creates the facility CA if it does not exist yet.
    pub fn crl_for_facility(
        &self,
        facility_id: i64,
        revoked: &[RevokedEntry],
        crl_number: u64,
        next_update_seconds: u64,
    ) -> Result<Crl> {
        self.facility_ca(facility_id)?
            .loaded()
            .crl(revoked, crl_number, next_update_seconds)
    }

    /// The issuing CA's CRL (revoked facility CAs and server certificates).
    pub fn issuing_crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        next_update_seconds: u64,
    ) -> Result<Crl> {
        self.issuing.crl(revoked, crl_number, next_update_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CertificateAuthority>();
        assert_send_sync::<FacilityCa>();
    }
}
