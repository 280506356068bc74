//! The long-poll beside the beat (`GET /api/agent/watch`): one request held open by the
//! core until something for this node changes; then the beat loop is woken to beat at
//! once, and the beat reply carries the change. The watch never carries state and never
//! blocks a beat (its own task, its own connection): any error or early cut (a proxy
//! closing long requests, a core restart) only means "beat normally, retry the watch with
//! backoff". `since` survives errors, so a change made while the watch was down answers
//! the next one at once; a restarted core (new `boot`) does too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::client::CoreClient;
use crate::credentials::Credentials;

/// Retry ceiling after errors; a watch cut early repeatedly degrades to the plain beat.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Runs for the agent's lifetime; `wake` is notified on every change.
pub async fn run(client: Arc<CoreClient>, creds: Credentials, hold: Duration, wake: Arc<Notify>) {
    let mut since: Option<(u64, String)> = None;
    let mut backoff = Backoff::new(Duration::from_secs(1), RETRY_MAX);
    let mut failing = false;
    let mut hold_now = hold;
    let mut answered_in_a_row = 0u32;
    loop {
        let asked = Instant::now();
        let current = since.as_ref().map(|(c, b)| (*c, b.as_str()));
        match client.watch(&creds, current, hold_now).await {
            Ok(answer) => {
                if answer.changed {
                    tracing::debug!(counter = answer.counter, "core signalled a change");
                    wake.notify_one();
                }
                if failing {
                    tracing::debug!("watch answering again");
                    failing = false;
                }
                // An unchanged answer well under a second means something answers
                // long-polls at once (the core holds at least 1 s).
                let cut_early = since.is_some()
                    && !answer.changed
                    && asked.elapsed() < Duration::from_millis(900);
                since = Some((answer.counter, answer.boot));
                if cut_early {
                    // Do not spin on it.
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                backoff.reset();
                answered_in_a_row = answered_in_a_row.saturating_add(1);
                if hold_now < hold && answered_in_a_row >= 50 {
                    // Try longer holds again now and then: the path may have changed.
                    hold_now = (hold_now * 2).min(hold);
                    answered_in_a_row = 0;
                }
            }
            Err(e) => {
                answered_in_a_row = 0;
                let open_for = asked.elapsed();
                if !failing {
                    tracing::debug!(error = %e, open_ms = open_for.as_millis() as u64,
                        "watch failed; changes wait for the next beat meanwhile");
                    failing = true;
                }
                if let Some(shorter) = shorter_hold(hold_now, open_for) {
                    // Cut while held: a proxy ends requests idle this long. Hold for less
                    // than that from now on, and ask again at once.
                    tracing::info!(
                        hold_secs = shorter.as_secs(),
                        "the watch was cut after {} ms; holding it for less from now on",
                        open_for.as_millis()
                    );
                    hold_now = shorter;
                    continue;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// When a held watch failed after being open at least 2 s (a cut, not a refusal), the
/// hold to use instead: half of what got through, at least 1 s; None when it is not
/// shorter than now (a plain outage: back off instead).
fn shorter_hold(hold: Duration, open_for: Duration) -> Option<Duration> {
    if open_for < Duration::from_secs(2) || open_for >= hold {
        return None;
    }
    let shorter = Duration::from_secs((open_for.as_secs() / 2).max(1));
    (shorter < hold).then_some(shorter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_watch_is_held_for_less_and_an_outage_backs_off() {
        let s = Duration::from_secs;
        assert_eq!(shorter_hold(s(25), s(10)), Some(s(5)));
        assert_eq!(shorter_hold(s(25), Duration::from_millis(2500)), Some(s(1)));
        assert_eq!(
            shorter_hold(s(25), Duration::from_millis(300)),
            None,
            "refused at once"
        );
        assert_eq!(
            shorter_hold(s(5), Duration::from_millis(5200)),
            None,
            "timed out whole"
        );
        assert_eq!(shorter_hold(s(1), Duration::from_millis(2100)), None);
    }
}
