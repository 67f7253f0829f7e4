//! The one access-control decision function. Every WebSocket command, REST call
//! and fan-out delivery asks [`decide`]; nothing else in Kizuna decides who may
//! do what. The facts it needs (who the actor is, what the target is, the
//! actor's membership) are gathered by the service layer and passed in, so the
//! function stays pure and is tested as a table.

use crate::ids::{FacilityId, UserId};
use crate::kinds::{
    ApprovalRole, CrossFacility, FacilityRole, GroupKind, GroupRole, InvitationScope,
    PatientGroupCreators, TimelineKind, UserKind, UserStatus, Visibility,
};
use crate::policy::FacilityPolicy;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// The user.
    pub user_id: UserId,
    /// What kind of account.
    pub kind: UserKind,
    /// Account status.
    pub status: UserStatus,
    /// The facility the user works for (staff) or belongs to (patients may be
    /// registered by one); `None` for operators, companies and family.
    pub facility_id: Option<FacilityId>,
    /// Role inside that facility.
    pub facility_role: Option<FacilityRole>,
}

/// The actor's membership in a group, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// Role in the group.
    pub role: GroupRole,
    /// Which timelines the member may see.
    pub visibility: Visibility,
}

/// What is known of the group an action targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupFacts {
    /// The group's kind.
    pub kind: GroupKind,
    /// The facility that owns it (patient groups; the creator's facility for others).
    pub owner_facility: Option<FacilityId>,
    /// The actor's membership, `None` when not a member.
    pub membership: Option<Membership>,
    /// The owning facility's policy (patient groups; `None` for other groups).
    pub owner_policy: Option<FacilityPolicy>,
}

impl GroupFacts {
    fn family_timeline_on(&self) -> bool {
        self.owner_policy.is_none_or(|p| p.family_timeline)
    }

    fn is_team_member(&self) -> bool {
        self.membership
            .is_some_and(|m| m.visibility == Visibility::All)
    }

    fn is_moderator(&self) -> bool {
        self.membership
            .is_some_and(|m| matches!(m.role, GroupRole::Owner | GroupRole::Moderator))
    }
}

/// Who is being invited into (or added to) a patient group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invitee {
    /// The kind of account (for an invitation code: the kind it is for).
    pub kind: UserKind,
    /// The invitee's facility and its policy (staff); `None` for family
    /// members, and for a code nobody has redeemed yet.
    pub facility: Option<(FacilityId, FacilityPolicy)>,
}

/// Whose approvals an invitation waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Approvals {
    /// An admin of the facility that owns the patient group.
    pub inviting_facility: bool,
    /// An admin of the invitee's facility.
    pub invitee_facility: bool,
    /// The patient (once they have joined the family timeline).
    pub patient: bool,
}

impl Approvals {
    /// True when nobody needs to approve.
    pub fn is_empty(self) -> bool {
        !(self.inviting_facility || self.invitee_facility || self.patient)
    }

    /// The approvals as roles, in a fixed order.
    pub fn roles(self) -> Vec<ApprovalRole> {
        let mut out = Vec::new();
        if self.inviting_facility {
            out.push(ApprovalRole::InvitingFacility);
        }
        if self.invitee_facility {
            out.push(ApprovalRole::InviteeFacility);
        }
        if self.patient {
            out.push(ApprovalRole::Patient);
        }
        out
    }
}

/// Whose approvals an invitation into a patient group needs, under both
/// facilities' policies. `patient_joined`: the patient's own account is a
/// member of the group (has joined the family timeline).
pub fn required_approvals(
    group: &GroupFacts,
    invitee: &Invitee,
    patient_joined: bool,
) -> Approvals {
    let outsider = is_outsider(group, invitee);
    Approvals {
        inviting_facility: outsider
            && group
                .owner_policy
                .is_some_and(|p| p.outside_invitations == CrossFacility::AdminApproval),
        invitee_facility: outsider
            && invitee.facility.is_some_and(|(_, p)| {
                p.staff_join_other_facilities == CrossFacility::AdminApproval
            }),
        patient: patient_joined,
    }
}

