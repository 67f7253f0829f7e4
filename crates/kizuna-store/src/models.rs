//! Rows as stored, and their conversion into domain types. Rows keep the
//! stored text; conversion parses it (a failure means a corrupt database).

use crate::error::StoreError;
use crate::schema::*;
use diesel::prelude::*;
use kizuna_domain::access::Membership;
use kizuna_domain::protocol::Author;
use kizuna_domain::text::Name;
use kizuna_domain::*;

pub(crate) fn parse<T: std::str::FromStr>(s: &str, what: &'static str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt(what))
}

/// A facility.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = facilities)]
pub struct FacilityRow {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
    /// Whether staff need a client certificate (plus password) to log in.
    pub require_client_cert: bool,
    /// When the operator revoked the facility's CA (Unix ms).
    pub ca_revoked_at: Option<i64>,
    /// [`PatientGroupCreators`] spelling.
    pub patient_group_creators: String,
    /// [`CrossFacility`] spelling.
    pub staff_join_other_facilities: String,
    /// [`CrossFacility`] spelling.
    pub outside_invitations: String,
    /// Whether the family timeline is in use.
    pub family_timeline: bool,
    /// Notification window start, minutes after midnight Japan time.
    pub notify_start_minute: Option<i64>,
    /// Notification window end.
    pub notify_end_minute: Option<i64>,
}

impl FacilityRow {
    /// The facility's policy, parsed.
    pub fn policy(&self) -> Result<FacilityPolicy, StoreError> {
        let notification_hours = match (self.notify_start_minute, self.notify_end_minute) {
            (Some(a), Some(b)) => Some(
                u16::try_from(a)
                    .ok()
                    .zip(u16::try_from(b).ok())
                    .and_then(|(a, b)| NotificationHours::new(a, b).ok())
                    .ok_or(StoreError::Corrupt("facilities.notify_*_minute"))?,
            ),
            (None, None) => None,
            _ => return Err(StoreError::Corrupt("facilities.notify_*_minute")),
        };
        Ok(FacilityPolicy {
            patient_group_creators: parse(
                &self.patient_group_creators,
                "facilities.patient_group_creators",
            )?,
            staff_join_other_facilities: parse(
                &self.staff_join_other_facilities,
                "facilities.staff_join_other_facilities",
            )?,
            outside_invitations: parse(
                &self.outside_invitations,
                "facilities.outside_invitations",
            )?,
            family_timeline: self.family_timeline,
            require_client_cert: self.require_client_cert,
            notification_hours,
        })
    }
}

/// A client certificate issued by the service's CA.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = client_certificates)]
pub struct CertificateRow {
    /// Id.
    pub id: i64,
    /// Serial, lowercase hex.
    pub serial: String,
    /// Owner.
    pub user_id: i64,
    /// Facility whose CA issued it.
    pub facility_id: i64,
    /// RFC 8705 thumbprint (base64url SHA-256 of the DER).
    pub thumbprint: String,
    /// Device label given at issuance.
    pub device_label: String,
    /// `csr`, `pkcs12` or `renewal`.
    pub method: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// `active` or `revoked`.
    pub status: String,
    /// Who issued it (`None`: the CLI or a renewal by the owner).
    pub issued_by: Option<i64>,
    /// Unix ms.
    pub issued_at: i64,
    /// Unix ms.
    pub revoked_at: Option<i64>,
    /// RFC 5280 reason name.
    pub revoke_reason: Option<String>,
}

