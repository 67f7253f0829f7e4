//! Unit tests across the crate's public API (the `openssl`/pkilint checks
//! live in `tests/independent_verifiers.rs`).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::*;

const HOST: &str = "care.example.jp";
const DAY: Duration = Duration::from_secs(24 * 3600);

fn new_ca() -> (tempfile::TempDir, CertificateAuthority) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init(tmp.path().join("ca"), &InitOptions::default(), None).unwrap();
    (tmp, ca)
}

fn subject(user_id: i64, facility_id: i64) -> ClientSubject {
    ClientSubject {
        user_id,
        facility_id,
        device_label: "ward tablet 3".to_owned(),
        service_host: HOST.to_owned(),
    }
}

fn csr_with(key: &KeyPair, configure: impl FnOnce(&mut CertificateParams)) -> String {
    let mut params = CertificateParams::default();
    configure(&mut params);
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn plain_csr(key: &KeyPair) -> String {
    csr_with(key, |_| {})
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

fn x509(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn pem_blocks(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .expect("subject key identifier")
}

fn aki(extensions: &[x509_parser::extensions::X509Extension<'_>]) -> Vec<u8> {
    extensions
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("authority key identifier")
}

/// RFC 7093 §2 method 1: leftmost 160 bits of SHA-256(subjectPublicKey).
fn rfc7093_key_id(cert: &X509Certificate<'_>) -> Vec<u8> {
    Sha256::digest(&cert.public_key().subject_public_key.data)[..20].to_vec()
}

/// Asserts the complete client profile, whatever the CSR asked for.
fn assert_client_profile(issued: &IssuedCertificate, user_id: i64, facility: &FacilityCa) {
    let cert = x509(issued.cert_der.as_ref());
    let facility_cert = x509(facility.certificate().der().as_ref());

    assert_eq!(cert.version().0, 2, "v3");
    assert_eq!(cert.issuer().as_raw(), facility_cert.subject().as_raw());
    assert!(
        cert.verify_signature(Some(facility_cert.public_key()))
            .is_ok()
    );

    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, vec![format!("user-{user_id}")]);
    let org: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(org, vec![format!("facility-{}", facility.facility_id())]);
    assert_eq!(cert.subject().iter_attributes().count(), 2, "only CN and O");

    let oids: Vec<String> = cert
        .extensions()
        .iter()
        .map(|e| e.oid.to_id_string())
        .collect();
    let mut sorted = oids.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "2.5.29.14",
            "2.5.29.15",
            "2.5.29.17",
            "2.5.29.19",
            "2.5.29.35",
            "2.5.29.37"
        ],
        "exactly SKI, KU, SAN, BC, AKI, EKU"
    );

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    assert!(bc.critical);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "digitalSignature only");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth);
    assert!(!eku.server_auth && !eku.code_signing && !eku.any && !eku.email_protection);
    assert!(!eku.time_stamping && !eku.ocsp_signing && eku.other.is_empty());

    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        vec![GeneralName::URI(&format!("https://{HOST}/users/{user_id}"))]
    );
    assert_eq!(aki(cert.extensions()), ski(&facility_cert));
    assert_eq!(ski(&cert), rfc7093_key_id(&cert));

    // Serial: 16 bytes, positive, matching serial_hex.
    assert_eq!(cert.raw_serial().len(), 16);
    assert!(cert.raw_serial()[0] & 0x80 == 0 && cert.raw_serial()[0] != 0);
    assert_eq!(issued.serial_hex, hex::encode(cert.raw_serial()));
    assert_eq!(
        issued.fingerprint_sha256,
        <[u8; 32]>::from(Sha256::digest(issued.cert_der.as_ref()))
    );
    assert_eq!(
        issued.not_before_unix,
        cert.validity().not_before.timestamp()
    );
    assert_eq!(issued.not_after_unix, cert.validity().not_after.timestamp());
    assert!(issued.not_after_unix <= facility.certificate().not_after_unix());

    // chain_pem: leaf, facility CA, issuing CA.
    assert_eq!(pem_blocks(&issued.chain_pem), 3);
    assert!(issued.chain_pem.starts_with(&issued.cert_pem));
    assert!(issued.chain_pem.contains(facility.certificate().pem()));
}

// ---------------------------------------------------------------- directory

#[test]
fn init_writes_the_layout_with_private_modes() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory();
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.facilities_dir()), 0o700);
    for key in [dir.root_key_path(), dir.issuing_key_path()] {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        let text = fs::read_to_string(&key).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    for public in [
        dir.root_cert_path(),
        dir.issuing_cert_path(),
        dir.root_crl_path(),
    ] {
        assert!(public.is_file(), "{}", public.display());
    }
    assert!(dir.is_initialized());
}

#[test]
fn init_creates_missing_parent_directories_privately() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("data").join("ca");
    let (_ca, created) = load_or_init_dev(&path).unwrap();
    assert!(created);
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&tmp.path().join("data")), 0o700);
}

