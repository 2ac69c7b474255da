//! The store's Prometheus metrics.
//!
//! Made apart from the server's [`Metrics`](crate::metrics::Metrics) so the store can be built
//! and tested on its own; [`StoreMetrics::register`] adds them to the server's registry, whose
//! namespace (`watch_together`) prefixes every name.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the store records. All atomics: recording takes no lock.
pub struct StoreMetrics {
    /// Seconds each successful commit took (one transaction or `MULTI`/`EXEC`), which is
    /// most of a chat's wait for its ack.
    pub commit_seconds: Histogram,
    /// Writes per successful commit: how well group commit batches.
    pub batch_writes: Histogram,
    /// Writes queued and not yet committed or dropped.
    pub pending_writes: IntGauge,
    /// 1 while the store is degraded (commits failing or backend unreachable), else 0.
    pub degraded: IntGauge,
    /// Reads asked of the store (`load` and `list`).
    pub loads: IntCounter,
    /// Failed commits (`store_errors_total{op="commit"}`).
    pub commit_errors: IntCounter,
    /// Failed reads (`store_errors_total{op="read"}`).
    pub read_errors: IntCounter,
    /// Failed health probes of an idle backend (`store_errors_total{op="probe"}`).
    pub probe_errors: IntCounter,
    /// Writes thrown away because the queue of uncommitted writes was full.
    pub dropped_writes: IntCounter,
    /// Commits attempted again after a failure.
    pub retries: IntCounter,
    /// Times a room's writes in a batch were refused because another node owns the room
    /// now (many-node mode): each is a stale owner stopped by its fence.
    pub fenced: IntCounter,
    /// The family behind the three error counters, for registering.
    errors: IntCounterVec,
}

impl StoreMetrics {
    /// Fresh metrics, not yet registered anywhere.
    pub fn new() -> Self {
        let errors = IntCounterVec::new(
            Opts::new("store_errors_total", "Failed store operations by kind"),
            &["op"],
        )
        .expect("valid metric");
        StoreMetrics {
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "store_commit_seconds",
                    "Time a successful store commit took",
                )
                .buckets(vec![
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5,
                ]),
            )
            .expect("valid metric"),
            batch_writes: Histogram::with_opts(
                HistogramOpts::new("store_batch_writes", "Writes per successful store commit")
                    .buckets(vec![
                        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
                        5000.0, 10000.0,
                    ]),
            )
            .expect("valid metric"),
            pending_writes: IntGauge::new(
                "store_pending_writes",
                "Store writes queued and not yet committed",
            )
            .expect("valid metric"),
            degraded: IntGauge::new(
                "store_degraded",
                "1 while store commits fail or the backend is unreachable",
            )
            .expect("valid metric"),
            loads: IntCounter::new("store_loads_total", "Store reads (load and list)")
                .expect("valid metric"),
            commit_errors: errors.with_label_values(&["commit"]),
            read_errors: errors.with_label_values(&["read"]),
            probe_errors: errors.with_label_values(&["probe"]),
            dropped_writes: IntCounter::new(
                "store_dropped_writes_total",
                "Store writes dropped because the queue was full",
            )
            .expect("valid metric"),
            retries: IntCounter::new(
                "store_retries_total",
                "Store commits attempted again after a failure",
            )
            .expect("valid metric"),
            fenced: IntCounter::new(
                "store_fenced_total",
                "Times a room's writes were refused because another node owns the room now",
            )
            .expect("valid metric"),
            errors,
        }
    }

    /// Registers every metric in `registry` (the server's, from `Metrics::new`).
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        let collectors: [Box<dyn Collector>; 9] = [
            Box::new(self.commit_seconds.clone()),
            Box::new(self.batch_writes.clone()),
            Box::new(self.pending_writes.clone()),
            Box::new(self.degraded.clone()),
            Box::new(self.loads.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.dropped_writes.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.fenced.clone()),
        ];
        for collector in collectors {
            registry.register(collector)?;
        }
        Ok(())
    }

    /// Successful commits so far.
    pub fn commits(&self) -> u64 {
        self.batch_writes.get_sample_count()
    }

    /// Writes committed so far (counted in their batch, superseded ones included).
    pub fn committed_writes(&self) -> u64 {
        self.batch_writes.get_sample_sum() as u64
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_under_the_servers_namespace() {
        let registry = Registry::new_custom(Some("watch_together".into()), None).unwrap(); // unwrap: a static valid prefix
        let metrics = StoreMetrics::new();
        metrics.register(&registry).unwrap(); // unwrap: a fresh registry has none of these
        metrics.commit_errors.inc();
        let mut names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "watch_together_store_batch_writes",
                "watch_together_store_commit_seconds",
                "watch_together_store_degraded",
                "watch_together_store_dropped_writes_total",
                "watch_together_store_errors_total",
                "watch_together_store_fenced_total",
                "watch_together_store_loads_total",
                "watch_together_store_pending_writes",
                "watch_together_store_retries_total",
            ]
        );
        // Registering twice is refused, not silently doubled.
        assert!(metrics.register(&registry).is_err());
    }
}
