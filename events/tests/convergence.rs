//! DESIGN.md rules 19 and 20 on the pure fold: the same set of events, in any order and with
//! duplicates, gives identical views and conflicts; upcast v1 events give what v2 ones give;
//! nothing typed is lost; equal competing values are no conflict.

use proptest::prelude::*;
use tandem_events::event::StoredEvent;
use tandem_events::state::{AllRows, Model};
use tandem_events::testkit::{as_v1, simulate, Rng, Simulation};

fn fold(events: &[StoredEvent]) -> AllRows {
    let mut model = Model::default();
    for e in events {
        model.apply(e, &e.decode().expect("simulated events decode"));
    }
    model.rows()
}

fn sim(seed: u64, devices: usize, steps: usize) -> Vec<StoredEvent> {
    simulate(Simulation {
        seed,
        devices,
        steps,
        gossip_percent: 25,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_permutation_with_duplicates_yields_identical_views(seed in any::<u64>(), shuffle in any::<u64>(), devices in 1usize..5) {
        let events = sim(seed, devices, 150);
        let reference = fold(&events);
        let mut rng = Rng::new(shuffle);
        let mut shuffled: Vec<StoredEvent> = events.clone();
        let dups: Vec<StoredEvent> = events.iter().filter(|_| rng.chance(20)).cloned().collect();
        shuffled.extend(dups);
        rng.shuffle(&mut shuffled);
        let other = fold(&shuffled);
        prop_assert_eq!(&reference.conflicts, &other.conflicts, "seed {}", seed);
        prop_assert_eq!(reference, other, "seed {}", seed);
    }

    #[test]
    fn no_listed_conflict_repeats_the_shown_value(seed in any::<u64>()) {
        let rows = fold(&sim(seed, 4, 200));
        for c in &rows.conflicts {
            let Some(todo) = rows.todos.iter().find(|t| t.todo_id == c.aggregate_id) else { continue };
            let shown = match c.field {
                "title" => serde_json::Value::String(todo.title.clone()).to_string(),
                "notes" => serde_json::Value::String(todo.notes.clone()).to_string(),
                "completed" => todo.completed.to_string(),
                _ => continue,
            };
            prop_assert_ne!(&c.value, &shown, "seed {}: {:?}", seed, c);
        }
    }

    #[test]
    fn upcast_v1_then_apply_equals_apply_v2(seed in any::<u64>()) {
        let events = sim(seed, 3, 120);
        let old = as_v1(&events);
        prop_assert!(old.iter().zip(&events).all(|(o, n)| o.event_type != "TodoCreated" || o.schema_version <= n.schema_version));
        prop_assert_eq!(fold(&old), fold(&events));
    }

    #[test]
    fn every_typed_value_is_shown_superseded_or_in_history(seed in any::<u64>()) {
        let events = sim(seed, 4, 200);
        let rows = fold(&events);
        // Every event is in its item's history.
        prop_assert_eq!(rows.history.len(), events.len());
        // Every live item's field value is either its winner or listed as a conflict, unless an
        // edit named it in its bases (a user replaced it knowingly).
        let named: std::collections::HashSet<String> = events.iter()
            .flat_map(|e| serde_json::from_str::<serde_json::Value>(&e.event_data).ok())
            .flat_map(|d| d.get("bases").and_then(|b| b.as_array()).cloned().unwrap_or_default())
            .filter_map(|b| b.as_str().map(str::to_string))
            .collect();
        for e in events.iter().filter(|e| e.event_type == "TodoTitleEdited") {
            let Some(todo) = rows.todos.iter().find(|t| t.todo_id == e.aggregate_id) else { continue };
            if todo.deleted { continue; }
            let stamp = e.hlc_timestamp;
            let shown = todo.title_hlc == stamp;
            let conflict = rows.conflicts.iter().any(|c| c.field == "title" && c.hlc == stamp);
            // A competing value equal to the one shown is no conflict for the user: it is
            // shown all the same.
            let data: serde_json::Value = serde_json::from_str(&e.event_data).unwrap_or_default();
            let equal = data["title"].as_str() == Some(todo.title.as_str());
            prop_assert!(shown || conflict || equal || named.contains(&stamp.encode()), "seed {seed}: title edit {stamp} lost");
        }
    }
}

/// Rule 19's deletion rule, read straight off the events: an item is deleted while some
/// delete of it is not named in the bases of a restore of it.
fn deleted_by_the_rule(events: &[StoredEvent], item: &str, kind: &str) -> bool {
    let stamps_of = |suffix: &str| -> Vec<&StoredEvent> {
        events
            .iter()
            .filter(|e| {
                e.aggregate_id.to_string() == item && e.event_type == format!("{kind}{suffix}")
            })
            .collect()
    };
    let named: std::collections::HashSet<String> = stamps_of("Restored")
        .iter()
        .flat_map(|e| serde_json::from_str::<serde_json::Value>(&e.event_data).ok())
        .flat_map(|d| d["bases"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b.as_str().map(str::to_string))
        .collect();
    stamps_of("Deleted")
        .iter()
        .any(|d| !named.contains(&d.hlc_timestamp.encode()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Deletes and restores are a function of the event set: any order, with duplicates, gives
    /// what the rule says, for every list and todo.
    #[test]
    fn deletes_and_restores_follow_the_rule_in_any_order(seed in any::<u64>(), shuffle in any::<u64>()) {
        let events = sim(seed, 3, 250);
        let mut rng = Rng::new(shuffle);
        let mut shuffled = events.clone();
        shuffled.extend(events.iter().filter(|_| rng.chance(25)).cloned().collect::<Vec<_>>());
        rng.shuffle(&mut shuffled);
        let rows = fold(&shuffled);
        for todo in &rows.todos {
            let expected = deleted_by_the_rule(&events, &todo.todo_id.to_string(), "Todo");
            prop_assert_eq!(todo.deleted, expected, "seed {}: todo {}", seed, todo.todo_id);
        }
        for list in &rows.lists {
            let expected = deleted_by_the_rule(&events, &list.list_id.to_string(), "List");
            prop_assert_eq!(list.deleted, expected, "seed {}: list {}", seed, list.list_id);
        }
    }
}

#[test]
fn simulations_make_conflicts_deletions_and_restores_to_test() {
    // Guard against a generator that stopped producing the interesting cases.
    let mut conflicts = 0;
    let mut deleted = 0;
    let mut restored = 0;
    let mut deleted_again = 0;
    for seed in 0..20 {
        let events = sim(seed, 3, 200);
        let rows = fold(&events);
        conflicts += rows.conflicts.len();
        deleted += rows.todos.iter().filter(|t| t.deleted).count();
        for todo in &rows.todos {
            let id = todo.todo_id;
            let restores = events
                .iter()
                .filter(|e| e.aggregate_id == id && e.event_type == "TodoRestored")
                .count();
            if restores > 0 {
                restored += 1;
                // Deleted although restored: a delete the restore did not see (concurrent).
                deleted_again += usize::from(todo.deleted);
            }
        }
    }
    assert!(conflicts > 10, "only {conflicts} conflicts");
    assert!(deleted > 3, "only {deleted} deleted todos");
    assert!(restored > 3, "only {restored} restored todos");
    assert!(
        deleted_again > 0,
        "no restore lost to a delete it did not see"
    );
}
