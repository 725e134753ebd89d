//! accounts.db on a real SQLite file passes the accounts' suite ([`tandem_accounts::suite`]).

use tandem_accounts::{suite, AccountStore, Accounts};

fn open() -> (tempfile::TempDir, Box<dyn AccountStore>) {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::open(dir.path().join("accounts.db")).unwrap();
    (dir, Box::new(accounts))
}

#[test]
fn sqlite_accounts_pass_the_suite() {
    suite::run(open);
}
