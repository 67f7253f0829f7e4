//! Issuing, renewing, listing and revoking client certificates.

use super::*;

impl Service {
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
                // Accounts the caller may not manage answer like missing ones: ids of
                // other facilities never reveal whether they exist.
                let target = match directory::user(conn, user) {
                    Ok(t) => t,
                    Err(_) => return denied(conn, &caller, "cert.issue", ServiceError::NotFound),
                };
                let Some(facility) = target.facility_id.map(FacilityId) else {
                    return denied(conn, &caller, "cert.issue", ServiceError::NotFound);
                };
                if allow(
                    conn,
                    &caller,
                    Action::Admin(AdminOp::ManageCertificates { facility }),
                )
                .is_err()
                {
                    return denied(conn, &caller, "cert.issue", ServiceError::NotFound);
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
        // The facility's CA may be new: it needs a CRL before its certificates
        // verify. (Other nodes and processes notice through their watcher.)
        if let Err(e) = self.refresh_crls().await {
            tracing::error!(error = %e, "CRLs could not be rebuilt after issuing a certificate");
        }
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
            let allowed = match directory::user(conn, user) {
                Ok(t) => match t.facility_id.map(FacilityId) {
                    Some(facility) => allow(
                        conn,
                        &caller,
                        Action::Admin(AdminOp::ManageCertificates { facility }),
                    )
                    .is_ok(),
                    None => false,
                },
                Err(_) => false,
            };
            if !allowed {
                return denied(conn, &caller, "cert.list", ServiceError::NotFound);
            }
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
}

#[allow(clippy::too_many_arguments)]
pub(super) fn issue_and_record(
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
