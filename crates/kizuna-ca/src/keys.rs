//! CA private keys: generation and PEM storage, optionally encrypted at rest.
//!
//! Unencrypted keys are PKCS#8 `PRIVATE KEY` PEM. With a passphrase they are
//! PKCS#8 `ENCRYPTED PRIVATE KEY` PEM (PBES2: scrypt N=2^14, r=8, p=1 with
//! AES-256-CBC — the `pkcs8` crate's recommended setting, readable by
//! OpenSSL 3: `openssl pkey -in issuing.key.pem`).

use std::fmt;
use std::path::Path;

use pkcs8::der::pem::LineEnding;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::error::{CaError, Result};

const PLAIN_LABEL: &str = "PRIVATE KEY";
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// The passphrase protecting CA keys at rest, wiped from memory on drop.
#[derive(Clone)]
pub(crate) struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase; `None` for an empty one is the caller's business,
    /// an empty string is refused.
    pub(crate) fn new(passphrase: &str) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(CaError::EmptyPassphrase);
        }
        Ok(Self(Zeroizing::new(passphrase.to_owned())))
    }

    /// Converts the optional caller value.
    pub(crate) fn from_option(passphrase: Option<&str>) -> Result<Option<Self>> {
        passphrase.map(Self::new).transpose()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

/// A new ECDSA P-256 key.
pub(crate) fn generate() -> Result<KeyPair> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

/// The key as PEM, encrypted when a passphrase is given.
pub(crate) fn to_pem(key: &KeyPair, passphrase: Option<&Passphrase>) -> Result<Zeroizing<String>> {
    let der = Zeroizing::new(key.serialize_der());
    match passphrase {
        None => pkcs8::der::pem::encode_string(PLAIN_LABEL, LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|_| CaError::KeyEncoding {
                reason: "PEM encoding failed",
            }),
        Some(passphrase) => {
            let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).map_err(|_| {
                CaError::KeyEncoding {
                    reason: "generated key is not PKCS#8",
                }
            })?;
            let encrypted =
                info.encrypt(passphrase.0.as_bytes())
                    .map_err(|_| CaError::KeyEncoding {
                        reason: "key encryption failed",
                    })?;
            encrypted
                .to_pem(ENCRYPTED_LABEL, LineEnding::LF)
                .map_err(|_| CaError::KeyEncoding {
                    reason: "PEM encoding failed",
                })
        }
    }
}

/// Reads a CA key from PEM text; `path` is only used in errors.
pub(crate) fn from_pem(
    pem: &[u8],
    passphrase: Option<&Passphrase>,
    path: &Path,
) -> Result<KeyPair> {
    let invalid = |reason| CaError::InvalidKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let (label, der) =
        pkcs8::der::pem::decode_vec(pem).map_err(|_| invalid("not a single PEM block"))?;
    let der = Zeroizing::new(der);
    let pkcs8_der = match (label, passphrase) {
        (PLAIN_LABEL, None) => der,
        (PLAIN_LABEL, Some(_)) => {
            return Err(CaError::UnexpectedPassphrase {
                path: path.to_path_buf(),
            });
        }
        (ENCRYPTED_LABEL, None) => {
            return Err(CaError::PassphraseRequired {
                path: path.to_path_buf(),
            });
        }
        (ENCRYPTED_LABEL, Some(passphrase)) => {
            let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                .map_err(|_| invalid("malformed ENCRYPTED PRIVATE KEY"))?;
            let doc =
                info.decrypt(passphrase.0.as_bytes())
                    .map_err(|_| CaError::WrongPassphrase {
                        path: path.to_path_buf(),
                    })?;
            Zeroizing::new(doc.as_bytes().to_vec())
        }
        _ => {
            return Err(invalid(
                "expected a PKCS#8 PRIVATE KEY or ENCRYPTED PRIVATE KEY",
            ));
        }
    };
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8_der.as_slice()),
        &PKCS_ECDSA_P256_SHA256,
    )
    .map_err(|_| invalid("not an ECDSA P-256 PKCS#8 key"))
}
