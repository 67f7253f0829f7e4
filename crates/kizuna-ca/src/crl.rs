//! Certificate revocation lists for each CA in the chain.
//!
//! rustls (webpki) needs a CRL from every issuer in a client's chain: the
//! facility CA's (for leaves), the issuing CA's (for facility CAs) and the
//! root's (for the issuing CA). Every CRL carries the authority key
//! identifier (the issuer's subject key identifier, copied from its
//! certificate) and a CRL number, as RFC 5280 §5.2 requires.

use std::path::Path;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::certinfo::{CaCertificate, pem_encode, serial_bytes_from_hex};
use crate::error::{CaError, Result};
use crate::profile;

/// Longest accepted interval between `thisUpdate` and `nextUpdate` (5 years).
const MAX_NEXT_UPDATE_SECONDS: u64 = 5 * 366 * 24 * 3600;
/// Revocation times may lie at most this far in the future (clock skew).
const REVOCATION_SKEW: Duration = Duration::minutes(5);

/// Why a certificate was revoked (RFC 5280 §5.3.1 `CRLReason`).
///
/// `Unspecified` is written by leaving the reason code out, as RFC 5280
/// recommends. Holds (`certificateHold`/`removeFromCRL`) are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given (no reason code extension).
    Unspecified,
    /// The subject's private key is known or suspected to be compromised
    /// (e.g. a lost or stolen device).
    KeyCompromise,
    /// A CA's private key is known or suspected to be compromised.
    CaCompromise,
    /// The subject's affiliation changed (e.g. left the facility).
    AffiliationChanged,
    /// The certificate was replaced by a new one.
    Superseded,
    /// The certificate is no longer needed (e.g. account closed).
    CessationOfOperation,
    /// A privilege in the certificate was withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    fn to_rcgen(self) -> Option<rcgen::RevocationReason> {
        use rcgen::RevocationReason as R;
        match self {
            Self::Unspecified => None,
            Self::KeyCompromise => Some(R::KeyCompromise),
            Self::CaCompromise => Some(R::CaCompromise),
            Self::AffiliationChanged => Some(R::AffiliationChanged),
            Self::Superseded => Some(R::Superseded),
            Self::CessationOfOperation => Some(R::CessationOfOperation),
            Self::PrivilegeWithdrawn => Some(R::PrivilegeWithdrawn),
        }
    }
}

/// One revoked certificate, as recorded by the service layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial, normalised lowercase hex (as in
    /// [`crate::IssuedCertificate::serial_hex`]).
    pub serial_hex: String,
    /// When the revocation was processed, Unix seconds.
    pub revoked_at_unix: i64,
    /// Why.
    pub reason: RevocationReason,
}

/// A signed CRL.
#[derive(Clone, PartialEq, Eq)]
pub struct Crl {
    der: CertificateRevocationListDer<'static>,
    pem: String,
    crl_number: u64,
    this_update_unix: i64,
    next_update_unix: i64,
}

impl std::fmt::Debug for Crl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crl")
            .field("crl_number", &self.crl_number)
            .field("this_update_unix", &self.this_update_unix)
            .field("next_update_unix", &self.next_update_unix)
            .finish_non_exhaustive()
    }
}

