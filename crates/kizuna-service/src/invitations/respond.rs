//! Acting on an invitation: the invitee accepts or declines, approvers
//! approve or refuse, the inviter (or a group owner/moderator) re-sends or
//! cancels. Each change locks the invitation's row first, so the last of
//! several concurrent approvals is the one that creates the membership.

use super::*;

/// What a caller does to an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Accept,
    Decline,
    Resend,
    Cancel,
}

impl Verb {
    fn action(self) -> &'static str {
        match self {
            Verb::Accept => "invitation.accept",
            Verb::Decline => "invitation.decline",
            Verb::Resend => "invitation.resend",
            Verb::Cancel => "invitation.cancel",
        }
    }
}

/// The refusal for a caller who may not do this: `forbidden` if they can see
/// the invitation, `not_found` otherwise.
fn refusal(
    conn: &mut DbConn,
    caller: &CallerInfo,
    action: &'static str,
    l: &Loaded,
    e: ServiceError,
) -> ServiceResult<InvitationView> {
    let e = match e {
        ServiceError::NotFound if l.visible(conn)? => {
            ServiceError::Forbidden("only the invitee, the inviter or an approver may do this")
        }
        other => other,
    };
    refused(conn, caller, action, Some((&l.group, Some(l.inv.id))), e)
}

fn not_pending() -> ServiceError {
    ServiceError::Conflict("the invitation is no longer pending")
}

/// Inside the resend's transaction (group and invitation locked): a resend
/// is a new sending, so everything `invite` checks is checked again with
/// today's facts — the inviter's right to invite this person under both
/// facilities' policies (`forbidden`), an active invitee (`invalid_field`)
/// who is not a member yet and has no other pending invitation into the
/// group (`conflict`; one whose time ran out is marked `expired` first) —
/// and the approvals are brought up to what the policies ask today.
fn recheck_for_resend(
    conn: &mut DbConn,
    caller: &CallerInfo,
    g: &GroupRow,
    inv: &InvitationRow,
    now: i64,
) -> ServiceResult<()> {
    let group = GroupId(g.id);
    let invitee_row = match inv.invitee_user_id {
        Some(u) => Some(directory::user(conn, UserId(u))?),
        None => None,
    };
    let invitee = match &invitee_row {
        Some(u) => invitee_facts(conn, u)?,
        // An unredeemed code: its kind only (the facility is known when it
        // is redeemed, and checked then).
        None => Invitee {
            kind: inv.invitee_kind()?,
            facility: None,
        },
    };
    let inviter = CallerInfo {
        user: Some(UserId(inv.invited_by)),
        ctx: caller.ctx.clone(),
    };
    let gf = facts(conn, &inviter, g)?;
    let action = Action::Invite {
        group: gf,
        scope: inv.scope()?,
        invitee,
    };
    // `allow` also refuses a disabled inviter.
    if allow(conn, &inviter, action).is_err() {
        return Err(ServiceError::Forbidden(
            "the inviter may not invite this person under the facilities' policies today",
        ));
    }
    let Some(u) = invitee_row else {
        return Ok(());
    };
    if u.status()? != UserStatus::Active {
        return Err(ServiceError::Invalid("the account is disabled".into()));
    }
    if directory::membership(conn, group, u.user_id())?.is_some() {
        return Err(ServiceError::Conflict("already a member"));
    }
    if let Some(open) = store::pending_of_user_in_group(conn, group, u.user_id())?
        && open.id != inv.id
    {
        if now <= open.expires_at {
            return Err(ServiceError::Conflict(store::ALREADY_INVITED));
        }
        let old = store::set_status(conn, open.id, InvitationStatus::Expired, open.expires_at)?;
        audit(conn, caller, entry(g, &old, "invitation.expire", "ok"))?;
    }
    let needed = needed_approvals(conn, g, &gf, &invitee)?;
    store::refresh_approvals(conn, inv.id, &needed)?;
    Ok(())
}

impl Service {
    /// The invitee accepts; joins at once when no approval is outstanding.
    pub async fn accept_invitation(
        &self,
        p: &Principal,
        id: InvitationId,
    ) -> ServiceResult<InvitationView> {
        self.act(p, id, Verb::Accept).await
    }

    /// The invitee declines.
    pub async fn decline_invitation(
        &self,
        p: &Principal,
        id: InvitationId,
    ) -> ServiceResult<InvitationView> {
        self.act(p, id, Verb::Decline).await
    }

    /// Sends the invitation again: 14 more days, one more send. An expired
    /// invitation opens again. A code nobody has redeemed is replaced by a
    /// new one (returned once in `code`; the old code stops working).
    pub async fn resend_invitation(
        &self,
        p: &Principal,
        id: InvitationId,
    ) -> ServiceResult<InvitationView> {
        self.act(p, id, Verb::Resend).await
    }

    /// Withdraws a pending invitation (the inviter, or a group
    /// owner/moderator).
    pub async fn cancel_invitation(
        &self,
        p: &Principal,
        id: InvitationId,
    ) -> ServiceResult<InvitationView> {
        self.act(p, id, Verb::Cancel).await
    }

