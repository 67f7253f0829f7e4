//! The operator's CA commands: `kizuna ca issue`, `revoke`, `crl` (CRLs
//! written as PEM and DER for publication) and `root-crl`, checked with
//! OpenSSL as an independent verifier.

use crate::support::*;
use std::process::Command;

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (independent verifier)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_crls_list_revoked_certificates_and_verify_with_openssl() {
    let db = kizuna_store::testing::ScratchDb::sqlite();
    let w = World::new(&db).await;
    let dir = w.server.data_dir.path().to_owned();
    let bundle = [("KIZUNA_BUNDLE_PASSWORD", "bundle-pass-123")];
    let p12 = dir.join("nurse.p12");
    let issued: serde_json::Value = serde_json::from_str(&ok(
        w.server.cli(
            &[
                "ca",
                "issue",
                "--user",
                "nurse",
                "--device",
                "tablet",
                "--p12",
                p12.to_str().unwrap(),
            ],
            &bundle,
        ),
        "ca issue",
    ))
    .unwrap();
    assert!(p12.exists(), "the bundle was written");
    let serial = issued["serial"].as_str().unwrap().to_owned();
    let id = issued["id"].as_i64().unwrap().to_string();
    let facility = issued["facility_id"].as_i64().unwrap();
    ok(
        w.server.cli(
            &["ca", "revoke", "--id", &id, "--reason", "key_compromise"],
            &[],
        ),
        "ca revoke",
    );

    let out = dir.join("published");
    ok(
        w.server
            .cli(&["ca", "crl", "--out", out.to_str().unwrap()], &[]),
        "ca crl",
    );
    for name in ["root", "issuing", &format!("facility-{facility}")] {
        assert!(
            out.join(format!("{name}.crl.der")).exists(),
            "{name}.crl.der written"
        );
    }
    // The facility CRL is signed by the facility CA and lists the serial.
    let facility_crl = out.join(format!("facility-{facility}.crl.der"));
    let facility_ca = dir
        .join("ca")
        .join("facilities")
        .join(format!("{facility}.pem"));
    let text = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        facility_crl.to_str().unwrap(),
        "-noout",
        "-text",
        "-CAfile",
        facility_ca.to_str().unwrap(),
        "-verify",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.to_lowercase().contains(&serial.to_lowercase()),
        "the revoked serial is listed: {text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    // The PEM bundle holds every CRL.
    let pem = std::fs::read_to_string(out.join("crls.pem")).unwrap();
    assert_eq!(pem.matches("BEGIN X509 CRL").count(), 3);

    // The root CRL is re-signed with a higher CRL number (the development CA
    // keeps its root key; production brings it online for this).
    let root_crl = dir.join("ca").join("root.crl.pem");
    let number =
        |p: &std::path::Path| openssl(&["crl", "-in", p.to_str().unwrap(), "-noout", "-crlnumber"]);
    let before = number(&root_crl);
    ok(w.server.cli(&["ca", "root-crl"], &[]), "ca root-crl");
    let after = number(&root_crl);
    assert_ne!(before, after, "a new CRL number");
    let root = dir.join("ca").join("root.pem");
    assert!(
        openssl(&[
            "crl",
            "-in",
            root_crl.to_str().unwrap(),
            "-noout",
            "-CAfile",
            root.to_str().unwrap(),
            "-verify"
        ])
        .contains("verify OK")
    );
}
