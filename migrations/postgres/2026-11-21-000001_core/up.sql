-- Core schema (postgres). Keep in lock step with the other backend's tree.
CREATE TABLE facilities (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    profession TEXT,
    facility_id BIGINT REFERENCES facilities(id),
    facility_role TEXT,
    status TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX users_facility ON users(facility_id);

CREATE TABLE patients (
    id BIGSERIAL PRIMARY KEY,
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    display_name TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id),
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX patients_facility ON patients(facility_id);

CREATE TABLE care_groups (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_facility_id BIGINT REFERENCES facilities(id),
    patient_id BIGINT UNIQUE REFERENCES patients(id),
    created_by BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);

CREATE TABLE timelines (
    id BIGSERIAL PRIMARY KEY,
    group_id BIGINT NOT NULL REFERENCES care_groups(id),
    kind TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    UNIQUE (group_id, kind)
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES care_groups(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    visibility TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    timeline_id BIGINT NOT NULL REFERENCES timelines(id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    author_id BIGINT NOT NULL REFERENCES users(id),
    body TEXT,
    target_seq BIGINT,
    client_msg_id TEXT,
    created_at BIGINT NOT NULL,
    edited_at BIGINT,
    deleted_at BIGINT,
    UNIQUE (timeline_id, seq),
    UNIQUE (author_id, client_msg_id)
);

-- Earlier bodies of edited or deleted posts. Kept for the medical record;
-- never sent to clients.
CREATE TABLE event_revisions (
    id BIGSERIAL PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES events(id),
    body TEXT NOT NULL,
    replaced_at BIGINT NOT NULL,
    replaced_by_seq BIGINT NOT NULL
);
CREATE INDEX event_revisions_event ON event_revisions(event_id);

CREATE TABLE acks (
    timeline_id BIGINT NOT NULL REFERENCES timelines(id),
    target_seq BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    acked_at BIGINT NOT NULL,
    PRIMARY KEY (timeline_id, target_seq, user_id)
);

CREATE TABLE read_markers (
    user_id BIGINT NOT NULL REFERENCES users(id),
    timeline_id BIGINT NOT NULL REFERENCES timelines(id),
    read_seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, timeline_id)
);

-- One row per device login. The refresh token rotates inside it; presenting
-- the previous token again (reuse) revokes the whole session.
CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    refresh_hash TEXT NOT NULL UNIQUE,
    previous_refresh_hash TEXT,
    cert_thumbprint TEXT,
    created_at BIGINT NOT NULL,
    refreshed_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_previous ON sessions(previous_refresh_hash);

-- Append-only audit trail, hash-chained: hash = SHA-256(prev_hash || entry).
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_user_id BIGINT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    facility_id BIGINT,
    patient_id BIGINT,
    group_id BIGINT,
    timeline_id BIGINT,
    subject_user_id BIGINT,
    detail TEXT,
    remote_addr TEXT,
    cert_serial TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_patient ON audit_log(patient_id);
CREATE INDEX audit_log_actor ON audit_log(actor_user_id);

-- The head of the audit chain; updating it first serialises appends.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    last_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, last_hash) VALUES (1, '0000000000000000000000000000000000000000000000000000000000000000');
