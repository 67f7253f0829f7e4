//! The closed vocabularies of the domain: kinds of users, groups, timelines and
//! roles. Each has a stable snake_case wire and database spelling.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error returned when a stored or received word is not one of a vocabulary's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {vocabulary} value")]
pub struct UnknownValue {
    /// Which vocabulary was being parsed (never the rejected text itself).
    pub vocabulary: &'static str,
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident, $label:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable snake_case spelling used on the wire and in the store.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { vocabulary: $label }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// What kind of person (or organisation) an account belongs to.
    UserKind, "user kind" {
        /// A professional working for a facility.
        Staff => "staff",
        /// A patient, invited to their own family timeline.
        Patient => "patient",
        /// A family member of a patient, invited to that patient's family timeline.
        Family => "family",
        /// A company account: may host or post in communities, nothing else.
        Company => "company",
        /// The operator of the service.
        Operator => "operator",
    }
);

vocabulary!(
    /// Profession of a staff member (shown next to their name).
    Profession, "profession" {
        /// Physician.
        Physician => "physician",
        /// Nurse (including home-care nurse).
        Nurse => "nurse",
        /// Pharmacist.
        Pharmacist => "pharmacist",
        /// Care manager.
        CareManager => "care_manager",
        /// Care worker / helper.
        CareWorker => "care_worker",
        /// Physical, occupational or speech therapist.
        Therapist => "therapist",
        /// Dietitian.
        Dietitian => "dietitian",
        /// Dentist or dental hygienist.
        Dental => "dental",
        /// Medical social worker.
        SocialWorker => "social_worker",
        /// Administrative staff.
        Clerk => "clerk",
        /// Anything else.
        Other => "other",
    }
);

vocabulary!(
    /// Role of a user inside their facility.
    FacilityRole, "facility role" {
        /// May manage the facility's staff, policy and certificates.
        Admin => "admin",
        /// Ordinary staff member.
        Staff => "staff",
    }
);

vocabulary!(
    /// The three kinds of place.
    GroupKind, "group kind" {
        /// One per patient: team and family timelines.
        Patient => "patient",
        /// Invitation-only group on any theme: one main timeline.
        Free => "free",
        /// Open group anyone may apply to: main and consultation timelines.
        Community => "community",
    }
);

vocabulary!(
    /// Which timeline of a group.
    TimelineKind, "timeline kind" {
        /// Patient group: the multi-facility care team.
        Team => "team",
        /// Patient group: patient and family talk with the team.
        Family => "family",
        /// Free group or community: the one shared timeline.
        Main => "main",
        /// Community: the consultation tab (anonymous questions).
        Consultation => "consultation",
    }
);

impl TimelineKind {
    /// Timelines a group of this kind has, created with the group.
    pub fn for_group(kind: GroupKind) -> &'static [TimelineKind] {
        match kind {
            GroupKind::Patient => &[TimelineKind::Team, TimelineKind::Family],
            GroupKind::Free => &[TimelineKind::Main],
            GroupKind::Community => &[TimelineKind::Main, TimelineKind::Consultation],
        }
    }
}

vocabulary!(
    /// Role of a member inside a group.
    GroupRole, "group role" {
        /// Created or owns the group; may manage members.
        Owner => "owner",
        /// May manage members and moderate posts.
        Moderator => "moderator",
        /// Ordinary member.
        Member => "member",
    }
);

vocabulary!(
    /// Which timelines of a group a member may see.
    Visibility, "visibility" {
        /// Every timeline of the group (team members).
        All => "all",
        /// Only the family timeline (patients and family members).
        FamilyOnly => "family_only",
    }
);

vocabulary!(
    /// Status of a user account.
    UserStatus, "user status" {
        /// May log in.
        Active => "active",
        /// Deactivated: may not log in; what they wrote stays.
        Disabled => "disabled",
    }
);

