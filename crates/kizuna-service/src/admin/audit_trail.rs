//! Reading and verifying the audit trail.
//!
//! A facility's admins read the entries about their facility (its patients,
//! its accounts) and by its users; the operator reads everything. Entries of
//! anonymous consultations (`consultation.*`) are only in the operator's
//! service-wide view. Every query and export is itself audited.

use super::*;
use crate::audit::record_returning;
use kizuna_domain::PatientId;
pub use kizuna_store::audit::{AuditFilter, MAX_PAGE as MAX_AUDIT_PAGE, PatientAccess};
pub use kizuna_store::models::AuditRow;

const MAX_PAGE: i64 = MAX_AUDIT_PAGE;

/// One page of a query.
#[derive(Debug, Clone, Serialize)]
pub struct AuditPage {
    /// Entries, oldest first.
    pub entries: Vec<AuditRow>,
    /// Pass as `after_id` for the next page; `None` when this page was the last.
    pub next_after_id: Option<i64>,
}

/// Who read one patient's timelines.
#[derive(Debug, Clone, Serialize)]
pub struct PatientAccessView {
    /// The patient.
    pub patient_id: PatientId,
    /// One row per reader, most recent first.
    pub accessed_by: Vec<PatientAccess>,
}

/// An export in progress: the whole filtered range up to the export's own
/// audit entry, page by page. Only [`Service::audit_export`] makes one (after
/// checking and auditing the caller).
#[derive(Debug)]
pub struct AuditExport {
    service: Service,
    facility: Option<FacilityId>,
    filter: AuditFilter,
    done: bool,
}

impl AuditExport {
    /// The next page, or `None` when the range is exhausted.
    pub async fn next_page(&mut self) -> ServiceResult<Option<Vec<AuditRow>>> {
        if self.done {
            return Ok(None);
        }
        let (facility, filter) = (self.facility, self.filter.clone());
        let page = self
            .service
            .blocking(move |conn| Ok(page_of(conn, facility, &filter)?))
            .await?;
        let full = page.len() as i64 >= MAX_PAGE;
        match page.last() {
            Some(last) if full => self.filter.after_id = Some(last.id),
            _ => self.done = true,
        }
        Ok(if page.is_empty() { None } else { Some(page) })
    }
}

fn page_of(
    conn: &mut DbConn,
    facility: Option<FacilityId>,
    filter: &AuditFilter,
) -> Result<Vec<AuditRow>, kizuna_store::StoreError> {
    match facility {
        Some(f) => kizuna_store::audit::facility_entries(conn, f, filter),
        None => kizuna_store::audit::entries(conn, filter),
    }
}

/// Whether the caller may read some audit trail at all: the CLI, the
/// operator, a facility's admins (their own facility's).
fn reads_some_audit(actor: Option<&kizuna_domain::access::Actor>) -> bool {
    let view = |facility| Action::Admin(AdminOp::ViewAudit { facility });
    match actor {
        None => true,
        Some(a) if a.kind == UserKind::Operator => true,
        Some(a) => a.facility_id.is_some() && decide(a, &view(a.facility_id)) == Decision::Allow,
    }
}

