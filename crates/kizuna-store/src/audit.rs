//! The audit trail: append-only and hash-chained. Each entry's hash covers the
//! previous entry's hash and every field of the entry, so changing, removing
//! or reordering entries breaks the chain, which [`verify_chain`] detects.
//! Appends update the single `audit_head` row first, which serialises them on
//! both backends (SQLite's write lock, PostgreSQL's row lock).

use crate::db::{DbConn, now_ms};
use crate::error::StoreError;
use crate::models::{AuditRow, UserRow};
use crate::schema::{audit_head, audit_log, users};
use diesel::connection::TransactionManager;
use diesel::prelude::*;
use kizuna_domain::{FacilityId, PatientId};
use sha2::{Digest, Sha256};

/// What to record. Fields hold ids, codes and addresses only — never message
/// content or names.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Who acted (`None`: an unauthenticated attempt).
    pub actor_user_id: Option<i64>,
    /// What, as `area.verb` (e.g. `auth.login`, `timeline.read`).
    pub action: &'static str,
    /// `ok`, `denied` or `failed`.
    pub outcome: &'static str,
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
    /// Codes or ids (e.g. `seq=5`, `reason=bad_password`).
    pub detail: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
    /// Client certificate serial.
    pub cert_serial: Option<String>,
    /// The acting user's facility (filled in by the service from the actor).
    pub actor_facility_id: Option<i64>,
}

fn entry_hash(prev: &str, at: i64, e: &AuditEntry) -> String {
    entry_hash_with(prev, at, e, e.action, e.outcome)
}

/// Appends an entry to the chain. Inside a caller's transaction (a post and
/// its audit entry commit together) it runs in that transaction; otherwise in
/// its own.
pub fn append(conn: &mut DbConn, e: &AuditEntry) -> Result<AuditRow, StoreError> {
    let in_transaction =
        <DbConn as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()?
            .is_some();
    if in_transaction {
        // No savepoint: a failed append fails the caller's transaction anyway.
        append_here(conn, e)
    } else {
        conn.transaction(|conn| append_here(conn, e))
    }
}

fn append_here(conn: &mut DbConn, e: &AuditEntry) -> Result<AuditRow, StoreError> {
    // Lock the head (write first) and read it in the same statement.
    let prev: String = diesel::update(audit_head::table.find(1i64))
        .set(audit_head::last_hash.eq(audit_head::last_hash))
        .returning(audit_head::last_hash)
        .get_result(conn)?;
    let at = now_ms();
    let hash = entry_hash(&prev, at, e);
    let row: AuditRow = diesel::insert_into(audit_log::table)
        .values((
            audit_log::at.eq(at),
            audit_log::actor_user_id.eq(e.actor_user_id),
            audit_log::action.eq(e.action),
            audit_log::outcome.eq(e.outcome),
            audit_log::facility_id.eq(e.facility_id),
            audit_log::patient_id.eq(e.patient_id),
            audit_log::group_id.eq(e.group_id),
            audit_log::timeline_id.eq(e.timeline_id),
            audit_log::subject_user_id.eq(e.subject_user_id),
            audit_log::detail.eq(e.detail.as_deref()),
            audit_log::remote_addr.eq(e.remote_addr.as_deref()),
            audit_log::cert_serial.eq(e.cert_serial.as_deref()),
            audit_log::actor_facility_id.eq(e.actor_facility_id),
            audit_log::prev_hash.eq(&prev),
            audit_log::hash.eq(&hash),
        ))
        .returning(audit_log::all_columns)
        .get_result(conn)?;
    diesel::update(audit_head::table.find(1i64))
        .set(audit_head::last_hash.eq(&hash))
        .execute(conn)?;
    Ok(row)
}

/// Actions about anonymous consultations start with this. They never appear
/// in a facility's view of the trail (their actor would de-anonymise an
/// author); only the operator's service-wide view shows them.
pub const CONSULTATION_PREFIX: &str = "consultation.";

/// The most entries one query returns.
pub const MAX_PAGE: i64 = 1_000;

/// Filter for [`entries`] and [`facility_entries`]. Every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor.
    pub actor_user_id: Option<i64>,
    /// Only this user acted upon.
    pub subject_user_id: Option<i64>,
    /// Only this patient.
    pub patient_id: Option<i64>,
    /// Only this action.
    pub action: Option<String>,
    /// Entries at or after this time (Unix ms).
    pub from_ms: Option<i64>,
    /// Entries before this time (Unix ms).
    pub to_ms: Option<i64>,
    /// Entries with id above this.
    pub after_id: Option<i64>,
    /// Entries with id at most this (an export's fixed end).
    pub until_id: Option<i64>,
    /// At most this many (1 to [`MAX_PAGE`]; default [`MAX_PAGE`]).
    pub limit: Option<i64>,
}

