//! Issuing end-entity certificates: the server's TLS certificate and
//! client certificates (from a CSR, or with a server-made key in PKCS#12).

use std::fmt;
use std::net::IpAddr;

use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::authority::{CertificateAuthority, FacilityCa};
use crate::certinfo::{CaCertificate, pem_string};
use crate::csr;
use crate::error::{CaError, Result};
use crate::keys;
use crate::pkcs12;
use crate::profile::{self, Basics, Window};

/// Who a client certificate is for. Only ids go into the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSubject {
    /// The user (CN `user-<id>`, SAN URI `https://<service_host>/users/<id>`).
    pub user_id: i64,
    /// The user's facility (O `facility-<id>`; the facility CA signs).
    pub facility_id: i64,
    /// Label of the device, for the service's records; not put in the certificate.
    pub device_label: String,
    /// The service's public host (optionally `:port`), used in the SAN URI.
    pub service_host: String,
}

/// A client certificate just issued; the service records serial, fingerprint and validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// Serial number: lowercase hex, no sign byte, no separators.
    pub serial_hex: String,
    /// SHA-256 of the leaf DER (see [`crate::fingerprint_b64url`] for `x5t#S256`).
    pub fingerprint_sha256: [u8; 32],
    /// The leaf in DER.
    pub cert_der: CertificateDer<'static>,
    /// The leaf in PEM.
    pub cert_pem: String,
    /// Leaf, facility CA and issuing CA in PEM (what a client sends; the root is the trust anchor).
    pub chain_pem: String,
    /// Start of validity, Unix seconds.
    pub not_before_unix: i64,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
}