/// Staff from a facility other than the group's owner (or not known yet).
fn is_outsider(group: &GroupFacts, invitee: &Invitee) -> bool {
    invitee.kind == UserKind::Staff && invitee.facility.map(|(f, _)| f) != group.owner_facility
}

/// Whether both facilities' policies let this invitee into this scope of the
/// group at all (approvals aside).
fn invitee_fits(group: &GroupFacts, scope: InvitationScope, invitee: &Invitee) -> bool {
    if group.kind != GroupKind::Patient {
        return false;
    }
    match (scope, invitee.kind) {
        (InvitationScope::Team, UserKind::Staff) => {
            if !is_outsider(group, invitee) {
                return true;
            }
            let owner_lets_in = group
                .owner_policy
                .is_none_or(|p| p.outside_invitations != CrossFacility::Never);
            let home_lets_go = invitee
                .facility
                .is_none_or(|(_, p)| p.staff_join_other_facilities != CrossFacility::Never);
            owner_lets_in && home_lets_go
        }
        (InvitationScope::Family, UserKind::Family) => group.family_timeline_on(),
        _ => false,
    }
}

/// What the actor wants to do to a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimelineOp {
    /// Subscribe, history, list acknowledgements.
    Read,
    /// Post.
    Post,
    /// 了解.
    Ack,
    /// Move the read marker.
    MarkRead,
    /// Edit a post (the author only).
    Edit,
    /// Delete a post (the author, or a group owner/moderator).
    Delete,
}

impl TimelineOp {
    /// Every operation, for tables.
    pub const ALL: &'static [TimelineOp] = &[
        TimelineOp::Read,
        TimelineOp::Post,
        TimelineOp::Ack,
        TimelineOp::MarkRead,
        TimelineOp::Edit,
        TimelineOp::Delete,
    ];
}

/// Administrative operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminOp {
    /// Create a facility.
    CreateFacility,
    /// Create a user account in a facility (`None`: an account with no facility,
    /// such as a family member, company or operator).
    CreateUser {
        /// The facility the account will belong to.
        facility: Option<FacilityId>,
        /// The kind of account.
        kind: UserKind,
    },
    /// Register a patient (and their patient group) for a facility.
    CreatePatient {
        /// The registering facility.
        facility: FacilityId,
        /// That facility's rule for who may.
        creators: PatientGroupCreators,
    },
    /// Create a free group or community.
    CreateGroup {
        /// Free or community (patient groups come with `CreatePatient`).
        kind: GroupKind,
    },
    /// List every facility (service-wide view).
    ListFacilities,
    /// Issue, list or revoke client certificates for an account of a facility.
    ManageCertificates {
        /// The account's facility.
        facility: FacilityId,
    },
    /// Revoke a facility's whole certificate authority (every certificate it
    /// issued stops working).
    RevokeFacilityCa,
    /// Change a facility's policy (e.g. whether a client certificate is required).
    EditFacilityPolicy {
        /// The facility.
        facility: FacilityId,
    },
    /// Change an account's facility role or profession.
    EditUser {
        /// The account's facility.
        facility: Option<FacilityId>,
        /// The account's kind.
        kind: UserKind,
    },
    /// See a facility's staff list, their group memberships and the
    /// approvals waiting for the facility.
    ViewFacility {
        /// The facility.
        facility: FacilityId,
    },
    /// Link a patient's own account to their patient record (and so into
    /// their group's family timeline).
    LinkPatientAccount {
        /// The patient's facility.
        facility: FacilityId,
    },
    /// Read the audit trail: about one facility (`Some`), or service-wide
    /// (`None`, the operator's).
    ViewAudit {
        /// The facility, or `None` for everything.
        facility: Option<FacilityId>,
    },
    /// Disable or re-enable an account.
    SetUserStatus {
        /// The account's facility.
        facility: Option<FacilityId>,
        /// The account's kind.
        kind: UserKind,
    },
}