    async fn act(
        &self,
        p: &Principal,
        id: InvitationId,
        verb: Verb,
    ) -> ServiceResult<InvitationView> {
        let caller = CallerInfo::from(Caller::User(p));
        self.blocking(move |conn| {
            let action_name = verb.action();
            let Some(l) = load(conn, &caller, id)? else {
                return refused(conn, &caller, action_name, None, ServiceError::NotFound);
            };
            let action = match verb {
                Verb::Accept | Verb::Decline => Action::RespondToInvitation {
                    invitee: l.inv.invitee_user_id.map(UserId),
                },
                Verb::Resend | Verb::Cancel => Action::ManageInvitation {
                    group: l.facts,
                    inviter: UserId(l.inv.invited_by),
                },
            };
            if let Err(e) = allow(conn, &caller, action) {
                return refusal(conn, &caller, action_name, &l, e);
            }
            let now = now_ms();
            if verb != Verb::Resend {
                expire_if_due(conn, &caller, &l.group, l.inv.clone(), now)?;
            }
            let done = transaction(conn, |conn| {
                if verb == Verb::Resend {
                    // Group first, then invitation: the order `invite` and
                    // `bind` take them in.
                    store::lock_group(conn, GroupId(l.group.id))?;
                }
                let inv = store::lock(conn, id.get())?;
                let status = inv.status()?;
                let mut code = None;
                let inv = match verb {
                    Verb::Accept => {
                        if status != InvitationStatus::Pending {
                            return Err(not_pending());
                        }
                        if inv.accepted_at.is_some() {
                            return Err(ServiceError::Conflict("already accepted"));
                        }
                        let inv = store::set_accepted(conn, inv.id, now)?;
                        audit(conn, &caller, l.entry(action_name, "ok"))?;
                        join_if_complete(conn, &caller, &l.group, inv, now)?
                    }
                    Verb::Decline | Verb::Cancel => {
                        if status != InvitationStatus::Pending {
                            return Err(not_pending());
                        }
                        let to = if verb == Verb::Decline {
                            InvitationStatus::Declined
                        } else {
                            InvitationStatus::Cancelled
                        };
                        let inv = store::set_status(conn, inv.id, to, now)?;
                        audit(conn, &caller, l.entry(action_name, "ok"))?;
                        inv
                    }
                    Verb::Resend => {
                        if !matches!(
                            status,
                            InvitationStatus::Pending | InvitationStatus::Expired
                        ) {
                            return Err(not_pending());
                        }
                        recheck_for_resend(conn, &caller, &l.group, &inv, now)?;
                        let fresh = (inv.code_hash.is_some() && inv.invitee_user_id.is_none())
                            .then(new_code);
                        let inv = store::resend(
                            conn,
                            inv.id,
                            now,
                            now + VALIDITY_MS,
                            fresh.as_ref().map(|(_, h)| h.as_str()),
                        )?;
                        let mut e = l.entry(action_name, "ok");
                        e.detail = Some(format!(
                            "invitation={} send_count={} new_code={}",
                            inv.id,
                            inv.send_count,
                            fresh.is_some()
                        ));
                        audit(conn, &caller, e)?;
                        code = fresh.map(|(c, _)| c);
                        inv
                    }
                };
                Ok::<_, ServiceError>((inv, code))
            });
            let (inv, code) = match done {
                // A policy refusal rolled the transaction back; audit it now.
                Err(e @ ServiceError::Forbidden(_)) => {
                    return refused(
                        conn,
                        &caller,
                        action_name,
                        Some((&l.group, Some(l.inv.id))),
                        e,
                    );
                }
                other => other?,
            };
            let mut v = one_view(conn, inv, now)?;
            v.code = code;
            Ok(v)
        })
        .await
    }

    /// An approver approves (`approve`) or refuses one approval of an
    /// invitation. A refusal denies the invitation; the last approval (after
    /// the acceptance) creates the membership.
    pub async fn decide_invitation_approval(
        &self,
        p: &Principal,
        id: InvitationId,
        role: ApprovalRole,
        approve: bool,
    ) -> ServiceResult<InvitationView> {
        let caller = CallerInfo::from(Caller::User(p));
        let action_name = if approve {
            "invitation.approve"
        } else {
            "invitation.refuse"
        };
        self.blocking(move |conn| {
            let Some(l) = load(conn, &caller, id)? else {
                return refused(conn, &caller, action_name, None, ServiceError::NotFound);
            };
            let approvals = store::approvals(conn, id.get())?;
            let mut row = None;
            for a in approvals {
                if a.role()? == role {
                    row = Some(a);
                }
            }
            let Some(row) = row else {
                // No such approval: as for an id that does not exist.
                return refused(
                    conn,
                    &caller,
                    action_name,
                    Some((&l.group, Some(l.inv.id))),
                    ServiceError::NotFound,
                );
            };
            let action = decide_approval_action(&row, l.facts)?;
            if let Err(e) = allow(conn, &caller, action) {
                return refusal(conn, &caller, action_name, &l, e);
            }
            if !l.may_decide(conn, &row)? {
                return refusal(
                    conn,
                    &caller,
                    action_name,
                    &l,
                    ServiceError::Forbidden("only the group's own patient approves as the patient"),
                );
            }
            let now = now_ms();
            expire_if_due(conn, &caller, &l.group, l.inv.clone(), now)?;
            let inv = transaction(conn, |conn| {
                let inv = store::lock(conn, id.get())?;
                if inv.status()? != InvitationStatus::Pending {
                    return Err(not_pending());
                }
                let state = if approve {
                    ApprovalState::Approved
                } else {
                    ApprovalState::Refused
                };
                store::decide_approval(conn, inv.id, role, state, l.actor.user_id, now)?;
                let mut e = l.entry(action_name, "ok");
                e.detail = Some(format!("invitation={} role={role}", inv.id));
                audit(conn, &caller, e)?;
                if approve {
                    join_if_complete(conn, &caller, &l.group, inv, now)
                } else {
                    let inv = store::set_status(conn, inv.id, InvitationStatus::Denied, now)?;
                    audit(conn, &caller, l.entry("invitation.deny", "ok"))?;
                    Ok(inv)
                }
            })?;
            one_view(conn, inv, now)
        })
        .await
    }
}
