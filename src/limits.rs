//! Rate limiting primitives shared by sessions, rooms and the HTTP layer.

/// A token bucket driven by explicit timestamps (server ms).
///
/// Hand-rolled rather than taken from a crate because it must run on the callers' own clock:
/// room rules are pure functions of `now`, which keeps them deterministic under test.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Most tokens held: the allowed burst.
    capacity: f64,
    /// Tokens regained per millisecond.
    refill_per_ms: f64,
    /// Tokens now.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated_at: f64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens regaining `per_second` tokens each second.
    pub fn new(burst: u32, per_second: f64, now: f64) -> Self {
        TokenBucket {
            capacity: f64::from(burst.max(1)),
            refill_per_ms: per_second.max(0.0) / 1000.0,
            tokens: f64::from(burst.max(1)),
            updated_at: now,
        }
    }

    /// Whether the bucket has refilled to its full burst by `now`.
    pub fn is_full(&self, now: f64) -> bool {
        self.tokens + (now - self.updated_at).max(0.0) * self.refill_per_ms >= self.capacity
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: f64) -> bool {
        let elapsed = (now - self.updated_at).max(0.0);
        self.tokens = (self.tokens + elapsed * self.refill_per_ms).min(self.capacity);
        self.updated_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_refills_at_rate() {
        let mut b = TokenBucket::new(3, 2.0, 0.0);
        assert!((0..3).all(|_| b.try_take(0.0)));
        assert!(!b.try_take(0.0));
        assert!(!b.try_take(400.0), "0.8 tokens is not a token");
        assert!(b.try_take(500.0));
        assert!(!b.try_take(500.0));
        // A long idle period refills to the burst, never beyond.
        assert!((0..3).all(|_| b.try_take(60_000.0)));
        assert!(!b.try_take(60_000.0));
    }

    #[test]
    fn clock_going_backwards_grants_nothing() {
        let mut b = TokenBucket::new(1, 1.0, 1000.0);
        assert!(b.try_take(1000.0));
        assert!(!b.try_take(0.0));
    }
}

/// Per-client-IP limits: open sessions, connection rate, room creation rate.
pub mod per_ip {
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::TokenBucket;

    /// Bucket maps are pruned of full (idle) buckets when they grow past this many IPs.
    const PRUNE_AT: usize = 10_000;

    /// A rate per IP: `per_minute` events, all of which may come at once.
    pub struct IpRate {
        /// Events per minute (0: unlimited).
        per_minute: u32,
        /// Each IP's bucket.
        buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
    }

    impl IpRate {
        /// A limiter allowing `per_minute` events per IP (0: unlimited).
        pub fn new(per_minute: u32) -> Self {
            IpRate {
                per_minute,
                buckets: Mutex::new(HashMap::new()),
            }
        }

        /// Whether `ip` may have one more event now.
        pub fn allow(&self, ip: IpAddr, now: f64) -> bool {
            if self.per_minute == 0 {
                return true;
            }
            let mut buckets = self.buckets.lock();
            if buckets.len() >= PRUNE_AT {
                // A bucket that has refilled completely holds no information: forget it.
                buckets.retain(|_, b| !b.is_full(now));
            }
            buckets
                .entry(ip)
                .or_insert_with(|| {
                    TokenBucket::new(self.per_minute, f64::from(self.per_minute) / 60.0, now)
                })
                .try_take(now)
        }
    }

    /// Counts open sessions per IP; a [`SessionSlot`] gives its place back when dropped.
    #[derive(Clone)]
    pub struct SessionCounter {
        /// Most sessions per IP (0: unlimited).
        max: usize,
        /// Open sessions by IP.
        open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    }

    /// One open session's place in the per-IP count.
    pub struct SessionSlot {
        /// Whose place.
        ip: IpAddr,
        /// The counter to give it back to.
        open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    }

    impl SessionCounter {
        /// A counter allowing `max` sessions per IP (0: unlimited).
        pub fn new(max: usize) -> Self {
            SessionCounter {
                max,
                open: Arc::new(Mutex::new(HashMap::new())),
            }
        }

        /// Takes a place for `ip`, or `None` when it already has `max` sessions.
        pub fn acquire(&self, ip: IpAddr) -> Option<SessionSlot> {
            let mut open = self.open.lock();
            let n = open.entry(ip).or_insert(0);
            if self.max != 0 && *n >= self.max {
                return None;
            }
            *n += 1;
            Some(SessionSlot {
                ip,
                open: Arc::clone(&self.open),
            })
        }
    }

    impl Drop for SessionSlot {
        fn drop(&mut self) {
            let mut open = self.open.lock();
            if let Some(n) = open.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn session_slots_are_counted_and_returned() {
            let c = SessionCounter::new(2);
            let ip: IpAddr = "10.0.0.1".parse().unwrap();
            let a = c.acquire(ip).unwrap();
            let _b = c.acquire(ip).unwrap();
            assert!(c.acquire(ip).is_none());
            assert!(c.acquire("10.0.0.2".parse().unwrap()).is_some());
            drop(a);
            assert!(c.acquire(ip).is_some());
        }

        #[test]
        fn rate_is_per_ip_and_zero_means_unlimited() {
            let r = IpRate::new(2);
            let ip: IpAddr = "10.0.0.1".parse().unwrap();
            assert!(r.allow(ip, 0.0) && r.allow(ip, 0.0));
            assert!(!r.allow(ip, 0.0));
            assert!(r.allow("10.0.0.2".parse().unwrap(), 0.0));
            assert!(r.allow(ip, 30_000.0), "one token back after half a minute");
            let unlimited = IpRate::new(0);
            assert!((0..1000).all(|_| unlimited.allow(ip, 0.0)));
        }
    }
}
