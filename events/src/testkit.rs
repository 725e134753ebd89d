//! Deterministic generators for tests and benchmarks (feature `testkit`): a seeded simulation of
//! devices that issue real commands through [`crate::decide`] against their own, possibly stale,
//! views, with skewed clocks, and gossip events among themselves. It returns the union of all
//! events, the input of convergence, projection and store tests.

use std::collections::HashMap;

use crate::decide::{decide_list, decide_todo, ListCommand, TodoCommand, TodoEdit};
use crate::event::{Event, StoredEvent};
use crate::hlc::Clock;
use crate::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use crate::position;
use crate::state::Aggregate;

/// xorshift64*: a tiny deterministic PRNG (no dependency, same sequence on every platform).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    pub fn uuid(&mut self) -> uuid::Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

struct Device {
    id: DeviceId,
    clock: Clock,
    skew_ms: i64,
    known: Vec<StoredEvent>,
    known_ids: std::collections::HashSet<EventId>,
    state: HashMap<AggregateId, Aggregate>,
    versions: HashMap<AggregateId, u64>,
}

impl Device {
    fn learn(&mut self, event: &StoredEvent) {
        if !self.known_ids.insert(event.event_id) {
            return;
        }
        if let Ok(decoded) = event.decode() {
            self.clock.observe(&decoded.hlc);
            self.state
                .entry(event.aggregate_id)
                .or_default()
                .apply(&decoded);
        }
        let v = self.versions.entry(event.aggregate_id).or_default();
        *v = (*v).max(event.version);
        self.known.push(event.clone());
    }
}

/// Settings of a simulation.
#[derive(Debug, Clone, Copy)]
pub struct Simulation {
    pub seed: u64,
    pub devices: usize,
    pub steps: usize,
    /// Percent of steps that gossip instead of issuing a command.
    pub gossip_percent: u64,
}

