//! Redeeming a one-time code. A professional whose account exists redeems a
//! staff code while logged in; a family member redeems a family code by
//! creating their account (no token; rate limited like login). Redeeming is
//! accepting: the approvals are computed then, with the redeemer's facility,
//! and the invitation joins at once when none is needed.

use super::*;
use crate::auth::RequestContext;
use crate::auth::password;
use kizuna_domain::text::Name;
use kizuna_store::directory::NewUser;
use secrecy::{ExposeSecret, SecretString};

const ACTION: &str = "invitation.redeem";

/// The account a family member creates with a code.
pub struct RedeemAccount {
    /// Login name (same rules as any account).
    pub login: String,
    /// Display name.
    pub display_name: Name,
    /// Password.
    pub password: SecretString,
}

impl std::fmt::Debug for RedeemAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemAccount").finish_non_exhaustive()
    }
}

/// What a redemption answers.
#[derive(Debug, Clone, Serialize)]
pub struct Redeemed {
    /// The invitation, now bound to the redeemer.
    pub invitation: InvitationView,
    /// The redeemer's account (created for a family member).
    pub user_id: UserId,
}

/// Whether the code may still be redeemed.
fn check_open(inv: &InvitationRow, now: i64) -> ServiceResult<()> {
    if inv.invitee_user_id.is_some() {
        return Err(ServiceError::Conflict("this code has been used"));
    }
    if inv.status()? != InvitationStatus::Pending || now > inv.expires_at {
        return Err(ServiceError::Conflict(
            "the invitation is no longer pending",
        ));
    }
    Ok(())
}

/// Inside a transaction: binds `user` to the code invitation `id`, computes
/// its approvals, counts it as accepted and joins if nothing is outstanding.
/// The inviter's right to invite this person is checked again under today's
/// policies (the invitee's facility is only known now); a refusal is
/// `forbidden`, which the caller audits once the transaction is rolled back
/// ([`audit_policy_refusal`]).
fn bind(
    conn: &mut DbConn,
    audit_as: &CallerInfo,
    id: i64,
    user: &UserRow,
    account_created: bool,
    now: i64,
) -> ServiceResult<InvitationRow> {
    // Group first, then invitation, as `invite` and `resend` take them: one
    // pending invitation per person and group.
    let group = GroupId(store::get(conn, id)?.group_id);
    store::lock_group(conn, group)?;
    let inv = store::lock(conn, id)?;
    check_open(&inv, now)?;
    let g = directory::group(conn, GroupId(inv.group_id))?;
    let invitee = invitee_facts(conn, user)?;
    let inviter = CallerInfo {
        user: Some(UserId(inv.invited_by)),
        ctx: audit_as.ctx.clone(),
    };
    let gf = facts(conn, &inviter, &g)?;
    let action = Action::Invite {
        group: gf,
        scope: inv.scope()?,
        invitee,
    };
    if allow(conn, &inviter, action).is_err() {
        return Err(ServiceError::Forbidden(
            "the facilities' policies do not allow this invitation",
        ));
    }
    if directory::membership(conn, GroupId(g.id), user.user_id())?.is_some() {
        return Err(ServiceError::Conflict("already a member"));
    }
    if let Some(open) = store::pending_of_user_in_group(conn, GroupId(g.id), user.user_id())? {
        if now <= open.expires_at {
            return Err(ServiceError::Conflict(store::ALREADY_INVITED));
        }
        // Its time ran out but nobody recorded it: record it, so that this
        // one may become the pending one (`invitations_one_pending`).
        let old = store::set_status(conn, open.id, InvitationStatus::Expired, open.expires_at)?;
        audit(conn, audit_as, entry(&g, &old, "invitation.expire", "ok"))?;
    }
    let needed = needed_approvals(conn, &g, &gf, &invitee)?;
    store::bind_invitee(conn, id, user.user_id(), &needed)?;
    let inv = store::set_accepted(conn, id, now)?;
    let mut e = entry(&g, &inv, ACTION, "ok");
    let roles: Vec<&str> = needed.iter().map(|(r, _)| r.as_str()).collect();
    e.detail = Some(format!(
        "invitation={} account_created={account_created} approvals={}",
        inv.id,
        if roles.is_empty() {
            "none".to_owned()
        } else {
            roles.join(",")
        }
    ));
    audit(conn, audit_as, e)?;
    join_if_complete(conn, audit_as, &g, inv, now)
}

/// Audits a redemption the policies refused in [`bind`] (its transaction,
/// and with it a family account being created, is rolled back by then), then
/// returns the refusal. `actor` is `None` when the account was not created.
fn audit_policy_refusal<T>(
    conn: &mut DbConn,
    ctx: &RequestContext,
    actor: Option<UserId>,
    id: i64,
    e: ServiceError,
) -> ServiceResult<T> {
    let inv = store::get(conn, id)?;
    let g = directory::group(conn, GroupId(inv.group_id))?;
    match actor {
        Some(user) => {
            let caller = CallerInfo {
                user: Some(user),
                ctx: ctx.clone(),
            };
            refused(conn, &caller, ACTION, Some((&g, Some(id))), e)
        }
        None => {
            crate::audit::record(
                conn,
                ctx,
                AuditEntry {
                    action: ACTION,
                    outcome: "denied",
                    facility_id: g.owner_facility_id,
                    group_id: Some(g.id),
                    detail: Some(format!(
                        "invitation={id} code={} account_created=false",
                        e.code().as_str()
                    )),
                    ..Default::default()
                },
            )?;
            Err(e)
        }
    }
}

