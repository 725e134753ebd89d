//! Wire types that cross a process or thread boundary: the sync messages of docs/protocol.md
//! (`sync`) and the page <-> worker messages (`data`). Serde shapes only; no IO.
#![forbid(unsafe_code)]

pub mod data;
pub mod sync;

/// This build of Tandem: `<commit time in seconds>-<short commit hash>` (protocol/build.rs).
/// A page runs only with a worker of its own build, and a tab's worker relays only to an owner
/// of its own build (docs/protocol.md, "Builds").
pub const BUILD: &str = env!("TANDEM_BUILD");

/// Whether build `a` is older than build `b`: by the commit time it starts with (a build
/// without one — an empty name, from before builds were named — is older than any that has
/// one), then by the whole name, so of two different builds exactly one is the older (two
/// tabs never both wait for the other).
pub fn build_older(a: &str, b: &str) -> bool {
    let key = |build: &str| {
        let time = build
            .split_once('-')
            .and_then(|(secs, _)| secs.parse::<u64>().ok());
        (time.is_some(), time.unwrap_or(0), build.to_string())
    };
    key(a) < key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_ordered_by_commit_time() {
        assert!(build_older("1700000000-abc", "1700000001-def"));
        assert!(!build_older("1700000001-def", "1700000000-abc"));
        // The same second: the names decide, one way only.
        assert!(build_older("1700000000-abc", "1700000000-abd"));
        assert!(!build_older("1700000000-abd", "1700000000-abc"));
        assert!(!build_older("1700000000-abc", "1700000000-abc"));
        assert!(build_older("", "1700000000-abc"));
        assert!(!build_older("1700000000-abc", ""));
        assert!(!build_older("", ""));
        assert!(build_older("nonsense", "5-x"));
        assert!(build_older("a", "b") != build_older("b", "a"));
        assert!(BUILD
            .split_once('-')
            .is_some_and(|(t, _)| t.parse::<u64>().is_ok()));
    }
}