#[test]
fn init_refuses_to_overwrite_an_existing_ca() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    let before = fs::read(dir.root_key_path()).unwrap();
    let err = dir.init(&InitOptions::default(), None).unwrap_err();
    assert!(matches!(err, CaError::AlreadyInitialized { .. }), "{err}");
    assert_eq!(fs::read(dir.root_key_path()).unwrap(), before);

    // Even a lone leftover key blocks a new CA.
    let tmp = tempfile::tempdir().unwrap();
    let other = CaDirectory::new(tmp.path().join("ca"));
    fs::create_dir(other.path()).unwrap();
    fs::set_permissions(other.path(), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(other.issuing_key_path(), "x").unwrap();
    assert!(matches!(
        other.init(&InitOptions::default(), None).unwrap_err(),
        CaError::AlreadyInitialized { .. }
    ));
}

#[test]
fn init_refuses_a_directory_open_to_others() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ca");
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let err = init(&path, &InitOptions::default(), None).unwrap_err();
    assert!(
        matches!(err, CaError::InsecurePermissions { mode: 0o755, .. }),
        "{err}"
    );
}

#[test]
fn init_validates_its_options() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_org = InitOptions {
        organization: String::new(),
        ..InitOptions::default()
    };
    assert!(matches!(
        init(tmp.path().join("a"), &bad_org, None).unwrap_err(),
        CaError::InvalidOrganization { .. }
    ));
    let bad_days = InitOptions {
        issuing_validity_days: 0,
        ..InitOptions::default()
    };
    assert!(matches!(
        init(tmp.path().join("b"), &bad_days, None).unwrap_err(),
        CaError::InvalidValidity { .. }
    ));
    assert!(matches!(
        init(tmp.path().join("c"), &InitOptions::default(), Some("")).unwrap_err(),
        CaError::EmptyPassphrase
    ));
}

#[test]
fn load_reads_back_the_same_ca_without_the_root_key() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    // The root key can go offline.
    fs::remove_file(dir.root_key_path()).unwrap();
    let loaded = dir.load(None).unwrap();
    assert_eq!(loaded.root_certificate(), ca.root_certificate());
    assert_eq!(loaded.issuing_certificate(), ca.issuing_certificate());
    assert_eq!(loaded.root_crl(), ca.root_crl());
    assert_eq!(loaded.organization(), DEFAULT_ORGANIZATION);
    // ... and the loaded CA still issues.
    let issued = loaded
        .issue_client_from_csr(1, &subject(2, 1), &plain_csr(&p256()), 30 * DAY)
        .unwrap();
    assert_client_profile(&issued, 2, &loaded.facility_ca(1).unwrap());
}

#[test]
fn load_of_an_empty_place_says_not_initialised() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load(tmp.path().join("nothing"), None).unwrap_err();
    assert!(matches!(err, CaError::NotInitialized { .. }), "{err}");
    let dir = tmp.path().join("empty");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        load(&dir, None).unwrap_err(),
        CaError::NotInitialized { .. }
    ));
}

#[test]
fn passphrase_encrypts_keys_and_is_required_to_load() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ca");
    let secret = "correct horse battery staple";
    let ca = init(&path, &InitOptions::default(), Some(secret)).unwrap();
    let dir = ca.directory().clone();

    // Facility keys made later are encrypted too.
    ca.facility_ca(4).unwrap();
    for key in [
        dir.root_key_path(),
        dir.issuing_key_path(),
        dir.facility_key_path(4),
    ] {
        let text = fs::read_to_string(&key).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{}",
            key.display()
        );
        assert_eq!(mode(&key), 0o600);
    }
    drop(ca);

    let err = load(&path, None).unwrap_err();
    assert!(matches!(err, CaError::PassphraseRequired { .. }), "{err}");
    let err = load(&path, Some("wrong horse")).unwrap_err();
    assert!(matches!(err, CaError::WrongPassphrase { .. }), "{err}");
    assert!(!err.to_string().contains("wrong horse"));
    assert!(!format!("{err:?}").contains("wrong horse"));

    let ca = load(&path, Some(secret)).unwrap();
    assert!(
        !format!("{ca:?}").contains(secret),
        "Debug leaks the passphrase"
    );
    assert!(!ca.facility_ca(4).unwrap().was_created());
    assert!(dir.load_root(Some(secret)).is_ok());
    assert!(matches!(
        dir.load_root(Some("nope")).unwrap_err(),
        CaError::WrongPassphrase { .. }
    ));
}

#[test]
fn a_passphrase_for_an_unencrypted_ca_is_refused() {
    let (_tmp, ca) = new_ca();
    let err = ca.directory().load(Some("something")).unwrap_err();
    assert!(matches!(err, CaError::UnexpectedPassphrase { .. }), "{err}");
}

#[test]
fn load_refuses_keys_and_directories_open_to_others() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    fs::set_permissions(dir.issuing_key_path(), fs::Permissions::from_mode(0o640)).unwrap();
    let err = dir.load(None).unwrap_err();
    assert!(
        matches!(err, CaError::InsecurePermissions { mode: 0o640, .. }),
        "{err}"
    );
    fs::set_permissions(dir.issuing_key_path(), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).unwrap();
    assert!(matches!(
        dir.load(None).unwrap_err(),
        CaError::InsecurePermissions { .. }
    ));
}

#[test]
fn load_detects_a_key_that_does_not_match_the_certificate() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    fs::remove_file(dir.issuing_key_path()).unwrap();
    crate::files::write_new_file(
        &dir.issuing_key_path(),
        p256().serialize_pem().as_bytes(),
        0o600,
    )
    .unwrap();
    let err = dir.load(None).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
}