/// Entries matching the filter, service-wide (the operator and the CLI),
/// oldest first.
pub fn entries(conn: &mut DbConn, f: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
    query(conn, None, f)
}

/// Entries about a facility (`facility_id`: its patients, its accounts) or by
/// one of its users (`actor_facility_id`), matching the filter, oldest first.
/// Consultation entries ([`CONSULTATION_PREFIX`]) are never included.
///
/// A refused attempt by one of its users on something of another facility
/// (outcome `denied`, `facility_id` not this one) is shown without the
/// target: the facility, patient, group, timeline and subject ids, id-valued
/// details and its hash are blanked (the caller was told `not_found`, so its
/// admins learn no more). `prev_hash` is always empty here: the entry before
/// may be another facility's, and a hash over mostly known fields could be
/// guessed back. Filtering on a patient or subject never finds such an entry.
pub fn facility_entries(
    conn: &mut DbConn,
    facility: FacilityId,
    f: &AuditFilter,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut rows = query(conn, Some(facility.get()), f)?;
    for row in &mut rows {
        row.prev_hash.clear();
        if hides_target(row, facility) {
            redact(row);
        }
    }
    Ok(rows)
}

/// Whether a facility's view hides the target of this entry: a refusal about
/// another facility's (or no facility's) group, patient, timeline or user.
fn hides_target(row: &AuditRow, facility: FacilityId) -> bool {
    row.outcome == DENIED && row.facility_id != Some(facility.get())
}

/// Blanks what a refused attempt was aimed at: the facility, patient, group,
/// timeline and subject ids, id-valued details (`invitation=12`, `seq=5`; the
/// codes stay) and the entry's hash (computed over those ids, so it would let
/// them be guessed back).
fn redact(row: &mut AuditRow) {
    row.facility_id = None;
    row.patient_id = None;
    row.group_id = None;
    row.timeline_id = None;
    row.subject_user_id = None;
    row.hash.clear();
    row.detail = row.detail.take().and_then(|d| {
        let kept: Vec<&str> = d
            .split(' ')
            .filter(|token| match token.split_once('=') {
                Some((_, v)) => v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()),
                None => true,
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join(" "))
    });
}

/// The outcome of a refused attempt.
const DENIED: &str = "denied";

fn query(
    conn: &mut DbConn,
    facility: Option<i64>,
    f: &AuditFilter,
) -> Result<Vec<AuditRow>, StoreError> {
    let mut q = audit_log::table.into_boxed();
    if let Some(fac) = facility {
        q = q
            .filter(
                audit_log::facility_id
                    .eq(fac)
                    .or(audit_log::actor_facility_id.eq(fac)),
            )
            .filter(audit_log::action.not_like(format!("{CONSULTATION_PREFIX}%")));
        // Filtering on a patient or a user must not find the entries whose
        // patient and user a facility's view hides (`hides_target`).
        if f.patient_id.is_some() || f.subject_user_id.is_some() {
            q = q.filter(
                audit_log::outcome
                    .ne(DENIED)
                    .nullable()
                    .or(audit_log::facility_id.eq(fac)),
            );
        }
    }
    if let Some(a) = f.actor_user_id {
        q = q.filter(audit_log::actor_user_id.eq(a));
    }
    if let Some(s) = f.subject_user_id {
        q = q.filter(audit_log::subject_user_id.eq(s));
    }
    if let Some(p) = f.patient_id {
        q = q.filter(audit_log::patient_id.eq(p));
    }
    if let Some(a) = &f.action {
        q = q.filter(audit_log::action.eq(a.clone()));
    }
    if let Some(from) = f.from_ms {
        q = q.filter(audit_log::at.ge(from));
    }
    if let Some(to) = f.to_ms {
        q = q.filter(audit_log::at.lt(to));
    }
    if let Some(after) = f.after_id {
        q = q.filter(audit_log::id.gt(after));
    }
    if let Some(until) = f.until_id {
        q = q.filter(audit_log::id.le(until));
    }
    Ok(q.order(audit_log::id.asc())
        .limit(f.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE))
        .load(conn)?)
}

/// One account's reads of one patient's timelines. `Debug` leaves out the
/// name.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct PatientAccess {
    /// The reader.
    pub user_id: i64,
    /// Their display name now.
    pub display_name: String,
    /// Their account kind (spelling of `UserKind`).
    pub kind: String,
    /// Their profession (spelling of `Profession`).
    pub profession: Option<String>,
    /// Their facility now.
    pub facility_id: Option<i64>,
    /// How many reads (subscriptions and history pages) were recorded.
    pub reads: i64,
    /// First recorded read (Unix ms).
    pub first_at: i64,
    /// Last recorded read (Unix ms).
    pub last_at: i64,
}

impl std::fmt::Debug for PatientAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientAccess")
            .field("user_id", &self.user_id)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

