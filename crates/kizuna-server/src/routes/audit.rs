//! `/v1/admin/audit` (query and export the audit trail) and
//! `/v1/admin/patients/{id}/access` (who read a patient's timelines).
//!
//! JSON answers one page; JSON lines and CSV stream the whole filtered range
//! page by page. CSV follows RFC 4180 (every text cell quoted, `"` doubled),
//! defuses spreadsheet formulas (a cell starting with `=`, `+`, `-`, `@`, tab
//! or carriage return gets a leading `'`) and writes control characters as
//! `\u{..}` escapes, so nothing in an export can run in a spreadsheet or a
//! terminal.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Authenticated;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use kizuna_domain::protocol::ErrorCode;
use kizuna_domain::{FacilityId, PatientId};
use kizuna_service::Caller;
use kizuna_service::admin::{AuditFilter, AuditRow, MAX_AUDIT_PAGE as MAX_PAGE};
use serde::Deserialize;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/audit", web::get().to(query))
        .route("/admin/patients/{id}/access", web::get().to(patient_access));
}

/// Query parameters of `GET /v1/admin/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    facility_id: Option<i64>,
    patient_id: Option<i64>,
    actor_user_id: Option<i64>,
    subject_user_id: Option<i64>,
    action: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    after_id: Option<i64>,
    limit: Option<i64>,
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Jsonl,
    Csv,
}

fn invalid(msg: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, msg)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such item, or you may not see it")
}

impl AuditParams {
    fn parse(req: &HttpRequest) -> Result<(Option<FacilityId>, AuditFilter, Format), ApiError> {
        let p = web::Query::<AuditParams>::from_query(req.query_string())
            .map_err(|_| {
                invalid(
                    "query parameters: facility_id, patient_id, actor_user_id, subject_user_id, action, from, to, after_id, limit, format (ids and times are integers)",
                )
            })?
            .into_inner();
        let format = match p.format.as_deref() {
            None | Some("json") => Format::Json,
            Some("jsonl") => Format::Jsonl,
            Some("csv") => Format::Csv,
            Some(_) => return Err(invalid("format must be json, jsonl or csv")),
        };
        if let Some(l) = p.limit
            && !(1..=MAX_PAGE).contains(&l)
        {
            return Err(invalid("limit must be 1 to 1000"));
        }
        if let Some(a) = &p.action
            && (a.is_empty()
                || a.len() > 64
                || !a
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'))
        {
            return Err(invalid(
                "action must be like `timeline.read` (a-z, '.', '_')",
            ));
        }
        if let (Some(from), Some(to)) = (p.from, p.to)
            && from > to
        {
            return Err(invalid("from must not be after to"));
        }
        let facility = match p.facility_id {
            Some(f) if f <= 0 => return Err(not_found()),
            f => f.map(FacilityId),
        };
        let filter = AuditFilter {
            actor_user_id: p.actor_user_id,
            subject_user_id: p.subject_user_id,
            patient_id: p.patient_id,
            action: p.action,
            from_ms: p.from,
            to_ms: p.to,
            after_id: p.after_id,
            until_id: None,
            limit: p.limit,
        };
        Ok((facility, filter, format))
    }
}

async fn query(
    state: web::Data<AppState>,
    who: Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (facility, filter, format) = AuditParams::parse(&req)?;
    let caller = Caller::User(&who.0);
    let (content_type, word, file) = match format {
        Format::Json => {
            let page = state.service.audit_query(caller, facility, filter).await?;
            return Ok(HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(page));
        }
        Format::Jsonl => ("application/x-ndjson", "jsonl", "audit.jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv", "audit.csv"),
    };
    let export = state
        .service
        .audit_export(caller, facility, filter, word)
        .await?;
    // State: the export (`None` once it failed), whether nothing was sent yet.
    let body =
        futures_util::stream::unfold((Some(export), true), move |(export, first)| async move {
            let mut export = export?;
            match export.next_page().await {
                Ok(Some(page)) => {
                    let chunk = render(&page, format, first);
                    Some((Ok(Bytes::from(chunk)), (Some(export), false)))
                }
                // An empty range still gets its header line.
                Ok(None) if first && format == Format::Csv => {
                    Some((Ok(Bytes::from(csv_header())), (Some(export), false)))
                }
                Ok(None) => None,
                Err(e) => {
                    // The status is already sent: cut the body short, so the
                    // client sees an incomplete transfer, and log why.
                    tracing::error!(error = %e, "audit export failed part way");
                    let cut = std::io::Error::other("audit export failed part way");
                    Some((Err(cut), (None, false)))
                }
            }
        });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file}\""),
        ))
        .streaming(body))
}

