//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the certificate authority.
///
/// Variants carry paths, ids and short fixed reasons — never key material,
/// passphrases, bundle passwords or the contents of a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file or directory operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done ("create", "read", "write", ...).
        operation: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// `init` found CA files already present; nothing was overwritten.
    #[error("a certificate authority already exists at {path}; refusing to overwrite it")]
    AlreadyInitialized {
        /// The existing file that stopped the initialisation.
        path: PathBuf,
    },

    /// `load` found no certificate authority in the directory.
    #[error("no certificate authority at {path} (run the CA initialisation first)")]
    NotInitialized {
        /// The file that is missing.
        path: PathBuf,
    },

    /// A CA directory or private key file is accessible to group or others.
    #[error("{path} has mode {mode:o}; it must not be accessible to group or others")]
    InsecurePermissions {
        /// The directory or key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file is encrypted but no passphrase was given.
    #[error("{path} is encrypted: a passphrase is required (KIZUNA_CA_PASSPHRASE)")]
    PassphraseRequired {
        /// The encrypted key file.
        path: PathBuf,
    },

    /// A key file could not be decrypted with the passphrase given.
    #[error("cannot decrypt {path}: wrong passphrase (or a damaged key file)")]
    WrongPassphrase {
        /// The encrypted key file.
        path: PathBuf,
    },

    /// A passphrase was given but the key file is stored unencrypted.
    #[error(
        "{path} is not encrypted but a passphrase was given; refusing to guess which is intended"
    )]
    UnexpectedPassphrase {
        /// The plaintext key file.
        path: PathBuf,
    },

    /// The passphrase offered for encrypting keys is empty.
    #[error("the CA passphrase must not be empty")]
    EmptyPassphrase,

    /// A private key file is not a PKCS#8 ECDSA P-256 key in PEM.
    #[error("{path} is not a usable CA key: {reason}")]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A certificate or CRL file could not be parsed or is not what it should be.
    #[error("{path} is not a usable certificate file: {reason}")]
    InvalidCertificateFile {
        /// The certificate or CRL file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A CA key does not belong to the certificate next to it.
    #[error("the key in {path} does not match its certificate")]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
    },

    /// A CA certificate is not validly signed by the CA above it.
    #[error("{path} is not signed by its issuing CA")]
    ChainBroken {
        /// The certificate whose signature failed.
        path: PathBuf,
    },

    /// A facility CA has a key file but no certificate (creation interrupted).
    #[error(
        "the CA of facility {facility_id} is incomplete (key without certificate); inspect the facilities directory"
    )]
    FacilityCaIncomplete {
        /// The facility.
        facility_id: i64,
    },

    /// A facility id is not a positive integer.
    #[error("invalid facility id {0}: must be positive")]
    InvalidFacilityId(i64),

    /// A user id is not a positive integer.
    #[error("invalid user id {0}: must be positive")]
    InvalidUserId(i64),

    /// The facility argument and the subject's facility differ.
    #[error("facility {argument} was asked for, but the subject belongs to facility {subject}")]
    FacilityMismatch {
        /// The facility passed as argument.
        argument: i64,
        /// The facility in the `ClientSubject`.
        subject: i64,
    },

    /// The organisation name in `InitOptions` is unusable.
    #[error("invalid organisation name: {reason}")]
    InvalidOrganization {
        /// Why it was refused.
        reason: &'static str,
    },

    /// A host name (server certificate or service host) is not a valid DNS name.
    #[error("invalid host name: {reason}")]
    InvalidHostName {
        /// Why it was refused.
        reason: &'static str,
    },

    /// A server certificate was requested without any host name or IP address.
    #[error("a server certificate needs at least one host name or IP address")]
    NoServerNames,

    /// A validity period or CRL update interval is out of range.
    #[error("invalid validity: {reason}")]
    InvalidValidity {
        /// Why it was refused.
        reason: &'static str,
    },

    /// A CSR exceeds the size limit.
    #[error("CSR of {size} bytes exceeds the {limit}-byte limit")]
    CsrTooLarge {
        /// Size of the submitted PEM text.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A CSR could not be parsed.
    #[error("malformed CSR: {reason}")]
    CsrMalformed {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A CSR's self-signature does not verify (no proof of key possession).
    #[error("the CSR's signature does not verify")]
    CsrSignatureInvalid,

    /// A CSR's public key is of an unsupported type or too weak.
    #[error("unsupported or weak public key: {reason}")]
    UnsupportedKey {
        /// Which rule the key broke.
        reason: &'static str,
    },

    /// The PKCS#12 bundle password is too short.
    #[error("the bundle password must be at least {min_chars} characters")]
    WeakBundlePassword {
        /// The minimum length in characters.
        min_chars: usize,
    },

    /// A serial number string is not normalised lowercase hex of 1–20 bytes.
    #[error("invalid serial number: {reason}")]
    InvalidSerial {
        /// Why it was refused.
        reason: &'static str,
    },

    /// A revocation entry cannot be put into a CRL.
    #[error("invalid revocation entry: {reason}")]
    InvalidRevocation {
        /// Why it was refused.
        reason: &'static str,
    },

    /// A peer certificate could not be parsed.
    #[error("malformed peer certificate: {reason}")]
    PeerCertificateMalformed {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A peer certificate parses but does not carry Kizuna's client identity.
    #[error("not a Kizuna client certificate: {reason}")]
    NotAClientCertificate {
        /// Which part is missing or inconsistent.
        reason: &'static str,
    },

    /// rcgen refused to build or sign a certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),

    /// Encrypting or encoding a private key failed.
    #[error("private key encoding failed: {reason}")]
    KeyEncoding {
        /// Which step failed.
        reason: &'static str,
    },

    /// Building the PKCS#12 bundle failed.
    #[error("PKCS#12 bundle creation failed: {reason}")]
    Pkcs12 {
        /// The library's description of the failure.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Shorthand for results of this crate.
pub type Result<T, E = CaError> = std::result::Result<T, E>;

impl CaError {
    /// An I/O error with the operation and path it concerns.
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}
