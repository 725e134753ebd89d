//! Ordering keys for todos within a list ("fractional indexing"): a key is a base-62 fraction
//! written with the digits `0-9A-Za-z` (whose ASCII order is their value order), never ending
//! in `0`. Between any two keys there is another, so a move writes one key and never renumbers
//! its neighbours; concurrent moves to the same spot may pick equal keys, which the views break
//! by todo id, deterministically.
//!
//! Written here rather than taken from a crate: the few crates for it either pull in their own
//! big-integer types or use a different alphabet than the one we want to validate at the
//! server; the algorithm is 40 lines and property-tested below.

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE: u8 = 62;
/// Longest key accepted (a key grows by about one digit per 6 inserts at the same spot).
pub const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error("invalid position {key:?}: expected 1 to {MAX_LEN} characters of 0-9A-Za-z, not ending in 0")]
    Invalid { key: String },
    #[error("no position between {before:?} and {after:?}: they are not in ascending order")]
    Unordered { before: String, after: String },
}

fn value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'Z' => Some(digit - b'A' + 10),
        b'a'..=b'z' => Some(digit - b'a' + 36),
        _ => None,
    }
}

/// Checks that `key` is a valid position.
pub fn validate(key: &str) -> Result<(), PositionError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_LEN
        && key.bytes().all(|b| value(b).is_some())
        && !key.ends_with('0');
    if ok {
        Ok(())
    } else {
        Err(PositionError::Invalid {
            key: key.chars().take(MAX_LEN + 8).collect(),
        })
    }
}

