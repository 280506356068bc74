//! The one rule for "is this node online": it beat within `offline_after_missed_beats`
//! of its own intervals, plus half an interval of slack for network jitter. Routing
//! (which nodes an edge sends traffic to) and every API view use this function, so they
//! never disagree about a node.

/// Milliseconds of silence after which a node counts as offline.
pub fn offline_after_ms(interval_ms: u64, missed_beats: u32) -> i64 {
    let ms = interval_ms
        .saturating_mul(u64::from(missed_beats))
        .saturating_add(interval_ms / 2);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Whether a node last seen at `last_seen_ms` (None: never) and beating every
/// `interval_ms` is online at `now_ms`.
pub fn is_online(
    last_seen_ms: Option<i64>,
    interval_ms: u64,
    missed_beats: u32,
    now_ms: i64,
) -> bool {
    let limit = offline_after_ms(interval_ms, missed_beats);
    last_seen_ms.is_some_and(|seen| now_ms.saturating_sub(seen) <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_until_the_missed_beats_plus_half_an_interval() {
        // 3 missed beats of 1 s + 0.5 s slack.
        assert_eq!(offline_after_ms(1000, 3), 3500);
        assert!(is_online(Some(10_000), 1000, 3, 13_500));
        assert!(!is_online(Some(10_000), 1000, 3, 13_501));
        assert!(!is_online(None, 1000, 3, 0));
        assert_eq!(offline_after_ms(u64::MAX, 3), i64::MAX);
    }
}
