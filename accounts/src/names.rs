//! What makes a username, a password, a workspace name and a role acceptable. Pure.

use serde::{Deserialize, Serialize};

/// A password shorter than this is WEAK_PASSWORD (CONTRACT.md).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused before hashing (hashing cost grows with length; rule 22).
pub const MAX_PASSWORD_BYTES: usize = 1_024;
pub const MAX_USERNAME_CHARS: usize = 32;
pub const MAX_WORKSPACE_NAME_CHARS: usize = 100;
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a username has 1 to {MAX_USERNAME_CHARS} characters: letters, digits, '.', '_' or '-', starting with a letter or digit")]
    Username,
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("a password has at most {MAX_PASSWORD_BYTES} bytes")]
    LongPassword,
    #[error("a name has 1 to {0} characters and no control characters")]
    Name(usize),
    #[error("a role is \"owner\", \"member\" or \"reader\", not {0:?}")]
    Role(String),
}

/// Checks a username: ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit
/// (no look-alike Unicode names in a member list).
pub fn username(name: &str) -> Result<&str, NameError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USERNAME_CHARS
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(NameError::Username)
    }
}

/// Checks a new password's length (in characters, as people count them).
pub fn password(password: &str) -> Result<&str, NameError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(NameError::LongPassword);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(NameError::WeakPassword);
    }
    Ok(password)
}

/// Trims a display name (workspace, token) and checks its length.
pub fn display_name(name: &str, max: usize) -> Result<String, NameError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max || trimmed.chars().any(char::is_control)
    {
        return Err(NameError::Name(max));
    }
    Ok(trimmed.to_string())
}

/// What a member may do in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Members, invites, rename, delete; and everything a member does.
    Owner,
    /// Read and write.
    Member,
    /// Read only: pushes are refused.
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
            Self::Reader => "reader",
        }
    }

    /// Whether this role may push events.
    pub fn writes(self) -> bool {
        matches!(self, Self::Owner | Self::Member)
    }
}

impl std::str::FromStr for Role {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "member" => Ok(Self::Member),
            "reader" => Ok(Self::Reader),
            other => Err(NameError::Role(other.chars().take(40).collect())),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for good in ["ann", "Ann.B", "a_1-2", "x"] {
            assert!(username(good).is_ok(), "{good}");
        }
        for bad in ["", ".ann", "ann b", "änn", "a\u{0}", &"a".repeat(33)] {
            assert_eq!(username(bad), Err(NameError::Username), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(password("123456789"), Err(NameError::WeakPassword));
        assert!(password("1234567890").is_ok());
        // Ten characters, more bytes.
        assert!(password("éééééééééé").is_ok());
        assert_eq!(
            password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(NameError::LongPassword)
        );
    }

    #[test]
    fn names_and_roles() {
        assert_eq!(display_name("  Home ", 100).unwrap(), "Home");
        assert!(display_name("   ", 100).is_err());
        assert!(display_name("a\nb", 100).is_err());
        assert!(display_name(&"x".repeat(101), 100).is_err());
        assert_eq!("reader".parse::<Role>().unwrap(), Role::Reader);
        assert!("admin".parse::<Role>().is_err());
        assert!(!Role::Reader.writes() && Role::Member.writes() && Role::Owner.writes());
    }
}
