//! The accounts' rules (CONTRACT.md "Accounts, workspaces, access"), as cases any
//! [`AccountStore`] must pass: accounts, sessions, tokens, workspaces, members, invites,
//! device bindings. The SQLite store runs them (accounts/tests/accounts.rs) and so does
//! PostgreSQL's (pg/tests/accounts.rs), each case on a new, empty store.

use crate::secret::digest;
use crate::{AccountStore, AccountsError, Credential, InviteCheck, NewAccount, NewSession, Role};

/// One case: what it checks, and the check.
pub type Case = (&'static str, fn(&dyn AccountStore));

/// Every case, by name.
pub const CASES: &[Case] = &[
    (
        "the_first_account_is_admin_and_adopts_the_logs_workspaces_later_ones_do_not",
        the_first_account_is_admin_and_adopts_the_logs_workspaces_later_ones_do_not,
    ),
    (
        "usernames_are_unique_without_regard_to_case_and_a_failed_sign_up_writes_nothing",
        usernames_are_unique_without_regard_to_case_and_a_failed_sign_up_writes_nothing,
    ),
    (
        "sessions_last_thirty_days_from_last_use_and_end_on_sign_out_disable_and_reset",
        sessions_last_thirty_days_from_last_use_and_end_on_sign_out_disable_and_reset,
    ),
    (
        "sessions_per_account_are_bounded",
        sessions_per_account_are_bounded,
    ),
    (
        "tokens_expire_and_are_deleted_only_by_their_owner",
        tokens_expire_and_are_deleted_only_by_their_owner,
    ),
    (
        "workspace_ids_are_claimed_once_and_nobody_learns_whose",
        workspace_ids_are_claimed_once_and_nobody_learns_whose,
    ),
    (
        "invites_join_on_accept_count_uses_and_end",
        invites_join_on_accept_count_uses_and_end,
    ),
    (
        "a_sign_up_with_an_invite_claims_a_use_and_joins_on_it_later",
        a_sign_up_with_an_invite_claims_a_use_and_joins_on_it_later,
    ),
    (
        "the_last_owner_cannot_leave_or_be_demoted",
        the_last_owner_cannot_leave_or_be_demoted,
    ),
    (
        "a_device_belongs_to_the_first_account_that_syncs_it",
        a_device_belongs_to_the_first_account_that_syncs_it,
    ),
    (
        "credentials_end_as_asked_and_usage_adds_up",
        credentials_end_as_asked_and_usage_adds_up,
    ),
    (
        "an_accounts_quota_turn_is_one_pushs_at_a_time",
        an_accounts_quota_turn_is_one_pushs_at_a_time,
    ),
];

/// Runs every case, each on a store `make` returns (with whatever must live beside it).
pub fn run<G>(make: impl Fn() -> (G, Box<dyn AccountStore>)) {
    for (name, case) in CASES {
        let (_guard, store) = make();
        println!("accounts suite: {name}");
        case(store.as_ref());
    }
}

const DAY: i64 = 24 * 60 * 60 * 1_000;

fn account<'a>(id: &'a str, name: &'a str, ws: &'a str) -> NewAccount<'a> {
    NewAccount {
        user_id: id,
        username: name,
        password_hash: "$argon2id$dummy",
        must_be_first: false,
        invite: None,
        workspace_id: ws,
        workspace_name: "Personal",
        adopt: &[],
        now: 1_000,
    }
}

pub fn the_first_account_is_admin_and_adopts_the_logs_workspaces_later_ones_do_not(
    a: &dyn AccountStore,
) {
    let old = vec!["old-ws".to_string()];
    let first = a
        .create_account(&NewAccount {
            adopt: &old,
            must_be_first: true,
            ..account("u1", "ann", "w1")
        })
        .unwrap();
    assert!(first.is_admin);
    assert_eq!(a.role("u1", "old-ws").unwrap(), Role::Owner);
    assert_eq!(a.role("u1", "w1").unwrap(), Role::Owner);
    let err = a
        .create_account(&NewAccount {
            must_be_first: true,
            ..account("u2", "bob", "w2")
        })
        .unwrap_err();
    assert!(matches!(err, AccountsError::NotFirst), "{err}");
    let second = a
        .create_account(&NewAccount {
            adopt: &old,
            ..account("u2", "bob", "w2")
        })
        .unwrap();
    assert!(!second.is_admin);
    assert!(a.role("u2", "old-ws").is_err());
    assert_eq!(a.inbox_pending("u2").unwrap(), vec!["w2".to_string()]);
    a.inbox_written("w2").unwrap();
    assert!(a.inbox_pending("u2").unwrap().is_empty());
}

