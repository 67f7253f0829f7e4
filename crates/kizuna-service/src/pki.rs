//! Client certificates: issuing (from a CSR, or with a server-made key in a
//! PKCS#12 bundle), listing, revoking, renewing, and the CRLs the TLS layer
//! checks. `kizuna-ca` does the cryptography; this module records what was
//! issued, decides who may do what (through the access function), audits it,
//! and keeps every node's CRLs and live sockets in step with revocations.

use crate::Service;
use crate::admin::{CallerInfo, allow, audit, denied};
use crate::auth::{Caller, Principal};
use crate::error::{ServiceError, ServiceResult};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kizuna_ca::{
    CertificateAuthority, ClientSubject, IssuedCertificate, RevocationReason, RevokedEntry,
};
use kizuna_domain::access::{Action, AdminOp};
use kizuna_domain::{FacilityId, UserId, UserKind, UserStatus};
use kizuna_realtime::{CloseReason, Selector};
use kizuna_store::audit::AuditEntry;
use kizuna_store::certificates::{self, NewCertificate};
use kizuna_store::models::CertificateRow;
use kizuna_store::{DbConn, directory, transaction};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default validity of a client certificate, days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Longest validity an admin may ask for, days.
pub const MAX_VALIDITY_DAYS: u32 = 825;
/// CRLs are valid this long; they are re-signed well before (hourly).
pub const CRL_VALIDITY_SECS: u64 = 24 * 3600;

/// The CRLs a TLS verifier needs: one per issuer in any client chain (root →
/// issuing CA → facility CA → leaf).
#[derive(Debug, Clone)]
pub struct CrlSet {
    /// `root`, `issuing`, then `facility-<id>` for each facility CA that has
    /// issued certificates.
    pub crls: Vec<NamedCrl>,
}

/// One CRL.
#[derive(Debug, Clone)]
pub struct NamedCrl {
    /// `root`, `issuing` or `facility-<id>`.
    pub name: String,
    /// DER.
    pub der: Vec<u8>,
    /// PEM.
    pub pem: String,
}

impl CrlSet {
    /// Every CRL in DER.
    pub fn ders(&self) -> Vec<Vec<u8>> {
        self.crls.iter().map(|c| c.der.clone()).collect()
    }
}

/// Receives new CRLs (the server swaps its client-certificate verifier).
pub type CrlSink = Arc<dyn Fn(&CrlSet) + Send + Sync>;

/// The service's certificate authority and the service host named in
/// certificates.
pub struct Pki {
    ca: Arc<CertificateAuthority>,
    service_host: String,
    sink: Mutex<Option<CrlSink>>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("service_host", &self.service_host)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Wraps a loaded CA. `service_host` goes into each certificate's SAN URI.
    pub fn new(ca: CertificateAuthority, service_host: String) -> Pki {
        Pki {
            ca: Arc::new(ca),
            service_host,
            sink: Mutex::new(None),
        }
    }

    /// The CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }
}

/// How a certificate is to be issued.
pub enum IssueMethod {
    /// The device made its key and sends a CSR (PEM); only its public key is used.
    Csr(String),
    /// The server makes the key and returns it in a PKCS#12 bundle protected
    /// by this password (shown once).
    Bundle(SecretString),
}

impl std::fmt::Debug for IssueMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IssueMethod::Csr(_) => "Csr",
            IssueMethod::Bundle(_) => "Bundle",
        })
    }
}

/// A certificate as shown to admins.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateView {
    /// Record id.
    pub id: i64,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Owner.
    pub user_id: UserId,
    /// Issuing facility.
    pub facility_id: FacilityId,
    /// Device label.
    pub device_label: String,
    /// `csr`, `pkcs12` or `renewal`.
    pub method: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// `active` or `revoked`.
    pub status: String,
    /// Unix ms.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoke_reason: Option<String>,
}

impl From<&CertificateRow> for CertificateView {
    fn from(r: &CertificateRow) -> Self {
        CertificateView {
            id: r.id,
            serial: r.serial.clone(),
            user_id: UserId(r.user_id),
            facility_id: FacilityId(r.facility_id),
            device_label: r.device_label.clone(),
            method: r.method.clone(),
            not_before: r.not_before,
            not_after: r.not_after,
            status: r.status.clone(),
            revoked_at: r.revoked_at,
            revoke_reason: r.revoke_reason.clone(),
        }
    }
}

