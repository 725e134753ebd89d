//! The accounts on a real PostgreSQL pass the same suite as accounts.db
//! ([`tandem_accounts::suite`]), and account writes from many connections at once keep the
//! rules that depend on the data (one first account, an invite's uses).

mod common;

use std::sync::Arc;

use tandem_accounts::{suite, AccountStore, AccountsError, NewAccount};
use tandem_pg::PgAccounts;

/// The runtime the store's queries run on; the test itself runs on its own thread, as the
/// server's blocking threads do.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fresh(rt: &tokio::runtime::Runtime) -> PgAccounts {
    let db = rt.block_on(common::fresh());
    PgAccounts::new(db, rt.handle().clone())
}

#[test]
fn postgres_accounts_pass_the_suite() {
    let rt = runtime();
    suite::run(|| ((), Box::new(fresh(&rt)) as Box<dyn AccountStore>));
}

/// Eight first sign-ups at once, from eight threads: exactly one is the first account (and
/// the admin); an invite of one use taken by five people at once is used once.
#[test]
fn racing_writes_keep_the_rules_that_depend_on_the_data() {
    let rt = runtime();
    let accounts = Arc::new(fresh(&rt));
    let results: Vec<_> = (0..8)
        .map(|i| {
            let accounts = Arc::clone(&accounts);
            std::thread::spawn(move || {
                let (id, name, ws) = (format!("u{i}"), format!("user{i}"), format!("w{i}"));
                accounts.create_account(&NewAccount {
                    user_id: &id,
                    username: &name,
                    password_hash: "$argon2id$dummy",
                    must_be_first: true,
                    invite: None,
                    workspace_id: &ws,
                    workspace_name: "Personal",
                    adopt: &[],
                    now: 1_000,
                })
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    let first: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(first.len(), 1, "{results:?}");
    assert!(first[0].is_admin);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, AccountsError::NotFirst)));
    let owner = first[0].user.user_id.clone();
    let ws = format!("w{}", &owner[1..]);
    let digest = tandem_accounts::secret::digest("one-use");
    accounts
        .create_invite(
            &owner,
            &ws,
            "inv",
            &digest,
            tandem_accounts::Role::Member,
            1,
            10_000,
            1_000,
        )
        .unwrap();
    let joins: Vec<_> = (0..5)
        .map(|i| {
            let accounts = Arc::clone(&accounts);
            let digest = digest.clone();
            std::thread::spawn(move || {
                let (id, name, own) = (format!("j{i}"), format!("joiner{i}"), format!("jw{i}"));
                accounts
                    .create_account(&NewAccount {
                        user_id: &id,
                        username: &name,
                        password_hash: "$argon2id$dummy",
                        must_be_first: false,
                        invite: None,
                        workspace_id: &own,
                        workspace_name: "Personal",
                        adopt: &[],
                        now: 1_000,
                    })
                    .unwrap();
                accounts.accept_invite(&id, &digest, 2_000)
            })
        })
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(joins.iter().filter(|j| j.is_ok()).count(), 1, "{joins:?}");
    assert!(
        joins
            .iter()
            .filter_map(|j| j.as_ref().err())
            .all(|e| matches!(e, AccountsError::InviteGone)),
        "{joins:?}"
    );
}