pub fn usernames_are_unique_without_regard_to_case_and_a_failed_sign_up_writes_nothing(
    a: &dyn AccountStore,
) {
    a.create_account(&account("u1", "Ann", "w1")).unwrap();
    let err = a.create_account(&account("u2", "ann", "w2")).unwrap_err();
    assert!(matches!(err, AccountsError::UsernameTaken), "{err}");
    assert!(a.user_by_id("u2").unwrap().is_none());
    assert!(
        !a.workspace_ids().unwrap().contains("w2"),
        "nothing half-written"
    );
    assert_eq!(a.user_by_name("ANN").unwrap().unwrap().user.user_id, "u1");
    assert!(a.create_account(&account("u3", "bad name", "w3")).is_err());
}

pub fn sessions_last_thirty_days_from_last_use_and_end_on_sign_out_disable_and_reset(
    a: &dyn AccountStore,
) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    let s = |d: &'static str, id: &'static str| NewSession {
        digest: d,
        session_id: id,
        user_agent: "test",
    };
    a.create_session("u1", &s("h1", "s1"), None, 0).unwrap();
    let (p, _) = a.session("h1", 29 * DAY).unwrap().unwrap();
    assert_eq!(
        p.credential,
        Credential::Session {
            session_id: "s1".into()
        }
    );
    // Used on day 29: alive until day 59.
    assert!(a.session("h1", 58 * DAY).unwrap().is_some());
    assert!(a.session("h1", 89 * DAY).unwrap().is_none(), "idle 31 days");
    assert!(a.session("nope", 0).unwrap().is_none());

    a.create_session("u1", &s("h2", "s2"), Some("h9"), 100 * DAY)
        .unwrap();
    // A fresh session replaces the one the request carried (fixation).
    a.create_session("u1", &s("h3", "s3"), Some("h2"), 100 * DAY)
        .unwrap();
    assert!(a.session("h2", 100 * DAY).unwrap().is_none());
    let before = a.revocations().unwrap();
    assert!(a.end_session("h3").unwrap());
    assert!(a.revocations().unwrap() > before, "sockets are re-checked");

    a.create_session("u1", &s("h4", "s4"), None, 100 * DAY)
        .unwrap();
    a.set_disabled("ann", true).unwrap();
    assert!(a.session("h4", 100 * DAY).unwrap().is_none());
    a.set_disabled("ann", false).unwrap();
    assert!(
        a.session("h4", 100 * DAY).unwrap().is_none(),
        "disabling ended it"
    );
    a.create_session("u1", &s("h5", "s5"), None, 100 * DAY)
        .unwrap();
    a.set_password("u1", "new").unwrap();
    assert!(
        a.session("h5", 100 * DAY).unwrap().is_none(),
        "a reset ends sessions"
    );
}

pub fn sessions_per_account_are_bounded(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    for i in 0..60 {
        let d = format!("h{i}");
        let id = format!("s{i}");
        a.create_session(
            "u1",
            &NewSession {
                digest: &d,
                session_id: &id,
                user_agent: &"x".repeat(1_000),
            },
            None,
            i,
        )
        .unwrap();
    }
    let sessions = a.sessions("u1", 100).unwrap();
    assert_eq!(sessions.len(), 50);
    assert!(sessions[0].user_agent.len() <= 200);
    assert!(a.session("h59", 100).unwrap().is_some());
    assert!(a.session("h0", 100).unwrap().is_none(), "the oldest went");
}

pub fn tokens_expire_and_are_deleted_only_by_their_owner(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "bob", "w2")).unwrap();
    a.create_token("u1", "t1", &digest("secret1"), "cli", Some(5_000), 1_000)
        .unwrap();
    let (p, _) = (a.token(&digest("secret1"), 4_999).unwrap().unwrap(), ());
    assert!(p.is_token());
    assert!(
        a.token(&digest("secret1"), 5_000).unwrap().is_none(),
        "expired"
    );
    assert!(!a.delete_token("u2", "t1").unwrap(), "not bob's");
    assert!(a.delete_token("u1", "t1").unwrap());
    assert!(
        a.create_token("u1", "t2", "d", "  ", None, 0).is_err(),
        "a name"
    );
}

