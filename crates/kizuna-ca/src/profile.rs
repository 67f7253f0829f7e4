//! The certificate profiles: every field of every certificate this CA signs.
//!
//! rcgen's defaults are not a profile (validity 1975→4096, serial derived
//! from the public key, no authority key identifier), so each builder here
//! starts from `CertificateParams::default()` and sets every field.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::error::{CaError, Result};

/// How far `notBefore` is set in the past, to tolerate clients whose clock is behind.
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

/// Length of random serial numbers in bytes (126 random bits, see [`random_serial`]).
pub(crate) const SERIAL_LEN: usize = 16;

/// Path length constraints: root → issuing → facility → leaf.
pub(crate) const ROOT_PATH_LEN: u8 = 2;
pub(crate) const ISSUING_PATH_LEN: u8 = 1;
pub(crate) const FACILITY_PATH_LEN: u8 = 0;

/// A random, positive serial of exactly [`SERIAL_LEN`] bytes.
///
/// The top byte is forced into `0x40..=0x7f`: positive (no DER sign byte),
/// never a leading zero (so the hex form is canonical), 126 bits of entropy.
pub(crate) fn random_serial() -> Result<[u8; SERIAL_LEN]> {
    let mut serial = [0u8; SERIAL_LEN];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut serial)
        .map_err(|_| CaError::Random)?;
    serial[0] = (serial[0] & 0x3f) | 0x40;
    Ok(serial)
}

/// Current time, whole seconds (certificates cannot carry fractions).
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// A certificate's validity window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

impl Window {
    /// `now − BACKDATE` to `now + lifetime`, kept inside the issuer's window.
    pub(crate) fn within_issuer(
        now: OffsetDateTime,
        lifetime: Duration,
        issuer: Option<Window>,
    ) -> Result<Self> {
        if lifetime <= Duration::ZERO {
            return Err(CaError::InvalidValidity {
                reason: "validity must be positive",
            });
        }
        // Ten years past the root's own lifetime is already absurd; this
        // only guards the arithmetic.
        if lifetime > Duration::days(100 * 365) {
            return Err(CaError::InvalidValidity {
                reason: "validity longer than 100 years",
            });
        }
        let mut window = Window {
            not_before: now - BACKDATE,
            not_after: now + lifetime,
        };
        if let Some(issuer) = issuer {
            window.not_before = window.not_before.max(issuer.not_before);
            window.not_after = window.not_after.min(issuer.not_after);
            if window.not_after <= now {
                return Err(CaError::InvalidValidity {
                    reason: "the issuing CA has expired or expires now",
                });
            }
        }
        Ok(window)
    }

    /// Explicit bounds; `not_after` is cut to the issuer's. `not_before` is
    /// not raised to the issuer's, so that tests can make certificates that
    /// expired before a freshly created facility CA existed.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn explicit(
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        issuer: Window,
    ) -> Result<Self> {
        let window = Window {
            not_before: not_before.replace_nanosecond(0).unwrap_or(not_before),
            not_after: not_after
                .replace_nanosecond(0)
                .unwrap_or(not_after)
                .min(issuer.not_after),
        };
        if window.not_after <= window.not_before {
            return Err(CaError::InvalidValidity {
                reason: "not_after must be later than not_before (and within the issuing CA)",
            });
        }
        Ok(window)
    }
}

/// Validates the organisation name used in CA subjects.
pub(crate) fn check_organization(org: &str) -> Result<()> {
    let len = org.chars().count();
    if len == 0 || len > 64 {
        return Err(CaError::InvalidOrganization {
            reason: "must be 1 to 64 characters",
        });
    }
    if org.chars().any(char::is_control) || org.trim() != org {
        return Err(CaError::InvalidOrganization {
            reason: "no control characters or surrounding spaces",
        });
    }
    Ok(())
}

/// Validates and lower-cases a DNS host name (no wildcard, no port).
pub(crate) fn normalise_dns_name(name: &str) -> Result<String> {
    let invalid = |reason| CaError::InvalidHostName { reason };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("must be 1 to 253 characters"));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(invalid("IP addresses belong in the IP address list"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("each label must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid("only letters, digits, '-' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label must not start or end with '-'"));
        }
    }
    Ok(name)
}