#[test]
fn load_detects_an_issuing_ca_from_another_root() {
    let (_tmp, ca) = new_ca();
    let (_tmp2, other) = new_ca();
    let dir = ca.directory().clone();
    fs::write(dir.issuing_cert_path(), other.issuing_certificate().pem()).unwrap();
    let err = dir.load(None).unwrap_err();
    assert!(matches!(err, CaError::ChainBroken { .. }), "{err}");
}

#[test]
fn load_refuses_a_non_p256_ca_key() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    fs::remove_file(dir.issuing_key_path()).unwrap();
    let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    crate::files::write_new_file(
        &dir.issuing_key_path(),
        ed.serialize_pem().as_bytes(),
        0o600,
    )
    .unwrap();
    assert!(matches!(
        dir.load(None).unwrap_err(),
        CaError::InvalidKeyFile { .. }
    ));
}

#[test]
fn load_or_init_dev_creates_once_then_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dev-ca");
    let (first, created) = load_or_init_dev(&path).unwrap();
    assert!(created);
    let (second, created) = load_or_init_dev(&path).unwrap();
    assert!(!created);
    assert_eq!(first.root_certificate(), second.root_certificate());
}

// ---------------------------------------------------------------- CA chain

#[test]
fn ca_certificates_follow_the_chain_profile() {
    let (_tmp, ca) = new_ca();
    let facility = ca.facility_ca(7).unwrap();
    let root = x509(ca.root_certificate().der().as_ref());
    let issuing = x509(ca.issuing_certificate().der().as_ref());
    let fac = x509(facility.certificate().der().as_ref());

    for (cert, issuer, path_len, cn) in [
        (&root, &root, 2, "Kizuna Root CA"),
        (&issuing, &root, 1, "Kizuna Issuing CA"),
        (&fac, &issuing, 0, "facility-7 CA"),
    ] {
        assert_eq!(cert.issuer().as_raw(), issuer.subject().as_raw(), "{cn}");
        assert!(
            cert.verify_signature(Some(issuer.public_key())).is_ok(),
            "{cn}"
        );
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(path_len), "{cn}");
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
        assert!(cert.extended_key_usage().unwrap().is_none());
        assert_eq!(aki(cert.extensions()), ski(issuer), "{cn}");
        assert_eq!(ski(cert), rfc7093_key_id(cert), "{cn}");
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            cn
        );
        assert_eq!(cert.raw_serial().len(), 16);
        assert!(cert.validity().not_before <= issuer.validity().not_after);
        assert!(cert.validity().not_after <= issuer.validity().not_after);
    }
    assert_eq!(
        ca.issuing_certificate().serial_hex(),
        hex::encode(issuing.raw_serial())
    );
}

#[test]
fn facility_ca_is_created_once_then_reused_and_reloaded() {
    let (_tmp, ca) = new_ca();
    let first = ca.facility_ca(3).unwrap();
    assert!(first.was_created());
    assert_eq!(first.facility_id(), 3);
    let again = ca.facility_ca(3).unwrap();
    assert!(!again.was_created());
    assert_eq!(again.certificate(), first.certificate());

    let dir = ca.directory().clone();
    assert_eq!(mode(&dir.facility_key_path(3)), 0o600);
    // Nothing temporary is left behind.
    let names: Vec<String> = fs::read_dir(dir.facilities_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["3.key.pem", "3.pem"]);

    let reloaded = dir.load(None).unwrap().facility_ca(3).unwrap();
    assert!(!reloaded.was_created());
    assert_eq!(reloaded.certificate(), first.certificate());
    // Different facilities get different CAs.
    assert_ne!(
        ca.facility_ca(4).unwrap().certificate(),
        first.certificate()
    );
}

#[test]
fn facility_ca_refuses_bad_ids_and_incomplete_files() {
    let (_tmp, ca) = new_ca();
    for id in [0, -1, i64::MIN] {
        assert!(matches!(
            ca.facility_ca(id).unwrap_err(),
            CaError::InvalidFacilityId(_)
        ));
    }
    let dir = ca.directory();
    crate::files::write_new_file(&dir.facility_key_path(9), b"half", 0o600).unwrap();
    assert!(matches!(
        ca.facility_ca(9).unwrap_err(),
        CaError::FacilityCaIncomplete { facility_id: 9 }
    ));
}

#[test]
fn facility_cert_for_the_wrong_facility_is_refused() {
    let (_tmp, ca) = new_ca();
    ca.facility_ca(1).unwrap();
    let dir = ca.directory().clone();
    fs::copy(dir.facility_cert_path(1), dir.facility_cert_path(2)).unwrap();
    fs::copy(dir.facility_key_path(1), dir.facility_key_path(2)).unwrap();
    let err = dir.load(None).unwrap().facility_ca(2).unwrap_err();
    assert!(
        matches!(err, CaError::InvalidCertificateFile { .. }),
        "{err}"
    );
}

#[test]
fn facility_cas_are_created_safely_from_many_threads() {
    let (_tmp, ca) = new_ca();
    let ca = std::sync::Arc::new(ca);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let ca = std::sync::Arc::clone(&ca);
            std::thread::spawn(move || ca.facility_ca(11).unwrap())
        })
        .collect();
    let results: Vec<FacilityCa> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|f| f.was_created()).count(), 1);
    assert!(
        results
            .windows(2)
            .all(|w| w[0].certificate() == w[1].certificate())
    );
}

