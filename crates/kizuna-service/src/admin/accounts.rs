//! Accounts: creation, role and profession, deactivation, and a facility
//! admin's view of their staff.

use super::*;
use kizuna_realtime::{CloseReason, Selector};

impl Service {
    /// Creates an account. Authorization comes before the (deliberately
    /// expensive) password hash, so refused callers cost nothing.
    pub async fn create_user(
        &self,
        caller: Caller<'_>,
        new: NewAccount,
    ) -> ServiceResult<UserView> {
        check_login(&new.login)?;
        password::check_new(new.password.expose_secret()).map_err(ServiceError::Invalid)?;
        match new.kind {
            UserKind::Staff | UserKind::Patient if new.facility_id.is_none() => {
                return Err(invalid("staff and patient accounts need a facility_id"));
            }
            UserKind::Family | UserKind::Company | UserKind::Operator
                if new.facility_id.is_some() =>
            {
                return Err(invalid(
                    "only staff and patient accounts belong to a facility",
                ));
            }
            _ => {}
        }
        if new.kind != UserKind::Staff && (new.profession.is_some() || new.facility_role.is_some())
        {
            return Err(invalid(
                "profession and facility_role are for staff accounts",
            ));
        }
        let caller = CallerInfo::from(caller);
        let (facility, kind) = (new.facility_id, new.kind);
        let check = caller.clone();
        self.blocking(move |conn| {
            let op = AdminOp::CreateUser { facility, kind };
            if let Err(e) = allow(conn, &check, Action::Admin(op)) {
                return denied(conn, &check, "admin.create_user", e);
            }
            if let Some(f) = facility {
                directory::facility(conn, f)
                    .map_err(|_| invalid("facility_id names no facility"))?;
            }
            Ok(())
        })
        .await?;
        let hash = {
            let pw = new.password.clone();
            tokio::task::spawn_blocking(move || password::hash(pw.expose_secret()))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(ServiceError::Internal)?
        };
        self.blocking(move |conn| {
            let role = if new.kind == UserKind::Staff {
                Some(new.facility_role.unwrap_or(FacilityRole::Staff))
            } else {
                None
            };
            transaction(conn, |conn| {
                let row = directory::create_user(
                    conn,
                    &NewUser {
                        login: &new.login,
                        display_name: new.display_name.expose(),
                        kind: new.kind,
                        profession: new.profession,
                        facility_id: new.facility_id,
                        facility_role: role,
                        password_hash: &hash,
                    },
                )?;
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.create_user",
                        outcome: "ok",
                        facility_id: row.facility_id,
                        subject_user_id: Some(row.id),
                        detail: Some(format!("kind={}", new.kind)),
                        ..Default::default()
                    },
                )?;
                user_view(&row)
            })
        })
        .await
    }

    /// Looks up a user by login (the CLI's way of naming people).
    pub async fn user_by_login(&self, login: String) -> ServiceResult<UserView> {
        self.blocking(move |conn| {
            user_view(&directory::user_by_login(conn, &login)?.ok_or(ServiceError::NotFound)?)
        })
        .await
    }

    /// Disables or re-enables an account. Disabling revokes every certificate
    /// of the account (CRLs rebuilt), ends every session, removes the account
    /// from every group (what it wrote stays, attributed), and closes every
    /// live connection of the account on every node at once. Re-enabling
    /// restores the login only: certificates and memberships are given anew.
    pub async fn set_user_status(
        &self,
        caller: Caller<'_>,
        user: UserId,
        status: UserStatus,
    ) -> ServiceResult<()> {
        let caller = CallerInfo::from(caller);
        let revoked = self
            .blocking(move |conn| {
                // Someone who administers no accounts at all is refused
                // before any lookup, so ids tell them nothing; for admins, a
                // missing id and another facility's account answer alike.
                let own = caller_actor(conn, &caller)?.and_then(|a| a.facility_id);
                let administers_accounts = [None, own].into_iter().any(|facility| {
                    let op = AdminOp::SetUserStatus {
                        facility,
                        kind: UserKind::Staff,
                    };
                    matches!(caller_decision(conn, &caller, Action::Admin(op)), Ok(true))
                });
                if !administers_accounts {
                    return denied(
                        conn,
                        &caller,
                        "admin.set_user_status",
                        ServiceError::Forbidden("you may not administer accounts"),
                    );
                }
                let target = target_account(conn, &caller, user, "admin.set_user_status", |facility, kind| {
                    AdminOp::SetUserStatus { facility, kind }
                })?;
                transaction(conn, |conn| {
                    directory::set_user_status(conn, user, status)?;
                    let mut revoked = Vec::new();
                    let mut left = Vec::new();
                let mut closed = (0, 0);
                    if status == UserStatus::Disabled {
                        sessions::revoke_user_sessions(conn, user, "account_disabled")?;
                        revoked = kizuna_store::certificates::revoke_all_of_user(
                            conn,
                            user,
                            "cessationOfOperation",
                        )?;
                        closed = directory::close_pending_of_user(conn, user)?;
                    left = directory::remove_from_all_groups(conn, user)?;
                    }
                    audit(
                        conn,
                        &caller,
                        AuditEntry {
                            action: "admin.set_user_status",
                            outcome: "ok",
                            facility_id: target.facility_id,
                            subject_user_id: Some(user.get()),
                            detail: Some(format!(
                                "status={status} certificates_revoked={} groups_left={} invitations_cancelled={} applications_withdrawn={}",
                                revoked.len(),
                                left.len(),
                                closed.0,
                                closed.1
                            )),
                            ..Default::default()
                        },
                    )?;
                    for c in &revoked {
                        audit(
                            conn,
                            &caller,
                            AuditEntry {
                                action: "cert.revoke",
                                outcome: "ok",
                                facility_id: Some(c.facility_id),
                                subject_user_id: Some(c.user_id),
                                detail: Some(format!(
                                    "serial={} reason=cessationOfOperation",
                                    c.serial
                                )),
                                ..Default::default()
                            },
                        )?;
                    }
                    Ok(revoked.into_iter().map(|c| c.serial).collect::<Vec<_>>())
                })
            })
            .await?;
        if status == UserStatus::Disabled {
            self.close_connections(Selector::User(user), CloseReason::AccountDisabled)
                .await;
            if !revoked.is_empty() {
                self.after_revocation(&revoked).await;
            }
        }
        Ok(())
    }

    /// Changes a staff account's facility role, profession or display name
    /// (operator, or an admin of the account's facility). A role taken away
    /// takes effect at the account's next request: rights are read from the
    /// database every time, never from the token.
    pub async fn edit_user(
        &self,
        caller: Caller<'_>,
        user: UserId,
        change: UserChange,
    ) -> ServiceResult<UserView> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let target =
                target_account(conn, &caller, user, "admin.edit_user", |facility, kind| {
                    AdminOp::EditUser { facility, kind }
                })?;
            if target.kind()? != UserKind::Staff
                && (change.facility_role.is_some() || change.profession.is_some())
            {
                return Err(invalid(
                    "profession and facility_role are for staff accounts",
                ));
            }
            transaction(conn, |conn| {
                let row = directory::update_user(
                    conn,
                    user,
                    &directory::UserUpdate {
                        facility_role: change.facility_role,
                        profession: change.profession,
                        display_name: change.display_name.as_ref().map(|n| n.expose()),
                    },
                )?;
                let mut detail = Vec::new();
                if let Some(r) = change.facility_role {
                    detail.push(format!("facility_role={r}"));
                }
                if let Some(p) = change.profession {
                    detail.push(format!("profession={p}"));
                }
                if change.display_name.is_some() {
                    detail.push("display_name=changed".into());
                }
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.edit_user",
                        outcome: "ok",
                        facility_id: row.facility_id,
                        subject_user_id: Some(user.get()),
                        detail: Some(detail.join(" ")),
                        ..Default::default()
                    },
                )?;
                user_view(&row)
            })
        })
        .await
    }

    /// Every account of a facility (operator, or that facility's admin).
    pub async fn facility_users(
        &self,
        caller: Caller<'_>,
        facility: FacilityId,
    ) -> ServiceResult<Vec<UserView>> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            allow_in_facility(
                conn,
                &caller,
                Some(facility.get()),
                AdminOp::ViewFacility { facility },
                "admin.view_facility",
            )?;
            directory::users_of_facility(conn, facility)?
                .iter()
                .map(user_view)
                .collect()
        })
        .await
    }

    /// The groups an account of the caller's facility belongs to. Names of
    /// other facilities' patient groups are left out (they name patients the
    /// caller's facility does not care for).
    pub async fn user_groups(
        &self,
        caller: Caller<'_>,
        user: UserId,
    ) -> ServiceResult<Vec<UserGroupView>> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            let target = directory::user(conn, user).ok();
            let facility = target.as_ref().and_then(|t| t.facility_id).map(FacilityId);
            let allowed = match facility {
                Some(facility) => allow(
                    conn,
                    &caller,
                    Action::Admin(AdminOp::ViewFacility { facility }),
                )
                .is_ok(),
                None => false,
            };
            if !allowed {
                return denied(
                    conn,
                    &caller,
                    "admin.view_user_groups",
                    ServiceError::NotFound,
                );
            }
            let viewer_facility = caller_actor(conn, &caller)?.and_then(|a| a.facility_id);
            directory::groups_of_user(conn, user)?
                .into_iter()
                .map(|(g, m)| {
                    let kind = g.kind()?;
                    let owner = g.owner_facility_id.map(FacilityId);
                    let show_name = kind != GroupKind::Patient
                        || viewer_facility.is_none()
                        || owner == viewer_facility;
                    let mm = m.membership()?;
                    Ok(UserGroupView {
                        group_id: GroupId(g.id),
                        kind,
                        name: if show_name {
                            Some(Name::parse(g.name).map_err(|_| {
                                ServiceError::Internal("stored group name invalid".into())
                            })?)
                        } else {
                            None
                        },
                        owner_facility_id: owner,
                        role: mm.role,
                        visibility: mm.visibility,
                    })
                })
                .collect()
        })
        .await
    }
}

/// What [`Service::edit_user`] changes (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// Admin or staff.
    pub facility_role: Option<FacilityRole>,
    /// Profession.
    pub profession: Option<Profession>,
    /// Display name.
    pub display_name: Option<Name>,
}

/// Loads the account an administrative action targets and asks the access
/// function. A missing account and another facility's answer alike
/// (`not_found`, audited as `denied`); the caller's own facility's accounts
/// get the access function's answer.
fn target_account(
    conn: &mut DbConn,
    caller: &CallerInfo,
    user: UserId,
    action: &'static str,
    op: impl Fn(Option<FacilityId>, UserKind) -> AdminOp,
) -> ServiceResult<UserRow> {
    let target = match directory::user(conn, user) {
        Ok(t) => t,
        Err(kizuna_store::StoreError::NotFound) => {
            return denied(conn, caller, action, ServiceError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    let op = op(target.facility_id.map(FacilityId), target.kind()?);
    allow_in_facility(conn, caller, target.facility_id, op, action)?;
    Ok(target)
}
