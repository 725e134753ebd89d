//! The installable, offline app (ARCHITECTURE.md "Offline"): the service worker at `/sw.js`,
//! named after this build and listing the site's files to keep, and the offline shell at
//! `/shell.html` that it answers navigations with when the server cannot be reached.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::files::SiteFiles;

/// The service worker's code; the build's name and the file list are filled in at start.
const SERVICE_WORKER: &str = include_str!("../assets/sw.js");
/// The offline shell's script; the build's name is filled in at start.
const MOUNT: &str = include_str!("../assets/mount.js");

/// The build this server names in its answers and its service worker: this binary's, or for
/// tests of the update path only, `TANDEM_TEST_BUILD` (a server that pretends to be a newer
/// deploy without a second build; never set it in production: pages would offer an update
/// forever).
pub fn served_build() -> &'static str {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILD.get_or_init(|| {
        std::env::var("TANDEM_TEST_BUILD")
            .ok()
            .map(|b| url_safe(&b))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| tandem_protocol::BUILD.to_string())
    })
}

/// The offline shell's path (also in the service worker).
pub const SHELL_PATH: &str = "/shell.html";
/// Its script's path.
pub const MOUNT_PATH: &str = "/mount.js";

/// What `/sw.js` and `/shell.html` answer, made once at start.
#[derive(Debug)]
pub struct Pwa {
    service_worker: bytes::Bytes,
    shell: bytes::Bytes,
    mount: bytes::Bytes,
}

impl Pwa {
    pub fn new(files: &SiteFiles) -> Self {
        Self {
            service_worker: service_worker(served_build(), &files.digest(), &precache(files))
                .into(),
            shell: app::offline_shell(served_build()).into(),
            mount: MOUNT
                .replace("__TANDEM_BUILD__", &url_safe(served_build()))
                .into(),
        }
    }

    pub fn service_worker(&self) -> Response {
        // Revalidated on every check (browsers also skip the HTTP cache for it after 24 h).
        respond(
            self.service_worker.clone(),
            "text/javascript; charset=utf-8",
        )
    }

    pub fn shell(&self) -> Response {
        respond(self.shell.clone(), "text/html; charset=utf-8")
    }

    pub fn mount(&self) -> Response {
        respond(self.mount.clone(), "text/javascript; charset=utf-8")
    }
}

fn respond(body: bytes::Bytes, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What the service worker keeps for offline use: the shell and every site file.
fn precache(files: &SiteFiles) -> Vec<String> {
    let mut urls = vec![SHELL_PATH.to_string(), MOUNT_PATH.to_string()];
    urls.extend(files.paths().into_iter().map(str::to_string));
    urls
}

/// `build` as a URL query value (a build's name is digits, letters and dashes; anything else
/// is dropped rather than trusted).
fn url_safe(build: &str) -> String {
    build
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect()
}

/// The service worker's code for `build`, keeping `urls` (whose contents `digest` names).
fn service_worker(build: &str, digest: &str, urls: &[String]) -> String {
    let list = serde_json::to_string(urls).unwrap_or_else(|_| "[]".into());
    let list = list.trim_start_matches('[').trim_end_matches(']');
    let build = serde_json::to_string(build).unwrap_or_else(|_| "\"unknown\"".into());
    SERVICE_WORKER
        .replace("\"__TANDEM_BUILD__\"", &build)
        .replace("__TANDEM_PRECACHE__", list)
        .replace("__TANDEM_FILES__", &url_safe(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_worker_names_its_build_and_the_files_to_keep() {
        let code = service_worker(
            "123-abc",
            "d1g35t",
            &["/shell.html".into(), "/pkg/a.js".into()],
        );
        assert!(code.contains(r#"const BUILD = "123-abc";"#), "{code}");
        assert!(
            code.contains(r#"const PRECACHE = ["/shell.html","/pkg/a.js"];"#),
            "{code}"
        );
        assert!(
            code.contains(r#"const CACHE = `tandem-${BUILD}-d1g35t`;"#),
            "{code}"
        );
        assert!(!code.contains("__TANDEM"));
    }
}
