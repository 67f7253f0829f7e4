//! Kizuna's own certificate authority.
//!
//! The trust chain:
//!
//! ```text
//! root CA (self-signed, pathlen 2; key may be kept offline after init)
//!  └─ service issuing CA (pathlen 1; online)
//!      ├─ server TLS certificate (serverAuth)
//!      └─ facility CA "facility-<id> CA" (pathlen 0; created on first use)
//!          └─ client certificates (clientAuth; CN user-<id>, O facility-<id>,
//!             SAN URI https://<service_host>/users/<id>)
//! ```
//!
//! All keys the CA makes are ECDSA P-256. Certificates get random 126-bit
//! serials, explicit validity (from five minutes in the past, never beyond
//! the issuer's), authority and subject key identifiers, and only the
//! extensions of their profile (see `profile.rs`). From a CSR only the
//! public key is used.
//!
//! The crate keeps files, not records: the service layer stores serials,
//! fingerprints and revocation status, and passes revoked entries back to
//! build CRLs. rustls needs a CRL from every issuer in a client's chain:
//! [`CertificateAuthority::crl_for_facility`], [`CertificateAuthority::issuing_crl`]
//! and the root CRL ([`CertificateAuthority::root_crl`], written at init and
//! re-signed with [`RootAuthority::root_crl`] when the root key is at hand).
//!
//! On every connection the application re-checks the client's leaf with
//! [`parse_peer_certificate`] (CA:FALSE, clientAuth EKU, who it is), and binds
//! tokens to it with [`fingerprint_b64url`].
//!
//! Private keys are written with mode 0600 at creation inside 0700
//! directories, optionally encrypted with a passphrase (the callers read it
//! from `KIZUNA_CA_PASSPHRASE`). Unix only.

#[cfg(not(unix))]
compile_error!("kizuna-ca relies on Unix file permissions to protect CA keys");

mod authority;
mod certinfo;
mod crl;
mod csr;
mod directory;
mod error;
mod files;
mod issue;
mod keys;
mod peer;
mod pkcs12;
mod profile;

pub use authority::{CertificateAuthority, FACILITY_CA_VALIDITY_DAYS, FacilityCa, RootAuthority};
pub use certinfo::CaCertificate;
pub use crl::{Crl, RevocationReason, RevokedEntry};
pub use csr::MAX_CSR_BYTES;
pub use directory::{
    CaDirectory, DEFAULT_ORGANIZATION, InitOptions, ROOT_CRL_NEXT_UPDATE_SECONDS, init, load,
    load_or_init_dev,
};
pub use error::{CaError, Result};
pub use issue::{ClientSubject, IssuedCertificate, MIN_BUNDLE_PASSWORD_CHARS, ServerCertificate};
pub use peer::{PeerCertificate, fingerprint_b64url, parse_peer_certificate};

/// Name of the environment variable callers read the CA passphrase from.
pub const PASSPHRASE_ENV: &str = "KIZUNA_CA_PASSPHRASE";

#[cfg(test)]
mod tests;