impl Crl {
    /// The CRL in DER (what `rustls` takes).
    pub fn der(&self) -> &CertificateRevocationListDer<'static> {
        &self.der
    }

    /// The CRL in PEM (`X509 CRL`).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Its CRL number.
    pub fn crl_number(&self) -> u64 {
        self.crl_number
    }

    /// `thisUpdate`, Unix seconds.
    pub fn this_update_unix(&self) -> i64 {
        self.this_update_unix
    }

    /// `nextUpdate`, Unix seconds: publish a new CRL before this, or verifiers
    /// that enforce CRL expiry will refuse every certificate under this issuer.
    pub fn next_update_unix(&self) -> i64 {
        self.next_update_unix
    }

    /// Reads a CRL from PEM text (e.g. `root.crl.pem`); `issuer` must have signed it.
    pub(crate) fn from_pem_file(path: &Path, pem: &[u8], issuer: &CaCertificate) -> Result<Self> {
        let invalid = |reason| CaError::InvalidCertificateFile {
            path: path.to_path_buf(),
            reason,
        };
        let der = CertificateRevocationListDer::from_pem_slice(pem)
            .map_err(|_| invalid("no X509 CRL PEM block"))?;
        let (rest, crl) =
            CertificateRevocationList::from_der(der.as_ref()).map_err(|_| invalid("not a CRL"))?;
        if !rest.is_empty() {
            return Err(invalid("trailing data after the CRL"));
        }
        let (_, issuer_cert) =
            x509_parser::certificate::X509Certificate::from_der(issuer.der().as_ref())
                .map_err(|_| invalid("issuer certificate unreadable"))?;
        if crl.issuer().as_raw() != issuer_cert.subject().as_raw()
            || crl.verify_signature(issuer_cert.public_key()).is_err()
        {
            return Err(CaError::ChainBroken {
                path: path.to_path_buf(),
            });
        }
        let crl_number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(invalid("missing or oversized CRL number"))?;
        let next_update = crl.next_update().ok_or(invalid("no nextUpdate"))?;
        Ok(Crl {
            pem: pem_encode("X509 CRL", der.as_ref()),
            crl_number,
            this_update_unix: crl.last_update().timestamp(),
            next_update_unix: next_update.timestamp(),
            der,
        })
    }
}

/// Signs a CRL with `issuer`, whose certificate is `issuer_cert`.
pub(crate) fn sign(
    issuer: &Issuer<'_, KeyPair>,
    issuer_cert: &CaCertificate,
    revoked: &[RevokedEntry],
    crl_number: u64,
    next_update_seconds: u64,
) -> Result<Crl> {
    if next_update_seconds == 0 || next_update_seconds > MAX_NEXT_UPDATE_SECONDS {
        return Err(CaError::InvalidValidity {
            reason: "CRL next update must be 1 second to 5 years ahead",
        });
    }
    let this_update = profile::now();
    let next_update_offset =
        i64::try_from(next_update_seconds).map_err(|_| CaError::InvalidValidity {
            reason: "CRL next update out of range",
        })?;
    let next_update = this_update + Duration::seconds(next_update_offset);
    let mut revoked_certs: Vec<RevokedCertParams> = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let serial = serial_bytes_from_hex(&entry.serial_hex)?;
        if revoked_certs
            .iter()
            .any(|r| r.serial_number.as_ref() == serial.as_slice())
        {
            return Err(CaError::InvalidRevocation {
                reason: "the same serial is listed twice",
            });
        }
        let revoked_at =
            OffsetDateTime::from_unix_timestamp(entry.revoked_at_unix).map_err(|_| {
                CaError::InvalidRevocation {
                    reason: "revocation time out of range",
                }
            })?;
        if revoked_at > this_update + REVOCATION_SKEW {
            return Err(CaError::InvalidRevocation {
                reason: "revocation time lies in the future",
            });
        }
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: revoked_at.min(this_update),
            reason_code: entry.reason.to_rcgen(),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&crl_number_bytes(crl_number)),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(issuer_cert.key_id.clone()),
    };
    let crl = params.signed_by(issuer)?;
    let der = crl.der().clone();
    Ok(Crl {
        pem: pem_encode("X509 CRL", der.as_ref()),
        crl_number,
        this_update_unix: this_update.unix_timestamp(),
        next_update_unix: next_update.unix_timestamp(),
        der,
    })
}

/// Minimal big-endian bytes of a CRL number (at least one byte).
fn crl_number_bytes(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_numbers_are_minimal() {
        assert_eq!(crl_number_bytes(0), vec![0]);
        assert_eq!(crl_number_bytes(1), vec![1]);
        assert_eq!(crl_number_bytes(0x1234), vec![0x12, 0x34]);
        assert_eq!(crl_number_bytes(u64::MAX), vec![0xff; 8]);
    }
}