vocabulary!(
    /// Kind of event stored on a timeline.
    EventKind, "event kind" {
        /// A new post.
        Post => "post",
        /// A new version of an earlier post's body.
        Edit => "edit",
        /// A tombstone replacing an earlier post.
        Delete => "delete",
        /// A member joined the group.
        MemberJoined => "member_joined",
        /// A member left or was removed.
        MemberLeft => "member_left",
    }
);

vocabulary!(
    /// A facility policy rule for crossing facility lines: staff joining other
    /// facilities' patient groups, or outsiders invited into this facility's.
    CrossFacility, "cross-facility rule" {
        /// Not at all.
        Never => "never",
        /// Only once an admin of the facility has approved each invitation.
        AdminApproval => "admin_approval",
        /// Freely (the other side's rules and the patient's approval still apply).
        Allowed => "allowed",
    }
);

vocabulary!(
    /// Who may register patients (and so create patient groups) for a facility.
    PatientGroupCreators, "patient group creators" {
        /// Any staff member of the facility.
        Staff => "staff",
        /// The facility's admins only.
        Admins => "admins",
    }
);

vocabulary!(
    /// Where an invitation leads inside a patient group.
    InvitationScope, "invitation scope" {
        /// The care team: team and family timelines (staff only).
        Team => "team",
        /// The family timeline only (family members).
        Family => "family",
    }
);

vocabulary!(
    /// Where an invitation stands.
    InvitationStatus, "invitation status" {
        /// Waiting for the invitee and/or approvals.
        Pending => "pending",
        /// Everyone agreed; the invitee is a member.
        Joined => "joined",
        /// The invitee said no.
        Declined => "declined",
        /// An approver said no.
        Denied => "denied",
        /// The inviter (or a group owner) withdrew it.
        Cancelled => "cancelled",
        /// Nobody acted before it expired.
        Expired => "expired",
    }
);

vocabulary!(
    /// Whose approval an invitation waits for.
    ApprovalRole, "approval role" {
        /// An admin of the facility that owns the patient group.
        InvitingFacility => "inviting_facility",
        /// An admin of the invitee's facility.
        InviteeFacility => "invitee_facility",
        /// The patient, once they have joined the family timeline.
        Patient => "patient",
    }
);

vocabulary!(
    /// One approval's state.
    ApprovalState, "approval state" {
        /// Not decided yet.
        Pending => "pending",
        /// Approved.
        Approved => "approved",
        /// Refused (the invitation is then `denied`).
        Refused => "refused",
    }
);

vocabulary!(
    /// Where an application to join a community stands.
    ApplicationStatus, "application status" {
        /// Waiting for a moderator.
        Pending => "pending",
        /// Approved: the applicant is a member.
        Approved => "approved",
        /// Refused by a moderator.
        Denied => "denied",
        /// Withdrawn by the applicant.
        Withdrawn => "withdrawn",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vocabulary_round_trips_through_its_spelling() {
        for k in UserKind::ALL {
            assert_eq!(k.as_str().parse::<UserKind>().unwrap(), *k);
            assert_eq!(
                serde_json::to_string(k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        for k in TimelineKind::ALL {
            assert_eq!(k.as_str().parse::<TimelineKind>().unwrap(), *k);
        }
        for k in Profession::ALL {
            assert_eq!(k.as_str().parse::<Profession>().unwrap(), *k);
        }
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), *k);
        }
        for k in CrossFacility::ALL {
            assert_eq!(k.as_str().parse::<CrossFacility>().unwrap(), *k);
        }
        for k in InvitationStatus::ALL {
            assert_eq!(k.as_str().parse::<InvitationStatus>().unwrap(), *k);
        }
        for k in ApprovalRole::ALL {
            assert_eq!(k.as_str().parse::<ApprovalRole>().unwrap(), *k);
        }
        for k in ApplicationStatus::ALL {
            assert_eq!(k.as_str().parse::<ApplicationStatus>().unwrap(), *k);
        }
    }

    #[test]
    fn unknown_words_are_rejected_without_echoing_them() {
        let err = "surgeon-general".parse::<Profession>().unwrap_err();
        assert!(!err.to_string().contains("surgeon"));
    }
}