fn render(page: &[AuditRow], format: Format, first: bool) -> String {
    let mut out = String::with_capacity(page.len() * 256);
    match format {
        Format::Csv => {
            if first {
                out.push_str(&csv_header());
            }
            for row in page {
                csv_row(&mut out, row);
            }
        }
        _ => {
            for row in page {
                // serde_json escapes control characters; a row always
                // serializes (plain integers and strings).
                match serde_json::to_string(row) {
                    Ok(line) => out.push_str(&line),
                    Err(e) => tracing::error!(error = %e, "audit row did not serialize"),
                }
                out.push('\n');
            }
        }
    }
    out
}

const COLUMNS: [&str; 16] = [
    "id",
    "at",
    "actor_user_id",
    "actor_facility_id",
    "action",
    "outcome",
    "facility_id",
    "patient_id",
    "group_id",
    "timeline_id",
    "subject_user_id",
    "detail",
    "remote_addr",
    "cert_serial",
    "prev_hash",
    "hash",
];

fn csv_header() -> String {
    let mut s = COLUMNS.join(",");
    s.push_str("\r\n");
    s
}

fn csv_row(out: &mut String, r: &AuditRow) {
    let int = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    let cells = [
        r.id.to_string(),
        r.at.to_string(),
        int(r.actor_user_id),
        int(r.actor_facility_id),
        csv_text(&r.action),
        csv_text(&r.outcome),
        int(r.facility_id),
        int(r.patient_id),
        int(r.group_id),
        int(r.timeline_id),
        int(r.subject_user_id),
        r.detail.as_deref().map(csv_text).unwrap_or_default(),
        r.remote_addr.as_deref().map(csv_text).unwrap_or_default(),
        r.cert_serial.as_deref().map(csv_text).unwrap_or_default(),
        csv_text(&r.prev_hash),
        csv_text(&r.hash),
    ];
    out.push_str(&cells.join(","));
    out.push_str("\r\n");
}

/// One text cell: control characters escaped, a formula defused, quoted.
fn csv_text(v: &str) -> String {
    let mut cell = String::with_capacity(v.len() + 3);
    cell.push('"');
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.push('\'');
    }
    for c in v.chars() {
        match c {
            '"' => cell.push_str("\"\""),
            c if c.is_control() => cell.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => cell.push(c),
        }
    }
    cell.push('"');
    cell
}

async fn patient_access(
    state: web::Data<AppState>,
    who: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(not_found)?;
    let view = state
        .service
        .patient_access(Caller::User(&who.0), PatientId(id))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(detail: &str) -> AuditRow {
        AuditRow {
            id: 7,
            at: 1_700_000_000_000,
            actor_user_id: Some(3),
            action: "auth.login".into(),
            outcome: "failed".into(),
            facility_id: None,
            patient_id: None,
            group_id: None,
            timeline_id: None,
            subject_user_id: None,
            detail: Some(detail.into()),
            remote_addr: Some("127.0.0.1".into()),
            cert_serial: None,
            prev_hash: "0".repeat(64),
            hash: "a".repeat(64),
            actor_facility_id: Some(1),
        }
    }

    #[test]
    fn csv_cells_are_quoted_escaped_and_defused() {
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        for lead in ["+1", "-1", "@SUM(A1)", "\tx"] {
            assert!(csv_text(lead).starts_with("\"'"), "{lead:?}");
        }
        assert_eq!(csv_text("a\nb\u{1b}[31m"), "\"a\\u{a}b\\u{1b}[31m\"");
    }

    #[test]
    fn a_hostile_detail_stays_in_one_csv_line_with_every_column() {
        let mut out = csv_header();
        csv_row(
            &mut out,
            &row("x\r\n2026-01-01 INFO fake line\",=1+1,\u{1b}[2J"),
        );
        let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(!out.contains('\u{1b}'));
        assert!(!out.contains('\n') || out.matches('\n').count() == 2);
    }

    #[test]
    fn json_lines_escape_control_characters() {
        let out = render(&[row("a\nb\u{1b}")], Format::Jsonl, true);
        assert_eq!(out.matches('\n').count(), 1);
        assert!(!out.contains('\u{1b}'));
    }
}
