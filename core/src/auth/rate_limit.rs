//! Per-source-IP token buckets for login attempts. In memory on purpose: a restart
//! forgives, and the table is bounded so a spray of source addresses cannot grow it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most; past it, full (idle) buckets are dropped first.
const MAX_TRACKED: usize = 10_000;

pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(burst: u32, per_minute: u32) -> RateLimiter {
        RateLimiter {
            burst: f64::from(burst),
            per_sec: f64::from(per_minute) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `ip`. `Err(wait)` says how long until the next is allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            buckets.retain(|_, b| refill(*b, now, burst, per_sec).tokens < burst);
            if buckets.len() >= MAX_TRACKED {
                // Still full of active attackers: refuse rather than grow without bound.
                return Err(Duration::from_secs(60));
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        *bucket = refill(*bucket, now, self.burst, self.per_sec);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_sec;
            Err(Duration::from_secs_f64(wait.max(0.0)))
        }
    }
}

fn refill(b: Bucket, now: Instant, burst: f64, per_sec: f64) -> Bucket {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    Bucket {
        tokens: (b.tokens + elapsed * per_sec).min(burst),
        at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_ip() {
        let rl = RateLimiter::new(3, 60);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rl.check_at(a, t0).is_ok());
        }
        let wait = rl.check_at(a, t0).expect_err("limited");
        assert!(wait <= Duration::from_secs(1));
        assert!(rl.check_at(b, t0).is_ok(), "other IPs unaffected");
        assert!(rl.check_at(a, t0 + Duration::from_millis(1100)).is_ok());
    }
}