/// A user account. `Debug` leaves out the name and the password hash.
#[derive(Clone, Queryable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// [`UserKind`] spelling.
    pub kind: String,
    /// [`Profession`] spelling.
    pub profession: Option<String>,
    /// Facility.
    pub facility_id: Option<i64>,
    /// [`FacilityRole`] spelling.
    pub facility_role: Option<String>,
    /// [`UserStatus`] spelling.
    pub status: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("facility_id", &self.facility_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl UserRow {
    /// The user's id.
    pub fn user_id(&self) -> UserId {
        UserId(self.id)
    }
    /// Parsed kind.
    pub fn kind(&self) -> Result<UserKind, StoreError> {
        parse(&self.kind, "users.kind")
    }
    /// Parsed status.
    pub fn status(&self) -> Result<UserStatus, StoreError> {
        parse(&self.status, "users.status")
    }
    /// The access-control view of this user.
    pub fn actor(&self) -> Result<kizuna_domain::access::Actor, StoreError> {
        Ok(kizuna_domain::access::Actor {
            user_id: self.user_id(),
            kind: self.kind()?,
            status: self.status()?,
            facility_id: self.facility_id.map(FacilityId),
            facility_role: self
                .facility_role
                .as_deref()
                .map(|r| parse(r, "users.facility_role"))
                .transpose()?,
        })
    }
    /// How readers see this user.
    pub fn author(&self) -> Result<Author, StoreError> {
        AuthorRow {
            id: self.id,
            display_name: self.display_name.clone(),
            kind: self.kind.clone(),
            profession: self.profession.clone(),
            facility_id: self.facility_id,
        }
        .author()
    }
}

/// The columns of `users` shown next to what someone wrote.
#[derive(Debug, Clone, Queryable)]
pub struct AuthorRow {
    /// Id.
    pub id: i64,
    /// Display name (redacted in `Author`'s Debug).
    pub display_name: String,
    /// Kind.
    pub kind: String,
    /// Profession.
    pub profession: Option<String>,
    /// Facility.
    pub facility_id: Option<i64>,
}

/// The `AuthorRow` columns, for `select`.
pub(crate) type AuthorColumns = (
    users::id,
    users::display_name,
    users::kind,
    users::profession,
    users::facility_id,
);
pub(crate) const AUTHOR_COLUMNS: AuthorColumns = (
    users::id,
    users::display_name,
    users::kind,
    users::profession,
    users::facility_id,
);

impl AuthorRow {
    /// Converts into the protocol's author.
    pub fn author(&self) -> Result<Author, StoreError> {
        Ok(Author {
            user_id: UserId(self.id),
            display_name: Name::parse(self.display_name.clone())
                .map_err(|_| StoreError::Corrupt("users.display_name"))?,
            kind: parse(&self.kind, "users.kind")?,
            profession: self
                .profession
                .as_deref()
                .map(|p| parse(p, "users.profession"))
                .transpose()?,
            facility_id: self.facility_id.map(FacilityId),
        })
    }
}

/// A patient.
#[derive(Clone, Queryable)]
#[diesel(table_name = patients)]
pub struct PatientRow {
    /// Id.
    pub id: i64,
    /// Registering facility.
    pub facility_id: i64,
    /// The patient's name.
    pub display_name: String,
    /// The patient's own account, once invited.
    pub user_id: Option<i64>,
    /// Who registered the patient.
    pub created_by: i64,
    /// Unix ms.
    pub created_at: i64,
}

impl std::fmt::Debug for PatientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientRow")
            .field("id", &self.id)
            .field("facility_id", &self.facility_id)
            .finish_non_exhaustive()
    }
}

/// A group (patient group, free group or community).
#[derive(Clone, Queryable)]
#[diesel(table_name = care_groups)]
pub struct GroupRow {
    /// Id.
    pub id: i64,
    /// [`GroupKind`] spelling.
    pub kind: String,
    /// Name (for a patient group, names the patient).
    pub name: String,
    /// Owning facility.
    pub owner_facility_id: Option<i64>,
    /// The patient, for a patient group.
    pub patient_id: Option<i64>,
    /// Creator.
    pub created_by: i64,
    /// Unix ms.
    pub created_at: i64,
}

impl std::fmt::Debug for GroupRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("patient_id", &self.patient_id)
            .finish_non_exhaustive()
    }
}

impl GroupRow {
    /// Parsed kind.
    pub fn kind(&self) -> Result<GroupKind, StoreError> {
        parse(&self.kind, "care_groups.kind")
    }
}

