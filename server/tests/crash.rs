//! Crash safety: the server under concurrent push load is killed with SIGKILL at random
//! moments, several rounds, then restarted. Every acknowledged event is in the log exactly
//! once, seqs are dense, the views equal a rebuild, and `server verify` passes.
//!
//! `CRASH_ROUNDS` (default 3; `make bench` runs 20) and `CRASH_SEED` (default fixed, printed;
//! `make bench` draws one) choose a run;
//! `TANDEM_SERVER_BIN` runs another build of the server (`make test` uses the release one).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_accounts::AccountStore as _;

use common::free_port;
use tandem_events::ids::WorkspaceId;
use tandem_events::testkit::Rng;

fn server_bin() -> String {
    std::env::var("TANDEM_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_server").into())
}

fn start(data: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(server_bin())
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env_remove("TANDEM_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_healthy(&mut child, port, 30);
    child
}

#[test]
fn killed_at_random_under_push_load_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed = common::seed_from_env("CRASH_SEED", 20_261_125);
    println!(
        "crash test: {rounds} rounds, seed {seed} (CRASH_SEED replays), server {}",
        server_bin()
    );
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    // The pushing account, owner of the default workspace (made as the command line would).
    server::admin::user_add(dir.path(), "tester", "tester's password").unwrap();
    let (_, token) = server::admin::token_create(dir.path(), "tester", "crash", None).unwrap();
    {
        let accounts = tandem_accounts::Accounts::open(dir.path().join("accounts.db")).unwrap();
        let user = accounts
            .user_by_name("tester")
            .unwrap()
            .unwrap()
            .user
            .user_id;
        accounts
            .create_workspace(
                &user,
                &WorkspaceId::DEFAULT.to_string(),
                "Default",
                false,
                0,
            )
            .unwrap();
    }
    let mut acked: Vec<String> = vec![];
    for round in 0..rounds {
        let port = free_port();
        let mut server = start(dir.path(), port);
        let dead = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(Mutex::new(round as u64 * 1_000_000));
        let pushers: Vec<_> = (0..4u128)
            .map(|d| {
                let (counter, dead) = (Arc::clone(&counter), Arc::clone(&dead));
                let token = token.clone();
                std::thread::spawn(move || {
                    common::push_lists(
                        port,
                        &token,
                        WorkspaceId::DEFAULT,
                        0x100 + d,
                        counter,
                        dead,
                        usize::MAX,
                    )
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100 + rng.below(600) as u64));
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        dead.store(true, Ordering::SeqCst);
        let mut this_round = 0;
        for p in pushers {
            let ids = p.join().unwrap();
            this_round += ids.len();
            acked.extend(ids);
        }
        println!("round {round}: {this_round} pushes acknowledged before the kill");
    }
    assert!(!acked.is_empty(), "the load ran");
    // Restart once more and stop cleanly: everything acknowledged is there, once.
    let port = free_port();
    let mut server = start(dir.path(), port);
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
    let log = tandem_store::EventLog::open_reader(dir.path().join("events.db")).unwrap();
    let checked = log.verify().expect("the log's invariants hold");
    let mut stored: std::collections::HashMap<String, u32> = Default::default();
    log.for_each(|e| {
        *stored.entry(e.event_id.to_string()).or_default() += 1;
        Ok(())
    })
    .unwrap();
    for id in &acked {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "acknowledged event {id} is stored once"
        );
    }
    assert_eq!(checked as usize, stored.len());
    // The views the server kept equal a rebuild from the log.
    let views = tandem_store::rusqlite::Connection::open(dir.path().join("views.db")).unwrap();
    let (fresh, _) = tandem_store::Views::with_connection(
        tandem_store::rusqlite::Connection::open_in_memory().unwrap(),
        &log,
        |_| {},
    )
    .unwrap();
    assert!(
        tandem_store::views::dump(&views).unwrap() == fresh.dump().unwrap(),
        "seed {seed}: the server's views differ from a rebuild"
    );
    let out = Command::new(server_bin())
        .args(["verify", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "{} acknowledged, {} stored, all present once",
        acked.len(),
        stored.len()
    );
}
