//! Who the site is and who is asking: the Host check against DNS rebinding (421), the site's
//! own origin for the Origin check, the client's address behind trusted proxies, and whether
//! cookies must be Secure. Pure functions of the configuration and the request's headers, so
//! every rule is unit-tested.

use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap};
use ipnet::IpNet;

/// The public face of the server (CONTRACT.md "Serving").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Site {
    /// `--public-url`: scheme, host and port people use (`https://todo.example.org`).
    pub public_url: Option<PublicUrl>,
    /// `--trusted-proxy`: only requests from these addresses may name the client in
    /// X-Forwarded-For.
    pub trusted_proxies: Vec<IpNet>,
}

/// A parsed public URL: its origin (`scheme://host[:port]`) and host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub origin: String,
    pub host: String,
    pub https: bool,
}

impl std::str::FromStr for PublicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text:?}: the public URL is http:// or https://"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("{text:?} names no host"))?
            .to_ascii_lowercase();
        if url.path() != "/" || url.query().is_some() {
            return Err(format!(
                "{text:?}: the public URL is an origin (Tandem serves from /), with no path or query"
            ));
        }
        Ok(Self {
            origin: url.origin().ascii_serialization(),
            host,
            https: url.scheme() == "https",
        })
    }
}

/// The host name of a `Host` header value (no port; IPv6 without brackets), lowercased.
pub fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return Some(inside.to_ascii_lowercase());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Loopback names: `localhost` (and `*.localhost`), 127.0.0.0/8 and ::1.
pub fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Site {
    /// Whether a request with this `Host` may be served: the public URL's host or a loopback
    /// name; anything else is answered 421 (a page from another name that resolves here —
    /// DNS rebinding — must not read the API with its own origin).
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(name) = host.and_then(host_name) else {
            return false;
        };
        is_loopback_name(&name) || self.public_url.as_ref().is_some_and(|u| u.host == name)
    }

    /// Whether `origin` (an Origin header) is the site's own: the public URL's origin, or the
    /// origin of the request's own (allowed) loopback Host.
    pub fn own_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self
            .public_url
            .as_ref()
            .is_some_and(|u| u.origin.eq_ignore_ascii_case(&origin))
        {
            return true;
        }
        let Some(host) = host.map(str::trim) else {
            return false;
        };
        if !host_name(host).is_some_and(|n| is_loopback_name(&n)) {
            return false;
        }
        let host = host.to_ascii_lowercase();
        origin == format!("http://{host}") || origin == format!("https://{host}")
    }

    /// Whether cookies get `Secure` (the public URL is https).
    pub fn secure(&self) -> bool {
        self.public_url.as_ref().is_some_and(|u| u.https)
    }

    /// The origin links are made with (invite links): the public URL's, else the request's
    /// own loopback Host over http.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.origin.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        format!("http://{host}")
    }

    /// Whether any proxy is trusted (then "loopback" says nothing about the client).
    pub fn behind_proxy(&self) -> bool {
        !self.trusted_proxies.is_empty()
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy — then the
    /// right-most X-Forwarded-For address that is not itself a trusted proxy (left of it, a
    /// client can write anything).
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip();
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let mut client = peer;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !trusted(&ip) {
                break;
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn site(url: Option<&str>, proxies: &[&str]) -> Site {
        Site {
            public_url: url.map(|u| u.parse().unwrap()),
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn hosts_are_the_public_one_or_loopback() {
        let s = site(Some("https://todo.example.org"), &[]);
        for ok in [
            "todo.example.org",
            "TODO.example.org:443",
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "app.localhost",
        ] {
            assert!(s.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "todo.example.org.evil.example",
            "192.168.1.5:3000",
            "",
            "[::1",
            "a:b:c",
        ] {
            assert!(!s.host_allowed(Some(bad)), "{bad}");
        }
        assert!(!s.host_allowed(None));
        assert!(!site(None, &[]).host_allowed(Some("todo.example.org")));
    }

    #[test]
    fn origins_are_the_public_one_or_the_loopback_host_itself() {
        let s = site(Some("https://todo.example.org"), &[]);
        assert!(s.own_origin("https://todo.example.org", Some("todo.example.org")));
        assert!(!s.own_origin("http://todo.example.org", Some("todo.example.org")));
        assert!(!s.own_origin("https://evil.example", Some("todo.example.org")));
        assert!(s.own_origin("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(!s.own_origin("http://127.0.0.1:4000", Some("127.0.0.1:3000")));
        assert!(!s.own_origin("http://evil.example", Some("evil.example")));
        assert!(!s.own_origin("null", Some("127.0.0.1:3000")));
    }

    #[test]
    fn public_urls_are_origins() {
        assert!("ftp://x".parse::<PublicUrl>().is_err());
        assert!("https://x.org/app".parse::<PublicUrl>().is_err());
        let u: PublicUrl = "https://X.org:8443/".parse().unwrap();
        assert_eq!(u.origin, "https://x.org:8443");
        assert_eq!(u.host, "x.org");
        assert!(u.https);
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"),
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let none = site(None, &[]);
        assert_eq!(
            none.client_ip(Some(peer), &headers),
            Some(peer.ip()),
            "no proxy trusted: the peer"
        );
        let proxied = site(None, &["10.0.0.0/8"]);
        assert_eq!(
            proxied.client_ip(Some(peer), &headers),
            Some("203.0.113.9".parse().unwrap()),
            "the right-most untrusted hop, not the client-written left one"
        );
        let outside: SocketAddr = "198.51.100.7:1".parse().unwrap();
        assert_eq!(
            proxied.client_ip(Some(outside), &headers),
            Some(outside.ip()),
            "a peer outside the trusted range cannot name another client"
        );
    }
}
