// The official SQLite WASM build (npm @sqlite.org/sqlite-wasm, a benchmark-only dependency)
// in a Dedicated Worker with the `opfs-sahpool` VFS: the baselines of `make bench-browser`.
// Served by the benchmark under /bench-sqlite/ (never part of Tandem's site).
//
//   {cmd: "single", n}  one-row durable transactions into an event-log-shaped table, with
//                       Tandem's old settings (PERSIST) and the WAL ones; answers the
//                       latencies in ms per mode.
//   {cmd: "bulk", workspace, limit}
//                       the fresh device's job done raw: the workspace's pull pages fetched
//                       as Tandem's worker fetches them and inserted with plain INSERTs, one
//                       transaction per page, WAL + exclusive locking + synchronous FULL;
//                       answers {events, ms, insertMs}.
import sqlite3InitModule from "/bench-sqlite/index.mjs";

// The handler is set before anything is awaited: a message that arrives while the module
// loads would otherwise find no listener and be lost.
let pool;
const started = (async () => {
  const sqlite3 = await sqlite3InitModule();
  pool = await sqlite3.installOpfsSAHPoolVfs({
    name: "bench-official",
    directory: "/bench-official",
    clearOnInit: true,
    initialCapacity: 12,
  });
})();

const TABLE = `CREATE TABLE IF NOT EXISTS raw (event_id TEXT NOT NULL PRIMARY KEY, workspace_id TEXT NOT NULL,
  seq INTEGER NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL,
  schema_version INTEGER NOT NULL, event_data TEXT NOT NULL, hlc_timestamp TEXT NOT NULL,
  device_id TEXT NOT NULL, created_at INTEGER NOT NULL,
  UNIQUE (aggregate_id, version), UNIQUE (workspace_id, seq));
  CREATE INDEX IF NOT EXISTS raw_hlc ON raw (hlc_timestamp);
  CREATE INDEX IF NOT EXISTS raw_type ON raw (event_type);`;
const INSERT = "INSERT INTO raw VALUES (?,?,?,?,?,?,?,?,?,?,?)";

function open(name, journal) {
  const db = new pool.OpfsSAHPoolDb(`/${name}`);
  db.exec(`PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=${journal}; PRAGMA synchronous=FULL;`);
  db.exec(TABLE);
  return db;
}

function single(n) {
  const out = {};
  for (const journal of ["PERSIST", "WAL"]) {
    const db = open(`single-${journal}.db`, journal);
    const stmt = db.prepare(INSERT);
    const times = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      db.exec("BEGIN");
      stmt.bind([crypto.randomUUID(), "w", i + 1, crypto.randomUUID(), 1, "TodoCreated", 1,
        `{"title":"to-do ${i}","list_id":"l","position":"a0"}`, `0000000000${i}`, "d", Date.now()]);
      stmt.step();
      stmt.reset();
      db.exec("COMMIT");
      times.push(performance.now() - t0);
    }
    stmt.finalize();
    db.close();
    out[journal] = times;
  }
  return out;
}

async function bulk(workspace, limit) {
  const db = open("bulk.db", "WAL");
  const stmt = db.prepare(INSERT);
  const device = crypto.randomUUID();
  let cursor = 0;
  let events = 0;
  let insertMs = 0;
  const t0 = performance.now();
  for (;;) {
    const response = await fetch("/api/sync/pull", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ device_id: device, workspace_id: workspace, cursor, limit }),
    });
    if (!response.ok) throw new Error(`pull: ${response.status} ${await response.text()}`);
    const page = await response.json();
    const t1 = performance.now();
    db.exec("BEGIN");
    for (const e of page.events) {
      stmt.bind([e.event_id, e.workspace_id, e.seq, e.aggregate_id, e.version, e.event_type,
        e.schema_version, JSON.stringify(e.event_data), e.hlc_timestamp, e.device_id, e.created_at]);
      stmt.step();
      stmt.reset();
    }
    db.exec("COMMIT");
    insertMs += performance.now() - t1;
    events += page.events.length;
    if (page.events.length) cursor = page.events[page.events.length - 1].seq;
    if (!page.has_more) break;
  }
  const ms = performance.now() - t0;
  stmt.finalize();
  db.close();
  return { events, ms, insertMs };
}

self.onmessage = async (message) => {
  try {
    await started;
    const { cmd } = message.data;
    if (cmd === "single") self.postMessage(single(message.data.n));
    else if (cmd === "bulk") self.postMessage(await bulk(message.data.workspace, message.data.limit));
    else throw new Error(`unknown command ${cmd}`);
  } catch (e) {
    self.postMessage({ error: String(e?.stack ?? e) });
  }
};