/// An action to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An operation on one timeline of a group.
    Timeline {
        /// What.
        op: TimelineOp,
        /// Which timeline kind.
        timeline: TimelineKind,
        /// The group it belongs to.
        group: GroupFacts,
        /// For `Edit`/`Delete`: the author of the targeted post.
        author: Option<UserId>,
    },
    /// Add a member to a group directly, remove one, or leave.
    ManageMembers {
        /// The group.
        group: GroupFacts,
        /// What changes.
        change: MemberChange,
    },
    /// Invite someone into a patient group (team or family timeline).
    Invite {
        /// The group.
        group: GroupFacts,
        /// Which part of the group.
        scope: InvitationScope,
        /// Who.
        invitee: Invitee,
    },
    /// Resend or cancel an invitation.
    ManageInvitation {
        /// The group.
        group: GroupFacts,
        /// Who sent it.
        inviter: UserId,
    },
    /// See a group's invitations and their approvals.
    ViewInvitations {
        /// The group.
        group: GroupFacts,
    },
    /// Accept or decline an invitation.
    RespondToInvitation {
        /// The invitee (`None`: an unredeemed code).
        invitee: Option<UserId>,
    },
    /// Approve or refuse an invitation in one of the approver roles.
    DecideApproval {
        /// Which approval.
        role: ApprovalRole,
        /// The group.
        group: GroupFacts,
        /// The invitee's facility (staff).
        invitee_facility: Option<FacilityId>,
    },
    /// Find open communities.
    ListCommunities,
    /// Apply to join a community.
    ApplyToCommunity {
        /// The group applied to.
        group: GroupFacts,
    },
    /// Approve or deny applications to a community, and list them.
    DecideApplication {
        /// The community.
        group: GroupFacts,
    },
    /// Learn who wrote an anonymous consultation post (audited).
    RevealAuthor {
        /// The community.
        group: GroupFacts,
    },
    /// See a group's details and member list.
    ViewGroup {
        /// The group.
        group: GroupFacts,
    },
    /// Administration.
    Admin(AdminOp),
}

/// A change of membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// The actor leaves.
    Leave,
    /// Someone else is removed.
    Remove,
    /// The patient's own account is removed from their group by someone
    /// else: refused (the patient leaves themselves), so nobody can drop the
    /// patient's say over who joins their group.
    RemovePatient,
    /// Someone is added directly. In patient groups this is allowed only where
    /// an invitation would need no approvals.
    Add {
        /// Who.
        invitee: Invitee,
        /// Into which part (patient groups; `Team` elsewhere).
        scope: InvitationScope,
        /// From [`required_approvals`]; always false outside patient groups.
        approvals_needed: bool,
    },
}

/// Why an action was refused. The service maps these to error codes:
/// `NotVisible` → `not_found` (the actor may not learn the target exists),
/// everything else → `forbidden`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// The account is disabled.
    AccountDisabled,
    /// Not a member: the target is treated as not existing.
    NotVisible,
    /// A member who may not see this timeline (family members and the team timeline).
    TimelineHidden,
    /// The action needs authorship or a role the actor lacks.
    NotPermitted,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with the reason.
    Deny(Denial),
}