// ---------------------------------------------------------------- server

#[test]
fn server_certificate_has_the_server_profile() {
    let (_tmp, ca) = new_ca();
    let ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let server = ca
        .issue_server_certificate(
            &[
                "Care.Example.JP".to_owned(),
                "localhost".to_owned(),
                "localhost".to_owned(),
            ],
            &ips,
            90,
        )
        .unwrap();
    let cert = x509(server.cert_der.as_ref());
    let issuing = x509(ca.issuing_certificate().der().as_ref());
    assert!(cert.verify_signature(Some(issuing.public_key())).is_ok());
    assert_eq!(cert.issuer().as_raw(), issuing.subject().as_raw());
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca && bc.critical);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth && !eku.any && eku.other.is_empty());
    assert_eq!(cert.key_usage().unwrap().unwrap().value.flags, 1);
    let san = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(
        san,
        &vec![
            GeneralName::DNSName("care.example.jp"),
            GeneralName::DNSName("localhost"),
            GeneralName::IPAddress(&[127, 0, 0, 1]),
            GeneralName::IPAddress(&Ipv6Addr::LOCALHOST.octets()),
        ]
    );
    assert_eq!(aki(cert.extensions()), ski(&issuing));
    assert_eq!(pem_blocks(&server.chain_pem), 2);
    assert!(server.chain_pem.ends_with(ca.issuing_certificate().pem()));
    assert_eq!(server.serial_hex, hex::encode(cert.raw_serial()));
    assert_eq!(
        server.not_after_unix - server.not_before_unix,
        90 * 24 * 3600 + 300
    );

    // The key belongs to the certificate and is not in Debug output.
    let key = KeyPair::from_pem(&server.key_pem).unwrap();
    assert_eq!(key.subject_public_key_info(), cert.public_key().raw);
    assert!(!format!("{server:?}").contains("PRIVATE KEY"));
}

#[test]
fn server_certificate_input_is_validated() {
    let (_tmp, ca) = new_ca();
    assert!(matches!(
        ca.issue_server_certificate(&[], &[], 30).unwrap_err(),
        CaError::NoServerNames
    ));
    for bad in ["evil/host", "a..b", "*.example.jp", "", "10.0.0.1"] {
        assert!(
            matches!(
                ca.issue_server_certificate(&[bad.to_owned()], &[], 30),
                Err(CaError::InvalidHostName { .. })
            ),
            "{bad:?}"
        );
    }
    for days in [0, 826] {
        assert!(matches!(
            ca.issue_server_certificate(&["localhost".to_owned()], &[], days),
            Err(CaError::InvalidValidity { .. })
        ));
    }
    // IP only is fine (no CN then).
    let ip_only = ca
        .issue_server_certificate(&[], &[IpAddr::V4(Ipv4Addr::LOCALHOST)], 30)
        .unwrap();
    assert_eq!(
        x509(ip_only.cert_der.as_ref())
            .subject()
            .iter_common_name()
            .count(),
        0
    );
}

// ---------------------------------------------------------------- client from CSR

#[test]
fn client_from_csr_has_the_client_profile_and_the_csr_key() {
    let (_tmp, ca) = new_ca();
    let key = p256();
    let issued = ca
        .issue_client_from_csr(3, &subject(5, 3), &plain_csr(&key), 365 * DAY)
        .unwrap();
    assert_client_profile(&issued, 5, &ca.facility_ca(3).unwrap());
    let cert = x509(issued.cert_der.as_ref());
    assert_eq!(
        cert.public_key().raw,
        key.subject_public_key_info().as_slice()
    );
    assert_eq!(
        issued.not_after_unix - issued.not_before_unix,
        365 * 24 * 3600 + 300,
        "now - 5 min to now + validity"
    );
}

#[test]
fn hostile_csr_fields_are_all_ignored() {
    let (_tmp, ca) = new_ca();
    let key = p256();
    let csr = csr_with(&key, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::CodeSigning,
            ExtendedKeyUsagePurpose::Any,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.subject_alt_names = vec![
            SanType::URI(format!("https://{HOST}/users/1").try_into().unwrap()),
            SanType::DnsName("evil.example".try_into().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        ];
        p.distinguished_name.push(DnType::CommonName, "user-1");
        p.distinguished_name
            .push(DnType::OrganizationName, "facility-2");
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![0x05, 0x00],
        )];
    });
    let issued = ca
        .issue_client_from_csr(3, &subject(5, 3), &csr, 30 * DAY)
        .unwrap();
    assert_client_profile(&issued, 5, &ca.facility_ca(3).unwrap());
}

#[test]
fn hostile_rsa_csr_from_openssl_is_reduced_to_its_key() {
    let (_tmp, ca) = new_ca();
    let csr = include_str!("../tests/data/rsa2048-hostile.csr.pem");
    let issued = ca
        .issue_client_from_csr(3, &subject(5, 3), csr, 30 * DAY)
        .unwrap();
    assert_client_profile(&issued, 5, &ca.facility_ca(3).unwrap());
    let cert = x509(issued.cert_der.as_ref());
    assert_eq!(cert.public_key().parsed().unwrap().key_size(), 2048);
}

