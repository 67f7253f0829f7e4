//! Facilities and their policies.

use super::*;
use kizuna_domain::{FacilityPolicy, NotificationHours};

/// A change to a facility's policy; `None` leaves a rule as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyChange {
    /// Who may register patients.
    pub patient_group_creators: Option<PatientGroupCreators>,
    /// Whether staff may join other facilities' patient groups.
    pub staff_join_other_facilities: Option<CrossFacility>,
    /// Whether outsiders may be invited into this facility's patient groups.
    pub outside_invitations: Option<CrossFacility>,
    /// Whether the family timeline is in use.
    pub family_timeline: Option<bool>,
    /// Whether staff need a client certificate.
    pub require_client_cert: Option<bool>,
    /// `Some(None)` clears the window (any time).
    pub notification_hours: Option<Option<NotificationHours>>,
}

impl PolicyChange {
    fn apply(self, mut p: FacilityPolicy) -> FacilityPolicy {
        if let Some(v) = self.patient_group_creators {
            p.patient_group_creators = v;
        }
        if let Some(v) = self.staff_join_other_facilities {
            p.staff_join_other_facilities = v;
        }
        if let Some(v) = self.outside_invitations {
            p.outside_invitations = v;
        }
        if let Some(v) = self.family_timeline {
            p.family_timeline = v;
        }
        if let Some(v) = self.require_client_cert {
            p.require_client_cert = v;
        }
        if let Some(v) = self.notification_hours {
            p.notification_hours = v;
        }
        p
    }
}

/// The audit detail of a policy (words and numbers only).
fn policy_detail(p: &FacilityPolicy) -> String {
    format!(
        "patient_group_creators={} staff_join_other_facilities={} outside_invitations={} family_timeline={} require_client_cert={} notification_hours={}",
        p.patient_group_creators,
        p.staff_join_other_facilities,
        p.outside_invitations,
        p.family_timeline,
        p.require_client_cert,
        p.notification_hours
            .map(|h| h.to_string())
            .unwrap_or_else(|| "any".into()),
    )
}

pub(crate) fn facility_view(f: &kizuna_store::models::FacilityRow) -> ServiceResult<FacilityView> {
    Ok(FacilityView {
        id: FacilityId(f.id),
        name: Name::parse(f.name.clone())
            .map_err(|_| ServiceError::Internal("stored name invalid".into()))?,
        policy: f.policy()?,
    })
}

impl Service {
    /// Creates a facility (operator). `require_client_cert`: whether its staff
    /// log in with a client certificate and a password (default) or a
    /// password only. The other rules start at [`FacilityPolicy::default`].
    pub async fn create_facility(
        &self,
        caller: Caller<'_>,
        name: Name,
        require_client_cert: bool,
    ) -> ServiceResult<FacilityView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            if let Err(e) = allow(conn, &caller, Action::Admin(AdminOp::CreateFacility)) {
                return denied(conn, &caller, "admin.create_facility", e);
            }
            transaction(conn, |conn| {
                let f = directory::create_facility(conn, name.expose(), require_client_cert)?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.create_facility",
                        outcome: "ok",
                        facility_id: Some(f.id),
                        detail: Some(format!("require_client_cert={require_client_cert}")),
                        ..Default::default()
                    },
                )?;
                facility_view(&f)
            })
        })
        .await
    }

    /// A facility with its policy (operator, or that facility's admin;
    /// anyone else: not found).
    pub async fn facility(
        &self,
        caller: Caller<'_>,
        facility: FacilityId,
    ) -> ServiceResult<FacilityView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            allow_in_facility(
                conn,
                &caller,
                Some(facility.get()),
                AdminOp::ViewFacility { facility },
                "admin.view_facility",
            )?;
            facility_view(&directory::facility(conn, facility)?)
        })
        .await
    }

    /// Changes a facility's policy (operator, or that facility's admin). A
    /// stricter certificate rule ends the facility's certificate-less
    /// sessions at once and closes their sockets; switching the family
    /// timeline off closes the sockets of the family members and patients in
    /// the facility's patient groups (team members lose the family timeline
    /// at their next heartbeat).
    pub async fn set_facility_policy(
        &self,
        caller: Caller<'_>,
        facility: FacilityId,
        change: PolicyChange,
    ) -> ServiceResult<FacilityView> {
        let caller = CallerInfo::from(caller);
        let (view, ended, family_closed) = self
            .blocking(move |conn| {
                allow_in_facility(
                    conn,
                    &caller,
                    Some(facility.get()),
                    AdminOp::EditFacilityPolicy { facility },
                    "admin.set_facility_policy",
                )?;
                transaction(conn, |conn| {
                    // Write first: two admins changing different rules at
                    // once serialize instead of one losing the other's change.
                    directory::lock_facility(conn, facility)?;
                    let before = directory::facility(conn, facility)?.policy()?;
                    let after = change.apply(before);
                    let row = directory::set_facility_policy(conn, facility, &after)?;
                    // Stricter now: sessions made without a certificate end at
                    // once (their sockets close below), not at their next refresh.
                    let ended = if after.require_client_cert && !before.require_client_cert {
                        kizuna_store::sessions::revoke_unbound_sessions_of_facility(
                            conn,
                            facility,
                            "certificate_now_required",
                        )?
                    } else {
                        Vec::new()
                    };
                    let family_closed = if before.family_timeline && !after.family_timeline {
                        directory::family_members_of_facility_groups(conn, facility)?
                    } else {
                        Vec::new()
                    };
                    audit(
                        conn,
                        &caller,
                        AuditEntry {
                            action: "admin.set_facility_policy",
                            outcome: "ok",
                            facility_id: Some(facility.get()),
                            detail: Some(policy_detail(&after)),
                            ..Default::default()
                        },
                    )?;
                    Ok((facility_view(&row)?, ended, family_closed))
                })
            })
            .await?;
        for session in ended {
            self.close_connections(Selector::Session(session), CloseReason::SessionEnded)
                .await;
        }
        for user in family_closed {
            self.close_connections(Selector::User(user), CloseReason::MembershipChanged)
                .await;
        }
        Ok(view)
    }

    /// The notification hours of the caller's facility (`None`: any time,
    /// or no facility). Clients schedule their own alerts with it; push
    /// notifications sent by the server will follow it too.
    pub async fn notification_hours(
        &self,
        p: &crate::Principal,
    ) -> ServiceResult<Option<NotificationHours>> {
        let Some(facility) = p.actor.facility_id else {
            return Ok(None);
        };
        self.blocking(move |conn| {
            Ok(directory::facility(conn, facility)?
                .policy()?
                .notification_hours)
        })
        .await
    }

    /// Lists facilities (operator).
    pub async fn facilities(&self, caller: Caller<'_>) -> ServiceResult<Vec<FacilityView>> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            allow(conn, &caller, Action::Admin(AdminOp::ListFacilities))?;
            directory::facilities(conn)?
                .iter()
                .map(facility_view)
                .collect()
        })
        .await
    }
}
