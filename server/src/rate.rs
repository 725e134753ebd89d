//! Bounded in-memory counters for the rate limits of CONTRACT.md: failed sign-ins per
//! (account, address) and per address, sign-ups per address. Written here rather than with
//! tower_governor: that crate limits *requests* by a key taken from the request before the
//! handler runs, while these limits count *failures* (known only after the password check) and
//! key on a username inside the JSON body. Memory is bounded: at most `capacity` keys, the
//! stalest evicted first (DESIGN.md rule 22).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::errors::{internal, ApiError};

/// A sliding-window counter per key: at most `limit` events per `window_ms`.
pub struct Window {
    limit: usize,
    window_ms: i64,
    capacity: usize,
    keys: Mutex<HashMap<String, Vec<i64>>>,
}

impl Window {
    pub fn new(limit: usize, window_ms: i64, capacity: usize) -> Self {
        Self {
            limit,
            window_ms,
            capacity: capacity.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// When the key is over its limit: how long until it is not (ms).
    pub fn blocked(&self, key: &str, now: i64) -> Option<i64> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let times = keys.get_mut(key)?;
        times.retain(|t| now - t < self.window_ms);
        if times.len() >= self.limit {
            let oldest = times.first().copied().unwrap_or(now);
            Some((oldest + self.window_ms - now).max(1))
        } else {
            None
        }
    }

    /// Counts one event for the key.
    pub fn hit(&self, key: &str, now: i64) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if !keys.contains_key(key) && keys.len() >= self.capacity {
            // Evict expired keys first, then the stalest one.
            keys.retain(|_, times| times.last().is_some_and(|t| now - t < self.window_ms));
            if keys.len() >= self.capacity {
                if let Some(stalest) = keys
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied().unwrap_or(i64::MIN))
                    .map(|(k, _)| k.clone())
                {
                    keys.remove(&stalest);
                }
            }
        }
        let times = keys.entry(key.to_string()).or_default();
        times.retain(|t| now - t < self.window_ms);
        // Never more than the limit's worth per key.
        if times.len() >= self.limit {
            times.remove(0);
        }
        times.push(now);
    }

    /// Forgets a key (a successful sign-in clears that account's failures from that address).
    pub fn clear(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(key);
    }
}

/// The key of an address: IPv4 as is, IPv6 by its /64 (one host's share of addresses).
pub fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => "unknown".into(),
    }
}

/// One rate limit's counter: in this process's memory (SQLite: one process serves), or in
/// the PostgreSQL database, shared by every process (N processes do not allow N times the
/// tries).
pub enum Counter {
    Memory(Window),
    Shared(Box<tandem_pg::rate::PgWindow>),
}

impl Counter {
    /// When the key is over its limit: how long until it is not (ms).
    pub async fn blocked(&self, key: &str, now: i64) -> Result<Option<i64>, ApiError> {
        match self {
            Self::Memory(window) => Ok(window.blocked(key, now)),
            Self::Shared(window) => window.blocked(key, now).await.map_err(internal),
        }
    }

    /// Counts one event for the key.
    pub async fn hit(&self, key: &str, now: i64) -> Result<(), ApiError> {
        match self {
            Self::Memory(window) => {
                window.hit(key, now);
                Ok(())
            }
            Self::Shared(window) => window.hit(key, now).await.map_err(internal),
        }
    }

    /// Forgets a key.
    pub async fn clear(&self, key: &str) -> Result<(), ApiError> {
        match self {
            Self::Memory(window) => {
                window.clear(key);
                Ok(())
            }
            Self::Shared(window) => window.clear(key).await.map_err(internal),
        }
    }

    /// Forgets what left the window (memory forgets as it goes).
    async fn sweep(&self, now: i64) -> Result<(), ApiError> {
        match self {
            Self::Memory(_) => Ok(()),
            Self::Shared(window) => window.sweep(now).await.map(|_| ()).map_err(internal),
        }
    }
}

/// The limits of the accounts endpoints.
pub struct Limiter {
    /// 10 failed sign-ins per account per address per 15 min (CONTRACT.md).
    pub account_failures: Counter,
    /// 100 failed sign-ins per address per 15 min, whatever the accounts (password spraying).
    pub address_failures: Counter,
    /// Sign-ups per address per hour: at least 100 are allowed (CONTRACT.md).
    pub sign_ups: Counter,
}