/// Validates the service authority used in client SAN URIs: a DNS name with
/// an optional `:port`.
pub(crate) fn normalise_service_host(host: &str) -> Result<String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name = normalise_dns_name(name)?;
    match port {
        None => Ok(name),
        Some(port) => {
            let ok = !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !port.starts_with('0')
                && port.parse::<u16>().is_ok();
            if !ok {
                return Err(CaError::InvalidHostName {
                    reason: "port must be a number from 1 to 65535",
                });
            }
            Ok(format!("{name}:{port}"))
        }
    }
}

/// What every certificate gets besides its profile: serial, validity and
/// subject key identifier.
#[derive(Debug, Clone)]
pub(crate) struct Basics {
    serial: [u8; SERIAL_LEN],
    window: Window,
    key_id: Vec<u8>,
}

impl Basics {
    /// A fresh random serial, `window`, and the key identifier of `subject_key`.
    pub(crate) fn new(window: Window, subject_key: &impl PublicKeyData) -> Result<Self> {
        Ok(Self {
            serial: random_serial()?,
            window,
            key_id: key_identifier(subject_key),
        })
    }

    /// The serial as [`crate::IssuedCertificate::serial_hex`] has it (the
    /// top byte is never zero, so plain hex is already normalised).
    pub(crate) fn serial_hex(&self) -> String {
        hex::encode(self.serial)
    }

    pub(crate) fn window(&self) -> Window {
        self.window
    }
}

/// Key identifier per RFC 7093 §2 method 1: the leftmost 160 bits of the
/// SHA-256 of the subjectPublicKey BIT STRING value. (rcgen's own method
/// hashes the whole SubjectPublicKeyInfo, which linters cannot recognise.)
pub(crate) fn key_identifier(key: &impl PublicKeyData) -> Vec<u8> {
    Sha256::digest(key.der_bytes())[..20].to_vec()
}

fn base_params(basics: &Basics, dn: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&basics.serial));
    params.not_before = basics.window.not_before;
    params.not_after = basics.window.not_after;
    params.distinguished_name = dn;
    params.subject_alt_names = Vec::new();
    params.extended_key_usages = Vec::new();
    params.name_constraints = None;
    params.crl_distribution_points = Vec::new();
    params.custom_extensions = Vec::new();
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::PreSpecified(basics.key_id.clone());
    params
}

fn dn(common_name: String, organization: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, DnValue::Utf8String(organization));
    dn.push(DnType::CommonName, DnValue::Utf8String(common_name));
    dn
}

