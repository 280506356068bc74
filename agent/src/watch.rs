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
    loop {
        let asked = Instant::now();
        let current = since.as_ref().map(|(c, b)| (*c, b.as_str()));
        match client.watch(&creds, current, hold).await {
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
                    // Something between us and the core ends long requests early: do
                    // not spin on it.
                    tokio::time::sleep(backoff.next_delay()).await;
                } else {
                    backoff.reset();
                }
            }
            Err(e) => {
                if !failing {
                    tracing::debug!(error = %e, "watch failed; changes wait for the next beat meanwhile");
                    failing = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