const FIFTEEN_MIN: i64 = 15 * 60 * 1_000;
const HOUR: i64 = 60 * 60 * 1_000;
const ACCOUNT_FAILURES: usize = 10;
const ADDRESS_FAILURES: usize = 100;
const SIGN_UPS: usize = 120;

impl Default for Limiter {
    /// In memory (SQLite's one process).
    fn default() -> Self {
        Self {
            account_failures: Counter::Memory(Window::new(ACCOUNT_FAILURES, FIFTEEN_MIN, 100_000)),
            address_failures: Counter::Memory(Window::new(ADDRESS_FAILURES, FIFTEEN_MIN, 100_000)),
            sign_ups: Counter::Memory(Window::new(SIGN_UPS, HOUR, 100_000)),
        }
    }
}

impl Limiter {
    /// In the PostgreSQL database, shared by every process.
    pub fn shared(db: &tandem_pg::Database) -> Self {
        use tandem_pg::rate::PgWindow;
        Self {
            account_failures: Counter::Shared(Box::new(PgWindow::new(
                db.clone(),
                "sign_in_account",
                ACCOUNT_FAILURES,
                FIFTEEN_MIN,
            ))),
            address_failures: Counter::Shared(Box::new(PgWindow::new(
                db.clone(),
                "sign_in_address",
                ADDRESS_FAILURES,
                FIFTEEN_MIN,
            ))),
            sign_ups: Counter::Shared(Box::new(PgWindow::new(
                db.clone(),
                "sign_up_address",
                SIGN_UPS,
                HOUR,
            ))),
        }
    }

    /// Forgets what left the windows (hourly).
    pub async fn sweep(&self, now: i64) -> Result<(), ApiError> {
        self.account_failures.sweep(now).await?;
        self.address_failures.sweep(now).await?;
        self.sign_ups.sweep(now).await
    }

    /// The key of (account, address): a digest of the name (compared without case), so a
    /// key is small whatever the name sent (rule 22: 100,000 keys of 64 KiB names would not be).
    pub fn account_key(username: &str, address: &str) -> String {
        let name = tandem_accounts::secret::digest(&username.to_ascii_lowercase());
        format!("{}|{address}", &name[..32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_blocks_past_its_limit_until_the_oldest_expires() {
        let w = Window::new(3, 1_000, 10);
        for t in [0, 10, 20] {
            assert_eq!(w.blocked("k", t), None);
            w.hit("k", t);
        }
        assert_eq!(w.blocked("k", 30), Some(970));
        assert_eq!(w.blocked("other", 30), None);
        assert_eq!(w.blocked("k", 1_000), None, "the first hit expired");
        w.clear("k");
        assert_eq!(w.blocked("k", 30), None);
    }

    #[test]
    fn memory_stays_within_capacity() {
        let w = Window::new(2, 1_000_000, 100);
        for i in 0..10_000 {
            w.hit(&format!("k{i}"), i);
        }
        assert!(w.keys.lock().unwrap().len() <= 100);
        assert!(w.blocked("k9999", 10_000).is_none());
        w.hit("k9999", 10_001);
        assert!(w.blocked("k9999", 10_002).is_some(), "recent keys survive");
    }

    #[test]
    fn keys_stay_small_whatever_the_name() {
        let key = Limiter::account_key(&"x".repeat(60_000), "203.0.113.9");
        assert!(key.len() <= 64, "{}", key.len());
        assert_eq!(
            Limiter::account_key("Ann", "a"),
            Limiter::account_key("ann", "a")
        );
        assert_ne!(
            Limiter::account_key("ann", "a"),
            Limiter::account_key("bob", "a")
        );
    }

    #[test]
    fn ipv6_counts_by_64() {
        let a = address_key(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = address_key(Some("2001:db8:1:2:bbbb::2".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, address_key(Some("2001:db8:1:3::1".parse().unwrap())));
        assert_eq!(address_key(Some("10.0.0.1".parse().unwrap())), "10.0.0.1");
    }
}