fn ca_params(basics: &Basics, dn: DistinguishedName, path_len: u8) -> CertificateParams {
    let mut params = base_params(basics, dn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// The self-signed root.
pub(crate) fn root_params(org: &str, basics: &Basics) -> CertificateParams {
    let dn = dn(format!("{org} Root CA"), org.to_owned());
    ca_params(basics, dn, ROOT_PATH_LEN)
}

/// The online service issuing CA, signed by the root.
pub(crate) fn issuing_params(org: &str, basics: &Basics) -> CertificateParams {
    let dn = dn(format!("{org} Issuing CA"), org.to_owned());
    ca_params(basics, dn, ISSUING_PATH_LEN)
}

/// A facility CA, signed by the issuing CA; its subject names the facility.
pub(crate) fn facility_params(org: &str, facility_id: i64, basics: &Basics) -> CertificateParams {
    let dn = dn(format!("facility-{facility_id} CA"), org.to_owned());
    ca_params(basics, dn, FACILITY_PATH_LEN)
}

/// The server's TLS certificate: serverAuth only, CA:FALSE.
pub(crate) fn server_params(
    org: &str,
    dns_names: &[String],
    ip_addrs: &[IpAddr],
    basics: &Basics,
) -> Result<CertificateParams> {
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::OrganizationName,
        DnValue::Utf8String(org.to_owned()),
    );
    if let Some(first) = dns_names.first().filter(|n| n.len() <= 64) {
        subject.push(DnType::CommonName, DnValue::Utf8String(first.clone()));
    }
    let mut params = base_params(basics, subject);
    for name in dns_names {
        params
            .subject_alt_names
            .push(SanType::DnsName(name.as_str().try_into()?));
    }
    for ip in ip_addrs {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// The subject URI of a user: `https://<service_host>/users/<user_id>`.
pub(crate) fn user_uri(service_host: &str, user_id: i64) -> String {
    format!("https://{service_host}/users/{user_id}")
}

/// A client certificate: clientAuth only, CA:FALSE, no patient data.
pub(crate) fn client_params(
    user_id: i64,
    facility_id: i64,
    service_host: &str,
    basics: &Basics,
) -> Result<CertificateParams> {
    let dn = dn(format!("user-{user_id}"), format!("facility-{facility_id}"));
    let mut params = base_params(basics, dn);
    params.subject_alt_names = vec![SanType::URI(
        user_uri(service_host, user_id).as_str().try_into()?,
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_sixteen_bytes_and_differ() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_ne!(a, b);
        for s in [a, b] {
            assert!((0x40..=0x7f).contains(&s[0]));
        }
    }

    #[test]
    fn window_is_clamped_to_the_issuer() {
        let now = now();
        let issuer = Window {
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(10),
        };
        let w = Window::within_issuer(now, Duration::days(30), Some(issuer)).unwrap();
        assert_eq!(w.not_after, issuer.not_after);
        assert_eq!(w.not_before, now - BACKDATE);
    }

    #[test]
    fn window_refuses_an_expired_issuer_and_nonpositive_lifetimes() {
        let now = now();
        let expired = Window {
            not_before: now - Duration::days(10),
            not_after: now - Duration::days(1),
        };
        assert!(Window::within_issuer(now, Duration::days(1), Some(expired)).is_err());
        assert!(Window::within_issuer(now, Duration::ZERO, None).is_err());
        assert!(Window::within_issuer(now, Duration::seconds(-5), None).is_err());
    }

    #[test]
    fn explicit_windows_keep_not_before_and_cut_not_after() {
        let now = now();
        let issuer = Window {
            not_before: now - BACKDATE,
            not_after: now + Duration::days(10),
        };
        let past =
            Window::explicit(now - Duration::hours(2), now - Duration::hours(1), issuer).unwrap();
        assert_eq!(past.not_before, now - Duration::hours(2));
        let long = Window::explicit(now, now + Duration::days(100), issuer).unwrap();
        assert_eq!(long.not_after, issuer.not_after);
        assert!(Window::explicit(now, now, issuer).is_err());
        assert!(
            Window::explicit(now + Duration::days(20), now + Duration::days(30), issuer).is_err()
        );
    }

    #[test]
    fn dns_names_are_validated_and_lowercased() {
        assert_eq!(
            normalise_dns_name("Kizuna.Example.JP.").unwrap(),
            "kizuna.example.jp"
        );
        assert_eq!(normalise_dns_name("localhost").unwrap(), "localhost");
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "a_b.c",
            "*.example.jp",
            "127.0.0.1",
            "a b",
            "é.jp",
        ] {
            assert!(normalise_dns_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalise_dns_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn service_host_accepts_a_port_and_nothing_else() {
        assert_eq!(
            normalise_service_host("Care.Example.jp:8443").unwrap(),
            "care.example.jp:8443"
        );
        for bad in [
            "care.example.jp:",
            "care.example.jp:0",
            "care.example.jp:65536",
            "care.example.jp/x",
            "u@care.example.jp",
            "care.example.jp:08",
        ] {
            assert!(normalise_service_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn organization_rules() {
        assert!(check_organization("Kizuna").is_ok());
        assert!(check_organization("").is_err());
        assert!(check_organization(" Kizuna").is_err());
        assert!(check_organization("Ki\nzuna").is_err());
        assert!(check_organization(&"x".repeat(65)).is_err());
    }
}
