//! Building CRLs and keeping every node's verifier and sockets in step
//! with revocations.

use super::*;

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

impl Service {
    /// The certificate authority, when one is loaded.
    pub fn pki_handle(&self) -> Option<&Pki> {
        self.inner.pki.as_ref()
    }

    pub(super) fn pki(&self) -> ServiceResult<&Pki> {
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
        // One rebuild at a time: a rebuild that read the store earlier must not
        // install its (older) set after a later one.
        let _one_at_a_time = self.pki()?.rebuild.lock().await;
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

    pub(crate) async fn after_revocation(&self, serials: &[String]) {
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
            let mut last_state: Option<(i64, i64, usize)> = None;
            // Serials known to be untrusted, so that only new ones close sockets.
            let mut untrusted: Option<std::collections::HashSet<String>> = None;
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
                if last_state == Some(state) {
                    if last_crl.elapsed() > Duration::from_secs(3600) {
                        if let Err(e) = svc.refresh_crls().await {
                            tracing::error!(error = %e, "hourly CRL rebuild failed; CRLs expire in at most 24 h and then every handshake with a client certificate fails");
                        } else {
                            last_crl = std::time::Instant::now();
                        }
                    }
                    continue;
                }
                // State, known serials and the CRL time are recorded only once
                // both steps succeeded, so a failed tick is retried at the next.
                let now_untrusted = match svc
                    .blocking(|conn| Ok(certificates::untrusted_serials(conn)?))
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation watcher could not read revocations");
                        continue;
                    }
                };
                if let Some(known) = &untrusted {
                    for serial in now_untrusted.difference(known) {
                        svc.hub().close(
                            &Selector::CertSerial(serial.clone()),
                            CloseReason::CertificateRevoked,
                        );
                    }
                }
                untrusted = Some(now_untrusted);
                if let Err(e) = svc.refresh_crls().await {
                    tracing::error!(error = %e, "CRL rebuild failed; retrying at the next poll");
                    continue;
                }
                last_state = Some(state);
                last_crl = std::time::Instant::now();
            }
        })
    }
}
