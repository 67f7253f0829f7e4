//! Reading and verifying the audit trail.

use super::*;

impl Service {
    /// Audit entries matching a filter (the CLI; the facility-scoped REST
    /// query comes with the audit issue).
    pub async fn audit_entries(
        &self,
        caller: Caller<'_>,
        filter: kizuna_store::audit::AuditFilter,
    ) -> ServiceResult<Vec<kizuna_store::models::AuditRow>> {
        if !matches!(caller, Caller::Cli) {
            return Err(ServiceError::Forbidden(
                "the audit trail is read from the command line for now",
            ));
        }
        self.blocking(move |conn| Ok(kizuna_store::audit::entries(conn, &filter)?))
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
