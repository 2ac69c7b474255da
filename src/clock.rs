//! Server time: milliseconds since the UNIX epoch, read from a monotonic clock.
//!
//! Every timestamp the server sends (`anchor`, `t1`/`t2`, `server_time`, chat `at`) comes from
//! here. The wall clock is read exactly once, at start-up; after that only `Instant` advances
//! it, so an NTP step or a manual `date` change cannot move playback anchors.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the UNIX epoch, as sent on the wire.
pub type ServerMs = f64;

/// The process-wide anchor pairing one `Instant` with the wall clock at the same moment.
struct Anchor {
    /// Monotonic reading taken at start-up.
    instant: Instant,
    /// Wall-clock milliseconds at that same moment.
    epoch_ms: f64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| Anchor {
        instant: Instant::now(),
        epoch_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0),
    })
}

/// Fixes the anchor now; called once at start-up so the first request pays nothing.
pub fn init() {
    anchor();
}

/// Current server time in milliseconds.
pub fn now_ms() -> ServerMs {
    let a = anchor();
    a.epoch_ms + a.instant.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_time_is_monotonic_and_near_wall_clock() {
        let a = now_ms();
        let b = now_ms();
        assert!(b >= a);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap() // unwrap: the test machine's clock is after 1970
            .as_secs_f64()
            * 1000.0;
        assert!(
            (wall - b).abs() < 60_000.0,
            "server time {b} far from wall clock {wall}"
        );
    }
}
