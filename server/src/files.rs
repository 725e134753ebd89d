//! The site's static files — the page's wasm, JS and CSS, the worker's files, the icons, the
//! web app manifest — held in memory and served with an ETag (a `304 Not Modified` for a
//! revalidation that matches), brotli or gzip as the browser accepts when the build
//! precompressed them (`cargo leptos build --release --precompress` writes `x.br` and `x.gz`
//! beside `x`): nothing is compressed per request.
//!
//! Pages name the big files by their content (`/pkg/tandem.wasm?h=<hash>`, [`SiteFiles::url`]):
//! such a request is answered `immutable` for a year, so a browser or proxy keeps it without
//! asking again, and a new build's file has a new URL. A request without the hash, or with
//! another file's (a page of an earlier build asking after a deploy), gets the current file
//! with `no-cache` — the tab protocol's build check stops mixed versions — never a cache entry
//! that would hold the wrong bytes under a hash.
//!
//! A release binary carries the site inside it (feature `embed-site`: `rust-embed` over
//! cargo-leptos's `target/site`, built before the server), so a self-hoster runs one file from
//! any directory. `LEPTOS_SITE_ROOT` / `--site-root` naming an existing directory wins (for
//! development, and for a build without the feature). The files are few and small (~5 MB):
//! they are read once at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};

/// Where the files came from (`server doctor` and the start-up log say it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Directory(PathBuf),
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Directory(dir) => write!(f, "{}", dir.display()),
            Origin::Embedded => f.write_str("built into this binary"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("the site root {path} cannot be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no page to serve: {0} has no pkg/{1}.wasm (run `make build`, or set LEPTOS_SITE_ROOT to a built site)"
    )]
    Missing(String, &'static str),
}

/// One file, ready to send.
#[derive(Debug)]
struct Asset {
    bytes: bytes::Bytes,
    /// Its content's hash (hex), which its ETag and its versioned URL carry.
    hash: String,
    etag: HeaderValue,
    content_type: HeaderValue,
    /// Its brotli and gzip forms, when the build made them and they are smaller.
    brotli: Option<bytes::Bytes>,
    gzip: Option<bytes::Bytes>,
}

/// A precompressed form's suffix and `Content-Encoding`.
const ENCODINGS: [(&str, &str); 2] = [(".br", "br"), (".gz", "gzip")];

/// The site's files by URL path (`/pkg/tandem.wasm`).
#[derive(Debug)]
pub struct SiteFiles {
    files: HashMap<String, Asset>,
    origin: Origin,
}

impl SiteFiles {
    /// The directory's files when it exists, else the ones built in (when this binary has
    /// them).
    pub fn load(root: &Path) -> Result<Self, FilesError> {
        if root.is_dir() {
            Self::from_dir(root)
        } else {
            Ok(Self::embedded())
        }
    }

    /// Why the page cannot start from these files (the page's wasm is not among them), if so.
    pub fn missing_page(&self, output_name: &'static str) -> Option<FilesError> {
        if self.get(&format!("/pkg/{output_name}.wasm")).is_some() {
            return None;
        }
        let origin = match &self.origin {
            Origin::Directory(dir) => dir.display().to_string(),
            Origin::Embedded => "this binary (built without the site)".into(),
        };
        Some(FilesError::Missing(origin, output_name))
    }

