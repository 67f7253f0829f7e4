//! The one access-control decision function. Every WebSocket command, REST call
//! and fan-out delivery asks [`decide`]; nothing else in Kizuna decides who may
//! do what. The facts it needs (who the actor is, what the target is, the
//! actor's membership) are gathered by the service layer and passed in, so the
//! function stays pure and is tested as a table.

use crate::ids::{FacilityId, UserId};
use crate::kinds::{
    FacilityRole, GroupKind, GroupRole, TimelineKind, UserKind, UserStatus, Visibility,
};

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
    /// Add a member to a group, or change or remove one.
    ManageMembers {
        /// The group.
        group: GroupFacts,
        /// True when the member concerned is the actor (leaving a group).
        target_is_self: bool,
    },
    /// See a group's details and member list.
    ViewGroup {
        /// The group.
        group: GroupFacts,
    },
    /// Administration.
    Admin(AdminOp),
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
        Action::ManageMembers {
            group,
            target_is_self,
        } => {
            if actor.kind == UserKind::Operator {
                return Allow;
            }
            let Some(m) = group.membership else {
                return Deny(Denial::NotVisible);
            };
            if target_is_self {
                // Anyone may leave a group they are in.
                return Allow;
            }
            if !may_join(actor.kind, group.kind) {
                return Deny(Denial::NotPermitted);
            }
            match m.role {
                GroupRole::Owner | GroupRole::Moderator => Allow,
                GroupRole::Member => Deny(Denial::NotPermitted),
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
    if actor.kind == UserKind::Operator && !matches!(op, AdminOp::CreatePatient { .. }) {
        return Allow;
    }
    let is_facility_admin =
        actor.kind == UserKind::Staff && actor.facility_role == Some(FacilityRole::Admin);
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
        AdminOp::CreatePatient { facility } => {
            actor.kind == UserKind::Staff && actor.facility_id == Some(facility)
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
        AdminOp::CreateGroup { kind } => {
            actor.kind == UserKind::Staff && matches!(kind, GroupKind::Free | GroupKind::Community)
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