/// A timeline.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = timelines)]
pub struct TimelineRow {
    /// Id.
    pub id: i64,
    /// Group.
    pub group_id: i64,
    /// [`TimelineKind`] spelling.
    pub kind: String,
    /// Newest seq.
    pub last_seq: i64,
}

impl TimelineRow {
    /// Parsed kind.
    pub fn kind(&self) -> Result<TimelineKind, StoreError> {
        parse(&self.kind, "timelines.kind")
    }
}

/// A group membership.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = group_members)]
pub struct MemberRow {
    /// Group.
    pub group_id: i64,
    /// User.
    pub user_id: i64,
    /// [`GroupRole`] spelling.
    pub role: String,
    /// [`Visibility`] spelling.
    pub visibility: String,
    /// Unix ms.
    pub joined_at: i64,
}

impl MemberRow {
    /// The access-control view.
    pub fn membership(&self) -> Result<Membership, StoreError> {
        Ok(Membership {
            role: parse(&self.role, "group_members.role")?,
            visibility: parse(&self.visibility, "group_members.visibility")?,
        })
    }
}

/// A stored event. `Debug` leaves out the body.
#[derive(Clone, Queryable)]
#[diesel(table_name = events)]
pub struct EventRow {
    /// Id.
    pub id: i64,
    /// Timeline.
    pub timeline_id: i64,
    /// Position.
    pub seq: i64,
    /// [`EventKind`] spelling.
    pub kind: String,
    /// Author.
    pub author_id: i64,
    /// Body (post/edit); `None` once a post is deleted.
    pub body: Option<String>,
    /// Edit/delete target.
    pub target_seq: Option<i64>,
    /// Idempotency key of a post.
    pub client_msg_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Last edit of a post.
    pub edited_at: Option<i64>,
    /// Deletion of a post.
    pub deleted_at: Option<i64>,
}

impl std::fmt::Debug for EventRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRow")
            .field("id", &self.id)
            .field("timeline_id", &self.timeline_id)
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("author_id", &self.author_id)
            .finish_non_exhaustive()
    }
}

impl EventRow {
    /// Parsed kind.
    pub fn kind(&self) -> Result<EventKind, StoreError> {
        parse(&self.kind, "events.kind")
    }

    /// Converts into the protocol's event. `client_msg_id` is shown to the
    /// author only (`viewer`).
    pub fn to_event(
        &self,
        author: &AuthorRow,
        ack_count: u32,
        viewer: Option<UserId>,
    ) -> Result<kizuna_domain::protocol::Event, StoreError> {
        let body = self
            .body
            .as_ref()
            .map(|b| {
                kizuna_domain::text::Body::parse(b.clone())
                    .map_err(|_| StoreError::Corrupt("events.body"))
            })
            .transpose()?;
        Ok(kizuna_domain::protocol::Event {
            event_id: EventId(self.id),
            timeline_id: TimelineId(self.timeline_id),
            seq: self.seq,
            kind: self.kind()?,
            author: Some(author.author()?),
            anonymous: false,
            mine: false,
            body,
            target_seq: self.target_seq,
            client_msg_id: if viewer == Some(UserId(self.author_id)) {
                self.client_msg_id.clone()
            } else {
                None
            },
            created_at: self.created_at,
            edited_at: self.edited_at,
            deleted: self.deleted_at.is_some(),
            ack_count,
        })
    }
}

/// An acknowledgement.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = acks)]
pub struct AckRow {
    /// Timeline.
    pub timeline_id: i64,
    /// Acknowledged post.
    pub target_seq: i64,
    /// Who.
    pub user_id: i64,
    /// Unix ms.
    pub acked_at: i64,
}

/// A login session.
#[derive(Clone, Queryable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// Id.
    pub id: i64,
    /// User.
    pub user_id: i64,
    /// SHA-256 (hex) of the current refresh token.
    pub refresh_hash: String,
    /// SHA-256 (hex) of the previous refresh token.
    pub previous_refresh_hash: Option<String>,
    /// Certificate thumbprint the session is bound to.
    pub cert_thumbprint: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub refreshed_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms.
    pub revoked_at: Option<i64>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// An audit entry (also its export format: JSON lines, CSV).