impl Service {
    /// Redeems a one-time code: logged in (`principal`) for one's own
    /// account, or without a token by creating a family account
    /// (`account`). Exactly one of the two.
    pub async fn redeem_invitation(
        &self,
        principal: Option<&Principal>,
        ctx: RequestContext,
        code: SecretString,
        account: Option<RedeemAccount>,
    ) -> ServiceResult<Redeemed> {
        // Refused before any database work or password hashing; keyed by
        // address (a code itself is far too long to guess). Without an
        // address, by code: a shared bucket would let one client lock
        // everyone out.
        let hash = code_hash(code.expose_secret());
        let addr = ctx.remote_addr.clone();
        let key = match addr.as_deref() {
            Some(a) => format!("invitation-redeem@{a}"),
            None => format!("invitation-redeem#{hash}"),
        };
        if !self.inner.limits.allow(&key, addr.as_deref()) {
            return Err(ServiceError::RateLimited);
        }
        match (principal, account) {
            (Some(p), None) => self.redeem_logged_in(p, hash).await,
            (None, Some(a)) => self.redeem_with_new_account(ctx, hash, a).await,
            (Some(_), Some(_)) => Err(ServiceError::Invalid(
                "login, display_name and password are for redeeming without a token".into(),
            )),
            (None, None) => Err(ServiceError::Invalid(
                "without a token, login, display_name and password are required".into(),
            )),
        }
    }

    async fn redeem_logged_in(&self, p: &Principal, hash: String) -> ServiceResult<Redeemed> {
        let caller = CallerInfo::from(Caller::User(p));
        let user_id = p.user_id;
        self.blocking(move |conn| {
            let Some(inv) = store::by_code_hash(conn, &hash)? else {
                return refused(conn, &caller, ACTION, None, ServiceError::NotFound);
            };
            let user = directory::user(conn, user_id)?;
            if user.kind()? != inv.invitee_kind()? {
                let e = ServiceError::Forbidden("this code is for another kind of account");
                return refused(conn, &caller, ACTION, None, e);
            }
            let now = now_ms();
            let bound = transaction(conn, |conn| bind(conn, &caller, inv.id, &user, false, now));
            let inv = match bound {
                Err(e @ ServiceError::Forbidden(_)) => {
                    return audit_policy_refusal(conn, &caller.ctx, Some(user_id), inv.id, e);
                }
                other => other?,
            };
            Ok(Redeemed {
                invitation: one_view(conn, inv, now)?,
                user_id,
            })
        })
        .await
    }

    async fn redeem_with_new_account(
        &self,
        ctx: RequestContext,
        hash: String,
        account: RedeemAccount,
    ) -> ServiceResult<Redeemed> {
        crate::admin::check_login(&account.login)?;
        password::check_new(account.password.expose_secret()).map_err(ServiceError::Invalid)?;
        // Checked before the (deliberately slow) password hash.
        let found = {
            let ctx = ctx.clone();
            self.blocking(move |conn| {
                let Some(inv) = store::by_code_hash(conn, &hash)? else {
                    crate::audit::record(
                        conn,
                        &ctx,
                        AuditEntry {
                            action: ACTION,
                            outcome: "failed",
                            detail: Some("reason=unknown_code".into()),
                            ..Default::default()
                        },
                    )?;
                    return Err(ServiceError::NotFound);
                };
                if inv.invitee_kind()? != UserKind::Family {
                    return Err(ServiceError::Unauthorized(
                        "log in to redeem an invitation for a professional",
                    ));
                }
                check_open(&inv, now_ms())?;
                Ok(inv.id)
            })
            .await?
        };
        let password_hash = {
            let pw = account.password.clone();
            tokio::task::spawn_blocking(move || password::hash(pw.expose_secret()))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(ServiceError::Internal)?
        };
        self.blocking(move |conn| {
            let now = now_ms();
            let created = transaction(conn, |conn| {
                let user = directory::create_user(
                    conn,
                    &NewUser {
                        login: &account.login,
                        display_name: account.display_name.expose(),
                        kind: UserKind::Family,
                        profession: None,
                        facility_id: None,
                        facility_role: None,
                        password_hash: &password_hash,
                    },
                )?;
                let audit_as = CallerInfo {
                    user: Some(user.user_id()),
                    ctx: ctx.clone(),
                };
                let inv = bind(conn, &audit_as, found, &user, true, now)?;
                Ok::<_, ServiceError>((user.user_id(), inv))
            });
            let (user, inv) = match created {
                Err(e @ ServiceError::Forbidden(_)) => {
                    return audit_policy_refusal(conn, &ctx, None, found, e);
                }
                other => other?,
            };
            Ok(Redeemed {
                invitation: one_view(conn, inv, now)?,
                user_id: user,
            })
        })
        .await
    }
}
