//! The inspector's reads (the seed notes' "inspect, query and manage the local databases"):
//! events of the log, outbox and set-aside tables with filters and pages, and a read-only SQL
//! console with a bounded page of rows and an instruction budget.

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use tandem_protocol::data::{EventTable, InspectedEvent, QueryPage};

/// Why the inspector could not answer; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("the console only reads: this statement would write")]
    Writes,
    #[error("the console only reads: this statement would write, change a setting, open a transaction or attach a database ({0})")]
    NotAuthorized(String),
    #[error("the query ran too long and was interrupted (over {budget} steps); narrow it down")]
    Interrupted { budget: u64 },
    #[error("the statement is {chars} characters; at most {max} are accepted")]
    TooLong { chars: usize, max: usize },
    #[error("empty statement")]
    Empty,
    #[error(
        "the statement makes a value too big for the console (over {max} bytes); narrow it down"
    )]
    TooBig { max: i32 },
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
}

/// Rows in one console page.
pub const PAGE_ROWS: usize = 100;
/// Events in one inspector page at most.
pub const MAX_EVENTS: u64 = 200;
/// SQLite virtual-machine steps a console statement may take (about a second or two of work
/// on a phone) before it is interrupted.
pub const QUERY_BUDGET: u64 = 50_000_000;
/// The longest statement accepted.
pub const MAX_SQL_CHARS: usize = 10_000;
/// Progress-handler period, in VM steps.
const STEP: u64 = 10_000;
/// The greatest string or blob a console statement may make (SQLite's `SQLITE_LIMIT_LENGTH`
/// while it runs): `printf('%.*c', 1e9, 'x')` or `zeroblob(1e9)` take few steps but would take
/// the worker's memory.
pub const MAX_VALUE_BYTES: i32 = 1_000_000;
/// Columns a console statement may return.
const MAX_COLUMNS: i32 = 200;
/// The text of one console page at most: past it the page ends early (and says more follow).
pub const MAX_PAGE_CHARS: usize = 1_000_000;

/// Runs one read-only statement on `conn` and returns the rows after `offset` (a page of
/// [`PAGE_ROWS`]). The connection is read-only while it runs (`query_only`) and the statement
/// itself must not write (`sqlite3_stmt_readonly`); past `budget` steps it is interrupted.
pub fn query(
    conn: &mut Connection,
    sql: &str,
    offset: u64,
    budget: u64,
) -> Result<QueryPage, InspectError> {
    let chars = sql.chars().count();
    if chars > MAX_SQL_CHARS {
        return Err(InspectError::TooLong {
            chars,
            max: MAX_SQL_CHARS,
        });
    }
    if sql.trim().is_empty() {
        return Err(InspectError::Empty);
    }
    let mut steps = 0u64;
    conn.progress_handler(
        STEP as i32,
        Some(move || {
            steps += STEP;
            steps > budget
        }),
    )?;
    let length = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)?;
    let columns = conn.set_limit(Limit::SQLITE_LIMIT_COLUMN, MAX_COLUMNS)?;
    conn.pragma_update(None, "query_only", true)?;
    // Only reading is authorized, checked as the statement is prepared (so a PRAGMA setter,
    // a BEGIN, an ATTACH or a clock-ticking hlc_now() never runs): query_only alone lets
    // transactions, attachments and settings through.
    conn.authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Pragma {
            pragma_value: None, ..
        } => Authorization::Allow,
        AuthAction::Function { function_name }
            if !function_name.eq_ignore_ascii_case("hlc_now") =>
        {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }))?;
    let result = run(conn, sql, offset, budget);
    // Whatever happened, the connection is as it was: unbounded, writable, authorizing all,
    // outside any transaction. Each step is tried even when another fails.
    let resets = [
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>),
        if conn.is_autocommit() {
            Ok(())
        } else {
            conn.execute_batch("ROLLBACK")
        },
        conn.pragma_update(None, "query_only", false),
        conn.progress_handler(0, None::<fn() -> bool>),
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, length).map(drop),
        conn.set_limit(Limit::SQLITE_LIMIT_COLUMN, columns)
            .map(drop),
    ];
    let page = result?;
    for reset in resets {
        reset?;
    }
    Ok(page)
}

/// The longest text shown of one value.
const MAX_CELL_CHARS: usize = 4_000;