    /// Every file under `root`.
    pub fn from_dir(root: &Path) -> Result<Self, FilesError> {
        let mut files = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FilesError::Read { path, source }
        };
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
                let entry = entry.map_err(read_err(&dir))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(read_err(&path))?;
                if kind.is_dir() {
                    dirs.push(path);
                } else if kind.is_file() {
                    let Some(url) = url_path(root, &path) else {
                        continue;
                    };
                    if shipped(&url) {
                        let bytes = std::fs::read(&path).map_err(read_err(&path))?;
                        let modified = entry.metadata().and_then(|m| m.modified()).ok();
                        files.push((url, bytes, modified));
                    }
                }
            }
        }
        Ok(Self {
            files: assets(files),
            origin: Origin::Directory(root.to_path_buf()),
        })
    }

    /// The files built into this binary (none without the `embed-site` feature).
    pub fn embedded() -> Self {
        #[cfg(feature = "embed-site")]
        let files = embedded::Site::iter()
            .filter_map(|name| {
                let url = format!("/{name}");
                let file = embedded::Site::get(&name)?;
                shipped(&url).then(|| (url, file.data.into_owned(), None))
            })
            .collect();
        #[cfg(not(feature = "embed-site"))]
        let files = Vec::new();
        Self {
            files: assets(files),
            origin: Origin::Embedded,
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    fn get(&self, path: &str) -> Option<&Asset> {
        self.files.get(path)
    }

    /// The URL paths of every file, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self.files.keys().map(String::as_str).collect();
        paths.sort_unstable();
        paths
    }

    /// A name for these exact files (a hash of every path and content hash): the service
    /// worker's cache is named after it, so new files are fetched again even when the build's
    /// name is the same (a rebuild of uncommitted changes).
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for path in self.paths() {
            if let Some(asset) = self.get(path) {
                hash.update(path.as_bytes());
                hash.update(asset.etag.as_bytes());
            }
        }
        hash.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The URL that names `path`'s current content (`/pkg/tandem.wasm?h=<hash>`), answered
    /// `immutable`; `path` as it is for a file that is not here.
    pub fn url(&self, path: &str) -> String {
        match self.get(path) {
            Some(asset) => format!("{path}?h={}", asset.hash),
            None => path.to_string(),
        }
    }

    /// The answer for a GET or HEAD of `path` (with the URL's `query`): the file, or `304`
    /// when `If-None-Match` names its ETag; `None` when there is no such file.
    pub fn respond(
        &self,
        path: &str,
        query: Option<&str>,
        request: &HeaderMap,
        head: bool,
    ) -> Option<Response> {
        let asset = self.get(path)?;
        let named = query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair.strip_prefix("h=") == Some(asset.hash.as_str()))
        });
        let (bytes, encoding) = asset.encoded(request);
        // Each form has its own tag: a cache must not answer a brotli copy to a browser that
        // asked for none.
        let etag = match encoding {
            Some(e) => HeaderValue::from_str(&format!(
                "{}-{e}\"",
                asset.etag.to_str().unwrap_or("\"0\"").trim_end_matches('"')
            ))
            .unwrap_or_else(|_| asset.etag.clone()),
            None => asset.etag.clone(),
        };
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
            });
        let mut response = if fresh {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else if head {
            Response::new(Body::empty())
        } else {
            Response::new(Body::from(bytes.clone()))
        };
        let h = response.headers_mut();
        h.insert(header::ETAG, etag);
        h.insert(header::CONTENT_TYPE, asset.content_type.clone());
        if asset.brotli.is_some() || asset.gzip.is_some() {
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
        }
        // A URL naming this content never changes meaning: kept a year without asking. Any
        // other is revalidated each time (a `304` for an unchanged file). (Hashes go in the
        // query, not the file name: cargo-leptos's `hash-files` names files from a list read
        // beside the executable, which a one-file binary has not.)
        let cache = if named {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        Some(response)
    }
}

/// A site file: its URL path, bytes, and when it was written (for files read from a directory).
type SiteFile = (String, Vec<u8>, Option<std::time::SystemTime>);

/// The served files: `x.br` and `x.gz` become forms of `x` (kept when smaller than it and not
/// older — a form left by an earlier build beside a file built since is stale), never files of
/// their own.
fn assets(files: Vec<SiteFile>) -> HashMap<String, Asset> {
    let (compressed, plain): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(url, _, _)| ENCODINGS.iter().any(|(suffix, _)| url.ends_with(suffix)));
    let mut written = HashMap::new();
    let mut assets: HashMap<String, Asset> = plain
        .into_iter()
        .map(|(url, bytes, modified)| {
            written.insert(url.clone(), modified);
            let asset = Asset::new(&url, bytes);
            (url, asset)
        })
        .collect();
    for (url, bytes, modified) in compressed {
        for (suffix, encoding) in ENCODINGS {
            let Some(base) = url.strip_suffix(suffix) else {
                continue;
            };
            let stale = matches!(
                (modified, written.get(base).copied().flatten()),
                (Some(form), Some(file)) if form < file
            );
            let Some(asset) = assets.get_mut(base) else {
                continue;
            };
            if bytes.len() < asset.bytes.len() && !stale {
                let form = Some(bytes::Bytes::from(bytes.clone()));
                match encoding {
                    "br" => asset.brotli = form,
                    _ => asset.gzip = form,
                }
            }
        }
    }
    assets
}