#[test]
fn accepted_key_types_keep_their_public_key() {
    let (_tmp, ca) = new_ca();
    for alg in [
        &PKCS_ECDSA_P256_SHA256,
        &PKCS_ECDSA_P384_SHA384,
        &PKCS_ED25519,
    ] {
        let key = KeyPair::generate_for(alg).unwrap();
        let issued = ca
            .issue_client_from_csr(1, &subject(2, 1), &plain_csr(&key), 30 * DAY)
            .unwrap();
        let cert = x509(issued.cert_der.as_ref());
        assert_eq!(
            cert.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
    }
    let rsa = include_str!("../tests/data/rsa2048.csr.pem");
    let issued = ca
        .issue_client_from_csr(1, &subject(2, 1), rsa, 30 * DAY)
        .unwrap();
    assert_client_profile(&issued, 2, &ca.facility_ca(1).unwrap());
}

#[test]
fn weak_rsa_key_is_refused() {
    let (_tmp, ca) = new_ca();
    let csr = include_str!("../tests/data/rsa1024.csr.pem");
    let err = ca
        .issue_client_from_csr(1, &subject(2, 1), csr, 30 * DAY)
        .unwrap_err();
    assert!(matches!(err, CaError::UnsupportedKey { .. }), "{err}");
}

#[test]
fn oversized_csr_is_refused_before_parsing() {
    let (_tmp, ca) = new_ca();
    let mut csr = plain_csr(&p256());
    csr.push_str(&"\n".repeat(MAX_CSR_BYTES));
    let err = ca
        .issue_client_from_csr(1, &subject(2, 1), &csr, 30 * DAY)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::CsrTooLarge {
                limit: MAX_CSR_BYTES,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn csr_with_a_broken_signature_is_refused() {
    let (_tmp, ca) = new_ca();
    let key = p256();
    let csr = csr_with(&key, |p| {
        p.distinguished_name.push(DnType::CommonName, "AAAA");
    });
    let (_, der) = pkcs8::der::pem::decode_vec(csr.as_bytes()).unwrap();
    let mut der = der;
    let at = der.windows(4).position(|w| w == b"AAAA").unwrap();
    der[at] = b'B';
    let tampered = crate::certinfo::pem_encode("CERTIFICATE REQUEST", &der);
    let err = ca
        .issue_client_from_csr(1, &subject(2, 1), &tampered, 30 * DAY)
        .unwrap_err();
    assert!(matches!(err, CaError::CsrSignatureInvalid), "{err}");
}

#[test]
fn csr_that_is_not_one_request_is_refused() {
    let (_tmp, ca) = new_ca();
    let one = plain_csr(&p256());
    let cert_pem = ca.root_certificate().pem().to_owned();
    for bad in [
        String::new(),
        "hello".to_owned(),
        cert_pem,
        format!("{one}{one}"),
        crate::certinfo::pem_encode("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00"),
    ] {
        let err = ca
            .issue_client_from_csr(1, &subject(2, 1), &bad, 30 * DAY)
            .unwrap_err();
        assert!(matches!(err, CaError::CsrMalformed { .. }), "{err}");
    }
}

#[test]
fn issuing_twice_for_the_same_key_gives_different_serials() {
    let (_tmp, ca) = new_ca();
    let csr = plain_csr(&p256());
    let a = ca
        .issue_client_from_csr(1, &subject(2, 1), &csr, 30 * DAY)
        .unwrap();
    let b = ca
        .issue_client_from_csr(1, &subject(2, 1), &csr, 30 * DAY)
        .unwrap();
    assert_ne!(a.serial_hex, b.serial_hex);
    assert_ne!(a.fingerprint_sha256, b.fingerprint_sha256);
    assert_eq!(a.serial_hex.len(), 32);
}

#[test]
fn client_subject_and_validity_are_validated() {
    let (_tmp, ca) = new_ca();
    let csr = plain_csr(&p256());
    let cases: Vec<(i64, ClientSubject, Duration)> = vec![
        (1, subject(2, 9), DAY),
        (0, subject(2, 0), DAY),
        (1, subject(0, 1), DAY),
        (1, subject(-4, 1), DAY),
        (
            1,
            ClientSubject {
                service_host: "care.example.jp/evil?".to_owned(),
                ..subject(2, 1)
            },
            DAY,
        ),
        (1, subject(2, 1), Duration::ZERO),
        (1, subject(2, 1), 6 * 366 * DAY),
    ];
    for (facility, subj, validity) in cases {
        let err = ca
            .issue_client_from_csr(facility, &subj, &csr, validity)
            .unwrap_err();
        assert!(
            matches!(
                err,
                CaError::FacilityMismatch { .. }
                    | CaError::InvalidFacilityId(_)
                    | CaError::InvalidUserId(_)
                    | CaError::InvalidHostName { .. }
                    | CaError::InvalidValidity { .. }
            ),
            "{err}"
        );
    }
    // Refusals create no facility CA as a side effect.
    assert!(!ca.directory().facility_cert_path(9).exists());
}

#[test]
fn client_validity_is_cut_to_the_facility_ca() {
    let (_tmp, ca) = new_ca();
    let issued = ca
        .issue_client_from_csr(1, &subject(2, 1), &plain_csr(&p256()), 5 * 366 * DAY)
        .unwrap();
    assert_eq!(
        issued.not_after_unix,
        ca.facility_ca(1).unwrap().certificate().not_after_unix()
    );
}

#[test]
fn service_host_with_port_goes_into_the_uri() {
    let (_tmp, ca) = new_ca();
    let subj = ClientSubject {
        service_host: "Care.Example.JP:8443".to_owned(),
        ..subject(2, 1)
    };
    let issued = ca
        .issue_client_from_csr(1, &subj, &plain_csr(&p256()), DAY)
        .unwrap();
    let peer = parse_peer_certificate(issued.cert_der.as_ref()).unwrap();
    assert_eq!(peer.service_host, "care.example.jp:8443");
}

#[cfg(feature = "test-support")]
#[test]
fn explicit_windows_make_expired_certificates() {
    let (_tmp, ca) = new_ca();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let issued = ca
        .issue_client_from_csr_valid_between(
            1,
            &subject(2, 1),
            &plain_csr(&p256()),
            now - 7200,
            now - 3600,
        )
        .unwrap();
    let peer = parse_peer_certificate(issued.cert_der.as_ref()).unwrap();
    assert!(!peer.is_acceptable_client_leaf(now));
}

// ---------------------------------------------------------------- PKCS#12

#[test]
fn generated_key_comes_in_a_password_protected_bundle_with_the_full_chain() {
    let (_tmp, ca) = new_ca();
    let (issued, p12) = ca
        .issue_client_with_generated_key(2, &subject(8, 2), 30 * DAY, "bundle-password-1")
        .unwrap();
    let facility = ca.facility_ca(2).unwrap();
    assert_client_profile(&issued, 8, &facility);

    let store = p12_keystore::KeyStore::from_pkcs12(
        &p12,
        "bundle-password-1",
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    let ders: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
    assert_eq!(
        ders,
        vec![
            issued.cert_der.as_ref(),
            facility.certificate().der().as_ref(),
            ca.issuing_certificate().der().as_ref(),
            ca.root_certificate().der().as_ref(),
        ]
    );
    let key = KeyPair::try_from(chain.key().as_der()).unwrap();
    assert_eq!(
        key.subject_public_key_info(),
        x509(issued.cert_der.as_ref()).public_key().raw
    );

    assert!(
        p12_keystore::KeyStore::from_pkcs12(
            &p12,
            "wrong-password",
            p12_keystore::Pkcs12ImportPolicy::Strict
        )
        .is_err()
    );
}

#[test]
fn short_bundle_passwords_are_refused() {
    let (_tmp, ca) = new_ca();
    for pw in ["", "1234567"] {
        assert!(matches!(
            ca.issue_client_with_generated_key(2, &subject(8, 2), DAY, pw),
            Err(CaError::WeakBundlePassword { min_chars: 8 })
        ));
    }
}

// ---------------------------------------------------------------- CRLs

fn parse_crl(der: &[u8]) -> CertificateRevocationList<'_> {
    let (rest, crl) = CertificateRevocationList::from_der(der).unwrap();
    assert!(rest.is_empty());
    crl
}

fn assert_crl_signed_by(crl: &Crl, issuer: &CaCertificate, number: u64) {
    let parsed = parse_crl(crl.der().as_ref());
    let issuer_cert = x509(issuer.der().as_ref());
    assert_eq!(parsed.issuer().as_raw(), issuer_cert.subject().as_raw());
    assert!(parsed.verify_signature(issuer_cert.public_key()).is_ok());
    assert_eq!(parsed.version().map(|v| v.0), Some(1), "v2 CRL");
    assert_eq!(aki(parsed.extensions()), ski(&issuer_cert));
    assert_eq!(
        parsed.crl_number().map(|n| n.to_string()),
        Some(number.to_string())
    );
    assert_eq!(crl.crl_number(), number);
    assert_eq!(
        parsed.next_update().unwrap().timestamp(),
        crl.next_update_unix()
    );
    assert!(crl.pem().starts_with("-----BEGIN X509 CRL-----"));
}

#[test]
fn facility_crl_lists_revoked_client_certificates() {
    let (_tmp, ca) = new_ca();
    let a = ca
        .issue_client_from_csr(5, &subject(1, 5), &plain_csr(&p256()), DAY)
        .unwrap();
    let b = ca
        .issue_client_from_csr(5, &subject(2, 5), &plain_csr(&p256()), DAY)
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let revoked = [
        RevokedEntry {
            serial_hex: a.serial_hex.clone(),
            revoked_at_unix: now - 60,
            reason: RevocationReason::KeyCompromise,
        },
        RevokedEntry {
            serial_hex: b.serial_hex.clone(),
            revoked_at_unix: now - 30,
            reason: RevocationReason::Unspecified,
        },
    ];
    let crl = ca.crl_for_facility(5, &revoked, 42, 3600).unwrap();
    assert_crl_signed_by(&crl, ca.facility_ca(5).unwrap().certificate(), 42);
    assert_eq!(crl.next_update_unix() - crl.this_update_unix(), 3600);

    let parsed = parse_crl(crl.der().as_ref());
    let entries: Vec<_> = parsed.iter_revoked_certificates().collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(hex::encode(entries[0].raw_serial()), a.serial_hex);
    assert_eq!(entries[0].revocation_date.timestamp(), now - 60);
    assert_eq!(entries[0].reason_code().map(|(_, r)| r.0), Some(1));
    assert_eq!(hex::encode(entries[1].raw_serial()), b.serial_hex);
    assert!(entries[1].reason_code().is_none(), "unspecified is omitted");
}

#[test]
fn empty_crls_have_no_revoked_list() {
    let (_tmp, ca) = new_ca();
    let crl = ca.issuing_crl(&[], 1, 86_400).unwrap();
    assert_crl_signed_by(&crl, ca.issuing_certificate(), 1);
    assert_eq!(
        parse_crl(crl.der().as_ref())
            .iter_revoked_certificates()
            .count(),
        0
    );
}

#[test]
fn issuing_crl_revokes_facility_cas() {
    let (_tmp, ca) = new_ca();
    let facility = ca.facility_ca(6).unwrap();
    let entry = RevokedEntry {
        serial_hex: facility.certificate().serial_hex().to_owned(),
        revoked_at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
        reason: RevocationReason::CaCompromise,
    };
    let crl = ca.issuing_crl(&[entry], 7, 86_400).unwrap();
    assert_crl_signed_by(&crl, ca.issuing_certificate(), 7);
    let parsed = parse_crl(crl.der().as_ref());
    let serials: Vec<String> = parsed
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect();
    assert_eq!(
        serials,
        vec![facility.certificate().serial_hex().to_owned()]
    );
}

#[test]
fn crl_input_is_validated() {
    let (_tmp, ca) = new_ca();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let entry = |serial: &str, at: i64| RevokedEntry {
        serial_hex: serial.to_owned(),
        revoked_at_unix: at,
        reason: RevocationReason::Superseded,
    };
    assert!(matches!(
        ca.issuing_crl(&[entry("00ab", now)], 1, 60),
        Err(CaError::InvalidSerial { .. })
    ));
    assert!(matches!(
        ca.issuing_crl(&[entry("ABCD", now)], 1, 60),
        Err(CaError::InvalidSerial { .. })
    ));
    assert!(matches!(
        ca.issuing_crl(&[entry("abcd", now + 86_400)], 1, 60),
        Err(CaError::InvalidRevocation { .. })
    ));
    for next in [0, 10 * 366 * 86_400] {
        assert!(matches!(
            ca.issuing_crl(&[], 1, next),
            Err(CaError::InvalidValidity { .. })
        ));
    }
    assert!(matches!(
        ca.issuing_crl(&[entry("abcd", now), entry("abcd", now)], 1, 60),
        Err(CaError::InvalidRevocation { .. })
    ));
    assert!(matches!(
        ca.crl_for_facility(0, &[], 1, 60),
        Err(CaError::InvalidFacilityId(0))
    ));
}

#[test]
fn root_crl_is_written_at_init_and_can_be_resigned_with_the_root_key() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    let initial = ca.root_crl();
    assert_crl_signed_by(initial, ca.root_certificate(), 1);
    assert_eq!(
        initial.next_update_unix() - initial.this_update_unix(),
        ROOT_CRL_NEXT_UPDATE_SECONDS as i64
    );
    assert_eq!(&dir.read_root_crl().unwrap(), initial);

    let root = dir.load_root(None).unwrap();
    assert_eq!(root.certificate(), ca.root_certificate());
    let revoked = RevokedEntry {
        serial_hex: ca.issuing_certificate().serial_hex().to_owned(),
        revoked_at_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
        reason: RevocationReason::CaCompromise,
    };
    let next = root
        .root_crl(
            &[revoked],
            initial.crl_number() + 1,
            ROOT_CRL_NEXT_UPDATE_SECONDS,
        )
        .unwrap();
    dir.write_root_crl(&next).unwrap();
    let read = dir.read_root_crl().unwrap();
    assert_eq!(read, next);
    assert_crl_signed_by(&read, ca.root_certificate(), 2);

    // A CRL from another issuer is not installed as the root CRL.
    let wrong = ca.issuing_crl(&[], 3, 60).unwrap();
    assert!(matches!(
        dir.write_root_crl(&wrong).unwrap_err(),
        CaError::ChainBroken { .. }
    ));
    assert_eq!(dir.read_root_crl().unwrap(), next);
}

#[test]
fn load_root_needs_the_root_key() {
    let (_tmp, ca) = new_ca();
    let dir = ca.directory().clone();
    fs::remove_file(dir.root_key_path()).unwrap();
    assert!(matches!(
        dir.load_root(None).unwrap_err(),
        CaError::NotInitialized { .. }
    ));
}

// ---------------------------------------------------------------- peer certificates

#[test]
fn peer_certificate_round_trips_an_issued_client_certificate() {
    let (_tmp, ca) = new_ca();
    let issued = ca
        .issue_client_from_csr(3, &subject(5, 3), &plain_csr(&p256()), DAY)
        .unwrap();
    let peer = parse_peer_certificate(issued.cert_der.as_ref()).unwrap();
    assert_eq!(
        peer,
        PeerCertificate {
            serial_hex: issued.serial_hex.clone(),
            fingerprint_sha256: issued.fingerprint_sha256,
            user_id: 5,
            facility_id: 3,
            service_host: HOST.to_owned(),
            not_before_unix: issued.not_before_unix,
            not_after_unix: issued.not_after_unix,
            is_ca: false,
            has_client_auth_eku: true,
        }
    );
    assert!(peer.is_acceptable_client_leaf(issued.not_before_unix));
    assert!(peer.is_acceptable_client_leaf(issued.not_after_unix));
    assert!(!peer.is_acceptable_client_leaf(issued.not_before_unix - 1));
    assert!(!peer.is_acceptable_client_leaf(issued.not_after_unix + 1));
}

#[test]
fn peer_certificate_refuses_non_client_certificates() {
    let (_tmp, ca) = new_ca();
    let server = ca
        .issue_server_certificate(&["localhost".to_owned()], &[], 30)
        .unwrap();
    for der in [
        server.cert_der.as_ref(),
        ca.root_certificate().der().as_ref(),
        ca.issuing_certificate().der().as_ref(),
    ] {
        assert!(matches!(
            parse_peer_certificate(der).unwrap_err(),
            CaError::NotAClientCertificate { .. }
        ));
    }
    assert!(matches!(
        parse_peer_certificate(b"\x30\x00").unwrap_err(),
        CaError::PeerCertificateMalformed { .. }
    ));
    let mut trailing = server.cert_der.to_vec();
    trailing.push(0);
    assert!(matches!(
        parse_peer_certificate(&trailing).unwrap_err(),
        CaError::PeerCertificateMalformed { .. }
    ));
}

/// A certificate signed by some foreign key, with whatever fields a test wants.
fn forged(configure: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "user-5");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "facility-3");
    params.subject_alt_names = vec![SanType::URI(
        format!("https://{HOST}/users/5").try_into().unwrap(),
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    configure(&mut params);
    params.self_signed(&p256()).unwrap().der().to_vec()
}

#[test]
fn peer_certificate_reports_ca_flag_and_missing_eku() {
    let ca_flag = forged(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained));
    let peer = parse_peer_certificate(&ca_flag).unwrap();
    assert!(peer.is_ca && !peer.is_acceptable_client_leaf(peer.not_before_unix + 1));

    let no_eku = forged(|p| p.extended_key_usages.clear());
    let peer = parse_peer_certificate(&no_eku).unwrap();
    assert!(!peer.has_client_auth_eku);
    assert!(!peer.is_acceptable_client_leaf(peer.not_before_unix + 1));

    let server_eku = forged(|p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]);
    assert!(
        !parse_peer_certificate(&server_eku)
            .unwrap()
            .has_client_auth_eku
    );
}