/// What issuing returns: the record, the chain to install, and (for bundles)
/// the PKCS#12 file, base64 — shown once, never stored.
#[derive(Clone, Serialize)]
pub struct Issued {
    /// The record.
    pub certificate: CertificateView,
    /// Leaf, facility CA and issuing CA (PEM); the root is the trust anchor.
    pub chain_pem: String,
    /// The PKCS#12 bundle (key, leaf, full chain), base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs12_base64: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

fn reason_from(word: &str) -> ServiceResult<RevocationReason> {
    Ok(match word {
        "unspecified" => RevocationReason::Unspecified,
        "key_compromise" => RevocationReason::KeyCompromise,
        "affiliation_changed" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessation_of_operation" => RevocationReason::CessationOfOperation,
        "privilege_withdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => {
            return Err(ServiceError::Invalid(
                "reason must be unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation or privilege_withdrawn".into(),
            ));
        }
    })
}

fn now_secs() -> i64 {
    kizuna_store::now_ms() / 1000
}

fn ca_error(e: kizuna_ca::CaError) -> ServiceError {
    use kizuna_ca::CaError as C;
    match e {
        // The requester's input was refused: say so, without its content.
        C::CsrTooLarge { .. }
        | C::CsrMalformed { .. }
        | C::CsrSignatureInvalid
        | C::UnsupportedKey { .. }
        | C::WeakBundlePassword { .. }
        | C::InvalidValidity { .. } => ServiceError::Invalid(e.to_string()),
        other => ServiceError::Internal(format!("certificate authority: {other}")),
    }
}

/// Builds every CRL from the store (CRL numbers only grow).
fn build_crls(conn: &mut DbConn, ca: &CertificateAuthority) -> ServiceResult<CrlSet> {
    let named = |name: String, c: &kizuna_ca::Crl| NamedCrl {
        name,
        der: c.der().as_ref().to_vec(),
        pem: c.pem().to_owned(),
    };
    let root = ca.directory().read_root_crl().map_err(ca_error)?;
    let mut crls = vec![named("root".into(), &root)];
    let mut revoked_cas = Vec::new();
    for (facility, at_ms) in certificates::revoked_facility_cas(conn)? {
        let fca = ca.facility_ca(facility.get()).map_err(ca_error)?;
        revoked_cas.push(RevokedEntry {
            serial_hex: fca.certificate().serial_hex().to_owned(),
            revoked_at_unix: at_ms / 1000,
            reason: RevocationReason::CaCompromise,
        });
    }
    let n = certificates::next_crl_number(conn, "issuing")?;
    crls.push(named(
        "issuing".into(),
        &ca.issuing_crl(&revoked_cas, n, CRL_VALIDITY_SECS)
            .map_err(ca_error)?,
    ));
    let now = now_secs();
    for facility in certificates::issuing_facilities(conn)? {
        let entries: Vec<RevokedEntry> = certificates::revoked_unexpired(conn, facility, now)?
            .iter()
            .map(|r| RevokedEntry {
                serial_hex: r.serial.clone(),
                revoked_at_unix: r.revoked_at.unwrap_or(0) / 1000,
                reason: r
                    .revoke_reason
                    .as_deref()
                    .and_then(|w| reason_from(w).ok())
                    .unwrap_or(RevocationReason::Unspecified),
            })
            .collect();
        let name = format!("facility-{facility}");
        let n = certificates::next_crl_number(conn, &name)?;
        crls.push(named(
            name,
            &ca.crl_for_facility(facility.get(), &entries, n, CRL_VALIDITY_SECS)
                .map_err(ca_error)?,
        ));
    }
    Ok(CrlSet { crls })
}

/// A presented certificate must be one we issued, active, unexpired.
pub(crate) fn check_presented(
    conn: &mut DbConn,
    serial: &str,
    thumbprint: &str,
) -> ServiceResult<CertificateRow> {
    let row = certificates::by_serial(conn, serial)?
        .ok_or(ServiceError::CertificateRejected("unknown certificate"))?;
    if row.thumbprint != thumbprint {
        return Err(ServiceError::CertificateRejected("unknown certificate"));
    }
    if row.status != certificates::ACTIVE {
        return Err(ServiceError::CertificateRejected("certificate revoked"));
    }
    let now = now_secs();
    if now < row.not_before || now >= row.not_after {
        return Err(ServiceError::CertificateRejected(
            "certificate expired or not yet valid",
        ));
    }
    if directory::facility(conn, FacilityId(row.facility_id))?
        .ca_revoked_at
        .is_some()
    {
        return Err(ServiceError::CertificateRejected(
            "the facility's certificate authority is revoked",
        ));
    }
    Ok(row)
}

