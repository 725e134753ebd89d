//! The installable, offline app (ARCHITECTURE.md "Offline"): the service worker at `/sw.js`,
//! named after this build and listing the site's files to keep, the offline shell at
//! `/shell.html` that it answers navigations with when the server cannot be reached, and the
//! scripts that start the page from that shell (`/mount.js`) and the page's worker
//! (`/worker.js`), which name the files they load by their content.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::files::SiteFiles;

/// The service worker's code; the build's name and the file list are filled in at start.
const SERVICE_WORKER: &str = include_str!("../assets/sw.js");
/// The offline shell's script; the page's files' URLs are filled in at start.
const MOUNT: &str = include_str!("../assets/mount.js");
/// The worker's bootstrap; its files' URLs are filled in at start.
const WORKER: &str = include_str!("../assets/worker.js");

/// The build this server names in its answers and its service worker: this binary's, or for
/// tests of the update path only, `TANDEM_TEST_BUILD` (a server that pretends to be a newer
/// deploy without a second build; never set it in production: pages would offer an update
/// forever).
pub fn served_build() -> &'static str {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILD.get_or_init(|| {
        let test = std::env::var("TANDEM_TEST_BUILD")
            .ok()
            .map(|b| url_safe(&b))
            .filter(|b| !b.is_empty());
        test.unwrap_or_else(|| url_safe(tandem_protocol::BUILD))
    })
}

/// The offline shell's path (also in the service worker).
pub const SHELL_PATH: &str = "/shell.html";
/// Its script's path.
pub const MOUNT_PATH: &str = "/mount.js";
/// The worker's bootstrap (the page starts it as `/worker.js?account=…&build=…`).
pub const WORKER_PATH: &str = "/worker.js";

/// The URLs the server's pages name the page's files by (their content's, kept for good).
pub fn page_urls(files: &SiteFiles) -> app::SiteUrls {
    let plain = app::SiteUrls::plain();
    app::SiteUrls {
        script: files.url(&plain.script),
        wasm: files.url(&plain.wasm),
        stylesheet: files.url(&plain.stylesheet),
    }
}

/// `url` naming `build` too (`?v=`): the service worker answers it from that build's copies.
fn of_build(url: &str, build: &str) -> String {
    let joint = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joint}v={build}")
}

/// What `/sw.js`, `/shell.html`, `/mount.js` and `/worker.js` answer, made once at start.
#[derive(Debug)]
pub struct Pwa {
    service_worker: bytes::Bytes,
    shell: bytes::Bytes,
    mount: bytes::Bytes,
    worker: bytes::Bytes,
}

impl Pwa {
    pub fn new(files: &SiteFiles) -> Self {
        let build = served_build();
        let page = page_urls(files);
        Self {
            service_worker: service_worker(build, &files.digest(), &precache(files)).into(),
            shell: app::offline_shell(
                &of_build(&page.stylesheet, build),
                &of_build(MOUNT_PATH, build),
            )
            .into(),
            mount: MOUNT
                .replace("__TANDEM_PAGE_JS__", &of_build(&page.script, build))
                .replace("__TANDEM_PAGE_WASM__", &of_build(&page.wasm, build))
                .replace(
                    "__TANDEM_KEEP_INSTALL_OFFER__",
                    app::pwa::KEEP_INSTALL_OFFER,
                )
                .into(),
            // The page's build goes on at run time (the page names it when it starts the
            // worker: docs/protocol.md "Builds").
            worker: WORKER
                .replace(
                    "__TANDEM_WORKER_JS__",
                    &files.url("/worker/tandem_worker.js"),
                )
                .replace(
                    "__TANDEM_WORKER_WASM__",
                    &files.url("/worker/tandem_worker_bg.wasm"),
                )
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

    pub fn worker(&self) -> Response {
        respond(self.worker.clone(), "text/javascript; charset=utf-8")
    }
}

fn respond(body: bytes::Bytes, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What the service worker keeps for offline use: the shell, the scripts made here and every
/// site file.
fn precache(files: &SiteFiles) -> Vec<String> {
    let mut urls = vec![
        SHELL_PATH.to_string(),
        MOUNT_PATH.to_string(),
        WORKER_PATH.to_string(),
    ];
    urls.extend(
        files
            .paths()
            .into_iter()
            .filter(|path| !urls.iter().any(|made| made == path))
            .map(str::to_string)
            .collect::<Vec<_>>(),
    );
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

    #[test]
    fn the_shell_and_the_scripts_name_the_files_by_their_content_and_build() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "pkg/tandem.js",
            "pkg/tandem.wasm",
            "pkg/tandem.css",
            "worker/tandem_worker.js",
            "worker/tandem_worker_bg.wasm",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file.as_bytes()).unwrap();
        }
        let files = SiteFiles::load(dir.path()).unwrap();
        let pwa = Pwa::new(&files);
        let text = |b: &bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
        let build = served_build();
        let page = page_urls(&files);
        for url in [&page.script, &page.wasm, &page.stylesheet] {
            assert!(url.contains("?h="), "{url}");
        }
        let mount = text(&pwa.mount);
        assert!(
            mount.contains(&format!("from \"{}&v={build}\"", page.script)),
            "{mount}"
        );
        assert!(
            mount.contains(&format!("\"{}&v={build}\"", page.wasm)),
            "{mount}"
        );
        assert!(mount.contains(app::pwa::KEEP_INSTALL_OFFER), "{mount}");
        assert!(!mount.contains("__TANDEM"), "{mount}");
        let shell = text(&pwa.shell);
        assert!(
            shell.contains(&format!("href=\"{}&amp;v={build}\"", page.stylesheet))
                || shell.contains(&format!("href=\"{}&v={build}\"", page.stylesheet)),
            "{shell}"
        );
        assert!(shell.contains(&format!("/mount.js?v={build}")), "{shell}");
        let worker = text(&pwa.worker);
        assert!(
            worker.contains(&format!(
                "ofBuild(\"{}\")",
                files.url("/worker/tandem_worker.js")
            )),
            "{worker}"
        );
        assert!(
            worker.contains(&format!(
                "ofBuild(\"{}\")",
                files.url("/worker/tandem_worker_bg.wasm")
            )),
            "{worker}"
        );
        assert!(!format!("{mount}{shell}{worker}").contains("__TANDEM"));
        // The made scripts are kept for offline use, once each.
        let kept = precache(&files);
        for made in [SHELL_PATH, MOUNT_PATH, WORKER_PATH] {
            assert_eq!(kept.iter().filter(|u| *u == made).count(), 1, "{made}");
        }
    }
}
