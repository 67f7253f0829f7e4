//! Listing invitations: a group's, the caller's own, and those waiting for a
//! facility's admins.

use super::*;

impl Service {
    /// A patient group's invitations with their approvals, newest first
    /// (team members of the group).
    pub async fn group_invitations(
        &self,
        p: &Principal,
        group: GroupId,
    ) -> ServiceResult<Vec<InvitationView>> {
        const ACTION: &str = "invitation.list";
        let caller = CallerInfo::from(Caller::User(p));
        self.blocking(move |conn| {
            let g = match directory::group(conn, group) {
                Ok(g) => g,
                Err(StoreError::NotFound) => {
                    return refused(conn, &caller, ACTION, None, ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let gf = facts(conn, &caller, &g)?;
            if let Err(e) = allow(conn, &caller, Action::ViewInvitations { group: gf }) {
                return refused(conn, &caller, ACTION, Some((&g, None)), e);
            }
            let rows = store::of_group(conn, group)?;
            views(conn, rows, now_ms())
        })
        .await
    }

    /// The caller's pending invitations, and those waiting for the caller's
    /// approval as the patient.
    pub async fn my_invitations(&self, p: &Principal) -> ServiceResult<MyInvitations> {
        let user = p.user_id;
        let is_patient = p.actor.kind == UserKind::Patient;
        self.blocking(move |conn| {
            let now = now_ms();
            let mine = store::pending_for_invitee(conn, user, now)?;
            let mut waiting: Vec<InvitationRow> = Vec::new();
            if is_patient {
                for (inv, _) in store::pending_approvals_for_patient(conn, user, now)? {
                    if !waiting.iter().any(|w| w.id == inv.id) {
                        waiting.push(inv);
                    }
                }
            }
            Ok(MyInvitations {
                invitations: views(conn, mine, now)?,
                approvals: views(conn, waiting, now)?,
            })
        })
        .await
    }

    /// Invitations waiting for an approval by a facility's admins (that
    /// facility's admins and the operator; anyone else, and a facility that
    /// does not exist, gets `not_found`).
    pub async fn facility_approvals(
        &self,
        p: &Principal,
        facility: FacilityId,
    ) -> ServiceResult<Vec<InvitationView>> {
        const ACTION: &str = "invitation.approvals";
        let caller = CallerInfo::from(Caller::User(p));
        self.blocking(move |conn| {
            let op = AdminOp::ViewFacility { facility };
            if allow(conn, &caller, Action::Admin(op)).is_err() {
                return refused(conn, &caller, ACTION, None, ServiceError::NotFound);
            }
            // Checked after the decision: only someone allowed learns
            // whether it exists.
            match directory::facility(conn, facility) {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    return refused(conn, &caller, ACTION, None, ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            }
            let now = now_ms();
            let mut rows: Vec<InvitationRow> = Vec::new();
            for (inv, _) in store::pending_approvals_for_facility(conn, facility, now)? {
                if !rows.iter().any(|r| r.id == inv.id) {
                    rows.push(inv);
                }
            }
            views(conn, rows, now)
        })
        .await
    }
}
