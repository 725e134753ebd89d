//! New heads from every process: a connection of its own `LISTEN`s on
//! [`crate::central::HEADS_CHANNEL`] (each push's transaction sends `NOTIFY` on commit, so a
//! notice never names a head before it can be pulled), and each notice is handed to the
//! server's live hub. A lost connection is made again, after a pause that grows (with jitter,
//! capped); notices sent meanwhile are lost, so each (re)connection is reported: the caller
//! heals from the heads themselves, and clients' periodic pulls heal the rest (LESSONS.md:
//! live is never trusted alone).

use std::time::Duration;

use futures_util::StreamExt;
use tandem_events::ids::WorkspaceId;
use tokio_postgres::AsyncMessage;

use crate::central::HEADS_CHANNEL;
use crate::Database;

/// The listener's connection's `application_name`.
pub const APPLICATION_NAME: &str = "tandem heads listener";

/// The pause before connecting again: from this, doubling, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How the listener checks that its connection still carries notices: a query every
/// `every`, answered within `wait`, else the connection is dropped and made again (and the
/// owner told, so it heals). A connection can die without a reset — a proxy or NAT dropping
/// an idle flow, a frozen host — and then its socket stays open and silent: TCP keepalive
/// (two hours by default, and answered by a proxy's kernel even when the proxy forwards
/// nothing) would leave the process deaf to the others meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub every: Duration,
    pub wait: Duration,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(15),
            wait: Duration::from_secs(5),
        }
    }
}

/// What the listener tells its owner.
pub trait HeadsListener: Send + Sync + 'static {
    /// A workspace's head moved (a push in any process; [`Notice::origin`] says which).
    /// Called on the listener's task: must not block.
    fn head(&self, notice: Notice);
    /// Listening (again): notices from before may have been missed.
    fn connected(&self);
}

/// A new head, as a push's `NOTIFY` told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub workspace: WorkspaceId,
    pub head: u64,
    /// How many events the push appended.
    pub appended: u64,
    /// The [`crate::central::PgCentral::origin`] of the process that pushed (none from a
    /// build before it was sent): a process has announced its own pushes already.
    pub origin: Option<String>,
}

/// A notice's payload, `<workspace_id> <head> <appended> [<origin>]`; `None` for anything
/// else (a notice on the channel from elsewhere is ignored, never trusted).
pub fn parse_notice(payload: &str) -> Option<Notice> {
    let mut parts = payload.split(' ');
    let mut notice = Notice {
        workspace: parts.next()?.parse().ok()?,
        head: parts.next()?.parse().ok()?,
        appended: parts.next()?.parse().ok()?,
        origin: None,
    };
    if let Some(origin) = parts.next() {
        let fits = (1..=64).contains(&origin.len())
            && origin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !fits {
            return None;
        }
        notice.origin = Some(origin.to_string());
    }
    match parts.next() {
        None if notice.appended <= notice.head => Some(notice),
        _ => None,
    }
}

