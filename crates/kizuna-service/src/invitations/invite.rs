//! Creating an invitation: an existing account, or a one-time code.

use super::*;

fn check_active(u: &UserRow) -> ServiceResult<()> {
    if u.status()? != UserStatus::Active {
        return Err(ServiceError::Invalid("the account is disabled".into()));
    }
    Ok(())
}

impl Service {
    /// Invites an existing account, or creates a one-time code (returned once
    /// in `code`), into a patient group.
    pub async fn invite(
        &self,
        p: &Principal,
        group: GroupId,
        target: InviteTarget,
    ) -> ServiceResult<InvitationView> {
        const ACTION: &str = "invitation.create";
        let caller = CallerInfo::from(Caller::User(p));
        let inviter = p.user_id;
        self.blocking(move |conn| {
            let g = match directory::group(conn, group) {
                Ok(g) => g,
                Err(StoreError::NotFound) => {
                    return refused(conn, &caller, ACTION, None, ServiceError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let gf = facts(conn, &caller, &g)?;
            // Non-members learn nothing, not even whether the user id exists.
            if gf.membership.is_none() {
                return refused(
                    conn,
                    &caller,
                    ACTION,
                    Some((&g, None)),
                    ServiceError::NotFound,
                );
            }
            let (invitee, user, scope) = match target {
                InviteTarget::User { user_id, scope } => {
                    let u = directory::user(conn, user_id)
                        .map_err(|_| ServiceError::Invalid("user_id names no user".into()))?;
                    let invitee = invitee_facts(conn, &u)?;
                    (
                        invitee,
                        Some(u),
                        scope.unwrap_or(default_scope(invitee.kind)),
                    )
                }
                InviteTarget::Code { kind, scope } => {
                    if !matches!(kind, UserKind::Staff | UserKind::Family) {
                        return Err(ServiceError::Invalid(
                            "code_for must be staff or family".into(),
                        ));
                    }
                    // Approvals are computed when the code is redeemed, with
                    // the redeemer's facility.
                    let invitee = Invitee {
                        kind,
                        facility: None,
                    };
                    (invitee, None, scope.unwrap_or(default_scope(kind)))
                }
            };
            let action = Action::Invite {
                group: gf,
                scope,
                invitee,
            };
            if let Err(e) = allow(conn, &caller, action) {
                return refused(conn, &caller, ACTION, Some((&g, None)), e);
            }
            if let Some(u) = &user {
                check_active(u)?;
            }
            let approvals = match &user {
                Some(_) => needed_approvals(conn, &g, &gf, &invitee)?,
                None => Vec::new(),
            };
            let code = user.is_none().then(new_code);
            let now = now_ms();
            transaction(conn, |conn| {
                store::lock_group(conn, group)?;
                if let Some(u) = &user {
                    if directory::membership(conn, group, u.user_id())?.is_some() {
                        return Err(ServiceError::Conflict("already a member"));
                    }
                    if let Some(open) = store::pending_of_user_in_group(conn, group, u.user_id())? {
                        if now <= open.expires_at {
                            return Err(ServiceError::Conflict(store::ALREADY_INVITED));
                        }
                        let old = store::set_status(
                            conn,
                            open.id,
                            InvitationStatus::Expired,
                            open.expires_at,
                        )?;
                        audit(conn, &caller, entry(&g, &old, "invitation.expire", "ok"))?;
                    }
                }
                let created = store::create(
                    conn,
                    &NewInvitation {
                        group_id: group,
                        scope,
                        invitee_kind: invitee.kind,
                        invitee_user_id: user.as_ref().map(UserRow::user_id),
                        code_hash: code.as_ref().map(|(_, h)| h.as_str()),
                        invited_by: inviter,
                        now,
                        expires_at: now + VALIDITY_MS,
                        approvals: &approvals,
                    },
                )?;
                let mut e = entry(&g, &created.invitation, ACTION, "ok");
                let roles: Vec<&str> = approvals.iter().map(|(r, _)| r.as_str()).collect();
                e.detail = Some(format!(
                    "invitation={} scope={scope} kind={} by_code={} approvals={}",
                    created.invitation.id,
                    invitee.kind,
                    code.is_some(),
                    if roles.is_empty() {
                        "none".to_owned()
                    } else {
                        roles.join(",")
                    }
                ));
                audit(conn, &caller, e)?;
                view(&created, now, code.map(|(c, _)| c))
            })
        })
        .await
    }
}
