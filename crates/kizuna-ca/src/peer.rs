//! Reading a client's certificate on every connection, with x509-parser.
//!
//! rustls has already verified the chain, validity and (with CRLs) the
//! revocation status; the application still has to check what webpki does
//! not: that the leaf is not a CA, that it carries the clientAuth EKU (a
//! leaf without any EKU passes webpki), and whose it is.

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::AttributeTypeAndValue;

use crate::certinfo::serial_hex_from_raw;
use crate::error::{CaError, Result};

/// What the application needs from a client's leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Serial, normalised like [`crate::IssuedCertificate::serial_hex`]
    /// (compare with the database as strings).
    pub serial_hex: String,
    /// SHA-256 of the DER certificate.
    pub fingerprint_sha256: [u8; 32],
    /// The user, from the SAN URI `https://<host>/users/<id>` (agreeing with CN `user-<id>`).
    pub user_id: i64,
    /// The facility, from O `facility-<id>`.
    pub facility_id: i64,
    /// The host (and port) in the SAN URI; compare with the service's own.
    pub service_host: String,
    /// Start of validity, Unix seconds.
    pub not_before_unix: i64,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
    /// Whether basicConstraints says CA:TRUE (must be `false` for a client).
    pub is_ca: bool,
    /// Whether an EKU extension is present and lists clientAuth.
    pub has_client_auth_eku: bool,
}

impl PeerCertificate {
    /// The checks rustls leaves to the application: not a CA, clientAuth
    /// EKU present, and `now_unix` inside the validity period.
    pub fn is_acceptable_client_leaf(&self, now_unix: i64) -> bool {
        !self.is_ca
            && self.has_client_auth_eku
            && self.not_before_unix <= now_unix
            && now_unix <= self.not_after_unix
    }
}

/// Parses a client leaf certificate (DER, e.g. `peer_certificates().first()`).
///
/// Fails unless the certificate names exactly one user (one SAN URI of the
/// form `https://<host>/users/<id>`, and CN `user-<id>` with the same id)
/// and exactly one facility (O `facility-<id>`).
pub fn parse_peer_certificate(der: &[u8]) -> Result<PeerCertificate> {
    let malformed = |reason| CaError::PeerCertificateMalformed { reason };
    let not_client = |reason| CaError::NotAClientCertificate { reason };
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|_| malformed("not an X.509 certificate"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing data after the certificate"));
    }

    let is_ca = cert
        .basic_constraints()
        .map_err(|_| malformed("duplicate or invalid basicConstraints"))?
        .is_some_and(|bc| bc.value.ca);
    let has_client_auth_eku = cert
        .extended_key_usage()
        .map_err(|_| malformed("duplicate or invalid extendedKeyUsage"))?
        .is_some_and(|eku| eku.value.client_auth);

    let san = cert
        .subject_alternative_name()
        .map_err(|_| malformed("duplicate or invalid subjectAltName"))?
        .ok_or(not_client("no subjectAltName"))?;
    let mut uris = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let uri = uris.next().ok_or(not_client("no SAN URI"))?;
    if uris.next().is_some() {
        return Err(not_client("more than one SAN URI"));
    }
    let (service_host, user_id) =
        parse_user_uri(uri).ok_or(not_client("SAN URI is not https://<host>/users/<id>"))?;

    let cn = single_str(cert.subject().iter_common_name())
        .ok_or(not_client("subject must have exactly one CN user-<id>"))?;
    let cn_user = cn
        .strip_prefix("user-")
        .and_then(parse_id)
        .ok_or(not_client("subject must have exactly one CN user-<id>"))?;
    if cn_user != user_id {
        return Err(not_client("CN and SAN URI name different users"));
    }
    let facility_id = single_str(cert.subject().iter_organization())
        .and_then(|o| o.strip_prefix("facility-"))
        .and_then(parse_id)
        .ok_or(not_client("subject must have exactly one O facility-<id>"))?;

    let validity = cert.validity();
    Ok(PeerCertificate {
        serial_hex: serial_hex_from_raw(cert.raw_serial()),
        fingerprint_sha256: Sha256::digest(der).into(),
        user_id,
        facility_id,
        service_host: service_host.to_owned(),
        not_before_unix: validity.not_before.timestamp(),
        not_after_unix: validity.not_after.timestamp(),
        is_ca,
        has_client_auth_eku,
    })
}

/// The string value of the only attribute in `attrs`, if there is exactly one.
fn single_str<'a>(
    mut attrs: impl Iterator<Item = &'a AttributeTypeAndValue<'a>>,
) -> Option<&'a str> {
    let first = attrs.next()?.as_str().ok()?;
    attrs.next().is_none().then_some(first)
}

/// `https://<host>/users/<id>` → (host, id).
fn parse_user_uri(uri: &str) -> Option<(&str, i64)> {
    let rest = uri.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    if host.is_empty() || host.contains(['@', '?', '#']) {
        return None;
    }
    let id = parse_id(path.strip_prefix("users/")?)?;
    Some((host, id))
}

/// A positive decimal id without sign, leading zeros or other characters.
fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&id: &i64| id > 0)
}

/// Base64url without padding of a SHA-256 thumbprint: the RFC 8705
/// `cnf["x5t#S256"]` value binding a token to this certificate.
pub fn fingerprint_b64url(fingerprint: &[u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_uris_parse_strictly() {
        assert_eq!(
            parse_user_uri("https://care.example.jp/users/42"),
            Some(("care.example.jp", 42))
        );
        assert_eq!(
            parse_user_uri("https://care.example.jp:8443/users/7"),
            Some(("care.example.jp:8443", 7))
        );
        for bad in [
            "http://care.example.jp/users/42",
            "https://care.example.jp/users/042",
            "https://care.example.jp/users/-1",
            "https://care.example.jp/users/0",
            "https://care.example.jp/users/42/x",
            "https://care.example.jp/users/",
            "https://a@care.example.jp/users/1",
            "https:///users/1",
            "urn:kizuna:user:1",
            "https://care.example.jp/users/99999999999999999999",
        ] {
            assert_eq!(parse_user_uri(bad), None, "{bad} accepted");
        }
    }

    #[test]
    fn thumbprint_is_base64url_without_padding() {
        let fp = [0xfb; 32];
        let s = fingerprint_b64url(&fp);
        assert_eq!(s.len(), 43);
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
        assert!(s.starts_with("-_"));
    }
}
