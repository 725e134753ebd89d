//! One turn per account at a time, within a process: [`Turns::take`] waits (bounded) while
//! another holder has the same account's turn, and the [`Turn`] gives it back when dropped.
//! A push holds its account's turn from reading the account's usage to recording it, while a
//! quota applies ([`crate::AccountStore::quota_turn`]); accounts wait for each other only
//! when [`Turns::at_most`] turns are held.
//!
//! Not `std::sync::Mutex` per account: a map of them would only grow, and a guard borrowing
//! its mutex cannot be handed back to the caller.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::AccountsError;

/// The accounts whose turn is held in this process.
#[derive(Clone)]
pub struct Turns(Arc<Held>);

struct Held {
    users: Mutex<HashSet<String>>,
    freed: Condvar,
    /// How many accounts' turns may be held at once.
    most: usize,
}

impl Default for Turns {
    fn default() -> Self {
        Self::at_most(usize::MAX)
    }
}

/// An account's turn; given back when dropped.
#[must_use = "the turn is given back when dropped"]
pub struct Turn {
    turns: Arc<Held>,
    user_id: String,
}

impl Turns {
    /// Turns of which at most `most` (at least one) are held at once: each of PostgreSQL's
    /// holds a pooled connection, and the pushes made in their turns need others.
    pub fn at_most(most: usize) -> Self {
        Self(Arc::new(Held {
            users: Mutex::new(HashSet::new()),
            freed: Condvar::new(),
            most: most.max(1),
        }))
    }

    /// `user_id`'s turn, once no other holder has it (and fewer than the most are held);
    /// [`AccountsError::Busy`] after `wait`.
    pub fn take(&self, user_id: &str, wait: Duration) -> Result<Turn, AccountsError> {
        let deadline = Instant::now() + wait;
        let mut users = self.0.users.lock().unwrap_or_else(|p| p.into_inner());
        while users.contains(user_id) || users.len() >= self.0.most {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(match users.contains(user_id) {
                    true => busy(wait),
                    false => AccountsError::Busy(format!(
                        "other accounts' pushes held every quota turn of this server for {} s; try again",
                        wait.as_secs()
                    )),
                });
            }
            users = self
                .0
                .freed
                .wait_timeout(users, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        users.insert(user_id.to_string());
        Ok(Turn {
            turns: Arc::clone(&self.0),
            user_id: user_id.to_string(),
        })
    }
}

/// The answer when a quota turn was not had within `wait` (another push of the account
/// held it, or the database's share of it could not be had).
pub fn busy(wait: Duration) -> AccountsError {
    AccountsError::Busy(format!(
        "this account's quota turn was not free within {} s; try again",
        wait.as_secs()
    ))
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut users = self.turns.users.lock().unwrap_or_else(|p| p.into_inner());
        users.remove(&self.user_id);
        drop(users);
        self.turns.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accounts_turn_is_one_holders_until_given_back_and_others_never_wait() {
        let turns = Turns::default();
        let ann = turns.take("ann", Duration::from_secs(5)).unwrap();
        // Another account's turn is free meanwhile.
        let bob = turns.take("bob", Duration::ZERO).unwrap();
        let e = turns.take("ann", Duration::from_millis(30)).err().unwrap();
        assert!(matches!(e, AccountsError::Busy(_)), "{e}");
        // A waiter gets the turn once it is given back, and not before.
        let order = Arc::new(Mutex::new(Vec::new()));
        let waiter = {
            let (turns, order) = (turns.clone(), Arc::clone(&order));
            std::thread::spawn(move || {
                let _turn = turns.take("ann", Duration::from_secs(10)).unwrap();
                order.lock().unwrap().push("taken");
            })
        };
        order.lock().unwrap().push("given back");
        drop(ann);
        waiter.join().unwrap();
        assert_eq!(*order.lock().unwrap(), ["given back", "taken"]);
        drop(bob);
        assert!(turns.0.users.lock().unwrap().is_empty());
    }

    #[test]
    fn no_more_than_the_most_turns_are_held_at_once() {
        let turns = Turns::at_most(2);
        let (ann, _bob) = (
            turns.take("ann", Duration::ZERO).unwrap(),
            turns.take("bob", Duration::ZERO).unwrap(),
        );
        let e = turns.take("cy", Duration::from_millis(30)).err().unwrap();
        assert!(matches!(e, AccountsError::Busy(_)), "{e}");
        drop(ann);
        let _cy = turns.take("cy", Duration::ZERO).unwrap();
        assert!(
            Turns::at_most(0).take("dee", Duration::ZERO).is_ok(),
            "one at least"
        );
    }
}
