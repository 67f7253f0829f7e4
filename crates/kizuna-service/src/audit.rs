//! Writing audit entries from use cases. Failures to audit are errors: a read
//! of patient information that cannot be recorded does not happen.

use crate::auth::RequestContext;
use crate::error::ServiceResult;
use kizuna_store::DbConn;
use kizuna_store::audit::{self, AuditEntry};

/// Fills in the request's address and certificate, then appends.
pub(crate) fn record(
    conn: &mut DbConn,
    ctx: &RequestContext,
    mut entry: AuditEntry,
) -> ServiceResult<()> {
    entry.remote_addr = ctx.remote_addr.clone();
    entry.cert_serial = ctx.peer.as_ref().map(|p| p.serial.clone());
    if let (Some(actor), None) = (entry.actor_user_id, entry.actor_facility_id) {
        entry.actor_facility_id =
            kizuna_store::directory::user(conn, kizuna_domain::UserId(actor))?.facility_id;
    }
    audit::append(conn, &entry)?;
    Ok(())
}
