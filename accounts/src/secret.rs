//! Secrets handed to people and programs — session cookies, API tokens, invite tokens — and
//! what is stored of them: only a SHA-256 digest (a secret is 256 random bits, so a fast hash
//! cannot be reversed by guessing; DESIGN.md rule 23: stored hashed).

use base64::Engine;
use sha2::{Digest, Sha256};

/// Prefix of API tokens, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "tdm_";

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

/// 32 random bytes from the operating system, as unpadded base64url (43 characters).
pub fn generate() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A new API token: [`TOKEN_PREFIX`] and a random secret.
pub fn generate_token() -> Result<String, RandomError> {
    Ok(format!("{TOKEN_PREFIX}{}", generate()?))
}

/// What is stored of a secret: its SHA-256, lowercase hex.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Whether `text` could be a secret we minted (length and alphabet), so garbage is refused
/// without a database lookup.
pub fn well_formed(text: &str) -> bool {
    let body = text.strip_prefix(TOKEN_PREFIX).unwrap_or(text);
    body.len() == 43
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_well_formed_and_stored_as_digests() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&generate_token().unwrap()));
        assert!(!well_formed("short") && !well_formed(&format!("{a}=")));
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).len(), 64);
        assert!(!digest(&a).contains(&a));
    }
}
