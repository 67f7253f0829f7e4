//! Records of issued client certificates, and CRL numbering. The CA itself
//! (keys, signing) lives in `kizuna-ca`; this is what the service remembers.

use crate::db::{DbConn, now_ms};
use crate::error::StoreError;
use crate::models::CertificateRow;
use crate::schema::{client_certificates, crl_numbers, facilities};
use diesel::prelude::*;
use kizuna_domain::{FacilityId, UserId};

/// Status of an active certificate.
pub const ACTIVE: &str = "active";
/// Status of a revoked certificate.
pub const REVOKED: &str = "revoked";

/// A certificate to record.
#[derive(Debug, Clone)]
pub struct NewCertificate<'a> {
    /// Serial, lowercase hex.
    pub serial: &'a str,
    /// Owner.
    pub user_id: UserId,
    /// Issuing facility.
    pub facility_id: FacilityId,
    /// RFC 8705 thumbprint.
    pub thumbprint: &'a str,
    /// Device label.
    pub device_label: &'a str,
    /// `csr`, `pkcs12` or `renewal`.
    pub method: &'a str,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Issuer (None: CLI or self-renewal).
    pub issued_by: Option<UserId>,
}

/// Records an issued certificate.
pub fn record(conn: &mut DbConn, c: &NewCertificate<'_>) -> Result<CertificateRow, StoreError> {
    Ok(diesel::insert_into(client_certificates::table)
        .values((
            client_certificates::serial.eq(c.serial),
            client_certificates::user_id.eq(c.user_id.get()),
            client_certificates::facility_id.eq(c.facility_id.get()),
            client_certificates::thumbprint.eq(c.thumbprint),
            client_certificates::device_label.eq(c.device_label),
            client_certificates::method.eq(c.method),
            client_certificates::not_before.eq(c.not_before),
            client_certificates::not_after.eq(c.not_after),
            client_certificates::status.eq(ACTIVE),
            client_certificates::issued_by.eq(c.issued_by.map(UserId::get)),
            client_certificates::issued_at.eq(now_ms()),
        ))
        .returning(client_certificates::all_columns)
        .get_result(conn)?)
}

/// A certificate by serial.
pub fn by_serial(conn: &mut DbConn, serial: &str) -> Result<Option<CertificateRow>, StoreError> {
    Ok(client_certificates::table
        .filter(client_certificates::serial.eq(serial))
        .get_result(conn)
        .optional()?)
}

/// A certificate by id.
pub fn by_id(conn: &mut DbConn, id: i64) -> Result<CertificateRow, StoreError> {
    Ok(client_certificates::table.find(id).get_result(conn)?)
}

/// A user's certificates, newest first.
pub fn of_user(conn: &mut DbConn, user: UserId) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(client_certificates::table
        .filter(client_certificates::user_id.eq(user.get()))
        .order(client_certificates::id.desc())
        .load(conn)?)
}

/// Every certificate a facility's CA issued.
pub fn of_facility(
    conn: &mut DbConn,
    facility: FacilityId,
) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(client_certificates::table
        .filter(client_certificates::facility_id.eq(facility.get()))
        .order(client_certificates::id)
        .load(conn)?)
}

/// Revokes a certificate; returns it, or `None` when it was already revoked.
pub fn revoke(
    conn: &mut DbConn,
    id: i64,
    reason: &str,
) -> Result<Option<CertificateRow>, StoreError> {
    Ok(diesel::update(
        client_certificates::table
            .find(id)
            .filter(client_certificates::status.eq(ACTIVE)),
    )
    .set((
        client_certificates::status.eq(REVOKED),
        client_certificates::revoked_at.eq(Some(now_ms())),
        client_certificates::revoke_reason.eq(Some(reason)),
    ))
    .returning(client_certificates::all_columns)
    .get_result(conn)
    .optional()?)
}

/// Revokes every active certificate of a user; returns them.
pub fn revoke_all_of_user(
    conn: &mut DbConn,
    user: UserId,
    reason: &str,
) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(diesel::update(
        client_certificates::table
            .filter(client_certificates::user_id.eq(user.get()))
            .filter(client_certificates::status.eq(ACTIVE)),
    )
    .set((
        client_certificates::status.eq(REVOKED),
        client_certificates::revoked_at.eq(Some(now_ms())),
        client_certificates::revoke_reason.eq(Some(reason)),
    ))
    .returning(client_certificates::all_columns)
    .get_results(conn)?)
}

