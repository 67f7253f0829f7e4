//! PKCS#12 bundles for clients whose key the server generated.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use rustls_pki_types::CertificateDer;

use crate::error::{CaError, Result};

/// PBKDF2 iterations for the bag encryption, and PKCS#12-KDF iterations for
/// the MAC. OpenSSL 3 writes 2048 by default; this is ~50x that, and still
/// opens in well under a second.
const ITERATIONS: u32 = 100_000;

/// Builds a password-protected PKCS#12 file: the key with its chain (leaf
/// first, root last), PBES2 AES-256-CBC with PBKDF2-HMAC-SHA256, and an
/// HMAC-SHA256 MAC — readable by OpenSSL 3 and curl without `-legacy`.
pub(crate) fn bundle(
    alias: &str,
    pkcs8_key_der: &[u8],
    chain: &[&CertificateDer<'_>],
    local_key_id: &[u8],
    password: &str,
) -> Result<Vec<u8>> {
    let err = |e: p12_keystore::error::Error| CaError::Pkcs12 {
        reason: e.to_string(),
    };
    let key = PrivateKey::from_der(pkcs8_key_der).map_err(err)?;
    let certs = chain
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let key_chain = PrivateKeyChain::new(local_key_id, key, certs);
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(key_chain));
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(err)
}
