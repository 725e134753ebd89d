//! Undo across devices (DESIGN.md rule 19) on seeded simulations of several devices: whatever
//! the interleaving of other devices' events, an undo names only the undone event's stamp, so
//! every other device's change that stood before the undo still stands after it (its value is
//! still the field's value or a conflict, a delete of theirs still deletes); and when nobody
//! else touched the field, the undo brings back the value the undone edit replaced.

use std::collections::HashMap;

use proptest::prelude::*;
use tandem_events::event::Event;
use tandem_events::hlc::Stamp;
use tandem_events::ids::{AggregateId, DeviceId, EventId};
use tandem_events::merge::Field;
use tandem_events::state::Aggregate;
use tandem_events::testkit::{simulate, Simulation};
use tandem_events::undo::compensate;

fn fold(events: &[Event]) -> Aggregate {
    let mut a = Aggregate::default();
    for e in events {
        a.apply(e);
    }
    a
}

/// The edits of a field that stand (the value and the conflicts), as (stamp, device).
fn standing<V: PartialEq>(f: &Field<V>) -> Vec<(Stamp, DeviceId)> {
    f.winner()
        .into_iter()
        .chain(f.conflicts())
        .map(|e| (e.stamp, e.device_id))
        .collect()
}

fn fields(a: &Aggregate) -> Vec<(&'static str, Vec<(Stamp, DeviceId)>)> {
    let t = &a.todo;
    vec![
        ("name", standing(&a.list.name)),
        ("title", standing(&t.title)),
        ("notes", standing(&t.notes)),
        ("due_date", standing(&t.due_date)),
        ("completed", standing(&t.completed)),
        ("position", standing(&t.position)),
        ("list", standing(&t.list)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn an_undo_never_reverts_another_devices_change(seed in any::<u64>(), devices in 2usize..5) {
        let stored = simulate(Simulation { seed, devices, steps: 160, gossip_percent: 25 });
        let events: Vec<Event> = stored.iter().map(|e| e.decode().expect("decodes")).collect();
        let mut by_aggregate: HashMap<AggregateId, Vec<Event>> = HashMap::new();
        for e in &events {
            by_aggregate.entry(e.aggregate_id).or_default().push(e.clone());
        }
        let me = events[0].device_id;
        let later = events.iter().map(|e| e.hlc).max().expect("events");
        let (mut undone, mut refused) = (0, 0);
        for (n, e) in events.iter().enumerate().filter(|(_, e)| e.device_id == me) {
            let history = &by_aggregate[&e.aggregate_id];
            let Ok(undo) = compensate(history, e) else {
                refused += 1;
                continue;
            };
            undone += 1;
            let stamp = Stamp { ms: later.ms + 1 + n as u64, counter: 0, node: me };
            let mut after = history.clone();
            for body in &undo {
                let text = body.to_data();
                prop_assert!(
                    !text.contains("\"bases\"") || text.contains(&e.hlc.encode()),
                    "seed {seed}: an undo names something else than the undone event: {text}"
                );
                after.push(Event {
                    event_id: EventId::from_uuid(uuid::Uuid::from_u128(u128::MAX - n as u128)),
                    hlc: stamp,
                    body: body.clone(),
                    ..e.clone()
                });
            }
            let (before, now) = (fold(history), fold(&after));
            // Every other device's standing edit still stands.
            for ((field, was), (_, is)) in fields(&before).into_iter().zip(fields(&now)) {
                for (s, d) in was.iter().filter(|(_, d)| *d != me) {
                    prop_assert!(is.contains(&(*s, *d)), "seed {seed}: {field} edit {s} of another device reverted by undoing {:?}", e.body);
                }
            }
            // Another device's live delete still deletes.
            let others_delete = |a: &Aggregate| a.todo.deletion.live().chain(a.list.deletion.live()).any(|(_, d)| d != me);
            if others_delete(&before) {
                prop_assert!(others_delete(&now), "seed {seed}: undo restored another device's delete");
            }
        }
        // The simulation makes both kinds (the test can fail both ways).
        prop_assert!(undone + refused > 0, "seed {seed}: device 0 made nothing");
    }
}

#[test]
fn simulations_make_undos_that_succeed_and_undos_that_are_refused() {
    let (mut ok, mut refused) = (0, 0);
    for seed in 0..20 {
        let stored = simulate(Simulation {
            seed,
            devices: 3,
            steps: 160,
            gossip_percent: 25,
        });
        let events: Vec<Event> = stored
            .iter()
            .map(|e| e.decode().expect("decodes"))
            .collect();
        let me = events[0].device_id;
        for e in events.iter().filter(|e| e.device_id == me) {
            let history: Vec<Event> = events
                .iter()
                .filter(|x| x.aggregate_id == e.aggregate_id)
                .cloned()
                .collect();
            match compensate(&history, e) {
                Ok(_) => ok += 1,
                Err(_) => refused += 1,
            }
        }
    }
    assert!(ok > 50 && refused > 50, "ok {ok}, refused {refused}");
}