pub fn workspace_ids_are_claimed_once_and_nobody_learns_whose(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "bob", "w2")).unwrap();
    let (ws, made) = a.create_workspace("u1", "x", "Home", false, 0).unwrap();
    assert!(made && ws.role == Role::Owner && ws.name == "Home");
    let (_, made) = a.create_workspace("u1", "x", "Other", false, 0).unwrap();
    assert!(!made, "the same call again by its owner");
    assert!(matches!(
        a.create_workspace("u2", "x", "Mine", false, 0),
        Err(AccountsError::Forbidden(_))
    ));
    assert!(
        matches!(
            a.create_workspace("u2", "in-log", "Mine", true, 0),
            Err(AccountsError::Forbidden(_))
        ),
        "a workspace of the log nobody owns is taken"
    );
    // Non-members get the same answer for absent and foreign workspaces.
    let foreign = a.role("u2", "x").unwrap_err().to_string();
    let absent = a.role("u2", "nothing").unwrap_err().to_string();
    assert_eq!(foreign, absent);
    assert!(a.members("u2", "x").is_err());
    // Deleted: nobody gets in, and its id cannot be claimed again.
    assert!(a.delete_workspace("u2", "x", 0).is_err(), "not bob's");
    assert_eq!(
        a.delete_workspace("u1", "x", 0).unwrap(),
        vec!["u1".to_string()]
    );
    assert!(a.role("u1", "x").is_err());
    assert!(a.create_workspace("u1", "x", "Again", false, 0).is_err());
    assert!(a.create_workspace("u2", "x", "Again", false, 0).is_err());
    assert_eq!(a.workspaces_of("u1").unwrap().len(), 1);
}

fn invite(a: &dyn AccountStore, token: &str, max_uses: i64, expires_at: i64) -> String {
    let id = format!("i-{token}");
    a.create_invite(
        "u1",
        "w1",
        &id,
        &digest(token),
        Role::Member,
        max_uses,
        expires_at,
        0,
    )
    .unwrap();
    id
}

pub fn invites_join_on_accept_count_uses_and_end(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "bob", "w2")).unwrap();
    a.create_account(&account("u3", "cy", "w3")).unwrap();
    assert!(
        a.create_invite("u2", "w1", "i", &digest("t"), Role::Member, 1, 10, 0)
            .is_err(),
        "only owners invite"
    );
    invite(a, "one", 1, 10_000);
    assert!(matches!(
        a.check_invite(&digest("one"), 5).unwrap(),
        InviteCheck::Valid { .. }
    ));
    assert_eq!(
        a.accept_invite("u2", &digest("one"), 5).unwrap(),
        ("w1".into(), Role::Member)
    );
    assert_eq!(a.role("u2", "w1").unwrap(), Role::Member);
    // Again by a member: nothing used, role kept.
    assert_eq!(
        a.accept_invite("u2", &digest("one"), 6).unwrap().1,
        Role::Member
    );
    assert!(
        matches!(
            a.accept_invite("u3", &digest("one"), 6),
            Err(AccountsError::InviteGone)
        ),
        "used up"
    );
    assert_eq!(
        a.check_invite(&digest("one"), 6).unwrap(),
        InviteCheck::Gone
    );
    // A removed member cannot rejoin on the invite they used.
    a.remove_member("u1", "w1", "u2").unwrap();
    assert!(a.role("u2", "w1").is_err());
    invite(a, "many", 5, 10_000);
    a.accept_invite("u2", &digest("many"), 7).unwrap();
    a.remove_member("u1", "w1", "u2").unwrap();
    assert!(matches!(
        a.accept_invite("u2", &digest("many"), 8),
        Err(AccountsError::InviteGone)
    ));
    // Expired and revoked.
    invite(a, "old", 5, 100);
    assert!(matches!(
        a.accept_invite("u3", &digest("old"), 100),
        Err(AccountsError::InviteGone)
    ));
    let id = invite(a, "rev", 5, 10_000);
    assert_eq!(
        a.invites("u1", "w1", 100).unwrap().len(),
        2,
        "many and rev pending"
    );
    assert!(
        a.revoke_invite("u1", "w2", &id, 9).is_err(),
        "not of that workspace"
    );
    a.revoke_invite("u1", "w1", &id, 9).unwrap();
    assert!(matches!(
        a.accept_invite("u3", &digest("rev"), 10),
        Err(AccountsError::InviteGone)
    ));
    // An invite of a deleted workspace is gone.
    invite(a, "del", 5, 10_000);
    a.delete_workspace("u1", "w1", 11).unwrap();
    assert!(matches!(
        a.accept_invite("u3", &digest("del"), 12),
        Err(AccountsError::InviteGone)
    ));
}