/// Revoked certificates of a facility that have not expired yet (what its CRL
/// must list).
pub fn revoked_unexpired(
    conn: &mut DbConn,
    facility: FacilityId,
    now_secs: i64,
) -> Result<Vec<CertificateRow>, StoreError> {
    Ok(client_certificates::table
        .filter(client_certificates::facility_id.eq(facility.get()))
        .filter(client_certificates::status.eq(REVOKED))
        .filter(client_certificates::not_after.gt(now_secs))
        .order(client_certificates::id)
        .load(conn)?)
}

/// Facilities that have issued at least one certificate.
pub fn issuing_facilities(conn: &mut DbConn) -> Result<Vec<FacilityId>, StoreError> {
    let ids: Vec<i64> = client_certificates::table
        .select(client_certificates::facility_id)
        .distinct()
        .order(client_certificates::facility_id)
        .load(conn)?;
    Ok(ids.into_iter().map(FacilityId).collect())
}

/// The next CRL number for an issuer (1, 2, 3, …).
pub fn next_crl_number(conn: &mut DbConn, issuer: &str) -> Result<u64, StoreError> {
    conn.transaction(|conn| {
        let updated: Option<i64> = diesel::update(crl_numbers::table.find(issuer))
            .set(crl_numbers::last_number.eq(crl_numbers::last_number + 1))
            .returning(crl_numbers::last_number)
            .get_result(conn)
            .optional()?;
        let n = match updated {
            Some(n) => n,
            None => {
                diesel::insert_into(crl_numbers::table)
                    .values((
                        crl_numbers::issuer.eq(issuer),
                        crl_numbers::last_number.eq(1i64),
                    ))
                    .execute(conn)?;
                1
            }
        };
        Ok(u64::try_from(n).unwrap_or(1))
    })
}

/// Marks a facility's CA revoked (idempotent); returns whether it changed.
pub fn revoke_facility_ca(conn: &mut DbConn, facility: FacilityId) -> Result<bool, StoreError> {
    let n = diesel::update(
        facilities::table
            .find(facility.get())
            .filter(facilities::ca_revoked_at.is_null()),
    )
    .set(facilities::ca_revoked_at.eq(Some(now_ms())))
    .execute(conn)?;
    Ok(n > 0)
}

/// Facilities whose CA is revoked, with when (Unix ms).
pub fn revoked_facility_cas(conn: &mut DbConn) -> Result<Vec<(FacilityId, i64)>, StoreError> {
    let rows: Vec<(i64, Option<i64>)> = facilities::table
        .filter(facilities::ca_revoked_at.is_not_null())
        .select((facilities::id, facilities::ca_revoked_at))
        .order(facilities::id)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (FacilityId(id), at)))
        .collect())
}

/// What the TLS trust depends on: the newest revocation (Unix ms) and the
/// number of facilities that issue certificates (a new facility CA needs a CRL
/// before its certificates can be verified). Nodes poll it.
pub fn trust_state(conn: &mut DbConn) -> Result<(i64, i64, usize), StoreError> {
    // Counts, not timestamps: revocation times come from each node's clock.
    let revoked: i64 = client_certificates::table
        .filter(client_certificates::status.eq(REVOKED))
        .count()
        .get_result(conn)?;
    let cas: i64 = facilities::table
        .filter(facilities::ca_revoked_at.is_not_null())
        .count()
        .get_result(conn)?;
    Ok((revoked, cas, issuing_facilities(conn)?.len()))
}

/// Serials that must not be used: revoked certificates and every certificate
/// of a facility whose CA is revoked.
pub fn untrusted_serials(
    conn: &mut DbConn,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut out: std::collections::HashSet<String> = client_certificates::table
        .filter(client_certificates::status.eq(REVOKED))
        .select(client_certificates::serial)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    for (facility, _) in revoked_facility_cas(conn)? {
        out.extend(of_facility(conn, facility)?.into_iter().map(|r| r.serial));
    }
    Ok(out)
}
