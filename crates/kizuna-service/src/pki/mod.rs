//! Client certificates: issuing (from a CSR, or with a server-made key in a
//! PKCS#12 bundle), listing, revoking, renewing, and the CRLs the TLS layer
//! checks. `kizuna-ca` does the cryptography; this module records what was
//! issued, decides who may do what (through the access function), audits it,
//! and keeps every node's CRLs and live sockets in step with revocations.

use crate::Service;
use crate::admin::{CallerInfo, allow, audit, denied};
use crate::auth::{Caller, Principal};
use crate::error::{ServiceError, ServiceResult};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kizuna_ca::{
    CertificateAuthority, ClientSubject, IssuedCertificate, RevocationReason, RevokedEntry,
};
use kizuna_domain::access::{Action, AdminOp};
use kizuna_domain::{FacilityId, UserId, UserKind, UserStatus};
use kizuna_realtime::{CloseReason, Selector};
use kizuna_store::audit::AuditEntry;
use kizuna_store::certificates::{self, NewCertificate};
use kizuna_store::models::CertificateRow;
use kizuna_store::{DbConn, directory, transaction};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod crl;
mod issue;

/// Default validity of a client certificate, days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Longest validity an admin may ask for, days.
pub const MAX_VALIDITY_DAYS: u32 = 825;
/// CRLs are valid this long; they are re-signed well before (hourly).
pub const CRL_VALIDITY_SECS: u64 = 24 * 3600;

/// The CRLs a TLS verifier needs: one per issuer in any client chain (root →
/// issuing CA → facility CA → leaf).
#[derive(Debug, Clone)]
pub struct CrlSet {
    /// `root`, `issuing`, then `facility-<id>` for each facility CA that has
    /// issued certificates.
    pub crls: Vec<NamedCrl>,
}

/// One CRL.
#[derive(Debug, Clone)]
pub struct NamedCrl {
    /// `root`, `issuing` or `facility-<id>`.
    pub name: String,
    /// DER.
    pub der: Vec<u8>,
    /// PEM.
    pub pem: String,
}

impl CrlSet {
    /// Every CRL in DER.
    pub fn ders(&self) -> Vec<Vec<u8>> {
        self.crls.iter().map(|c| c.der.clone()).collect()
    }
}

/// Receives new CRLs (the server swaps its client-certificate verifier).
pub type CrlSink = Arc<dyn Fn(&CrlSet) + Send + Sync>;

/// The service's certificate authority and the service host named in
/// certificates.
pub struct Pki {
    ca: Arc<CertificateAuthority>,
    service_host: String,
    sink: Mutex<Option<CrlSink>>,
    /// Serializes CRL rebuilds (build and install) across tasks.
    rebuild: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("service_host", &self.service_host)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Wraps a loaded CA. `service_host` goes into each certificate's SAN URI.
    pub fn new(ca: CertificateAuthority, service_host: String) -> Pki {
        Pki {
            ca: Arc::new(ca),
            service_host,
            sink: Mutex::new(None),
            rebuild: tokio::sync::Mutex::new(()),
        }
    }

    /// The CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }
}

/// How a certificate is to be issued.
pub enum IssueMethod {
    /// The device made its key and sends a CSR (PEM); only its public key is used.
    Csr(String),
    /// The server makes the key and returns it in a PKCS#12 bundle protected
    /// by this password (shown once).
    Bundle(SecretString),
}

impl std::fmt::Debug for IssueMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IssueMethod::Csr(_) => "Csr",
            IssueMethod::Bundle(_) => "Bundle",
        })
    }
}

/// A certificate as shown to admins.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateView {
    /// Record id.
    pub id: i64,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Owner.
    pub user_id: UserId,
    /// Issuing facility.
    pub facility_id: FacilityId,
    /// Device label.
    pub device_label: String,
    /// `csr`, `pkcs12` or `renewal`.
    pub method: String,
    /// Start of validity, Unix ms.
    pub not_before: i64,
    /// End of validity, Unix ms.
    pub not_after: i64,
    /// `active` or `revoked`.
    pub status: String,
    /// Unix ms.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoke_reason: Option<String>,
}

impl From<&CertificateRow> for CertificateView {
    fn from(r: &CertificateRow) -> Self {
        CertificateView {
            id: r.id,
            serial: r.serial.clone(),
            user_id: UserId(r.user_id),
            facility_id: FacilityId(r.facility_id),
            device_label: r.device_label.clone(),
            method: r.method.clone(),
            not_before: r.not_before * 1000,
            not_after: r.not_after * 1000,
            status: r.status.clone(),
            revoked_at: r.revoked_at,
            revoke_reason: r.revoke_reason.clone(),
        }
    }
}

/// What issuing returns: the record, the chain to install, and (for bundles)
/// the PKCS#12 file, base64 — shown once, never stored.
#[derive(Clone, Serialize)]
pub struct Issued {
    /// The record.
    pub certificate: CertificateView,
    /// Leaf, facility CA and issuing CA (PEM); the root is the trust anchor.
    pub chain_pem: String,
    /// The PKCS#12 bundle (key, leaf, full chain), base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs12_base64: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

fn reason_from(word: &str) -> ServiceResult<RevocationReason> {
    Ok(match word {
        "unspecified" => RevocationReason::Unspecified,
        "key_compromise" => RevocationReason::KeyCompromise,
        "affiliation_changed" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessation_of_operation" => RevocationReason::CessationOfOperation,
        "privilege_withdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => {
            return Err(ServiceError::Invalid(
                "reason must be unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation or privilege_withdrawn".into(),
            ));
        }
    })
}

fn now_secs() -> i64 {
    kizuna_store::now_ms() / 1000
}

fn ca_error(e: kizuna_ca::CaError) -> ServiceError {
    use kizuna_ca::CaError as C;
    match e {
        // The requester's input was refused: say so, without its content.
        C::CsrTooLarge { .. }
        | C::CsrMalformed { .. }
        | C::CsrSignatureInvalid
        | C::UnsupportedKey { .. }
        | C::WeakBundlePassword { .. }
        | C::InvalidValidity { .. } => ServiceError::Invalid(e.to_string()),
        other => ServiceError::Internal(format!("certificate authority: {other}")),
    }
}

/// A presented certificate must be one we issued, active, unexpired.
pub(crate) fn check_presented(
    conn: &mut DbConn,
    serial: &str,
    thumbprint: &str,
) -> ServiceResult<CertificateRow> {
    let row = certificates::by_serial(conn, serial)?
        .ok_or(ServiceError::CertificateRejected("unknown certificate"))?;
    if row.thumbprint != thumbprint {
        return Err(ServiceError::CertificateRejected("unknown certificate"));
    }
    if row.status != certificates::ACTIVE {
        return Err(ServiceError::CertificateRejected("certificate revoked"));
    }
    let now = now_secs();
    if now < row.not_before || now >= row.not_after {
        return Err(ServiceError::CertificateRejected(
            "certificate expired or not yet valid",
        ));
    }
    if directory::facility(conn, FacilityId(row.facility_id))?
        .ca_revoked_at
        .is_some()
    {
        return Err(ServiceError::CertificateRejected(
            "the facility's certificate authority is revoked",
        ));
    }
    Ok(row)
}
