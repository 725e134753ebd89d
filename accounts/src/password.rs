//! Password hashes: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), PHC strings.
//! Hashing takes tens of milliseconds on purpose: callers run it on a blocking thread and bound
//! how many run at once (DESIGN.md rule 22).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the stored password hash is not readable: {0}")]
    Stored(String),
}

/// OWASP's recommendation for argon2id (Password Storage Cheat Sheet): m=19 MiB, t=2, p=1.
fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?
        .to_string())
}

/// Whether `password` matches the stored PHC string (the parameters are the string's own).
pub fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|e| PasswordError::Stored(e.to_string()))?;
    match hasher()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::Stored(e.to_string())),
    }
}

/// A hash of a random password, made once per process: signing in as a name nobody has is
/// verified against it, so it takes as long as a wrong password for a real account and the
/// answer's timing tells nothing.
pub fn dummy() -> Result<String, PasswordError> {
    let random = crate::secret::generate().map_err(|e| PasswordError::Hash(e.to_string()))?;
    hash(&random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let stored = hash("correct horse battery").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery", &stored).unwrap());
        assert!(!verify("correct horse batterY", &stored).unwrap());
        assert_ne!(stored, hash("correct horse battery").unwrap(), "salted");
        assert!(verify("x", "not a hash").is_err());
    }
}