/// Which part of the trail the caller may read: `Some(f)`, one facility's;
/// `None`, all of it (the operator and the CLI). A facility admin's default is
/// their own facility. Another facility answers 404 (as if it did not exist);
/// an account that may read no audit at all gets 403 whatever the facility
/// id. The access function decides first: only a caller it allows learns
/// whether the facility exists.
fn audit_scope(
    conn: &mut DbConn,
    caller: &CallerInfo,
    requested: Option<FacilityId>,
    action: &'static str,
) -> ServiceResult<Option<FacilityId>> {
    let actor = caller_actor(conn, caller)?;
    let scope = match &actor {
        None => requested,
        Some(a) if a.kind == UserKind::Operator => requested,
        Some(a) => requested.or(a.facility_id),
    };
    if let Some(a) = &actor
        && decide(a, &Action::Admin(AdminOp::ViewAudit { facility: scope })) != Decision::Allow
    {
        let e = if reads_some_audit(Some(a)) {
            ServiceError::NotFound
        } else {
            ServiceError::Forbidden("reading the audit trail is for facility admins")
        };
        return denied(conn, caller, action, e);
    }
    if let Some(f) = scope {
        match directory::facility(conn, f) {
            Ok(_) => {}
            Err(kizuna_store::StoreError::NotFound) => {
                return denied(conn, caller, action, ServiceError::NotFound);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(scope)
}

/// Ids and codes of a query, for its own audit entry.
fn describe(filter: &AuditFilter, format: &str) -> String {
    let mut d = format!("format={format}");
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            d.push_str(&format!(" {k}={v}"));
        }
    };
    add("actor", filter.actor_user_id.map(|v| v.to_string()));
    add("subject", filter.subject_user_id.map(|v| v.to_string()));
    // Actions are checked to be `[a-z_.]` by the edge; escaped anyway.
    add("action", filter.action.as_ref().map(|a| format!("{a:?}")));
    add("from", filter.from_ms.map(|v| v.to_string()));
    add("to", filter.to_ms.map(|v| v.to_string()));
    add("after_id", filter.after_id.map(|v| v.to_string()));
    d
}

impl Service {
    /// Audit entries matching a filter, service-wide (the CLI).
    pub async fn audit_entries(
        &self,
        caller: Caller<'_>,
        filter: AuditFilter,
    ) -> ServiceResult<Vec<AuditRow>> {
        if !matches!(caller, Caller::Cli) {
            return Err(ServiceError::Forbidden(
                "the unscoped audit listing is the command line's",
            ));
        }
        self.blocking(move |conn| Ok(kizuna_store::audit::entries(conn, &filter)?))
            .await
    }

    /// One page of the audit trail (`audit.query`): a facility's entries for
    /// its admins (`facility` defaults to their own), any facility's or all
    /// entries (`None`) for the operator.
    pub async fn audit_query(
        &self,
        caller: Caller<'_>,
        facility: Option<FacilityId>,
        mut filter: AuditFilter,
    ) -> ServiceResult<AuditPage> {
        let caller = CallerInfo::from(caller);
        let limit = filter.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        filter.limit = Some(limit);
        filter.until_id = None;
        self.blocking(move |conn| {
            let scope = audit_scope(conn, &caller, facility, "audit.query")?;
            audit(
                conn,
                &caller,
                AuditEntry {
                    action: "audit.query",
                    outcome: "ok",
                    facility_id: scope.map(FacilityId::get),
                    patient_id: filter.patient_id,
                    detail: Some(describe(&filter, "json")),
                    ..Default::default()
                },
            )?;
            let entries = page_of(conn, scope, &filter)?;
            let next_after_id = if entries.len() as i64 >= limit {
                entries.last().map(|e| e.id)
            } else {
                None
            };
            Ok(AuditPage {
                entries,
                next_after_id,
            })
        })
        .await
    }

    /// Starts an export of the whole filtered range (`audit.export`; `format`
    /// is recorded). The range ends with the export's own entry, so a busy
    /// trail cannot keep it running.
    pub async fn audit_export(
        &self,
        caller: Caller<'_>,
        facility: Option<FacilityId>,
        mut filter: AuditFilter,
        format: &'static str,
    ) -> ServiceResult<AuditExport> {
        let caller = CallerInfo::from(caller);
        filter.limit = Some(MAX_PAGE);
        let (scope, until) = self
            .blocking({
                let filter = filter.clone();
                move |conn| {
                    let scope = audit_scope(conn, &caller, facility, "audit.export")?;
                    let via = if caller.user.is_none() {
                        "via=cli "
                    } else {
                        ""
                    };
                    let entry = AuditEntry {
                        actor_user_id: caller.user.map(UserId::get),
                        action: "audit.export",
                        outcome: "ok",
                        facility_id: scope.map(FacilityId::get),
                        patient_id: filter.patient_id,
                        detail: Some(format!("{via}{}", describe(&filter, format))),
                        ..Default::default()
                    };
                    // The entry's id bounds the export.
                    let row = record_returning(conn, &caller.ctx, entry)?;
                    Ok((scope, row.id))
                }
            })
            .await?;
        filter.until_id = Some(until);
        Ok(AuditExport {
            service: self.clone(),
            facility: scope,
            filter,
            done: false,
        })
    }

    /// Who read a patient's timelines, with counts and first and last time
    /// (admins of the patient's facility, and the operator; anyone else gets
    /// 404). Audited as `audit.query`. Someone who may read no audit trail is
    /// refused before the patient is looked up.
    pub async fn patient_access(
        &self,
        caller: Caller<'_>,
        patient: PatientId,
    ) -> ServiceResult<PatientAccessView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            if !reads_some_audit(caller_actor(conn, &caller)?.as_ref()) {
                return denied(conn, &caller, "audit.query", ServiceError::NotFound);
            }
            let facility = match directory::patient(conn, patient) {
                Ok(p) => FacilityId(p.facility_id),
                Err(kizuna_store::StoreError::NotFound) => {
                    return denied(conn, &caller, "audit.query", ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let view = Action::Admin(AdminOp::ViewAudit {
                facility: Some(facility),
            });
            if allow(conn, &caller, view).is_err() {
                return denied(conn, &caller, "audit.query", ServiceError::NotFound);
            }
            audit(
                conn,
                &caller,
                AuditEntry {
                    action: "audit.query",
                    outcome: "ok",
                    facility_id: Some(facility.get()),
                    patient_id: Some(patient.get()),
                    detail: Some("view=patient_access".into()),
                    ..Default::default()
                },
            )?;
            Ok(PatientAccessView {
                patient_id: patient,
                accessed_by: kizuna_store::audit::patient_access(conn, patient)?,
            })
        })
        .await
    }

    /// Recomputes the audit trail's hash chain; returns how many entries were
    /// checked, or an error naming the first broken entry.
    pub async fn verify_audit(&self) -> ServiceResult<usize> {
        self.blocking(|conn| match kizuna_store::audit::verify_chain(conn)? {
            Ok(n) => Ok(n),
            Err(broken) => Err(ServiceError::Internal(broken.to_string())),
        })
        .await
    }
}
