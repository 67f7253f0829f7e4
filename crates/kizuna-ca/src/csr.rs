//! Certificate signing requests: parsed once, and only the public key kept.
//!
//! A CSR's requested extensions (CA:TRUE, SANs, EKUs, ...) and subject are
//! never looked at: the issued certificate's fields all come from the
//! profile. What is checked is the size, the structure, the key type and
//! strength, and the self-signature (proof of possession).

use rcgen::{
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData,
    SignatureAlgorithm,
};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::error::{CaError, Result};

/// Largest CSR (PEM text) accepted.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (what ring verifies).
const MAX_RSA_BITS: usize = 8192;

/// The public key from a verified CSR, ready to be certified.
#[derive(Debug, Clone)]
pub(crate) struct CsrPublicKey {
    /// The BIT STRING contents of the subjectPublicKey.
    key: Vec<u8>,
    /// Determines the algorithm identifier rcgen writes into the SPKI.
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Parses, checks and verifies a PEM CSR; returns only its public key.
pub(crate) fn public_key_from_csr(csr_pem: &str) -> Result<CsrPublicKey> {
    if csr_pem.len() > MAX_CSR_BYTES {
        return Err(CaError::CsrTooLarge {
            size: csr_pem.len(),
            limit: MAX_CSR_BYTES,
        });
    }
    let malformed = |reason| CaError::CsrMalformed { reason };
    let mut blocks = CertificateSigningRequestDer::pem_slice_iter(csr_pem.as_bytes());
    let der = blocks
        .next()
        .ok_or(malformed("no CERTIFICATE REQUEST PEM block"))?
        .map_err(|_| malformed("invalid PEM"))?;
    if blocks.next().is_some() {
        return Err(malformed("more than one CERTIFICATE REQUEST block"));
    }
    let (rest, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|_| malformed("not a PKCS#10 certification request"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing data after the request"));
    }
    if csr.certification_request_info.version.0 != 0 {
        return Err(malformed("unknown PKCS#10 version"));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let key = classify(spki)?;

    // Only algorithms of at least SHA-256 strength prove possession.
    let sig = &csr.signature_algorithm.algorithm;
    let sig_ok = [
        &OID_SIG_ECDSA_WITH_SHA256,
        &OID_SIG_ECDSA_WITH_SHA384,
        &OID_SIG_ECDSA_WITH_SHA512,
        &OID_SIG_ED25519,
        &OID_PKCS1_SHA256WITHRSA,
        &OID_PKCS1_SHA384WITHRSA,
        &OID_PKCS1_SHA512WITHRSA,
    ]
    .contains(&sig);
    if !sig_ok {
        return Err(CaError::CsrSignatureInvalid);
    }
    csr.verify_signature()
        .map_err(|_| CaError::CsrSignatureInvalid)?;

    // The SPKI rcgen will write must be the one the CSR signed with.
    if key.subject_public_key_info() != spki.raw {
        return Err(CaError::UnsupportedKey {
            reason: "non-canonical SubjectPublicKeyInfo encoding",
        });
    }
    Ok(key)
}

fn classify(spki: &SubjectPublicKeyInfo<'_>) -> Result<CsrPublicKey> {
    let unsupported = |reason| CaError::UnsupportedKey { reason };
    let oid = &spki.algorithm.algorithm;
    let key = spki.subject_public_key.data.to_vec();
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or(unsupported("EC key without a named curve"))?;
        let (alg, len) = if curve == OID_EC_P256 {
            (&PKCS_ECDSA_P256_SHA256, 65)
        } else if curve == OID_NIST_EC_P384 {
            (&PKCS_ECDSA_P384_SHA384, 97)
        } else {
            return Err(unsupported("EC curve other than P-256 or P-384"));
        };
        if key.len() != len || key.first() != Some(&0x04) {
            return Err(unsupported("EC point must be uncompressed"));
        }
        Ok(CsrPublicKey { key, alg })
    } else if *oid == OID_SIG_ED25519 {
        if spki.algorithm.parameters.is_some() || key.len() != 32 {
            return Err(unsupported("malformed Ed25519 key"));
        }
        Ok(CsrPublicKey {
            key,
            alg: &PKCS_ED25519,
        })
    } else if *oid == OID_PKCS1_RSAENCRYPTION {
        let (rest, rsa) =
            RSAPublicKey::from_der(&key).map_err(|_| unsupported("malformed RSA public key"))?;
        if !rest.is_empty() {
            return Err(unsupported("malformed RSA public key"));
        }
        let bits = rsa_modulus_bits(rsa.modulus).ok_or(unsupported("malformed RSA modulus"))?;
        if bits < MIN_RSA_BITS {
            return Err(unsupported("RSA key shorter than 2048 bits"));
        }
        if bits > MAX_RSA_BITS {
            return Err(unsupported("RSA key longer than 8192 bits"));
        }
        let e = rsa
            .try_exponent()
            .map_err(|_| unsupported("malformed RSA exponent"))?;
        if e < 3 || e.is_multiple_of(2) {
            return Err(unsupported("RSA exponent must be odd and at least 3"));
        }
        Ok(CsrPublicKey {
            key,
            alg: &PKCS_RSA_SHA256,
        })
    } else {
        Err(unsupported(
            "only ECDSA P-256/P-384, Ed25519 and RSA (2048+) keys are accepted",
        ))
    }
}

/// Bit length of a positive DER INTEGER's magnitude; `None` if negative or zero.
fn rsa_modulus_bits(modulus: &[u8]) -> Option<usize> {
    if modulus.first().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let start = modulus.iter().position(|&b| b != 0)?;
    let magnitude = &modulus[start..];
    let top = magnitude[0];
    Some((magnitude.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignore_the_sign_byte() {
        let mut m = vec![0x00, 0x80];
        m.extend([0u8; 255]);
        assert_eq!(rsa_modulus_bits(&m), Some(2048));
        let mut short = vec![0x7f];
        short.extend([0u8; 255]);
        assert_eq!(rsa_modulus_bits(&short), Some(2047));
        assert_eq!(rsa_modulus_bits(&[0x80, 0x00]), None);
        assert_eq!(rsa_modulus_bits(&[0x00]), None);
    }
}
