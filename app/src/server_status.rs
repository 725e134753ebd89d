//! The `server_status` server function: the server's version and clock, so the page can show
//! that it reaches the server and how far its own clock is from the server's.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the server says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The server's package version.
    pub version: String,
    /// The server's wall clock, in ms since the Unix epoch.
    pub server_time_ms: i64,
}

/// `POST /api/status`: the server's version and clock.
#[server(endpoint = "status")]
pub async fn server_status() -> Result<StatusReport, ServerFnError> {
    Ok(StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        server_time_ms: now_ms(),
    })
}

/// This process's wall clock in ms since the Unix epoch (the browser's `Date.now()` in the page).
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The server's clock minus ours, estimated at the midpoint of the round trip.
pub fn clock_offset_ms(sent_ms: i64, received_ms: i64, server_time_ms: i64) -> i64 {
    server_time_ms - (sent_ms + (received_ms - sent_ms) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_is_measured_at_the_midpoint_of_the_round_trip() {
        assert_eq!(clock_offset_ms(1_000, 1_100, 1_050), 0);
        assert_eq!(clock_offset_ms(1_000, 1_100, 2_050), 1_000);
        assert_eq!(clock_offset_ms(1_000, 1_100, 50), -1_000);
    }

    #[tokio::test]
    #[cfg(feature = "ssr")]
    async fn reports_this_version_and_a_current_clock() {
        let before = now_ms();
        let status = server_status().await.unwrap();
        assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
        assert!(status.server_time_ms >= before && status.server_time_ms <= now_ms());
    }
}