impl Asset {
    /// The form to send for a request's `Accept-Encoding` (brotli, then gzip, then as is).
    fn encoded(&self, request: &HeaderMap) -> (&bytes::Bytes, Option<&'static str>) {
        let accepts = |wanted: &str| {
            request
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|part| {
                    let mut pieces = part.split(';');
                    let name = pieces.next().unwrap_or("").trim();
                    let refused = pieces.any(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.trim().parse::<f32>().ok())
                            .is_some_and(|q| q == 0.0)
                    });
                    name.eq_ignore_ascii_case(wanted) && !refused
                })
        };
        match (&self.brotli, &self.gzip) {
            (Some(br), _) if accepts("br") => (br, Some("br")),
            (_, Some(gz)) if accepts("gzip") => (gz, Some("gzip")),
            _ => (&self.bytes, None),
        }
    }

    fn new(url: &str, bytes: impl Into<bytes::Bytes>) -> Self {
        let bytes = bytes.into();
        let digest = Sha256::digest(&bytes);
        let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hash}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            bytes,
            hash,
            etag,
            content_type: HeaderValue::from_static(content_type(url)),
            brotli: None,
            gzip: None,
        }
    }
}

/// `/a/b.js` for `root/a/b.js`; `None` for a name that is not UTF-8.
fn url_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let mut url = String::new();
    for part in relative.components() {
        url.push('/');
        url.push_str(part.as_os_str().to_str()?);
    }
    Some(url)
}

/// Whether a built file belongs in the served site (wasm-bindgen's TypeScript declarations do
/// not).
fn shipped(url: &str) -> bool {
    !url.ends_with(".d.ts")
}

/// The content type by extension. (The site has a handful of kinds, all listed here; a crate
/// such as mime_guess would carry a table of thousands for these.)
fn content_type(url: &str) -> &'static str {
    let ext = url.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(feature = "embed-site")]