fn run(conn: &Connection, sql: &str, offset: u64, budget: u64) -> Result<QueryPage, InspectError> {
    let interrupted = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => InspectError::Interrupted { budget },
        Some(rusqlite::ErrorCode::TooBig) => InspectError::TooBig {
            max: MAX_VALUE_BYTES,
        },
        Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) => {
            InspectError::NotAuthorized(e.to_string())
        }
        // A denied function is reported as a plain error naming the authorizer.
        _ if e.to_string().contains("not authorized") => InspectError::NotAuthorized(e.to_string()),
        _ => InspectError::Sql(e),
    };
    let mut stmt = conn.prepare(sql).map_err(interrupted)?;
    if !stmt.readonly() {
        return Err(InspectError::Writes);
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = stmt.query([]).map_err(interrupted)?;
    let mut out = Vec::new();
    let mut seen = 0u64;
    let mut more = false;
    let mut chars = 0usize;
    while let Some(row) = rows.next().map_err(interrupted)? {
        seen += 1;
        if seen <= offset {
            continue;
        }
        if out.len() == PAGE_ROWS || chars >= MAX_PAGE_CHARS {
            more = true;
            break;
        }
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(t) => {
                    let text = String::from_utf8_lossy(t);
                    if text.chars().count() > MAX_CELL_CHARS {
                        let cut: String = text.chars().take(MAX_CELL_CHARS).collect();
                        format!("{cut}…")
                    } else {
                        text.into_owned()
                    }
                }
                ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
            });
        }
        chars += values.iter().map(String::len).sum::<usize>();
        out.push(values);
    }
    Ok(QueryPage {
        columns,
        rows: out,
        more,
    })
}

/// What the inspector's event list is narrowed to (exact values).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub item: Option<String>,
    pub device: Option<String>,
}

/// Events of `table` in events.db, newest stamp first, `limit` (at most [`MAX_EVENTS`]) after
/// `offset`; `true` when more follow.
pub fn events(
    conn: &Connection,
    table: EventTable,
    filter: &EventFilter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<InspectedEvent>, bool), InspectError> {
    let (name, seq, reason) = match table {
        EventTable::Log => ("events", "seq", "NULL"),
        EventTable::Outbox => ("outbox", "NULL", "NULL"),
        EventTable::SetAside => ("set_aside", "NULL", "code || ': ' || reason"),
    };
    let limit = limit.clamp(1, MAX_EVENTS);
    let sql = format!(
        "SELECT {seq}, event_id, workspace_id, aggregate_id, event_type, schema_version, version, \
                hlc_timestamp, device_id, created_at, event_data, {reason} \
           FROM {name} \
          WHERE (?1 IS NULL OR event_type = ?1) AND (?2 IS NULL OR aggregate_id = ?2) \
            AND (?3 IS NULL OR device_id = ?3) \
          ORDER BY hlc_timestamp DESC, event_id DESC LIMIT ?4 OFFSET ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut events = stmt
        .query_map(
            rusqlite::params![
                filter.event_type,
                filter.item,
                filter.device,
                (limit + 1) as i64,
                offset.min(i64::MAX as u64) as i64
            ],
            |r| {
                Ok(InspectedEvent {
                    seq: r.get::<_, Option<i64>>(0)?.map(|s| s.max(0) as u64),
                    event_id: r.get(1)?,
                    workspace_id: r.get(2)?,
                    aggregate_id: r.get(3)?,
                    event_type: r.get(4)?,
                    schema_version: r.get(5)?,
                    version: r.get::<_, i64>(6)?.max(0) as u64,
                    hlc: r.get(7)?,
                    device_id: r.get(8)?,
                    created_at: r.get(9)?,
                    data: r.get(10)?,
                    reason: r.get(11)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let more = events.len() as u64 > limit;
    events.truncate(limit as usize);
    Ok((events, more))
}

/// A count from a table of `conn`.
pub fn count(conn: &Connection, table: &str) -> Result<u64, InspectError> {
    let n: Option<i64> = conn
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .optional()?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_statement_is_bounded_in_memory_and_the_connection_is_put_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        // Few steps, but a gigabyte each: refused as too big, not allocated.
        for sql in [
            "SELECT printf('%.*c', 1000000000, 'x')",
            "SELECT zeroblob(1000000000)",
            "WITH RECURSIVE r(n, s) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, s || s FROM r WHERE n < 40) SELECT length(s) FROM r",
        ] {
            let error = query(&mut conn, sql, 0, QUERY_BUDGET).unwrap_err();
            assert!(error.to_string().contains("too big"), "{sql}: {error}");
        }
        // A page of wide rows ends early, past its text bound, and says more follow.
        let wide = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100) \
                    SELECT printf('%.*c', 3999, 'x') AS a, printf('%.*c', 3999, 'y') AS b, \
                    printf('%.*c', 3999, 'z') AS c FROM r";
        let page = query(&mut conn, wide, 0, QUERY_BUDGET).unwrap();
        assert!(page.more);
        assert!(page.rows.len() < PAGE_ROWS, "{} rows", page.rows.len());
        let chars: usize = page.rows.iter().flatten().map(String::len).sum();
        assert!(chars < MAX_PAGE_CHARS + 3 * 4_000, "{chars}");
        // Afterwards the connection makes large values again (its own writes need them).
        let len: i64 = conn
            .query_row("SELECT length(zeroblob(5000000))", [], |r| r.get(0))
            .unwrap();
        assert_eq!(len, 5_000_000);
    }
}
