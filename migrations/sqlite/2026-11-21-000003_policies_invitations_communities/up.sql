-- Facility policies, invitations with approvals, community applications, and
-- an append-only audit trail. Keep in lock step with the other backend's tree.

-- Facility policy (see kizuna-domain's policy module for the meaning).
ALTER TABLE facilities ADD COLUMN patient_group_creators TEXT NOT NULL DEFAULT 'staff';
ALTER TABLE facilities ADD COLUMN staff_join_other_facilities TEXT NOT NULL DEFAULT 'allowed';
ALTER TABLE facilities ADD COLUMN outside_invitations TEXT NOT NULL DEFAULT 'allowed';
ALTER TABLE facilities ADD COLUMN family_timeline BOOLEAN NOT NULL DEFAULT TRUE;
-- Notification window, minutes after midnight Japan time; both NULL: any time.
ALTER TABLE facilities ADD COLUMN notify_start_minute BIGINT;
ALTER TABLE facilities ADD COLUMN notify_end_minute BIGINT;

-- An invitation into a patient group: for an existing account
-- (invitee_user_id) or as a one-time code (code_hash, SHA-256 of the code)
-- for someone without an account yet.
CREATE TABLE invitations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BIGINT NOT NULL REFERENCES care_groups(id),
    scope TEXT NOT NULL,
    invitee_kind TEXT NOT NULL,
    invitee_user_id BIGINT REFERENCES users(id),
    code_hash TEXT UNIQUE,
    invited_by BIGINT NOT NULL REFERENCES users(id),
    status TEXT NOT NULL,
    accepted_at BIGINT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT NOT NULL,
    send_count BIGINT NOT NULL DEFAULT 1,
    expires_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX invitations_group ON invitations(group_id, status);
CREATE INDEX invitations_invitee ON invitations(invitee_user_id, status);
-- One pending invitation per person and group (codes nobody has redeemed yet
-- have no invitee and are not counted). An expired invitation still marked
-- 'pending' is set to 'expired' before another is created, bound or reopened.
CREATE UNIQUE INDEX invitations_one_pending ON invitations(group_id, invitee_user_id) WHERE status = 'pending' AND invitee_user_id IS NOT NULL;

-- The approvals an invitation waits for, one row per approver role.
CREATE TABLE invitation_approvals (
    invitation_id BIGINT NOT NULL REFERENCES invitations(id),
    role TEXT NOT NULL,
    facility_id BIGINT REFERENCES facilities(id),
    state TEXT NOT NULL,
    decided_by BIGINT REFERENCES users(id),
    decided_at BIGINT,
    PRIMARY KEY (invitation_id, role)
);
CREATE INDEX invitation_approvals_facility ON invitation_approvals(facility_id, state);

-- Applications to join a community; at most one pending per person.
CREATE TABLE community_applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BIGINT NOT NULL REFERENCES care_groups(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_by BIGINT REFERENCES users(id),
    decided_at BIGINT
);
CREATE INDEX community_applications_group ON community_applications(group_id, status);
CREATE UNIQUE INDEX community_applications_one_pending
    ON community_applications(group_id, user_id) WHERE status = 'pending';

-- The acting user's facility at the time, so a facility admin's query finds
-- what their staff did as well as what was done to their patients and staff.
ALTER TABLE audit_log ADD COLUMN actor_facility_id BIGINT;
CREATE INDEX audit_log_facility ON audit_log(facility_id, id);
CREATE INDEX audit_log_actor_facility ON audit_log(actor_facility_id, id);

-- The audit trail is append-only: the database itself refuses to change or
-- remove an entry (the hash chain detects what is done around it).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
