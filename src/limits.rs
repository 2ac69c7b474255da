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

/// Per-client limits: open sessions, connections and rooms, connection and room creation
/// rates. A "client" is an IPv4 address or an IPv6 /64 ([`per_ip::client_key`]).
pub mod per_ip {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv6Addr};
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::TokenBucket;

    /// Bucket maps are pruned of full (idle) buckets once they hold this many clients...
    const PRUNE_AT: usize = 10_000;
    /// ...at most this often (ms), so a large table is not scanned under its lock on every
    /// call: between prunes it may grow by what arrives meanwhile.
    const PRUNE_EVERY_MS: f64 = 10_000.0;

    /// The key a client is limited under: its IPv4 address, or the /64 of its IPv6 address
    /// (one subscriber usually holds a whole /64, so per-address limits would not bind).
    /// IPv4 addresses written in IPv6 form count as IPv4.
    pub fn client_key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        }
    }

    /// The buckets of an [`IpRate`] and when they were last pruned.
    struct Buckets {
        /// Each client's bucket.
        by_client: HashMap<IpAddr, TokenBucket>,
        /// Server time of the last prune.
        pruned_at: f64,
    }

    /// A rate per client: `per_minute` events, all of which may come at once.
    pub struct IpRate {
        /// Events per minute (0: unlimited).
        per_minute: u32,
        /// Each client's bucket.
        buckets: Mutex<Buckets>,
    }

    impl IpRate {
        /// A limiter allowing `per_minute` events per client (0: unlimited).
        pub fn new(per_minute: u32) -> Self {
            IpRate {
                per_minute,
                buckets: Mutex::new(Buckets {
                    by_client: HashMap::new(),
                    pruned_at: f64::NEG_INFINITY,
                }),
            }
        }

        /// Whether `ip`'s client may have one more event now.
        pub fn allow(&self, ip: IpAddr, now: f64) -> bool {
            if self.per_minute == 0 {
                return true;
            }
            let mut buckets = self.buckets.lock();
            if buckets.by_client.len() >= PRUNE_AT && now - buckets.pruned_at >= PRUNE_EVERY_MS {
                // A bucket that has refilled completely holds no information: forget it.
                buckets.by_client.retain(|_, b| !b.is_full(now));
                buckets.pruned_at = now;
            }
            buckets
                .by_client
                .entry(client_key(ip))
                .or_insert_with(|| {
                    TokenBucket::new(self.per_minute, f64::from(self.per_minute) / 60.0, now)
                })
                .try_take(now)
        }

        /// How many clients have a bucket (for tests of pruning).
        pub fn tracked(&self) -> usize {
            self.buckets.lock().by_client.len()
        }
    }

    /// Counts open things per client (sessions, connections, rooms); a [`SessionSlot`]
    /// gives its place back when dropped.
    #[derive(Clone)]
    pub struct SessionCounter {
        /// Most per client (0: unlimited).
        max: usize,
        /// Open ones by client.
        open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    }

    /// One open thing's place in the per-client count.
    pub struct SessionSlot {
        /// Whose place.
        key: IpAddr,
        /// The counter to give it back to.
        open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    }

    impl SessionCounter {
        /// A counter allowing `max` per client (0: unlimited).
        pub fn new(max: usize) -> Self {
            SessionCounter {
                max,
                open: Arc::new(Mutex::new(HashMap::new())),
            }
        }

        /// Takes a place for `ip`'s client, or `None` when it already has `max`.
        pub fn acquire(&self, ip: IpAddr) -> Option<SessionSlot> {
            let key = client_key(ip);
            let mut open = self.open.lock();
            let n = open.entry(key).or_insert(0);
            if self.max != 0 && *n >= self.max {
                if *n == 0 {
                    open.remove(&key);
                }
                return None;
            }
            *n += 1;
            Some(SessionSlot {
                key,
                open: Arc::clone(&self.open),
            })
        }
    }

    impl Drop for SessionSlot {
        fn drop(&mut self) {
            let mut open = self.open.lock();
            if let Some(n) = open.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&self.key);
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

        #[test]
        fn an_ipv6_slash_64_is_one_client() {
            let key = |s: &str| client_key(s.parse().unwrap());
            assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
            assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
            assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
            let c = SessionCounter::new(1);
            let _a = c.acquire("2001:db8::1".parse().unwrap()).unwrap();
            assert!(c.acquire("2001:db8::ffff".parse().unwrap()).is_none());
            assert!(c.acquire("2001:db9::1".parse().unwrap()).is_some());
        }

        #[test]
        fn a_large_table_is_pruned_at_most_every_ten_seconds() {
            let r = IpRate::new(1);
            for i in 0..PRUNE_AT as u32 {
                r.allow(IpAddr::from(i.to_be_bytes()), 0.0);
            }
            // Refilled a minute later, but the first prune happens at once.
            assert!(r.allow("10.255.0.1".parse().unwrap(), 60_000.0));
            assert_eq!(r.tracked(), 1);
            for i in 0..PRUNE_AT as u32 {
                r.allow(IpAddr::from(i.to_be_bytes()), 60_000.0);
            }
            // Within ten seconds of the last prune, a new client just gets a bucket.
            r.allow("10.255.0.2".parse().unwrap(), 120_000.0 - 50_001.0);
            assert_eq!(r.tracked(), PRUNE_AT + 2);
            r.allow("10.255.0.3".parse().unwrap(), 130_000.0);
            assert_eq!(r.tracked(), 1, "pruned again after ten seconds");
        }
    }
}
