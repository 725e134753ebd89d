//! The page's calls to the accounts API (CONTRACT.md "Accounts, workspaces, access"): plain
//! JSON over `fetch`, same-origin (the session cookie goes along). Answers are the status and
//! the JSON body; errors carry the contract's `{code, message}`.

use serde_json::Value;

/// An answer: the HTTP status and its JSON body (`null` when there is none).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The contract error's message, or a description of the status.
    pub fn message(&self) -> String {
        self.body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {}", self.status))
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// `method path` with `body` as JSON (none: no body).
pub async fn call(method: &str, path: &str, body: Option<Value>) -> Result<Answer, String> {
    call_as(method, path, body, None).await
}

/// [`call`], naming the account the page belongs to (`X-Tandem-User`): the server refuses it
/// for a session of another account.
pub async fn call_as(
    method: &str,
    path: &str,
    body: Option<Value>,
    account: Option<&str>,
) -> Result<Answer, String> {
    #[cfg(feature = "hydrate")]
    {
        browser::call(method, path, body, account).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, path, body, account);
        Err("not in a browser".into())
    }
}

/// A same-origin path to go back to after signing in: a path of this site, never another
/// origin (`//evil.example`, `/\evil.example`, `https://...`); `/` otherwise.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
                && !n.starts_with("/api/") =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

/// Goes to `path` with a full page load (the server renders it for the account, and the
/// worker starts for it).
pub fn go(path: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(window) = web_sys::window() {
        let _ = window.location().assign(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

#[cfg(feature = "hydrate")]
mod browser {
    use serde_json::Value;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    use super::Answer;

    pub async fn call(
        method: &str,
        path: &str,
        body: Option<Value>,
        account: Option<&str>,
    ) -> Result<Answer, String> {
        let window = web_sys::window().ok_or("no window")?;
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        let headers = web_sys::Headers::new().map_err(|e| format!("{e:?}"))?;
        if let Some(account) = account {
            headers
                .set("x-tandem-user", account)
                .map_err(|e| format!("{e:?}"))?;
        }
        if let Some(body) = body {
            headers
                .set("content-type", "application/json")
                .map_err(|e| format!("{e:?}"))?;
            init.set_body(&wasm_bindgen::JsValue::from_str(&body.to_string()));
        }
        init.set_headers(&headers);
        init.set_credentials(web_sys::RequestCredentials::SameOrigin);
        let response: web_sys::Response =
            JsFuture::from(window.fetch_with_str_and_init(path, &init))
                .await
                .map_err(|_| "the server cannot be reached".to_string())?
                .unchecked_into();
        let status = response.status();
        let text = JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
            .await
            .map_err(|e| format!("{e:?}"))?
            .as_string()
            .unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_gone_back_to() {
        assert_eq!(safe_next(Some("/lists/abc?x=1")), "/lists/abc?x=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/api/auth/me",
            "/a\r\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