pub fn a_sign_up_with_an_invite_claims_a_use_and_joins_on_it_later(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    invite(a, "one", 1, 10_000);
    let d = digest("one");
    a.create_account(&NewAccount {
        invite: Some(&d),
        ..account("u2", "bob", "w2")
    })
    .unwrap();
    assert!(
        matches!(
            a.create_account(&NewAccount {
                invite: Some(&d),
                ..account("u3", "cy", "w3")
            }),
            Err(AccountsError::InviteGone)
        ),
        "the one use went to bob's sign-up"
    );
    assert!(a.user_by_id("u3").unwrap().is_none());
    assert_eq!(
        a.accept_invite("u2", &d, 5).unwrap().0,
        "w1",
        "bob joins on his use"
    );
}

pub fn the_last_owner_cannot_leave_or_be_demoted(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "bob", "w2")).unwrap();
    invite(a, "t", 5, 10_000);
    a.accept_invite("u2", &digest("t"), 1).unwrap();
    assert!(matches!(
        a.remove_member("u1", "w1", "u1"),
        Err(AccountsError::LastOwner)
    ));
    assert!(matches!(
        a.set_role("u1", "w1", "u1", Role::Member),
        Err(AccountsError::LastOwner)
    ));
    assert!(
        a.set_role("u2", "w1", "u2", Role::Owner).is_err(),
        "members change no roles"
    );
    assert!(
        a.remove_member("u2", "w1", "u1").is_err(),
        "members remove nobody else"
    );
    a.set_role("u1", "w1", "u2", Role::Owner).unwrap();
    a.remove_member("u1", "w1", "u1").unwrap();
    assert_eq!(a.role("u2", "w1").unwrap(), Role::Owner);
    assert!(matches!(
        a.set_role("u2", "w1", "nobody", Role::Reader),
        Err(AccountsError::NotFound)
    ));
    // Deleting the account that is the last owner beside others: refused.
    a.create_account(&account("u3", "cy", "w3")).unwrap();
    invite_by(a, "u2", "w1", "t3");
    a.accept_invite("u3", &digest("t3"), 2).unwrap();
    assert!(matches!(
        a.delete_user("u2", 3),
        Err(AccountsError::LastOwner)
    ));
    // A member leaves by being deleted; alone in a workspace, the account deletes it; the
    // name stays reserved.
    a.delete_user("u3", 3).unwrap();
    assert!(a
        .members("u2", "w1")
        .unwrap()
        .iter()
        .all(|m| m.user_id != "u3"));
    assert!(a.role("u3", "w3").is_err());
    assert_eq!(a.usernames(&["u3".into()]).unwrap()[0].username, "cy");
    assert!(matches!(
        a.create_account(&account("u4", "cy", "w4")),
        Err(AccountsError::UsernameTaken)
    ));
}

fn invite_by(a: &dyn AccountStore, actor: &str, ws: &str, token: &str) {
    a.create_invite(
        actor,
        ws,
        &format!("i-{token}"),
        &digest(token),
        Role::Member,
        5,
        10_000,
        0,
    )
    .unwrap();
}

pub fn a_device_belongs_to_the_first_account_that_syncs_it(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "bob", "w2")).unwrap();
    a.bind_device("d1", "u1", 0).unwrap();
    a.bind_device("d1", "u1", 1).unwrap();
    assert!(matches!(
        a.bind_device("d1", "u2", 2),
        Err(AccountsError::Forbidden(_))
    ));
}