impl Service {
    /// The certificate authority, when one is loaded.
    pub fn pki_handle(&self) -> Option<&Pki> {
        self.inner.pki.as_ref()
    }

    fn pki(&self) -> ServiceResult<&Pki> {
        self.inner
            .pki
            .as_ref()
            .ok_or_else(|| ServiceError::Internal("no certificate authority configured".into()))
    }

    /// Registers where new CRLs go and pushes the current ones there.
    pub async fn publish_crls_to(&self, sink: CrlSink) -> ServiceResult<CrlSet> {
        let pki = self.pki()?;
        *pki.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink);
        self.refresh_crls().await
    }

    /// Rebuilds the CRLs from the store and hands them to the sink.
    pub async fn refresh_crls(&self) -> ServiceResult<CrlSet> {
        let pki_ca = self.pki()?.ca.clone();
        let set = self.blocking(move |conn| build_crls(conn, &pki_ca)).await?;
        let sink = self
            .pki()?
            .sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(sink) = sink {
            sink(&set);
        }
        Ok(set)
    }

    /// Issues a client certificate for a user's device.
    pub async fn issue_certificate(
        &self,
        caller: Caller<'_>,
        user: UserId,
        device_label: String,
        method: IssueMethod,
        validity_days: Option<u32>,
    ) -> ServiceResult<Issued> {
        let days = validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS);
        if days == 0 || days > MAX_VALIDITY_DAYS {
            return Err(ServiceError::Invalid(format!(
                "validity_days must be 1 to {MAX_VALIDITY_DAYS}"
            )));
        }
        let label = device_label.trim().to_owned();
        if label.is_empty() || label.len() > 100 || label.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(
                "device_label must be 1 to 100 characters without control characters".into(),
            ));
        }
        let caller = CallerInfo::from(caller);
        let ca = self.pki()?.ca.clone();
        let host = self.pki()?.service_host.clone();
        let issued = self
            .blocking(move |conn| {
                let target = directory::user(conn, user).map_err(|_| ServiceError::NotFound)?;
                let Some(facility) = target.facility_id.map(FacilityId) else {
                    return denied(
                        conn,
                        &caller,
                        "cert.issue",
                        ServiceError::Invalid(
                            "certificates are issued to staff and patients of a facility".into(),
                        ),
                    );
                };
                if let Err(e) = allow(
                    conn,
                    &caller,
                    Action::Admin(AdminOp::ManageCertificates { facility }),
                ) {
                    return denied(conn, &caller, "cert.issue", e);
                }
                if target.status()? != UserStatus::Active {
                    return Err(ServiceError::Invalid("the account is disabled".into()));
                }
                if directory::facility(conn, facility)?.ca_revoked_at.is_some() {
                    return Err(ServiceError::Conflict(
                        "this facility's certificate authority is revoked",
                    ));
                }
                issue_and_record(
                    conn,
                    &ca,
                    &host,
                    &caller,
                    &target,
                    facility,
                    label,
                    method,
                    days,
                    "cert.issue",
                )
            })
            .await?;
        Ok(issued)
    }

    /// A device renews its own certificate before it expires: the request must
    /// come over a connection made with an active certificate of the same user.
    pub async fn renew_certificate(
        &self,
        p: &Principal,
        method: IssueMethod,
    ) -> ServiceResult<Issued> {
        let Some(peer) = p.ctx.peer.clone() else {
            return Err(ServiceError::CertificateRequired);
        };
        let caller = CallerInfo::from(Caller::User(p));
        let ca = self.pki()?.ca.clone();
        let host = self.pki()?.service_host.clone();
        let uid = p.user_id;
        self.blocking(move |conn| {
            let current = check_presented(conn, &peer.serial, &peer.thumbprint)?;
            if current.user_id != uid.get() {
                return Err(ServiceError::CertificateRejected(
                    "certificate belongs to another account",
                ));
            }
            let target = directory::user(conn, uid)?;
            let days = u32::try_from(
                ((current.not_after - current.not_before) / 86_400)
                    .clamp(1, i64::from(MAX_VALIDITY_DAYS)),
            )
            .unwrap_or(DEFAULT_VALIDITY_DAYS);
            issue_and_record(
                conn,
                &ca,
                &host,
                &caller,
                &target,
                FacilityId(current.facility_id),
                current.device_label.clone(),
                method,
                days,
                "cert.renew",
            )
        })
        .await
    }

    /// A user's certificates (admins of the user's facility, and the operator).
    pub async fn certificates_of(
        &self,
        caller: Caller<'_>,
        user: UserId,
    ) -> ServiceResult<Vec<CertificateView>> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let target = directory::user(conn, user).map_err(|_| ServiceError::NotFound)?;
            let facility = target
                .facility_id
                .map(FacilityId)
                .ok_or(ServiceError::NotFound)?;
            allow(
                conn,
                &caller,
                Action::Admin(AdminOp::ManageCertificates { facility }),
            )
            .map_err(|_| ServiceError::NotFound)?;
            Ok(certificates::of_user(conn, user)?
                .iter()
                .map(CertificateView::from)
                .collect())
        })
        .await
    }

    /// Revokes one certificate: CRLs are rebuilt and every live connection
    /// made with it, on every node, is closed.
    pub async fn revoke_certificate(
        &self,
        caller: Caller<'_>,
        id: i64,
        reason: &str,
    ) -> ServiceResult<CertificateView> {
        reason_from(reason)?;
        let caller = CallerInfo::from(caller);
        let reason = reason.to_owned();
        let row = self
            .blocking(move |conn| {
                let row = certificates::by_id(conn, id)?;
                if let Err(e) = allow(
                    conn,
                    &caller,
                    Action::Admin(AdminOp::ManageCertificates {
                        facility: FacilityId(row.facility_id),
                    }),
                ) {
                    // Other facilities' certificate ids do not exist for this caller.
                    let _ = e;
                    return denied(conn, &caller, "cert.revoke", ServiceError::NotFound);
                }
                transaction(conn, |conn| {
                    let revoked = certificates::revoke(conn, id, &reason)?
                        .ok_or(ServiceError::Conflict("certificate already revoked"))?;
                    audit(
                        conn,
                        &caller,
                        AuditEntry {
                            action: "cert.revoke",
                            outcome: "ok",
                            facility_id: Some(revoked.facility_id),
                            subject_user_id: Some(revoked.user_id),
                            detail: Some(format!("serial={} reason={reason}", revoked.serial)),
                            ..Default::default()
                        },
                    )?;
                    Ok(revoked)
                })
            })
            .await?;
        self.after_revocation(std::slice::from_ref(&row.serial))
            .await;
        Ok(CertificateView::from(&row))
    }

    /// Revokes a facility's whole CA (operator): every certificate it issued
    /// stops working at the next handshake, and live connections close.
    pub async fn revoke_facility_ca(
        &self,
        caller: Caller<'_>,
        facility: FacilityId,
    ) -> ServiceResult<()> {
        let caller = CallerInfo::from(caller);
        let serials = self
            .blocking(move |conn| {
                if let Err(e) = allow(conn, &caller, Action::Admin(AdminOp::RevokeFacilityCa)) {
                    return denied(conn, &caller, "cert.revoke_facility_ca", e);
                }
                directory::facility(conn, facility)?;
                transaction(conn, |conn| {
                    certificates::revoke_facility_ca(conn, facility)?;
                    audit(
                        conn,
                        &caller,
                        AuditEntry {
                            action: "cert.revoke_facility_ca",
                            outcome: "ok",
                            facility_id: Some(facility.get()),
                            ..Default::default()
                        },
                    )?;
                    Ok::<_, ServiceError>(())
                })?;
                // Every certificate of the facility, active or not, is now untrusted.
                Ok(certificates::of_facility(conn, facility)?
                    .into_iter()
                    .map(|r| r.serial)
                    .collect::<Vec<_>>())
            })
            .await?;
        self.after_revocation(&serials).await;
        Ok(())
    }

    async fn after_revocation(&self, serials: &[String]) {
        if let Err(e) = self.refresh_crls().await {
            tracing::error!(error = %e, "CRLs could not be rebuilt after a revocation; revoked certificates are still refused by the per-request check");
        }
        for serial in serials {
            self.close_connections(
                Selector::CertSerial(serial.clone()),
                CloseReason::CertificateRevoked,
            )
            .await;
        }
    }

    /// Watches the store for changes made elsewhere (the CLI, another node):
    /// revocations close matching sockets here, and revocations or a new
    /// issuing facility rebuild the CRLs; CRLs are also re-signed hourly.
    /// Runs until the service is dropped.
    pub fn spawn_revocation_watcher(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut last_state: Option<(i64, usize)> = None;
            let mut last_crl = std::time::Instant::now();
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let svc = Service { inner };
                let state = match svc
                    .blocking(|conn| Ok(certificates::trust_state(conn)?))
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation watcher could not read the store");
                        continue;
                    }
                };
                let Some(previous) = last_state.replace(state) else {
                    continue;
                };
                if state != previous {
                    if state.0 > previous.0 {
                        let since = previous.0;
                        let revoked = svc
                            .blocking(move |conn| {
                                let mut serials: Vec<String> =
                                    certificates::revoked_since(conn, since)?
                                        .into_iter()
                                        .map(|r| r.serial)
                                        .collect();
                                for (facility, at) in certificates::revoked_facility_cas(conn)? {
                                    if at > since {
                                        serials.extend(
                                            certificates::of_facility(conn, facility)?
                                                .into_iter()
                                                .map(|r| r.serial),
                                        );
                                    }
                                }
                                Ok(serials)
                            })
                            .await;
                        match revoked {
                            Ok(serials) => {
                                for serial in serials {
                                    svc.hub().close(
                                        &Selector::CertSerial(serial),
                                        CloseReason::CertificateRevoked,
                                    );
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "revocation watcher could not read revocations")
                            }
                        }
                    }
                    if let Err(e) = svc.refresh_crls().await {
                        tracing::error!(error = %e, "CRL rebuild failed");
                    }
                    last_crl = std::time::Instant::now();
                } else if last_crl.elapsed() > Duration::from_secs(3600) {
                    if let Err(e) = svc.refresh_crls().await {
                        tracing::error!(error = %e, "hourly CRL rebuild failed; CRLs expire in at most 24 h and then every handshake with a client certificate fails");
                    }
                    last_crl = std::time::Instant::now();
                }
            }
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn issue_and_record(
    conn: &mut DbConn,
    ca: &CertificateAuthority,
    host: &str,
    caller: &CallerInfo,
    target: &kizuna_store::models::UserRow,
    facility: FacilityId,
    label: String,
    method: IssueMethod,
    days: u32,
    action: &'static str,
) -> ServiceResult<Issued> {
    if !matches!(target.kind()?, UserKind::Staff | UserKind::Patient) {
        return Err(ServiceError::Invalid(
            "certificates are issued to staff and patients of a facility".into(),
        ));
    }
    let subject = ClientSubject {
        user_id: target.id,
        facility_id: facility.get(),
        device_label: label.clone(),
        service_host: host.to_owned(),
    };
    let validity = Duration::from_secs(u64::from(days) * 86_400);
    let (cert, bundle, method_word): (IssuedCertificate, Option<Vec<u8>>, &str) = match &method {
        IssueMethod::Csr(pem) => (
            ca.issue_client_from_csr(facility.get(), &subject, pem, validity)
                .map_err(ca_error)?,
            None,
            "csr",
        ),
        IssueMethod::Bundle(pw) => {
            let (c, p12) = ca
                .issue_client_with_generated_key(
                    facility.get(),
                    &subject,
                    validity,
                    pw.expose_secret(),
                )
                .map_err(ca_error)?;
            (c, Some(p12), "pkcs12")
        }
    };
    let method_word = if action == "cert.renew" {
        "renewal"
    } else {
        method_word
    };
    let thumbprint = kizuna_ca::fingerprint_b64url(&cert.fingerprint_sha256);
    let row = transaction(conn, |conn| {
        let row = certificates::record(
            conn,
            &NewCertificate {
                serial: &cert.serial_hex,
                user_id: target.user_id(),
                facility_id: facility,
                thumbprint: &thumbprint,
                device_label: &label,
                method: method_word,
                not_before: cert.not_before_unix,
                not_after: cert.not_after_unix,
                issued_by: caller.user,
            },
        )?;
        audit(
            conn,
            caller,
            AuditEntry {
                action,
                outcome: "ok",
                facility_id: Some(facility.get()),
                subject_user_id: Some(target.id),
                detail: Some(format!("serial={} method={method_word}", cert.serial_hex)),
                ..Default::default()
            },
        )?;
        Ok::<_, ServiceError>(row)
    })?;
    Ok(Issued {
        certificate: CertificateView::from(&row),
        chain_pem: cert.chain_pem.clone(),
        pkcs12_base64: bundle.map(|b| STANDARD.encode(b)),
    })
}