impl Decision {
    /// True for `Allow`.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// The visibility a member of `kind` gets in a group, whatever was requested:
/// patients and family members only ever see the family timeline.
pub fn visibility_for(kind: UserKind, requested: Visibility) -> Visibility {
    match kind {
        UserKind::Patient | UserKind::Family => Visibility::FamilyOnly,
        _ => requested,
    }
}

/// Decides whether `actor` may perform `action`.
pub fn decide(actor: &Actor, action: &Action) -> Decision {
    use Decision::{Allow, Deny};
    if actor.status != UserStatus::Active {
        return Deny(Denial::AccountDisabled);
    }
    match *action {
        Action::Timeline {
            op,
            timeline,
            group,
            author,
        } => decide_timeline(actor, op, timeline, group, author),
        Action::ManageMembers { group, change } => decide_members(actor, group, change),
        Action::Invite {
            group,
            scope,
            invitee,
        } => {
            if group.membership.is_none() {
                return Deny(Denial::NotVisible);
            }
            // Any member of the care team may invite; family members and the
            // patient may not.
            if actor.kind != UserKind::Staff || !group.is_team_member() {
                return Deny(Denial::NotPermitted);
            }
            if invitee_fits(&group, scope, &invitee) {
                Allow
            } else {
                Deny(Denial::NotPermitted)
            }
        }
        Action::ManageInvitation { group, inviter } => {
            if group.membership.is_none() {
                return Deny(Denial::NotVisible);
            }
            // The inviter, or an owner/moderator, who sees the team (never a
            // family member, the patient or a company account, whatever
            // their stored role or visibility says).
            let own = inviter == actor.user_id;
            if sees_team(actor, &group) && (own || group.is_moderator()) {
                Allow
            } else {
                Deny(Denial::NotPermitted)
            }
        }
        Action::ViewInvitations { group } => {
            if group.membership.is_none() {
                return Deny(Denial::NotVisible);
            }
            if group.kind == GroupKind::Patient && sees_team(actor, &group) {
                Allow
            } else {
                Deny(Denial::NotPermitted)
            }
        }
        Action::RespondToInvitation { invitee } => {
            if invitee == Some(actor.user_id) {
                Allow
            } else {
                Deny(Denial::NotVisible)
            }
        }
        Action::DecideApproval {
            role,
            group,
            invitee_facility,
        } => {
            let admin_of = |f: Option<FacilityId>| {
                is_facility_admin(actor) && f.is_some() && actor.facility_id == f
            };
            let ok = match role {
                ApprovalRole::InvitingFacility => admin_of(group.owner_facility),
                ApprovalRole::InviteeFacility => admin_of(invitee_facility),
                ApprovalRole::Patient => {
                    actor.kind == UserKind::Patient && group.membership.is_some()
                }
            };
            if ok {
                Allow
            } else if group.membership.is_some() {
                Deny(Denial::NotPermitted)
            } else {
                Deny(Denial::NotVisible)
            }
        }
        Action::ListCommunities => match actor.kind {
            UserKind::Staff | UserKind::Company | UserKind::Operator => Allow,
            UserKind::Patient | UserKind::Family => Deny(Denial::NotPermitted),
        },
        Action::ApplyToCommunity { group } => {
            // Free and patient groups are invitation only; to an applicant
            // they do not exist.
            if group.kind != GroupKind::Community {
                return Deny(Denial::NotVisible);
            }
            if !matches!(actor.kind, UserKind::Staff | UserKind::Company)
                || group.membership.is_some()
            {
                return Deny(Denial::NotPermitted);
            }
            Allow
        }
        Action::DecideApplication { group } => {
            if group.kind != GroupKind::Community {
                return Deny(Denial::NotVisible);
            }
            if actor.kind == UserKind::Operator {
                return Allow;
            }
            match group.membership {
                None => Deny(Denial::NotVisible),
                Some(_) if group.is_moderator() => Allow,
                Some(_) => Deny(Denial::NotPermitted),
            }
        }
        Action::RevealAuthor { group } => {
            if group.kind != GroupKind::Community {
                return Deny(Denial::NotVisible);
            }
            match group.membership {
                None => Deny(Denial::NotVisible),
                // Only professionals bound by confidentiality moderate
                // anonymity: staff (or the operator) holding a moderator
                // role; never a company account.
                Some(_)
                    if group.is_moderator()
                        && matches!(actor.kind, UserKind::Staff | UserKind::Operator) =>
                {
                    Allow
                }
                Some(_) => Deny(Denial::NotPermitted),
            }
        }
        Action::ViewGroup { group } => {
            if actor.kind == UserKind::Operator {
                return Allow;
            }
            let Some(m) = group.membership else {
                return Deny(Denial::NotVisible);
            };
            if !may_join(actor.kind, group.kind) {
                return Deny(Denial::NotVisible);
            }
            // The member list shows the team; family members see only their
            // own timeline, not who is on the team.
            match visibility_for(actor.kind, m.visibility) {
                Visibility::All => Allow,
                Visibility::FamilyOnly => Deny(Denial::NotPermitted),
            }
        }
        Action::Admin(op) => decide_admin(actor, op),
    }
}

/// A member who may see the whole group: a kind of account that may take
/// part in it, seeing every timeline (never a patient or family member,
/// whatever visibility is stored).
fn sees_team(actor: &Actor, group: &GroupFacts) -> bool {
    may_join(actor.kind, group.kind)
        && group
            .membership
            .is_some_and(|m| visibility_for(actor.kind, m.visibility) == Visibility::All)
}

fn is_facility_admin(actor: &Actor) -> bool {
    actor.kind == UserKind::Staff && actor.facility_role == Some(FacilityRole::Admin)
}

fn decide_members(actor: &Actor, group: GroupFacts, change: MemberChange) -> Decision {
    use Decision::{Allow, Deny};
    // The operator manages any group's members without being in it; who may
    // be added (kinds, policies, approvals) binds the operator too.
    if actor.kind != UserKind::Operator {
        let Some(m) = group.membership else {
            return Deny(Denial::NotVisible);
        };
        if change == MemberChange::Leave {
            // Anyone may leave a group they are in.
            return Allow;
        }
        // Patients and family members do not see the team, so they do not
        // manage it, whatever role is stored.
        if !sees_team(actor, &group) {
            return Deny(Denial::NotPermitted);
        }
        if !matches!(m.role, GroupRole::Owner | GroupRole::Moderator) {
            return Deny(Denial::NotPermitted);
        }
    }
    match change {
        MemberChange::Leave | MemberChange::Remove => Allow,
        MemberChange::RemovePatient => Deny(Denial::NotPermitted),
        MemberChange::Add {
            invitee,
            scope,
            approvals_needed,
        } => {
            if !may_join(invitee.kind, group.kind) {
                return Deny(Denial::NotPermitted);
            }
            if group.kind != GroupKind::Patient {
                return Allow;
            }
            // A patient's own account joins only their own group, by being
            // linked to their patient record (`AdminOp::LinkPatientAccount`),
            // never by being added.
            if invitee.kind == UserKind::Patient {
                return Deny(Denial::NotPermitted);
            }
            if invitee_fits(&group, scope, &invitee) && !approvals_needed {
                Allow
            } else {
                Deny(Denial::NotPermitted)
            }
        }
    }
}

/// Whether an account of this kind may take part in a group of this kind at all:
/// patients and family only in patient groups, company accounts only in
/// communities.
pub fn may_join(user: UserKind, group: GroupKind) -> bool {
    match user {
        UserKind::Staff | UserKind::Operator => true,
        UserKind::Patient | UserKind::Family => group == GroupKind::Patient,
        UserKind::Company => group == GroupKind::Community,
    }
}

fn decide_timeline(
    actor: &Actor,
    op: TimelineOp,
    timeline: TimelineKind,
    group: GroupFacts,
    author: Option<UserId>,
) -> Decision {
    use Decision::{Allow, Deny};
    let Some(m) = group.membership else {
        return Deny(Denial::NotVisible);
    };
    if !TimelineKind::for_group(group.kind).contains(&timeline) {
        return Deny(Denial::NotVisible);
    }
    // A facility that has switched the family timeline off: it is not there.
    if timeline == TimelineKind::Family && !group.family_timeline_on() {
        return Deny(Denial::NotVisible);
    }
    if !may_join(actor.kind, group.kind) {
        return Deny(Denial::NotVisible);
    }
    let sees = match visibility_for(actor.kind, m.visibility) {
        Visibility::All => true,
        Visibility::FamilyOnly => timeline == TimelineKind::Family,
    };
    if !sees {
        return Deny(Denial::TimelineHidden);
    }
    match op {
        TimelineOp::Read | TimelineOp::Post | TimelineOp::Ack | TimelineOp::MarkRead => Allow,
        TimelineOp::Edit => {
            if author == Some(actor.user_id) {
                Allow
            } else {
                Deny(Denial::NotPermitted)
            }
        }
        TimelineOp::Delete => {
            if author == Some(actor.user_id)
                || matches!(m.role, GroupRole::Owner | GroupRole::Moderator)
            {
                Allow
            } else {
                Deny(Denial::NotPermitted)
            }
        }
    }
}

fn decide_admin(actor: &Actor, op: AdminOp) -> Decision {
    use Decision::{Allow, Deny};
    // The operator may do everything but register patients (and so create
    // patient groups, which come only with a registered patient).
    let patient_group = matches!(
        op,
        AdminOp::CreatePatient { .. }
            | AdminOp::CreateGroup {
                kind: GroupKind::Patient
            }
    );
    if actor.kind == UserKind::Operator && !patient_group {
        return Allow;
    }
    let is_facility_admin = is_facility_admin(actor);
    let allowed = match op {
        AdminOp::CreateFacility => false,
        AdminOp::CreateUser { facility, kind } => match kind {
            // A facility admin creates staff of their own facility, and the
            // patients and family members their facility cares for.
            UserKind::Staff | UserKind::Patient => {
                is_facility_admin && facility.is_some() && facility == actor.facility_id
            }
            UserKind::Family => is_facility_admin && facility.is_none(),
            UserKind::Company | UserKind::Operator => false,
        },
        // Patients are registered by the staff of the facility that cares for
        // them (who then own the patient group), not by the operator.
        // The facility's policy may keep that to its admins.
        AdminOp::CreatePatient { facility, creators } => {
            actor.kind == UserKind::Staff
                && actor.facility_id == Some(facility)
                && (creators == PatientGroupCreators::Staff || is_facility_admin)
        }
        AdminOp::ListFacilities | AdminOp::RevokeFacilityCa => false,
        // Each facility's admins issue and revoke the certificates of their
        // own facility's devices, and no other.
        AdminOp::ManageCertificates { facility } | AdminOp::EditFacilityPolicy { facility } => {
            is_facility_admin && actor.facility_id == Some(facility)
        }
        // A facility admin enables and disables the staff and patient accounts
        // of their own facility; everything else is the operator's.
        AdminOp::SetUserStatus { facility, kind } => {
            is_facility_admin
                && matches!(kind, UserKind::Staff | UserKind::Patient)
                && facility.is_some()
                && facility == actor.facility_id
        }
        // Company accounts host communities and nothing else.
        AdminOp::CreateGroup { kind } => match kind {
            GroupKind::Free => actor.kind == UserKind::Staff,
            GroupKind::Community => matches!(actor.kind, UserKind::Staff | UserKind::Company),
            GroupKind::Patient => false,
        },
        // A facility admin changes the role and profession of their own
        // facility's staff, sees their staff list and group memberships, and
        // reads the audit entries about their facility.
        AdminOp::EditUser { facility, kind } => {
            is_facility_admin
                && kind == UserKind::Staff
                && facility.is_some()
                && facility == actor.facility_id
        }
        AdminOp::ViewFacility { facility } | AdminOp::LinkPatientAccount { facility } => {
            is_facility_admin && actor.facility_id == Some(facility)
        }
        AdminOp::ViewAudit { facility } => {
            is_facility_admin && facility.is_some() && facility == actor.facility_id
        }
    };
    if allowed {
        Allow
    } else {
        Deny(Denial::NotPermitted)
    }
}

#[cfg(test)]
mod tests;
