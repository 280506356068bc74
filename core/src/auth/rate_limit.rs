//! Per-source token buckets for login attempts. In memory on purpose: a restart
//! forgives, and the table is bounded so a spray of source addresses cannot grow it.
//!
//! A source is an IPv4 address or an IPv6 /64 (one host usually holds a whole /64, so
//! keying by full IPv6 address would give it 2^64 buckets). A full table never refuses a
//! newcomer: buckets that have refilled are dropped first, then the least recently used,
//! so a spray of distinct addresses costs each other source nothing but, at worst, its
//! bucket's memory of old attempts.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sources tracked at most.
const MAX_TRACKED: usize = 10_000;

/// The bucket key: an IPv4 address, or the /64 of an IPv6 one (IPv4-mapped IPv6
/// addresses count as their IPv4 address).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

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
        self.check_capped(ip, now, MAX_TRACKED)
    }

    fn check_capped(&self, ip: IpAddr, now: Instant, cap: usize) -> Result<(), Duration> {
        let ip = source_key(ip);
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= cap && !buckets.contains_key(&ip) {
            let (burst, per_sec) = (self.burst, self.per_sec);
            // A refilled bucket remembers nothing: dropping it changes no answer.
            buckets.retain(|_, b| refill(*b, now, burst, per_sec).tokens < burst);
            if buckets.len() >= cap {
                // Still full: forget the source heard from least recently, never refuse
                // the newcomer (that would lock out every new client during a spray).
                let oldest = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    buckets.remove(&k);
                }
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

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let rl = RateLimiter::new(2, 1);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(rl.check_at(a, t0).is_ok());
        assert!(rl.check_at(b, t0).is_ok());
        assert!(rl.check_at(a, t0).is_err(), "same /64 shares one bucket");
        assert!(
            rl.check_at(other, t0).is_ok(),
            "another /64 is another source"
        );
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().expect("ip");
        assert_eq!(
            source_key(mapped),
            "10.0.0.9".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn a_full_table_evicts_instead_of_refusing() {
        let rl = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        let cap = 100;
        // A spray of distinct sources, each spending its whole burst (none refills).
        for i in 0..(cap as u32 * 3) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let at = t0 + Duration::from_millis(u64::from(i));
            assert!(rl.check_capped(ip, at, cap).is_ok(), "source {i} refused");
        }
        let now = t0 + Duration::from_millis(400);
        let fresh: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(
            rl.check_capped(fresh, now, cap).is_ok(),
            "a fresh source gets in"
        );
        let len = rl.buckets.lock().expect("lock").len();
        assert!(len <= cap, "table bounded: {len}");
        // The most recent sprayer is still remembered (least recently used went first).
        let recent = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + cap as u32 * 3 - 1));
        assert!(rl.check_capped(recent, now, cap).is_err());
    }
}