/// A key strictly between `before` and `after` (either end open when `None`).
pub fn between(before: Option<&str>, after: Option<&str>) -> Result<String, PositionError> {
    for key in before.iter().chain(after.iter()) {
        validate(key)?;
    }
    let a = before.unwrap_or("").as_bytes();
    if let Some(b) = after {
        if a >= b.as_bytes() {
            return Err(PositionError::Unordered {
                before: before.unwrap_or("").to_string(),
                after: b.to_string(),
            });
        }
    }
    match (before, after) {
        (Some(a), None) => return checked(step(a.as_bytes(), b'z', 1)),
        (None, Some(b)) => return checked(step(b.as_bytes(), b'0', -1)),
        _ => {}
    }
    let mut out = Vec::new();
    midpoint(a, after.map(str::as_bytes), &mut out);
    // Digits come from DIGITS only, so this is ASCII.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A stepped key, if it fits (a key already 127 digits deep at an end has no room left).
fn checked(key: String) -> Result<String, PositionError> {
    validate(&key).map(|()| key)
}

/// A key just after (`delta = 1`) or just before (`delta = -1`) `key`, with an open end on
/// that side: adds or subtracts 62^-p, where p is twice the count of leading `edge` digits
/// (`z` toward 1, `0` toward 0) plus 2. Halving the gap instead would grow a key by a digit
/// every six appends (128 digits after ~770 todos added at the end of a list); with this step
/// n appends in a row need about 2·log62(n) + 2 digits (6 for 10,000).
fn step(key: &[u8], edge: u8, delta: i8) -> String {
    let leading = key.iter().take_while(|&&d| d == edge).count();
    // Keys made elsewhere may already hug the edge; never step past the longest key.
    // (Past the first digit that is not `edge`, so the step cannot reach the end itself.)
    let p = if 2 * leading + 2 <= MAX_LEN {
        2 * leading + 2
    } else {
        leading + 2
    };
    let mut digits: Vec<u8> = key.iter().filter_map(|&d| value(d)).collect();
    digits.resize(digits.len().max(p), 0);
    // Add or subtract one at digit p with carry or borrow. The result stays in (0, 1): toward
    // 1 the digit after the leading z's is below z, toward 0 it is above 0.
    let mut i = p - 1;
    loop {
        let d = i16::from(digits[i]) + i16::from(delta);
        if (0..i16::from(BASE)).contains(&d) {
            digits[i] = d as u8;
            break;
        }
        digits[i] = if delta > 0 { 0 } else { BASE - 1 };
        if i == 0 {
            break;
        }
        i -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    digits
        .iter()
        .map(|&d| char::from(DIGITS[usize::from(d)]))
        .collect()
}

/// Appends to `out` a fraction strictly between `a` and `b` (`b = None` means 1).
/// Requires `a < b` as fractions and that neither ends in `0`.
fn midpoint(a: &[u8], b: Option<&[u8]>, out: &mut Vec<u8>) {
    let digit_at = |s: &[u8], i: usize| s.get(i).and_then(|&d| value(d)).unwrap_or(0);
    if let Some(b) = b {
        // Copy the common prefix (a padded with zeros).
        let mut n = 0;
        while n < b.len() && digit_at(a, n) == digit_at(b, n) {
            n += 1;
        }
        if n > 0 {
            out.extend_from_slice(&b[..n]);
            return midpoint(a.get(n..).unwrap_or(&[]), Some(&b[n..]), out);
        }
    }
    let da = digit_at(a, 0);
    let db = b.map_or(BASE, |b| digit_at(b, 0));
    if db - da > 1 {
        out.push(DIGITS[usize::from((da + db) / 2)]);
    } else if let Some(b) = b.filter(|b| b.len() > 1) {
        // b's first digit alone is above a and below b.
        out.push(b[0]);
    } else {
        out.push(DIGITS[usize::from(da)]);
        midpoint(a.get(1..).unwrap_or(&[]), None, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_keys() {
        assert_eq!(between(None, None).unwrap(), "V");
        assert_eq!(between(Some("V"), None).unwrap(), "V1");
        assert_eq!(between(Some("Vz"), None).unwrap(), "W");
        assert_eq!(between(Some("z"), None).unwrap(), "z001");
        assert_eq!(between(None, Some("V")).unwrap(), "Uz");
        assert_eq!(between(None, Some("1")).unwrap(), "0z");
        assert_eq!(between(None, Some("01")).unwrap(), "00zz");
        assert_eq!(between(Some("a"), Some("b")).unwrap(), "aV");
    }

    #[test]
    fn refuses_bad_keys_and_bad_order() {
        for bad in ["", "a0", "a b", "é", &"z".repeat(MAX_LEN + 1)] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            between(Some("b"), Some("a")),
            Err(PositionError::Unordered { .. })
        ));
        assert!(between(Some("a"), Some("a")).is_err());
    }

    #[test]
    fn keys_that_already_hug_an_end_still_get_a_valid_neighbour() {
        let high = format!("{}V", "z".repeat(70));
        let after = between(Some(&high), None).unwrap();
        assert!(after > high && after.len() <= MAX_LEN);
        validate(&after).unwrap();
        let low = format!("{}1", "0".repeat(70));
        let before = between(None, Some(&low)).unwrap();
        assert!(before < low && before.len() <= MAX_LEN);
        validate(&before).unwrap();
    }

    #[test]
    fn keys_stay_short_when_added_at_either_end_many_times() {
        let mut last = between(None, None).unwrap();
        let mut first = last.clone();
        for _ in 0..100_000 {
            let next = between(Some(&last), None).unwrap();
            assert!(next > last);
            last = next;
            let prev = between(None, Some(&first)).unwrap();
            assert!(prev < first);
            first = prev;
        }
        assert!(last.len() <= 8 && first.len() <= 8, "{last} {first}");
    }

    proptest! {
        #[test]
        fn always_strictly_between(ops in proptest::collection::vec((any::<u16>(), any::<bool>()), 1..300)) {
            // Insert repeatedly at random places of a sorted list of keys.
            let mut keys: Vec<String> = vec![];
            for (pick, at_end) in ops {
                let i = if keys.is_empty() { 0 } else { usize::from(pick) % (keys.len() + 1) };
                let i = if at_end { keys.len() } else { i };
                let before = i.checked_sub(1).map(|j| keys[j].as_str());
                let after = keys.get(i).map(String::as_str);
                let key = between(before, after).unwrap();
                validate(&key).unwrap();
                if let Some(b) = before { prop_assert!(b < key.as_str()); }
                if let Some(a) = after { prop_assert!(key.as_str() < a); }
                keys.insert(i, key);
            }
        }
    }
}
