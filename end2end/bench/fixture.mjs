// Writes the browser benchmarks' workspace as JSON lines in `server export`'s shape, for
// `server import`: 100,000 events in the default workspace — "Inbox" with 20 to-dos first (the
// page `/` opens), "Big" with 10,000 to-dos (the toggle benchmark), 29 lists of 1,000 to-dos,
// and title edits and completions on them (each naming the value it replaces in `bases`).
// Deterministic: the same file every run.
import * as fs from "node:fs";

export const WORKSPACE = "7a4de000-0000-4000-8000-000000000001";
const DEVICE = "0000000b-0000-4000-8000-00000000d0e1";
export const TOTAL = 100_000;

const uuid = (kind, n) => `${kind.toString(16).padStart(8, "0")}-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Ascending position keys: three base-62 digits, then V (never ending in 0). */
const position = (i) => B62[Math.floor(i / 3844) % 62] + B62[Math.floor(i / 62) % 62] + B62[i % 62] + "V";

export function write(path) {
  const out = fs.openSync(path, "w");
  let seq = 0;
  let ms = 1_790_000_000_000;
  const versions = new Map();
  const emit = (aggregate, type, schema, data) => {
    seq += 1;
    ms += 1;
    const version = (versions.get(aggregate) ?? 0) + 1;
    versions.set(aggregate, version);
    const hlc = `${String(ms).padStart(15, "0")}-0000000000-${DEVICE}`;
    fs.writeSync(out, JSON.stringify({
      seq, event_id: uuid(0xe, seq), workspace_id: WORKSPACE, aggregate_id: aggregate, event_type: type,
      schema_version: schema, event_data: data, hlc_timestamp: hlc, device_id: DEVICE, version, created_at: ms,
    }) + "\n");
    return hlc;
  };
  const todos = [];
  let nextTodo = 0;
  const list = (n, name, count) => {
    const id = uuid(0x1, n);
    emit(id, "ListCreated", 1, { name });
    for (let i = 0; i < count; i++) {
      const todo = uuid(0x2, ++nextTodo);
      const stamp = emit(todo, "TodoCreated", 2, { list_id: id, title: `${name} to-do ${i + 1}`, position: position(i), due_date: null });
      todos.push({ id: todo, title: stamp, completed: stamp, name, i });
    }
    return id;
  };
  list(1, "Inbox", 20);
  list(2, "Big", 10_000);
  for (let l = 0; l < 29; l++) list(3 + l, `Project ${l + 1}`, 1_000);
  // Edits on every list but Inbox, spread deterministically.
  let k = 0;
  while (seq < TOTAL) {
    const t = todos[20 + ((k * 7_919) % (todos.length - 20))];
    k += 1;
    if (k % 5 === 0) {
      t.completed = emit(t.id, "TodoCompleted", 1, { bases: [t.completed] });
    } else {
      t.title = emit(t.id, "TodoTitleEdited", 1, { title: `${t.name} to-do ${t.i + 1} (edit ${k})`, bases: [t.title] });
    }
  }
  fs.closeSync(out);
  return seq;
}