#[derive(Debug, Clone, Queryable, serde::Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// Id.
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// Who acted.
    pub actor_user_id: Option<i64>,
    /// What (e.g. `timeline.read`).
    pub action: String,
    /// `allowed`, `denied`, `failed`, `ok`.
    pub outcome: String,
    /// Facility concerned.
    pub facility_id: Option<i64>,
    /// Patient concerned.
    pub patient_id: Option<i64>,
    /// Group concerned.
    pub group_id: Option<i64>,
    /// Timeline concerned.
    pub timeline_id: Option<i64>,
    /// User acted upon.
    pub subject_user_id: Option<i64>,
    /// Extra detail (ids and codes only, never content).
    pub detail: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
    /// Client certificate serial.
    pub cert_serial: Option<String>,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
    /// The acting user's facility at the time.
    pub actor_facility_id: Option<i64>,
}

/// An invitation into a patient group.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    /// Id.
    pub id: i64,
    /// The patient group.
    pub group_id: i64,
    /// [`InvitationScope`] spelling.
    pub scope: String,
    /// [`UserKind`] spelling (`staff` or `family`).
    pub invitee_kind: String,
    /// The invitee, once known.
    pub invitee_user_id: Option<i64>,
    /// SHA-256 (hex) of the one-time code, for code invitations.
    pub code_hash: Option<String>,
    /// Who invited.
    pub invited_by: i64,
    /// [`InvitationStatus`] spelling.
    pub status: String,
    /// When the invitee accepted (Unix ms).
    pub accepted_at: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
    /// Last (re)sent, Unix ms.
    pub sent_at: i64,
    /// How many times sent.
    pub send_count: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// When it stopped being pending (Unix ms).
    pub closed_at: Option<i64>,
}

impl InvitationRow {
    /// Parsed status.
    pub fn status(&self) -> Result<InvitationStatus, StoreError> {
        parse(&self.status, "invitations.status")
    }
    /// Parsed scope.
    pub fn scope(&self) -> Result<InvitationScope, StoreError> {
        parse(&self.scope, "invitations.scope")
    }
    /// Parsed invitee kind.
    pub fn invitee_kind(&self) -> Result<UserKind, StoreError> {
        parse(&self.invitee_kind, "invitations.invitee_kind")
    }
}

/// One approval an invitation waits for.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = invitation_approvals)]
pub struct ApprovalRow {
    /// The invitation.
    pub invitation_id: i64,
    /// [`ApprovalRole`] spelling.
    pub role: String,
    /// For facility approvals: which facility's admins decide.
    pub facility_id: Option<i64>,
    /// [`ApprovalState`] spelling.
    pub state: String,
    /// Who decided.
    pub decided_by: Option<i64>,
    /// Unix ms.
    pub decided_at: Option<i64>,
}

impl ApprovalRow {
    /// Parsed role.
    pub fn role(&self) -> Result<ApprovalRole, StoreError> {
        parse(&self.role, "invitation_approvals.role")
    }
    /// Parsed state.
    pub fn state(&self) -> Result<ApprovalState, StoreError> {
        parse(&self.state, "invitation_approvals.state")
    }
}

/// An application to join a community.
#[derive(Debug, Clone, Queryable)]
#[diesel(table_name = community_applications)]
pub struct ApplicationRow {
    /// Id.
    pub id: i64,
    /// The community.
    pub group_id: i64,
    /// The applicant.
    pub user_id: i64,
    /// [`ApplicationStatus`] spelling.
    pub status: String,
    /// Unix ms.
    pub created_at: i64,
    /// The moderator who decided.
    pub decided_by: Option<i64>,
    /// Unix ms.
    pub decided_at: Option<i64>,
}

impl ApplicationRow {
    /// Parsed status.
    pub fn status(&self) -> Result<ApplicationStatus, StoreError> {
        parse(&self.status, "community_applications.status")
    }
}