/// The server's TLS certificate and its new key.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCertificate {
    /// Leaf then issuing CA, in PEM.
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM (unencrypted; wiped from memory on drop).
    pub key_pem: Zeroizing<String>,
    /// The leaf in DER.
    pub cert_der: CertificateDer<'static>,
    /// Serial number, normalised lowercase hex.
    pub serial_hex: String,
    /// SHA-256 of the leaf DER.
    pub fingerprint_sha256: [u8; 32],
    /// Start of validity, Unix seconds.
    pub not_before_unix: i64,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("serial_hex", &self.serial_hex)
            .field("not_after_unix", &self.not_after_unix)
            .field("key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Largest client certificate lifetime accepted (about 5 years).
const MAX_CLIENT_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(5 * 366 * 24 * 3600);
/// Largest server certificate lifetime accepted, in days.
const MAX_SERVER_VALIDITY_DAYS: u32 = 825;
/// Minimum PKCS#12 bundle password length, in characters.
pub const MIN_BUNDLE_PASSWORD_CHARS: usize = 8;

impl CertificateAuthority {
    /// Issues the server's TLS certificate from the issuing CA, with a new
    /// ECDSA P-256 key: serverAuth only, CA:FALSE, DNS and IP SANs.
    pub fn issue_server_certificate(
        &self,
        hostnames: &[String],
        ip_addrs: &[IpAddr],
        validity_days: u32,
    ) -> Result<ServerCertificate> {
        if hostnames.is_empty() && ip_addrs.is_empty() {
            return Err(CaError::NoServerNames);
        }
        if validity_days == 0 || validity_days > MAX_SERVER_VALIDITY_DAYS {
            return Err(CaError::InvalidValidity {
                reason: "server certificate validity must be 1 to 825 days",
            });
        }
        let mut names = Vec::with_capacity(hostnames.len());
        for name in hostnames {
            let name = profile::normalise_dns_name(name)?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut ips: Vec<IpAddr> = Vec::with_capacity(ip_addrs.len());
        for ip in ip_addrs {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        let window = Window::within_issuer(
            profile::now(),
            time::Duration::days(validity_days.into()),
            Some(self.issuing.certificate().window()),
        )?;
        let key = keys::generate()?;
        let basics = Basics::new(window, &key)?;
        let params = profile::server_params(&self.organization, &names, &ips, &basics)?;
        let leaf = sign_leaf(&params, &key, self.issuing.issuer(), &basics)?;
        let key_pem = keys::to_pem(&key, None)?;
        Ok(ServerCertificate {
            chain_pem: format!("{}{}", leaf.cert_pem, self.issuing.certificate().pem()),
            key_pem,
            cert_der: leaf.cert_der,
            serial_hex: leaf.serial_hex,
            fingerprint_sha256: leaf.fingerprint_sha256,
            not_before_unix: leaf.not_before_unix,
            not_after_unix: leaf.not_after_unix,
        })
    }

    /// Issues a client certificate for the public key of `csr_pem`, signed
    /// by the facility's CA (created if needed).
    ///
    /// Only the public key is taken from the CSR, after checking its size
    /// (≤ 16 KiB), its self-signature, and its type (ECDSA P-256/P-384,
    /// Ed25519, RSA ≥ 2048). Everything else — CA:FALSE, digitalSignature,
    /// clientAuth only, subject, SAN URI, random serial, validity
    /// (now − 5 min to now + `validity`, cut to the facility CA's) — is set here.
    pub fn issue_client_from_csr(
        &self,
        facility_id: i64,
        subject: &ClientSubject,
        csr_pem: &str,
        validity: std::time::Duration,
    ) -> Result<IssuedCertificate> {
        let checked = self.check_client_subject(facility_id, subject)?;
        let public_key = csr::public_key_from_csr(csr_pem)?;
        let facility = self.facility_ca(facility_id)?;
        let window = client_window(validity, &facility)?;
        self.issue_client(&facility, &checked, &public_key, window)
    }

    /// As [`Self::issue_client_from_csr`], with an explicit validity window
    /// (still cut to the facility CA's). For tests of expired and
    /// not-yet-valid certificates; enabled by the `test-support` feature.
    #[cfg(feature = "test-support")]
    pub fn issue_client_from_csr_valid_between(
        &self,
        facility_id: i64,
        subject: &ClientSubject,
        csr_pem: &str,
        not_before_unix: i64,
        not_after_unix: i64,
    ) -> Result<IssuedCertificate> {
        let checked = self.check_client_subject(facility_id, subject)?;
        let public_key = csr::public_key_from_csr(csr_pem)?;
        let facility = self.facility_ca(facility_id)?;
        let to_time = |t| {
            time::OffsetDateTime::from_unix_timestamp(t).map_err(|_| CaError::InvalidValidity {
                reason: "timestamp out of range",
            })
        };
        let window = Window::explicit(
            to_time(not_before_unix)?,
            to_time(not_after_unix)?,
            facility.certificate().window(),
        )?;
        self.issue_client(&facility, &checked, &public_key, window)
    }

    /// Issues a client certificate for a key made here, and returns it with
    /// a PKCS#12 bundle (key, leaf, facility CA, issuing CA, root) protected
    /// by `bundle_password` (PBES2 AES-256-CBC, PBKDF2-HMAC-SHA256; HMAC-SHA256 MAC).
    pub fn issue_client_with_generated_key(
        &self,
        facility_id: i64,
        subject: &ClientSubject,
        validity: std::time::Duration,
        bundle_password: &str,
    ) -> Result<(IssuedCertificate, Vec<u8>)> {
        if bundle_password.chars().count() < MIN_BUNDLE_PASSWORD_CHARS {
            return Err(CaError::WeakBundlePassword {
                min_chars: MIN_BUNDLE_PASSWORD_CHARS,
            });
        }
        let checked = self.check_client_subject(facility_id, subject)?;
        let facility = self.facility_ca(facility_id)?;
        let window = client_window(validity, &facility)?;
        let key = keys::generate()?;
        let issued = self.issue_client(&facility, &checked, &key, window)?;
        let key_der = Zeroizing::new(key.serialize_der());
        let chain: [&CertificateDer<'_>; 4] = [
            &issued.cert_der,
            facility.certificate().der(),
            self.issuing.certificate().der(),
            self.root.der(),
        ];
        let bundle = pkcs12::bundle(
            &format!("user-{}", checked.user_id),
            &key_der,
            &chain,
            &issued.fingerprint_sha256,
            bundle_password,
        )?;
        Ok((issued, bundle))
    }

    fn check_client_subject(
        &self,
        facility_id: i64,
        subject: &ClientSubject,
    ) -> Result<CheckedSubject> {
        if facility_id <= 0 {
            return Err(CaError::InvalidFacilityId(facility_id));
        }
        if subject.facility_id != facility_id {
            return Err(CaError::FacilityMismatch {
                argument: facility_id,
                subject: subject.facility_id,
            });
        }
        if subject.user_id <= 0 {
            return Err(CaError::InvalidUserId(subject.user_id));
        }
        Ok(CheckedSubject {
            user_id: subject.user_id,
            facility_id,
            service_host: profile::normalise_service_host(&subject.service_host)?,
        })
    }

    fn issue_client(
        &self,
        facility: &FacilityCa,
        subject: &CheckedSubject,
        public_key: &impl PublicKeyData,
        window: Window,
    ) -> Result<IssuedCertificate> {
        let basics = Basics::new(window, public_key)?;
        let params = profile::client_params(
            subject.user_id,
            subject.facility_id,
            &subject.service_host,
            &basics,
        )?;
        let leaf = sign_leaf(&params, public_key, facility.loaded().issuer(), &basics)?;
        Ok(IssuedCertificate {
            chain_pem: chain_pem(
                &leaf.cert_pem,
                &[facility.certificate(), self.issuing.certificate()],
            ),
            ..leaf
        })
    }
}

/// Client identity after validation.
struct CheckedSubject {
    user_id: i64,
    facility_id: i64,
    service_host: String,
}

fn client_window(validity: std::time::Duration, facility: &FacilityCa) -> Result<Window> {
    if validity.is_zero() || validity > MAX_CLIENT_VALIDITY {
        return Err(CaError::InvalidValidity {
            reason: "client certificate validity must be 1 second to 5 years",
        });
    }
    let lifetime = time::Duration::try_from(validity).map_err(|_| CaError::InvalidValidity {
        reason: "validity out of range",
    })?;
    Window::within_issuer(
        profile::now(),
        lifetime,
        Some(facility.certificate().window()),
    )
}

/// Signs a leaf and describes it (chain left to the caller).
fn sign_leaf(
    params: &CertificateParams,
    public_key: &impl PublicKeyData,
    issuer: &Issuer<'static, KeyPair>,
    basics: &Basics,
) -> Result<IssuedCertificate> {
    let cert = params.signed_by(public_key, issuer)?;
    let der = cert.der().clone();
    let cert_pem = pem_string(&der);
    let window = basics.window();
    Ok(IssuedCertificate {
        serial_hex: basics.serial_hex(),
        fingerprint_sha256: Sha256::digest(der.as_ref()).into(),
        chain_pem: cert_pem.clone(),
        cert_pem,
        cert_der: der,
        not_before_unix: window.not_before.unix_timestamp(),
        not_after_unix: window.not_after.unix_timestamp(),
    })
}

fn chain_pem(leaf_pem: &str, cas: &[&CaCertificate]) -> String {
    let mut out = leaf_pem.to_owned();
    for ca in cas {
        out.push_str(ca.pem());
    }
    out
}
