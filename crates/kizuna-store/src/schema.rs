//! Diesel table definitions, written to match `migrations/` (both backends).
//! A test (`schema_matches_migrations`) checks every column exists.

diesel::table! {
    facilities (id) {
        id -> BigInt,
        name -> Text,
        created_at -> BigInt,
        require_client_cert -> Bool,
        ca_revoked_at -> Nullable<BigInt>,
        patient_group_creators -> Text,
        staff_join_other_facilities -> Text,
        outside_invitations -> Text,
        family_timeline -> Bool,
        notify_start_minute -> Nullable<BigInt>,
        notify_end_minute -> Nullable<BigInt>,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        login -> Text,
        display_name -> Text,
        kind -> Text,
        profession -> Nullable<Text>,
        facility_id -> Nullable<BigInt>,
        facility_role -> Nullable<Text>,
        status -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    patients (id) {
        id -> BigInt,
        facility_id -> BigInt,
        display_name -> Text,
        user_id -> Nullable<BigInt>,
        created_by -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    care_groups (id) {
        id -> BigInt,
        kind -> Text,
        name -> Text,
        owner_facility_id -> Nullable<BigInt>,
        patient_id -> Nullable<BigInt>,
        created_by -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    timelines (id) {
        id -> BigInt,
        group_id -> BigInt,
        kind -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        visibility -> Text,
        joined_at -> BigInt,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        timeline_id -> BigInt,
        seq -> BigInt,
        kind -> Text,
        author_id -> BigInt,
        body -> Nullable<Text>,
        target_seq -> Nullable<BigInt>,
        client_msg_id -> Nullable<Text>,
        created_at -> BigInt,
        edited_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    event_revisions (id) {
        id -> BigInt,
        event_id -> BigInt,
        body -> Text,
        replaced_at -> BigInt,
        replaced_by_seq -> BigInt,
    }
}

diesel::table! {
    acks (timeline_id, target_seq, user_id) {
        timeline_id -> BigInt,
        target_seq -> BigInt,
        user_id -> BigInt,
        acked_at -> BigInt,
    }
}

diesel::table! {
    read_markers (user_id, timeline_id) {
        user_id -> BigInt,
        timeline_id -> BigInt,
        read_seq -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        refresh_hash -> Text,
        previous_refresh_hash -> Nullable<Text>,
        cert_thumbprint -> Nullable<Text>,
        created_at -> BigInt,
        refreshed_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoke_reason -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor_user_id -> Nullable<BigInt>,
        action -> Text,
        outcome -> Text,
        facility_id -> Nullable<BigInt>,
        patient_id -> Nullable<BigInt>,
        group_id -> Nullable<BigInt>,
        timeline_id -> Nullable<BigInt>,
        subject_user_id -> Nullable<BigInt>,
        detail -> Nullable<Text>,
        remote_addr -> Nullable<Text>,
        cert_serial -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        actor_facility_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_head (id) {
        id -> BigInt,
        last_hash -> Text,
    }
}

diesel::table! {
    client_certificates (id) {
        id -> BigInt,
        serial -> Text,
        user_id -> BigInt,
        facility_id -> BigInt,
        thumbprint -> Text,
        device_label -> Text,
        method -> Text,
        not_before -> BigInt,
        not_after -> BigInt,
        status -> Text,
        issued_by -> Nullable<BigInt>,
        issued_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoke_reason -> Nullable<Text>,
    }
}

diesel::table! {
    crl_numbers (issuer) {
        issuer -> Text,
        last_number -> BigInt,
    }
}

diesel::table! {
    invitations (id) {
        id -> BigInt,
        group_id -> BigInt,
        scope -> Text,
        invitee_kind -> Text,
        invitee_user_id -> Nullable<BigInt>,
        code_hash -> Nullable<Text>,
        invited_by -> BigInt,
        status -> Text,
        accepted_at -> Nullable<BigInt>,
        created_at -> BigInt,
        sent_at -> BigInt,
        send_count -> BigInt,
        expires_at -> BigInt,
        closed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    invitation_approvals (invitation_id, role) {
        invitation_id -> BigInt,
        role -> Text,
        facility_id -> Nullable<BigInt>,
        state -> Text,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    community_applications (id) {
        id -> BigInt,
        group_id -> BigInt,
        user_id -> BigInt,
        status -> Text,
        created_at -> BigInt,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(users -> facilities (facility_id));
diesel::joinable!(care_groups -> facilities (owner_facility_id));
diesel::joinable!(invitations -> care_groups (group_id));
diesel::joinable!(invitation_approvals -> invitations (invitation_id));
diesel::joinable!(community_applications -> care_groups (group_id));
diesel::joinable!(timelines -> care_groups (group_id));
diesel::joinable!(group_members -> care_groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(events -> users (author_id));
diesel::joinable!(events -> timelines (timeline_id));
diesel::joinable!(acks -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    invitations,
    invitation_approvals,
    community_applications,
    facilities,
    users,
    patients,
    care_groups,
    timelines,
    group_members,
    events,
    event_revisions,
    acks,
    read_markers,
    sessions,
    audit_log,
    audit_head,
    client_certificates,
    crl_numbers,
);