/// Reader, reads, first and last read.
type ReaderCount = (Option<i64>, i64, Option<i64>, Option<i64>);

/// Who read a patient's timelines (successful `timeline.read` entries), most
/// recent reader first.
pub fn patient_access(
    conn: &mut DbConn,
    patient: PatientId,
) -> Result<Vec<PatientAccess>, StoreError> {
    use diesel::dsl::{count_star, max, min};
    let counts: Vec<ReaderCount> = audit_log::table
        .filter(audit_log::patient_id.eq(patient.get()))
        .filter(audit_log::action.eq("timeline.read"))
        .filter(audit_log::outcome.eq("ok"))
        .filter(audit_log::actor_user_id.is_not_null())
        .group_by(audit_log::actor_user_id)
        .select((
            audit_log::actor_user_id,
            count_star(),
            min(audit_log::at),
            max(audit_log::at),
        ))
        .load(conn)?;
    let ids: Vec<i64> = counts.iter().filter_map(|c| c.0).collect();
    let people: std::collections::HashMap<i64, UserRow> = users::table
        .filter(users::id.eq_any(&ids))
        .load::<UserRow>(conn)?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut out: Vec<PatientAccess> = counts
        .into_iter()
        .filter_map(|(uid, reads, first, last)| {
            let u = people.get(&uid?)?;
            Some(PatientAccess {
                user_id: u.id,
                display_name: u.display_name.clone(),
                kind: u.kind.clone(),
                profession: u.profession.clone(),
                facility_id: u.facility_id,
                reads,
                first_at: first.unwrap_or_default(),
                last_at: last.unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| b.last_at.cmp(&a.last_at).then(a.user_id.cmp(&b.user_id)));
    Ok(out)
}

/// Where the chain broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {id}")]
pub struct ChainBroken {
    /// The first entry whose hash or link does not match.
    pub id: i64,
}

/// Recomputes the whole chain; returns how many entries were checked.
pub fn verify_chain(conn: &mut DbConn) -> Result<Result<usize, ChainBroken>, StoreError> {
    let mut prev = "0".repeat(64);
    let mut after = 0i64;
    let mut checked = 0usize;
    loop {
        let page: Vec<AuditRow> = audit_log::table
            .filter(audit_log::id.gt(after))
            .order(audit_log::id.asc())
            .limit(1_000)
            .load(conn)?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            let entry = AuditEntry {
                actor_user_id: row.actor_user_id,
                action: "",
                outcome: "",
                facility_id: row.facility_id,
                patient_id: row.patient_id,
                group_id: row.group_id,
                timeline_id: row.timeline_id,
                subject_user_id: row.subject_user_id,
                detail: row.detail.clone(),
                remote_addr: row.remote_addr.clone(),
                cert_serial: row.cert_serial.clone(),
                actor_facility_id: row.actor_facility_id,
            };
            let expected = entry_hash_with(&prev, row.at, &entry, &row.action, &row.outcome);
            if row.prev_hash != prev || row.hash != expected {
                return Ok(Err(ChainBroken { id: row.id }));
            }
            prev = row.hash.clone();
            checked += 1;
        }
        after = page.last().map(|r| r.id).unwrap_or(after);
    }
    let head: String = audit_head::table
        .find(1i64)
        .select(audit_head::last_hash)
        .get_result(conn)?;
    if head != prev {
        return Ok(Err(ChainBroken { id: after + 1 }));
    }
    Ok(Ok(checked))
}

fn entry_hash_with(prev: &str, at: i64, e: &AuditEntry, action: &str, outcome: &str) -> String {
    // `AuditEntry` holds `&'static str` for action/outcome while rows hold owned
    // strings, so they are passed separately.
    let mut h = Sha256::new();
    // Each field is tagged present/absent, so `None` and `Some("")` differ.
    let int = |v: Option<i64>| v.map(|x| format!("+{x}")).unwrap_or_else(|| "-".into());
    let text = |v: &Option<String>| {
        v.as_ref()
            .map(|x| format!("+{x}"))
            .unwrap_or_else(|| "-".into())
    };
    let mut fields = vec![
        prev.to_owned(),
        at.to_string(),
        int(e.actor_user_id),
        action.to_owned(),
        outcome.to_owned(),
        int(e.facility_id),
        int(e.patient_id),
        int(e.group_id),
        int(e.timeline_id),
        int(e.subject_user_id),
        text(&e.detail),
        text(&e.remote_addr),
        text(&e.cert_serial),
    ];
    // Added later: hashed only when present, so entries written before the
    // column existed keep their hashes.
    if let Some(f) = e.actor_facility_id {
        fields.push(format!("actor_facility=+{f}"));
    }
    for f in fields {
        // Length-prefixed so that field boundaries cannot be shifted.
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}