pub fn credentials_end_as_asked_and_usage_adds_up(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "Bob", "w2")).unwrap();
    let s = |d: &'static str, id: &'static str| NewSession {
        digest: d,
        session_id: id,
        user_agent: "test",
    };
    for (d, id) in [("h1", "s1"), ("h2", "s2"), ("h3", "s3")] {
        a.create_session("u1", &s(d, id), None, DAY).unwrap();
    }
    a.create_token("u1", "t1", &digest("tok"), "ci", None, DAY)
        .unwrap();
    let (p1, _) = a.session("h1", DAY).unwrap().unwrap();
    assert!(a.still_valid(&p1, DAY).unwrap());
    assert_eq!(a.sessions("u1", DAY).unwrap().len(), 3);
    assert_eq!(a.tokens("u1").unwrap().len(), 1);
    // A password change keeps the session that made it, and only that one.
    a.change_password("u1", "$argon2id$new", Some("s1"))
        .unwrap();
    assert!(a.session("h1", DAY).unwrap().is_some());
    assert!(a.session("h2", DAY).unwrap().is_none());
    assert!(a.tokens("u1").unwrap().is_empty(), "tokens end too");
    // Without one to keep, every session ends.
    a.create_session("u1", &s("h4", "s4"), None, DAY).unwrap();
    a.change_password("u1", "$argon2id$newer", None).unwrap();
    assert!(a.sessions("u1", DAY).unwrap().is_empty());
    assert!(!a.still_valid(&p1, DAY).unwrap());
    // One session by its public id, then all of them.
    a.create_session("u1", &s("h5", "s5"), None, DAY).unwrap();
    a.create_session("u1", &s("h6", "s6"), None, DAY).unwrap();
    assert!(!a.end_session_by_id("u2", "s5").unwrap(), "not Bob's");
    assert!(a.end_session_by_id("u1", "s5").unwrap());
    assert_eq!(a.end_sessions("u1").unwrap(), 1);
    a.create_session("u2", &s("h7", "s7"), None, DAY).unwrap();
    a.end_all_credentials().unwrap();
    assert!(a.session("h7", DAY).unwrap().is_none());
    // Sessions idle past their life and expired tokens are swept.
    a.create_session("u1", &s("h8", "s8"), None, DAY).unwrap();
    a.create_token("u1", "t2", &digest("old"), "old", Some(2 * DAY), DAY)
        .unwrap();
    assert_eq!(a.sweep(40 * DAY).unwrap(), 2);
    // Accounts in order of making, names NOCASE; a rename by the owner only.
    let names: Vec<String> = a
        .users()
        .unwrap()
        .into_iter()
        .map(|u| u.user.username)
        .collect();
    assert_eq!(names, ["ann", "Bob"]);
    assert!(a.rename_workspace("u2", "w1", "Mine").is_err());
    assert_eq!(a.rename_workspace("u1", "w1", "Home").unwrap().name, "Home");
    assert_eq!(a.workspace("u1", "w1").unwrap().name, "Home");
    // Adopting gives only workspaces without a row.
    let ws = vec!["w1".to_string(), "old".to_string()];
    assert_eq!(a.adopt("u1", &ws, DAY).unwrap(), 1);
    assert_eq!(a.role("u1", "old").unwrap(), Role::Owner);
    // Usage: events per day, bytes in all.
    a.add_usage("u1", 3, 10, 1_000).unwrap();
    a.add_usage("u1", 3, 5, 500).unwrap();
    a.add_usage("u1", 4, 1, 100).unwrap();
    assert_eq!(a.usage("u1", 3).unwrap(), (15, 1_600));
    assert_eq!(a.usage("u1", 5).unwrap(), (0, 1_600));
    assert_eq!(a.usage("u2", 3).unwrap(), (0, 0));
}

/// A push of an account holds its quota turn; another push of it waits until the turn is
/// given back, and another account's takes its own meanwhile.
pub fn an_accounts_quota_turn_is_one_pushs_at_a_time(a: &dyn AccountStore) {
    a.create_account(&account("u1", "ann", "w1")).unwrap();
    a.create_account(&account("u2", "bob", "w2")).unwrap();
    let order = std::sync::Mutex::new(Vec::new());
    let ann = a.quota_turn("u1").unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let turn = a.quota_turn("u1").unwrap();
            order.lock().unwrap().push("taken again");
            drop(turn);
        });
        let bob = a.quota_turn("u2").unwrap();
        drop(bob);
        order.lock().unwrap().push("given back");
        drop(ann);
        waiter.join().unwrap();
    });
    assert_eq!(*order.lock().unwrap(), ["given back", "taken again"]);
    // Given back for good: taken again at once.
    drop(a.quota_turn("u1").unwrap());
}
