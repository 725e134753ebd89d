//! The rate limits' sliding windows on PostgreSQL, shared by every process (the SQLite
//! default keeps them in the one process's memory: `server/src/rate.rs`). The same rules: at
//! most `limit` events per key per `window_ms`; a key over its limit is blocked until its
//! oldest counted event leaves the window; a key keeps at most a limit's worth of rows.

use tokio_postgres::IsolationLevel;

use crate::{Database, PgError};

/// One counter (e.g. "failed sign-ins per address") in the database.
#[derive(Debug, Clone)]
pub struct PgWindow {
    db: Database,
    counter: &'static str,
    limit: i64,
    window_ms: i64,
}

impl PgWindow {
    pub fn new(db: Database, counter: &'static str, limit: usize, window_ms: i64) -> Self {
        Self {
            db,
            counter,
            limit: i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
            window_ms,
        }
    }

    /// When the key is over its limit: how long until it is not (ms).
    pub async fn blocked(&self, key: &str, now: i64) -> Result<Option<i64>, PgError> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                "SELECT count(*), min(at) FROM (SELECT at FROM rate_hits \
                 WHERE counter = $1 AND key = $2 AND at > $3 ORDER BY at DESC LIMIT $4) AS w",
                &[&self.counter, &key, &(now - self.window_ms), &self.limit],
            )
            .await?;
        let (count, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
        Ok((count >= self.limit).then(|| (oldest.unwrap_or(now) + self.window_ms - now).max(1)))
    }

    /// Counts one event for the key (and forgets what left its window, and what is beyond a
    /// limit's worth).
    pub async fn hit(&self, key: &str, now: i64) -> Result<(), PgError> {
        let mut client = self.db.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await?;
        tx.execute(
            "INSERT INTO rate_hits (counter, key, at) VALUES ($1, $2, $3)",
            &[&self.counter, &key, &now],
        )
        .await?;
        tx.execute(
            "DELETE FROM rate_hits WHERE counter = $1 AND key = $2 AND (at <= $3 OR ctid NOT IN \
             (SELECT ctid FROM rate_hits WHERE counter = $1 AND key = $2 \
              ORDER BY at DESC LIMIT $4))",
            &[&self.counter, &key, &(now - self.window_ms), &self.limit],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a key (a successful sign-in clears that account's failures from that address).
    pub async fn clear(&self, key: &str) -> Result<(), PgError> {
        let client = self.db.client().await?;
        client
            .execute(
                "DELETE FROM rate_hits WHERE counter = $1 AND key = $2",
                &[&self.counter, &key],
            )
            .await?;
        Ok(())
    }

    /// Deletes every row of this counter older than its window (the periodic sweep: keys
    /// nobody hits again leave nothing behind); how many.
    pub async fn sweep(&self, now: i64) -> Result<u64, PgError> {
        let client = self.db.client().await?;
        Ok(client
            .execute(
                "DELETE FROM rate_hits WHERE counter = $1 AND at <= $2",
                &[&self.counter, &(now - self.window_ms)],
            )
            .await?)
    }
}
