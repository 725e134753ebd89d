//! Raw SQLite baselines for the benchmarks: the same rows Tandem stores, inserted with plain
//! rusqlite and none of Tandem's checks, so benchmarks can print "Tandem / raw" ratios
//! measured in the same run.

use rusqlite::{params, Connection};
use tandem_events::event::StoredEvent;

/// A table shaped like `events` (same columns, unique keys and indexes), without triggers.
pub fn raw_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE raw (event_id TEXT NOT NULL PRIMARY KEY, workspace_id TEXT NOT NULL, seq INTEGER NOT NULL, \
         aggregate_id TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL, \
         event_data TEXT NOT NULL, hlc_timestamp TEXT NOT NULL, device_id TEXT NOT NULL, created_at INTEGER NOT NULL, \
         UNIQUE (aggregate_id, version), UNIQUE (workspace_id, seq)); \
         CREATE INDEX raw_hlc ON raw (hlc_timestamp); CREATE INDEX raw_type ON raw (event_type);",
    )
}

/// Inserts `events` into `raw` in one transaction, numbering them from `first_seq + 1`.
pub fn raw_insert(
    conn: &mut Connection,
    events: &[StoredEvent],
    first_seq: usize,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO raw VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (i, e) in events.iter().enumerate() {
            stmt.execute(params![
                e.event_id.to_string(),
                e.workspace_id.to_string(),
                (first_seq + i + 1) as i64,
                e.aggregate_id.to_string(),
                e.version as i64,
                e.event_type,
                e.schema_version,
                e.event_data,
                e.hlc_timestamp.encode(),
                e.device_id.to_string(),
                e.created_at,
            ])?;
        }
    }
    tx.commit()
}