mod embedded {
    /// cargo-leptos's built site, read at compile time (the release build makes it first).
    #[derive(rust_embed::RustEmbed)]
    #[folder = "../target/site"]
    pub struct Site;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempfile::TempDir, SiteFiles) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/tandem.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.path().join("pkg/tandem.d.ts"), b"declare").unwrap();
        std::fs::write(dir.path().join("manifest.webmanifest"), b"{}").unwrap();
        let files = SiteFiles::load(dir.path()).unwrap();
        assert!(files.missing_page("tandem").is_none());
        (dir, files)
    }

    #[test]
    fn a_directory_is_served_with_types_and_etags_and_a_match_is_not_modified() {
        let (_dir, files) = site();
        assert_eq!(files.paths(), ["/manifest.webmanifest", "/pkg/tandem.wasm"]);
        let r = files
            .respond("/pkg/tandem.wasm", None, &HeaderMap::new(), false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let etag = r.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag.clone());
        let r = files
            .respond("/pkg/tandem.wasm", None, &again, false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let mut other = HeaderMap::new();
        other.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abc\""));
        let r = files
            .respond("/pkg/tandem.wasm", None, &other, false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(files
            .respond("/pkg/tandem.d.ts", None, &HeaderMap::new(), false)
            .is_none());
        assert!(files
            .respond("/nothing", None, &HeaderMap::new(), false)
            .is_none());
    }

    #[test]
    fn a_url_naming_the_content_is_kept_a_year_and_any_other_is_revalidated() {
        let (_dir, files) = site();
        let url = files.url("/pkg/tandem.wasm");
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(path, "/pkg/tandem.wasm");
        let tag = files
            .respond(path, None, &HeaderMap::new(), false)
            .unwrap()
            .headers()[header::ETAG]
            .clone();
        assert_eq!(
            query,
            format!("h={}", tag.to_str().unwrap().trim_matches('"'))
        );
        let cache = |query: Option<&str>| {
            files
                .respond(path, query, &HeaderMap::new(), false)
                .unwrap()
                .headers()[header::CACHE_CONTROL]
                .clone()
        };
        assert_eq!(cache(Some(query)), "public, max-age=31536000, immutable");
        assert_eq!(
            cache(Some(&format!("v=123-abc&{query}"))),
            "public, max-age=31536000, immutable"
        );
        // Another build's hash (a page from before a deploy) or none: the current file,
        // revalidated, never kept under a name it does not have.
        assert_eq!(cache(Some("h=0123456789abcdef01234567")), "no-cache");
        assert_eq!(cache(Some(&format!("x{query}"))), "no-cache");
        assert_eq!(cache(None), "no-cache");
        // A file that is not here keeps its path.
        assert_eq!(files.url("/nothing.js"), "/nothing.js");
    }

    #[test]
    fn precompressed_forms_are_sent_to_who_accepts_them_with_their_own_tags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        let plain = vec![b'a'; 1000];
        std::fs::write(dir.path().join("pkg/tandem.wasm"), &plain).unwrap();
        std::fs::write(dir.path().join("pkg/tandem.wasm.br"), b"BR").unwrap();
        std::fs::write(dir.path().join("pkg/tandem.wasm.gz"), b"GZ").unwrap();
        // A form bigger than the file is not used (a PNG compresses to more than itself).
        std::fs::write(dir.path().join("icon.png"), b"png").unwrap();
        std::fs::write(dir.path().join("icon.png.gz"), b"bigger gzip").unwrap();
        // A form older than its file (left by an earlier build) is not used.
        std::fs::write(dir.path().join("app.js"), vec![b'j'; 100]).unwrap();
        std::fs::write(dir.path().join("app.js.br"), b"old").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("app.js.br"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let files = SiteFiles::load(dir.path()).unwrap();
        assert_eq!(files.paths(), ["/app.js", "/icon.png", "/pkg/tandem.wasm"]);
        let mut br = HeaderMap::new();
        br.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        let js = files.respond("/app.js", None, &br, false).unwrap();
        assert!(js.headers().get(header::CONTENT_ENCODING).is_none());
        let ask = |encodings: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(encodings).unwrap(),
            );
            files.respond("/pkg/tandem.wasm", None, &h, false).unwrap()
        };
        let body = |r: Response| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                axum::body::to_bytes(r.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .to_vec()
            })
        };
        let br = ask("gzip, deflate, br");
        assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(br.headers()[header::VARY], "accept-encoding");
        let br_tag = br.headers()[header::ETAG].clone();
        assert_eq!(body(br), b"BR");
        let gz = ask("gzip;q=1, br;q=0");
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        assert_ne!(gz.headers()[header::ETAG], br_tag);
        assert_eq!(body(gz), b"GZ");
        let none = ask("identity");
        assert!(none.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body(none), plain);
        // Revalidating the brotli copy matches only with brotli accepted.
        let mut again = HeaderMap::new();
        again.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        again.insert(header::IF_NONE_MATCH, br_tag.clone());
        let r = files
            .respond("/pkg/tandem.wasm", None, &again, false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let mut plain_again = HeaderMap::new();
        plain_again.insert(header::IF_NONE_MATCH, br_tag);
        let r = files
            .respond("/pkg/tandem.wasm", None, &plain_again, false)
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let png = files
            .respond(
                "/icon.png",
                None,
                &{
                    let mut h = HeaderMap::new();
                    h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
                    h
                },
                false,
            )
            .unwrap();
        assert!(png.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[test]
    fn a_site_without_the_page_wasm_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let files = SiteFiles::load(dir.path()).unwrap();
        let err = files.missing_page("tandem").unwrap();
        assert!(err.to_string().contains("make build"), "{err}");
    }
}
