//! The rate limits' windows on PostgreSQL are shared: tries counted through one process block
//! the key in another, as one process's in-memory window would.

mod common;

use tandem_pg::rate::PgWindow;
use tandem_pg::Database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tries_through_two_processes_count_together_and_leave_their_window() {
    let url = common::fresh_url().await;
    let (a, b) = (
        Database::connect(&url, 2).unwrap(),
        Database::connect(&url, 2).unwrap(),
    );
    a.migrate().await.unwrap();
    let (one, two) = (
        PgWindow::new(a.clone(), "sign-in failures", 3, 1_000),
        PgWindow::new(b, "sign-in failures", 3, 1_000),
    );
    let other = PgWindow::new(a.clone(), "sign-ups", 3, 1_000);
    one.hit("ann@10.0.0.1", 100).await.unwrap();
    two.hit("ann@10.0.0.1", 200).await.unwrap();
    assert_eq!(one.blocked("ann@10.0.0.1", 250).await.unwrap(), None);
    one.hit("ann@10.0.0.1", 300).await.unwrap();
    // Three tries, two of them through the other process: blocked in both until the first
    // leaves the window (at 1,100).
    assert_eq!(two.blocked("ann@10.0.0.1", 400).await.unwrap(), Some(700));
    assert_eq!(one.blocked("ann@10.0.0.1", 1_099).await.unwrap(), Some(1));
    assert_eq!(one.blocked("ann@10.0.0.1", 1_100).await.unwrap(), None);
    // Other keys and other counters are apart.
    assert_eq!(one.blocked("bob@10.0.0.1", 400).await.unwrap(), None);
    assert_eq!(other.blocked("ann@10.0.0.1", 400).await.unwrap(), None);
    // A key keeps at most a limit's worth of rows, however often it is hit.
    for t in 0..20 {
        two.hit("spray", 2_000 + t).await.unwrap();
    }
    let client = a.client().await.unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM rate_hits WHERE key = 'spray'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3);
    assert_eq!(one.blocked("spray", 2_020).await.unwrap(), Some(997));
    // A success clears the key everywhere.
    one.clear("spray").await.unwrap();
    assert_eq!(two.blocked("spray", 2_020).await.unwrap(), None);
    // The sweep leaves nothing older than the window.
    assert!(one.sweep(10_000).await.unwrap() >= 3);
    let left: i64 = client
        .query_one("SELECT count(*) FROM rate_hits", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
