//! The cryptography behind `jsonwebtoken`: its RustCrypto provider for
//! everything, except ES256 **verification**, which uses `ring` (already the
//! TLS stack's). Every request and WebSocket upgrade verifies an access
//! token; with the pure-Rust P-256 code that was a fifth of the server's CPU
//! in a reconnect storm (docs/benchmarks.md), with `ring` a few percent.
//! Signing (at login and refresh) stays with RustCrypto.

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, rust_crypto};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use std::sync::LazyLock;

/// An ES256 (P-256, SHA-256, fixed-length `r‖s` signature) verifier.
struct RingEs256(ring::signature::UnparsedPublicKey<Vec<u8>>);

impl signature::Verifier<Vec<u8>> for RingEs256 {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        self.0
            .verify(msg, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingEs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

fn new_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    match (algorithm, key.family(), key.kind()) {
        (
            Algorithm::ES256,
            jsonwebtoken::AlgorithmFamily::Ec,
            DecodingKeyKind::SecretOrDer(point),
        ) => {
            // `point` is the SEC1 uncompressed public point, which is what
            // ring takes; a malformed one fails every verification.
            Ok(Box::new(RingEs256(
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point.clone(),
                ),
            )))
        }
        (Algorithm::ES256, _, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key),
    }
}

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    signer_factory: rust_crypto::DEFAULT_PROVIDER.signer_factory,
    verifier_factory: new_verifier,
    jwk_utils: rust_crypto::DEFAULT_PROVIDER.jwk_utils.clone(),
});

/// Makes this the process's provider. Idempotent; if some other provider
/// was fixed first, that one stays (correct, only slower).
pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = CryptoProvider::install_default(&PROVIDER);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_verifies_what_rust_crypto_signed_and_refuses_changes() {
        let pem = crate::auth::tokens::generate_key_pem().unwrap();
        let secret = {
            use p256::pkcs8::DecodePrivateKey;
            p256::SecretKey::from_pkcs8_pem(&pem).unwrap()
        };
        let public = {
            use p256::pkcs8::{EncodePublicKey, LineEnding};
            secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
        };
        let encoding = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let decoding = DecodingKey::from_ec_pem(public.as_bytes()).unwrap();
        let signer =
            (rust_crypto::DEFAULT_PROVIDER.signer_factory)(&Algorithm::ES256, &encoding).unwrap();
        let msg = b"header.claims".to_vec();
        let sig = signature::Signer::try_sign(&*signer, &msg).unwrap();
        let verifier = new_verifier(&Algorithm::ES256, &decoding).unwrap();
        assert!(signature::Verifier::verify(&*verifier, &msg, &sig).is_ok());
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(signature::Verifier::verify(&*verifier, &msg, &bad).is_err());
        assert!(signature::Verifier::verify(&*verifier, b"header.claimz", &sig).is_err());
        // An HMAC key is not an ES256 key.
        assert!(new_verifier(&Algorithm::ES256, &DecodingKey::from_secret(b"k")).is_err());
    }
}