#[test]
fn peer_certificate_identity_must_be_unambiguous() {
    let cases = [
        forged(|p| {
            p.distinguished_name.push(DnType::CommonName, "user-6");
        }),
        forged(|p| {
            p.subject_alt_names.push(SanType::URI(
                format!("https://{HOST}/users/6").try_into().unwrap(),
            ))
        }),
        forged(|p| {
            p.distinguished_name.remove(DnType::OrganizationName);
        }),
        forged(|p| {
            p.distinguished_name
                .push(DnType::OrganizationName, "facility-x");
        }),
        forged(|p| {
            p.subject_alt_names = vec![SanType::URI("urn:kizuna:user:5".try_into().unwrap())]
        }),
        forged(|p| p.subject_alt_names.clear()),
    ];
    for der in cases {
        assert!(matches!(
            parse_peer_certificate(&der).unwrap_err(),
            CaError::NotAClientCertificate { .. }
        ));
    }
}

#[test]
fn peer_serial_drops_the_der_sign_byte() {
    let der = forged(|p| {
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x80, 0x01, 0x02]));
    });
    let cert = x509(&der);
    assert_eq!(cert.raw_serial(), &[0x00, 0x80, 0x01, 0x02]);
    assert_eq!(parse_peer_certificate(&der).unwrap().serial_hex, "800102");
}

#[test]
fn fingerprint_b64url_matches_rfc8705_form() {
    let digest: [u8; 32] = Sha256::digest(b"").into();
    assert_eq!(
        fingerprint_b64url(&digest),
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    );
}

#[test]
fn debug_output_contains_no_key_material() {
    let (_tmp, ca) = new_ca();
    ca.facility_ca(1).unwrap();
    let debug = format!("{ca:?}");
    assert!(!debug.contains("PRIVATE KEY"));
    let key_b64: String = fs::read_to_string(ca.directory().issuing_key_path())
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(!debug.contains(&key_b64));
    let root = ca.directory().load_root(None).unwrap();
    assert!(!format!("{root:?}").contains("PRIVATE KEY"));
}

#[test]
fn checks_that_the_oids_used_above_are_the_right_ones() {
    // Guards the literal OIDs in assert_client_profile.
    assert_eq!(OID_X509_EXT_KEY_USAGE.to_id_string(), "2.5.29.15");
    assert_eq!(OID_X509_EXT_BASIC_CONSTRAINTS.to_id_string(), "2.5.29.19");
    assert_eq!(OID_X509_EXT_EXTENDED_KEY_USAGE.to_id_string(), "2.5.29.37");
}
