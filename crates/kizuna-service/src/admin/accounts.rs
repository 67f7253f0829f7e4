//! Facilities and accounts.

use super::*;
use kizuna_realtime::{CloseReason, Selector};

impl Service {
    /// Creates a facility (operator). `require_client_cert`: whether its staff
    /// log in with a client certificate and a password (default) or a
    /// password only.
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
                Ok(FacilityView {
                    id: FacilityId(f.id),
                    name,
                    require_client_cert,
                })
            })
        })
        .await
    }

    /// Sets whether a facility's staff need a client certificate to log in
    /// (operator, or that facility's admin). Making it stricter ends the
    /// facility's certificate-less sessions at once and closes their sockets.
    pub async fn set_facility_policy(
        &self,
        caller: Caller<'_>,
        facility: FacilityId,
        require_client_cert: bool,
    ) -> ServiceResult<FacilityView> {
        let caller = CallerInfo::from(caller);
        let (view, ended) = self
            .blocking(move |conn| {
                if allow(
                    conn,
                    &caller,
                    Action::Admin(AdminOp::EditFacilityPolicy { facility }),
                )
                .is_err()
                {
                    return denied(
                        conn,
                        &caller,
                        "admin.set_facility_policy",
                        ServiceError::NotFound,
                    );
                }
                transaction(conn, |conn| {
                    kizuna_store::certificates::set_require_client_cert(
                        conn,
                        facility,
                        require_client_cert,
                    )?;
                    // Stricter now: sessions made without a certificate end at
                    // once (their sockets close below), not at their next refresh.
                    let ended = if require_client_cert {
                        kizuna_store::sessions::revoke_unbound_sessions_of_facility(
                            conn,
                            facility,
                            "certificate_now_required",
                        )?
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
                            detail: Some(format!("require_client_cert={require_client_cert}")),
                            ..Default::default()
                        },
                    )?;
                    let f = directory::facility(conn, facility)?;
                    Ok((
                        FacilityView {
                            id: facility,
                            name: Name::parse(f.name).map_err(|_| {
                                ServiceError::Internal("stored name invalid".into())
                            })?,
                            require_client_cert: f.require_client_cert,
                        },
                        ended,
                    ))
                })
            })
            .await?;
        for session in ended {
            self.close_connections(Selector::Session(session), CloseReason::SessionEnded)
                .await;
        }
        Ok(view)
    }

    /// Lists facilities (operator).
    pub async fn facilities(&self, caller: Caller<'_>) -> ServiceResult<Vec<FacilityView>> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            allow(conn, &caller, Action::Admin(AdminOp::ListFacilities))?;
            directory::facilities(conn)?
                .into_iter()
                .map(|f| {
                    Ok(FacilityView {
                        id: FacilityId(f.id),
                        name: Name::parse(f.name)
                            .map_err(|_| ServiceError::Internal("stored name invalid".into()))?,
                        require_client_cert: f.require_client_cert,
                    })
                })
                .collect()
        })
        .await
    }

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

    /// Disables or re-enables an account. Disabling ends every session and
    /// closes every live connection of the account at once.
    pub async fn set_user_status(
        &self,
        caller: Caller<'_>,
        user: UserId,
        status: UserStatus,
    ) -> ServiceResult<()> {
        let caller = CallerInfo::from(caller);
        self.blocking(move |conn| {
            // Only someone who administers accounts at all learns whether an
            // id exists.
            let target = match directory::user(conn, user) {
                Ok(t) => t,
                Err(kizuna_store::StoreError::NotFound) => {
                    let any = AdminOp::SetUserStatus {
                        facility: None,
                        kind: UserKind::Staff,
                    };
                    allow(conn, &caller, Action::Admin(any))
                        .or_else(|_| {
                            let own = caller_actor(conn, &caller)?.and_then(|a| a.facility_id);
                            allow(
                                conn,
                                &caller,
                                Action::Admin(AdminOp::SetUserStatus {
                                    facility: own,
                                    kind: UserKind::Staff,
                                }),
                            )
                        })
                        .or_else(|e| denied(conn, &caller, "admin.set_user_status", e))?;
                    return Err(ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let op = AdminOp::SetUserStatus {
                facility: target.facility_id.map(FacilityId),
                kind: target.kind()?,
            };
            if let Err(e) = allow(conn, &caller, Action::Admin(op)) {
                return denied(conn, &caller, "admin.set_user_status", e);
            }
            transaction(conn, |conn| {
                directory::set_user_status(conn, user, status)?;
                if status == UserStatus::Disabled {
                    sessions::revoke_user_sessions(conn, user, "account_disabled")?;
                }
                audit(
                    conn,
                    &caller,
                    AuditEntry {
                        action: "admin.set_user_status",
                        outcome: "ok",
                        facility_id: target.facility_id,
                        subject_user_id: Some(user.get()),
                        detail: Some(format!("status={status}")),
                        ..Default::default()
                    },
                )
            })
        })
        .await?;
        if status == UserStatus::Disabled {
            self.close_connections(Selector::User(user), CloseReason::AccountDisabled)
                .await;
        }
        Ok(())
    }
}