/// Runs the simulation and returns every event made, in creation order.
pub fn simulate(sim: Simulation) -> Vec<StoredEvent> {
    let mut rng = Rng::new(sim.seed);
    let workspace = WorkspaceId::from_uuid(rng.uuid());
    let mut devices: Vec<Device> = (0..sim.devices.max(1))
        .map(|_| {
            let id = DeviceId::from_uuid(rng.uuid());
            Device {
                id,
                clock: Clock::new(id),
                skew_ms: rng.below(4_000) as i64 - 2_000,
                known: vec![],
                known_ids: Default::default(),
                state: HashMap::new(),
                versions: HashMap::new(),
            }
        })
        .collect();
    let mut all = Vec::new();
    let mut now: i64 = 1_750_000_000_000;
    let words = [
        "milk",
        "bread",
        "call mum",
        "taxes",
        "bike",
        "plants",
        "email",
        "😀 party",
    ];
    for _ in 0..sim.steps {
        now += rng.below(50) as i64;
        let d = rng.below(devices.len());
        if devices.len() > 1 && rng.chance(sim.gossip_percent) {
            let from = rng.below(devices.len());
            let events: Vec<StoredEvent> = devices[from].known.clone();
            for e in &events {
                devices[d].learn(e);
            }
            continue;
        }
        let dev = &mut devices[d];
        let lists: Vec<AggregateId> = dev
            .state
            .iter()
            .filter(|(_, a)| a.list.exists())
            .map(|(id, _)| *id)
            .collect();
        let todos: Vec<AggregateId> = dev
            .state
            .iter()
            .filter(|(_, a)| a.todo.created.is_some())
            .map(|(id, _)| *id)
            .collect();
        let mut lists = lists;
        lists.sort();
        let mut todos = todos;
        todos.sort();
        let (aggregate, decided) = if lists.is_empty() || rng.chance(3) {
            let id = AggregateId::from_uuid(rng.uuid());
            let name = words[rng.below(words.len())].to_string();
            (
                id,
                decide_list(id, &Aggregate::default().list, ListCommand::Create { name }),
            )
        } else if todos.is_empty() || rng.chance(20) {
            let id = AggregateId::from_uuid(rng.uuid());
            let list_id = lists[rng.below(lists.len())];
            let pos = position::between(None, None).unwrap_or_default();
            let list = dev.state.get(&list_id).map(|a| &a.list);
            let title = words[rng.below(words.len())].to_string();
            let due = rng
                .chance(30)
                .then(|| format!("2026-12-{:02}", 1 + rng.below(28)).parse().ok())
                .flatten();
            (
                id,
                decide_todo(
                    id,
                    &Aggregate::default().todo,
                    list,
                    TodoCommand::Create {
                        list_id,
                        title,
                        position: pos,
                        due_date: due,
                    },
                ),
            )
        } else if rng.chance(4) {
            // Now and then a deleted list comes back (a restore names the deletes seen).
            let mut gone: Vec<AggregateId> = dev
                .state
                .iter()
                .filter(|(_, a)| a.list.created.is_some() && a.list.deleted())
                .map(|(id, _)| *id)
                .collect();
            gone.sort();
            let restore = !gone.is_empty() && rng.chance(25);
            let id = if restore {
                gone[rng.below(gone.len())]
            } else {
                lists[rng.below(lists.len())]
            };
            let state = dev.state.get(&id).cloned().unwrap_or_default();
            let cmd = if restore {
                ListCommand::Restore
            } else if rng.chance(30) {
                ListCommand::Delete
            } else {
                ListCommand::Rename {
                    name: format!("{} {}", words[rng.below(words.len())], rng.below(100)),
                    resolving: rng.chance(50),
                    shown: None,
                }
            };
            (id, decide_list(id, &state.list, cmd))
        } else {
            let id = todos[rng.below(todos.len())];
            let state = dev.state.get(&id).cloned().unwrap_or_default();
            let edit = match rng.below(6) {
                0 => TodoEdit::Title(format!(
                    "{} {}",
                    words[rng.below(words.len())],
                    rng.below(1000)
                )),
                1 => TodoEdit::Notes(format!("note {}", rng.below(1000))),
                2 => TodoEdit::DueDate(
                    rng.chance(50)
                        .then(|| format!("2027-01-{:02}", 1 + rng.below(28)).parse().ok())
                        .flatten(),
                ),
                3 => TodoEdit::Completed(rng.chance(50)),
                4 => TodoEdit::Position(["1", "3", "V", "a", "k", "z"][rng.below(6)].to_string()),
                _ => TodoEdit::Title(words[rng.below(words.len())].to_string()),
            };
            let cmd = if state.todo.deleted() && rng.chance(40) {
                TodoCommand::Restore
            } else if rng.chance(5) {
                TodoCommand::Delete
            } else if rng.chance(8) {
                TodoCommand::MoveToList {
                    list_id: lists[rng.below(lists.len())],
                    position: ["2", "W", "m"][rng.below(3)].to_string(),
                    shown_list: None,
                    shown_position: None,
                    resolving: rng.chance(30),
                }
            } else {
                TodoCommand::Edit {
                    edit,
                    resolving: rng.chance(30),
                    shown: None,
                }
            };
            let list = match &cmd {
                TodoCommand::MoveToList { list_id, .. } => dev.state.get(list_id).map(|a| &a.list),
                _ => None,
            };
            (id, decide_todo(id, &state.todo, list, cmd))
        };
        let Ok(bodies) = decided else { continue };
        for body in bodies {
            let physical = (now + dev.skew_ms).max(0) as u64;
            let Ok(hlc) = dev.clock.tick(physical) else {
                continue;
            };
            let version = dev.versions.get(&aggregate).copied().unwrap_or(0) + 1;
            let event = Event {
                event_id: EventId::from_uuid(rng.uuid()),
                workspace_id: workspace,
                aggregate_id: aggregate,
                hlc,
                device_id: dev.id,
                version,
                created_at: now + dev.skew_ms,
                body,
            }
            .to_stored();
            dev.learn(&event);
            all.push(event);
        }
    }
    all
}

/// Gives events dense versions per aggregate in the order given, as a log accepting them in
/// that order would (a rebase changes nothing else).
pub fn renumber(events: &mut [StoredEvent]) {
    let mut versions: HashMap<AggregateId, u64> = HashMap::new();
    for e in events {
        let v = versions.entry(e.aggregate_id).or_default();
        *v += 1;
        e.version = *v;
    }
}

