//! Reading back the CA's own certificates (and checking them) with x509-parser.

use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::error::{CaError, Result};
use crate::profile::Window;

/// One of the CA's certificates (root, issuing or facility CA), public parts only.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificate {
    der: CertificateDer<'static>,
    pem: String,
    serial_hex: String,
    fingerprint_sha256: [u8; 32],
    not_before_unix: i64,
    not_after_unix: i64,
    /// Subject key identifier (used as the authority key identifier below it).
    pub(crate) key_id: Vec<u8>,
    /// DER SubjectPublicKeyInfo, to match the private key against.
    pub(crate) spki: Vec<u8>,
}

impl std::fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCertificate")
            .field("serial_hex", &self.serial_hex)
            .field("not_after_unix", &self.not_after_unix)
            .finish_non_exhaustive()
    }
}

impl CaCertificate {
    /// The certificate in DER (for `rustls::RootCertStore` or a chain).
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Serial number, lowercase hex without sign byte (as in [`crate::IssuedCertificate`]).
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// SHA-256 of the DER certificate.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        self.fingerprint_sha256
    }

    /// Start of validity, Unix seconds.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before_unix
    }

    /// End of validity, Unix seconds.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after_unix
    }

    pub(crate) fn window(&self) -> Window {
        // Both timestamps came from a parsed certificate, so they are in range.
        Window {
            not_before: OffsetDateTime::from_unix_timestamp(self.not_before_unix)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            not_after: OffsetDateTime::from_unix_timestamp(self.not_after_unix)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// Parses a CA certificate from PEM text read from `path`; checks it is a CA,
    /// has a subject key identifier, and (when `issuer` is given) that `issuer`
    /// signed it — otherwise that it is self-signed.
    pub(crate) fn from_pem_file(
        path: &Path,
        pem: &[u8],
        issuer: Option<&CaCertificate>,
        expected_common_name: Option<&str>,
    ) -> Result<Self> {
        let invalid = |reason| CaError::InvalidCertificateFile {
            path: path.to_path_buf(),
            reason,
        };
        let der =
            CertificateDer::from_pem_slice(pem).map_err(|_| invalid("no CERTIFICATE PEM block"))?;
        let (rest, cert) = X509Certificate::from_der(der.as_ref())
            .map_err(|_| invalid("not an X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(invalid("trailing data after the certificate"));
        }
        if !cert.is_ca() {
            return Err(invalid("not a CA certificate"));
        }
        if let Some(cn) = expected_common_name {
            let actual = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok());
            if actual != Some(cn) {
                return Err(invalid("unexpected subject common name"));
            }
        }
        let signed = match issuer {
            Some(issuer) => {
                let (_, issuer_cert) = X509Certificate::from_der(issuer.der.as_ref())
                    .map_err(|_| invalid("issuer certificate unreadable"))?;
                cert.issuer().as_raw() == issuer_cert.subject().as_raw()
                    && cert
                        .verify_signature(Some(issuer_cert.public_key()))
                        .is_ok()
            }
            None => {
                cert.issuer().as_raw() == cert.subject().as_raw()
                    && cert.verify_signature(None).is_ok()
            }
        };
        if !signed {
            return Err(CaError::ChainBroken {
                path: path.to_path_buf(),
            });
        }
        let key_id = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            })
            .ok_or(invalid("no subject key identifier"))?;
        let validity = cert.validity();
        let info = CaCertificate {
            pem: pem_string(&der),
            serial_hex: serial_hex_from_raw(cert.raw_serial()),
            fingerprint_sha256: Sha256::digest(der.as_ref()).into(),
            not_before_unix: validity.not_before.timestamp(),
            not_after_unix: validity.not_after.timestamp(),
            key_id,
            spki: cert.public_key().raw.to_vec(),
            der: der.clone(),
        };
        Ok(info)
    }

    /// The organisation (O) of the subject, if any.
    pub(crate) fn organization(&self) -> Option<String> {
        let (_, cert) = X509Certificate::from_der(self.der.as_ref()).ok()?;
        cert.subject()
            .iter_organization()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned)
    }
}

/// PEM text of a DER certificate.
pub(crate) fn pem_string(der: &CertificateDer<'_>) -> String {
    pem_encode("CERTIFICATE", der.as_ref())
}

/// PEM-encodes DER with LF line endings.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let mut out = String::with_capacity(der.len() * 4 / 3 + der.len() / 48 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // 48 input bytes are exactly one 64-character line.
    for chunk in der.chunks(48) {
        out.push_str(&base64::engine::general_purpose::STANDARD.encode(chunk));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Normalised serial: lowercase hex of the magnitude, no leading zero bytes
/// (x509-parser's `raw_serial` keeps DER's sign byte; this drops it).
pub(crate) fn serial_hex_from_raw(raw: &[u8]) -> String {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    let magnitude = &raw[start..];
    if magnitude.is_empty() {
        "00".to_owned()
    } else {
        hex::encode(magnitude)
    }
}

/// Parses a normalised serial string back to bytes (for CRL entries).
pub(crate) fn serial_bytes_from_hex(serial_hex: &str) -> Result<Vec<u8>> {
    let invalid = |reason| CaError::InvalidSerial { reason };
    if serial_hex.is_empty() || !serial_hex.len().is_multiple_of(2) {
        return Err(invalid("must be an even number of hex digits"));
    }
    if serial_hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("must be lowercase"));
    }
    let bytes = hex::decode(serial_hex).map_err(|_| invalid("not hexadecimal"))?;
    if bytes.len() > 20 {
        return Err(invalid("longer than 20 bytes"));
    }
    if bytes[0] == 0 {
        return Err(invalid("leading zero byte (not normalised)"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_normalisation_drops_the_sign_byte() {
        assert_eq!(serial_hex_from_raw(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex_from_raw(&[0x7f, 0x00]), "7f00");
        assert_eq!(serial_hex_from_raw(&[0x00]), "00");
    }

    #[test]
    fn serial_parsing_accepts_only_normalised_hex() {
        assert_eq!(serial_bytes_from_hex("8001").unwrap(), vec![0x80, 0x01]);
        for bad in ["", "abc", "ABCD", "00ab", "zz", &"11".repeat(21)] {
            assert!(serial_bytes_from_hex(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let pem = pem_encode("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END CERTIFICATE-----");
    }
}
