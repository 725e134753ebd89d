//! The maintenance subcommands: `rebuild`, `inspect`, `verify`, `export`, `import`. They open
//! the data dir's databases directly (stop the server first for `import` and `rebuild`; SQLite
//! serialises writers anyway, waiting up to 5 s).

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tandem_events::ids::DeviceId;
use tandem_store::wire::{from_wire, logged};
use tandem_store::{EventLog, Views};

use crate::databases::now_ms;

fn open_log(data_dir: &Path) -> anyhow::Result<EventLog> {
    if !data_dir.join("events.db").exists() {
        bail!("{} has no events.db", data_dir.display());
    }
    Ok(EventLog::open(
        data_dir.join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(now_ms),
    )?)
}

/// Drops the views and replays the log into them.
pub fn rebuild(data_dir: &Path) -> anyhow::Result<()> {
    let log = open_log(data_dir)?;
    let (mut views, rebuilt) = Views::open_current(data_dir.join("views.db"), &log, progress)?;
    if !rebuilt {
        views.rebuild(&log, progress)?;
    }
    eprintln!("rebuilt views.db from {} events", log.len()?);
    Ok(())
}

fn progress(p: tandem_store::Progress) {
    eprintln!("replayed {}/{} events", p.done, p.total);
}

/// Checks the log's invariants; the error names the first violation.
pub fn verify(data_dir: &Path) -> anyhow::Result<u64> {
    let log = open_log(data_dir)?;
    let checked = log
        .verify()
        .map_err(|v| anyhow::anyhow!("invariant violated: {v}"))?;
    Ok(checked)
}

/// What `inspect` shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub workspace: Option<String>,
    pub aggregate: Option<String>,
    pub event_type: Option<String>,
    pub device: Option<String>,
    pub after: u64,
    pub limit: usize,
    pub tail: bool,
}

/// Prints matching events as JSON lines (the wire form with `seq`), in seq order.
pub fn inspect(data_dir: &Path, filter: &Filter, out: &mut impl Write) -> anyhow::Result<usize> {
    let log = open_log(data_dir)?;
    let mut sql = String::from(
        "SELECT seq, event_id FROM events WHERE seq > ?1 \
         AND (?2 IS NULL OR workspace_id = ?2) AND (?3 IS NULL OR aggregate_id = ?3) \
         AND (?4 IS NULL OR event_type = ?4) AND (?5 IS NULL OR device_id = ?5)",
    );
    sql.push_str(if filter.tail {
        " ORDER BY workspace_id DESC, seq DESC LIMIT ?6"
    } else {
        " ORDER BY workspace_id, seq LIMIT ?6"
    });
    let mut stmt = log.connection().prepare(&sql)?;
    let mut ids: Vec<(i64, String)> = stmt
        .query_map(
            tandem_store::rusqlite::params![
                filter.after as i64,
                filter.workspace,
                filter.aggregate,
                filter.event_type,
                filter.device,
                filter.limit as i64
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    if filter.tail {
        ids.reverse();
    }
    for (seq, id) in &ids {
        let (_, event) = log
            .find(id.parse()?)?
            .with_context(|| format!("event {id} vanished while reading"))?;
        writeln!(
            out,
            "{}",
            serde_json::to_string(&logged(*seq as u64, &event))?
        )?;
    }
    Ok(ids.len())
}

/// Writes every event as JSON lines, by workspace then seq.
pub fn export(data_dir: &Path, out: &mut impl Write) -> anyhow::Result<u64> {
    let log = open_log(data_dir)?;
    let mut written = 0;
    for (workspace, head) in log.heads()? {
        let mut after = 0;
        while after < head {
            let page = log.events_after(workspace, after, 5_000)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (seq, event) in &page {
                writeln!(out, "{}", serde_json::to_string(&logged(*seq, event))?)?;
                written += 1;
            }
        }
    }
    out.flush()?;
    Ok(written)
}

/// Reads JSON lines (as `export` writes them) and appends the events not already stored;
/// idempotent, all or nothing. Returns `(imported, skipped)`.
pub fn import(data_dir: &Path, input: impl BufRead) -> anyhow::Result<(usize, usize)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut log = EventLog::open(
        data_dir.join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(now_ms),
    )?;
    let mut events = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let logged: tandem_protocol::sync::LoggedEvent = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not an exported event", n + 1))?;
        let event =
            from_wire(&logged.event).with_context(|| format!("line {}: invalid event", n + 1))?;
        event
            .decode()
            .with_context(|| format!("line {}: event {} does not decode", n + 1, event.event_id))?;
        events.push((event.workspace_id, logged.seq, event));
    }
    // Per workspace in seq order, so versions continue as they did at the source.
    events.sort_by_key(|(workspace, seq, _)| (*workspace, *seq));
    let events: Vec<_> = events.into_iter().map(|(_, _, e)| e).collect();
    let counts = log.import(&events)?;
    let (mut views, _) = Views::open_current(data_dir.join("views.db"), &log, progress)?;
    views.catch_up(&log, 1_000)?;
    Ok(counts)
}