/// `TodoCreated` events rewritten in their v1 shape (when they have no due date), as an old
/// client would have stored them.
pub fn as_v1(events: &[StoredEvent]) -> Vec<StoredEvent> {
    events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if e.event_type == "TodoCreated" {
                if let Ok(mut data) = serde_json::from_str::<serde_json::Value>(&e.event_data) {
                    if data.get("due_date").is_some_and(serde_json::Value::is_null) {
                        if let Some(obj) = data.as_object_mut() {
                            obj.remove("due_date");
                        }
                        e.schema_version = 1;
                        e.event_data = data.to_string();
                    }
                }
            }
            e
        })
        .collect()
}

/// A fast, conflict-free workload for benchmarks: one device makes `lists` lists, `todos`
/// todos spread over them, then `edits` edits spread over the todos (titles, completion,
/// notes), each based on the value it replaces. Versions are dense.
pub fn workload(seed: u64, lists: usize, todos: usize, edits: usize) -> Vec<StoredEvent> {
    use crate::domain::{
        Bases, DomainEvent, ListCreated, TodoCreated, TodoNotesEdited, TodoTitleEdited,
    };
    let mut rng = Rng::new(seed);
    let device = DeviceId::from_uuid(rng.uuid());
    let workspace = WorkspaceId::from_uuid(rng.uuid());
    let mut clock = Clock::new(device);
    let mut now = 1_750_000_000_000u64;
    let mut out = Vec::with_capacity(lists + todos + edits);
    let mut versions: HashMap<AggregateId, u64> = HashMap::new();
    let mut last: HashMap<AggregateId, crate::hlc::Stamp> = HashMap::new();
    let mut push =
        |rng: &mut Rng, aggregate: AggregateId, body: DomainEvent, out: &mut Vec<StoredEvent>| {
            now += 1;
            let hlc = clock.tick(now).unwrap_or_else(|_| clock.last());
            let v = versions.entry(aggregate).or_default();
            *v += 1;
            last.insert(aggregate, hlc);
            out.push(
                Event {
                    event_id: EventId::from_uuid(rng.uuid()),
                    workspace_id: workspace,
                    aggregate_id: aggregate,
                    hlc,
                    device_id: device,
                    version: *v,
                    created_at: now as i64,
                    body,
                }
                .to_stored(),
            );
            hlc
        };
    let list_ids: Vec<AggregateId> = (0..lists.max(1))
        .map(|_| AggregateId::from_uuid(rng.uuid()))
        .collect();
    for (i, id) in list_ids.iter().enumerate() {
        push(
            &mut rng,
            *id,
            DomainEvent::ListCreated(ListCreated {
                name: format!("List {i}"),
            }),
            &mut out,
        );
    }
    let mut todo_stamps: Vec<(AggregateId, crate::hlc::Stamp)> = Vec::with_capacity(todos);
    for i in 0..todos {
        let id = AggregateId::from_uuid(rng.uuid());
        let body = DomainEvent::TodoCreated(TodoCreated {
            list_id: list_ids[i % list_ids.len()],
            title: format!("To-do number {i}"),
            position: format!("V{i:x}").trim_end_matches('0').to_string(),
            due_date: None,
        });
        let s = push(&mut rng, id, body, &mut out);
        todo_stamps.push((id, s));
    }
    // Per todo and field, the stamp of the current value.
    let mut title_base: HashMap<AggregateId, crate::hlc::Stamp> =
        todo_stamps.iter().copied().collect();
    let mut other_base = title_base.clone();
    let mut notes_base = title_base.clone();
    for i in 0..edits {
        if todo_stamps.is_empty() {
            break;
        }
        let (id, _) = todo_stamps[rng.below(todo_stamps.len())];
        match i % 3 {
            0 => {
                let bases = vec![title_base[&id]];
                let s = push(
                    &mut rng,
                    id,
                    DomainEvent::TodoTitleEdited(TodoTitleEdited {
                        title: format!("Edited {i}"),
                        bases,
                    }),
                    &mut out,
                );
                title_base.insert(id, s);
            }
            1 => {
                let bases = vec![other_base[&id]];
                let s = push(
                    &mut rng,
                    id,
                    DomainEvent::TodoCompleted(Bases { bases }),
                    &mut out,
                );
                other_base.insert(id, s);
            }
            _ => {
                let bases = vec![notes_base[&id]];
                let s = push(
                    &mut rng,
                    id,
                    DomainEvent::TodoNotesEdited(TodoNotesEdited {
                        notes: format!("Note {i}"),
                        bases,
                    }),
                    &mut out,
                );
                notes_base.insert(id, s);
            }
        }
    }
    out
}