/// Listens until `stop` says so, connecting again whenever the connection ends.
pub async fn listen_heads(
    db: Database,
    listener: impl HeadsListener,
    heartbeat: Heartbeat,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut pause = FIRST_PAUSE;
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            ended = listen_once(&db, &listener, heartbeat) => {
                match ended {
                    // It listened before ending: start the pauses again.
                    Ok(()) => pause = FIRST_PAUSE,
                    Err(e) => tracing::warn!(error = %e, "cannot listen for new heads"),
                }
            }
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(pause)) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection's life: LISTEN, then every notice until the connection ends or misses a
/// heartbeat. `Ok` when it listened at all.
async fn listen_once(
    db: &Database,
    listener: &impl HeadsListener,
    heartbeat: Heartbeat,
) -> Result<(), crate::PgError> {
    // Named, so that it can be told apart in `pg_stat_activity`; connecting is bounded too (a
    // proxy may accept a connection and never answer it).
    let mut config = db.config().clone();
    config.application_name(APPLICATION_NAME);
    let (client, mut connection) =
        tokio::time::timeout(heartbeat.wait, config.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| crate::PgError::Unanswered(heartbeat.wait))??;
    // The connection's messages (the notices among them) are read as they come; the answers
    // to LISTEN and to the heartbeat's query arrive through the same connection, so each is
    // awaited while the messages are read (LISTEN, too, within the heartbeat's wait).
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen = format!("LISTEN {HEADS_CHANNEL}");
    if let Answer::Ended = answered(
        client.batch_execute(&listen),
        &mut messages,
        listener,
        heartbeat.wait,
    )
    .await?
    {
        return Ok(());
    }
    listener.connected();
    let mut beats = tokio::time::interval_at(
        tokio::time::Instant::now() + heartbeat.every,
        heartbeat.every,
    );
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(Ok(message)) => deliver(message, listener),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the heads listener's connection failed");
                    break;
                }
                None => break,
            },
            _ = beats.tick() => {
                let ping = client.simple_query("SELECT 1");
                match answered(ping, &mut messages, listener, heartbeat.wait).await {
                    Ok(Answer::Given) => {}
                    Ok(Answer::Ended) => break,
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            "the heads listener's connection missed a heartbeat; connecting again"
                        );
                        break;
                    }
                }
            }
        }
    }
    drop(client);
    Ok(())
}

/// How a request on the listener's connection ended.
enum Answer {
    Given,
    /// The connection ended first.
    Ended,
}

/// Awaits `request`'s answer (within `wait`) while handing on the notices that arrive
/// meanwhile.
async fn answered<T>(
    request: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    messages: &mut (impl futures_util::Stream<Item = Result<AsyncMessage, tokio_postgres::Error>>
              + Unpin),
    listener: &impl HeadsListener,
    wait: Duration,
) -> Result<Answer, crate::PgError> {
    tokio::pin!(request);
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            result = &mut request => {
                result?;
                return Ok(Answer::Given);
            }
            message = messages.next() => match message {
                Some(Ok(message)) => deliver(message, listener),
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(Answer::Ended),
            },
            _ = &mut deadline => return Err(crate::PgError::Unanswered(wait)),
        }
    }
}

/// Hands a notice on the heads channel to the owner; anything else is ignored.
fn deliver(message: AsyncMessage, listener: &impl HeadsListener) {
    if let AsyncMessage::Notification(n) = message {
        if n.channel() == HEADS_CHANNEL {
            if let Some(notice) = parse_notice(n.payload()) {
                listener.head(notice);
            }
        }
    }
}

/// `pause` ± a quarter, so that processes that lost the database together do not come back
/// in step.
fn jittered(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let quarter = pause / 4;
    let spread = quarter.as_nanos().max(1) as u64;
    pause - quarter + Duration::from_nanos(u64::from(nanos) % (2 * spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_read_strictly() {
        let ws = "0190f5a2-7c3e-7b4a-9d2e-1234567890ab";
        let read = |payload: &str| {
            parse_notice(payload).map(|n| (n.workspace.to_string(), n.head, n.appended, n.origin))
        };
        assert_eq!(
            read(&format!("{ws} 42 3")),
            Some((ws.to_string(), 42, 3, None))
        );
        assert_eq!(
            read(&format!("{ws} 42 3 4f2a-9b")),
            Some((ws.to_string(), 42, 3, Some("4f2a-9b".to_string())))
        );
        let long = "a".repeat(65);
        for bad in [
            "",
            "42",
            ws,
            &format!("{ws} 42"),
            &format!("{ws} -1 1"),
            &format!("{ws} 4 5"),
            &format!("{ws} 4 1 a b"),
            &format!("{ws} 4 1 a;b"),
            &format!("{ws} 4 1 {long}"),
            &format!("{ws} 4 1 "),
            "x 1 1",
            &format!("{ws}  1 1"),
        ] {
            assert_eq!(parse_notice(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pauses_stay_within_a_quarter() {
        for _ in 0..100 {
            let p = jittered(Duration::from_millis(400));
            assert!(
                p >= Duration::from_millis(300) && p <= Duration::from_millis(500),
                "{p:?}"
            );
        }
    }
}
