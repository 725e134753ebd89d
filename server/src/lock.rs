//! The data dir's lock (CONTRACT.md): a running server holds `tandem.lock` in its data dir, and
//! a second server or a write command (`import`, `rebuild`, `restore`) on that dir refuses with
//! a clear message. An OS file lock (`flock`), so it is released when the process dies, even
//! by `kill -9`: a stale lock file never blocks a restart.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "tandem.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the data dir {dir} is in use by another Tandem process ({holder}); stop it first (`server backup` is safe while it runs)")]
    Busy { dir: PathBuf, holder: String },
    #[error("cannot lock the data dir {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the data dir's lock for `what` (e.g. "server", "import"), creating the dir if needed.
pub fn lock(data_dir: &Path, what: &str) -> Result<DataDirLock, LockError> {
    let io = |source| LockError::Io {
        dir: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_dir.join(LOCK_FILE))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Busy {
                dir: data_dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{what}, pid {}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_who_holds_it_and_a_dropped_lock_frees_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), "server").unwrap();
        let err = lock(dir.path(), "import").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("in use by another Tandem process"),
            "{message}"
        );
        assert!(
            message.contains(&format!("server, pid {}", std::process::id())),
            "{message}"
        );
        drop(held);
        lock(dir.path(), "import").unwrap();
    }
}
