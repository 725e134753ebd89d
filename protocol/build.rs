//! Names the build (`TANDEM_BUILD`): `<commit time in seconds>-<short commit hash>` from git,
//! or the value of `TANDEM_BUILD` when set, or `0-<crate version>` outside a git checkout. The
//! page, its worker and the other tabs' workers compare it (docs/protocol.md, "Builds").

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TANDEM_BUILD");
    let build = std::env::var("TANDEM_BUILD")
        .ok()
        .filter(|b| !b.is_empty())
        .or_else(|| git(&["log", "-1", "--format=%ct-%h"]))
        .unwrap_or_else(|| format!("0-{}", env!("CARGO_PKG_VERSION")));
    println!("cargo:rustc-env=TANDEM_BUILD={build}");
    // Named again when the checkout moves to another commit.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            let path = format!("{dir}/{file}");
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
