//! Latency distributions (HdrHistogram, nanoseconds, 3 significant digits)
//! and their summaries in milliseconds.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Lowest trackable value: 1 µs.
const LOW_NS: u64 = 1_000;
/// Highest trackable value: 10 minutes (larger values are clamped to it).
const HIGH_NS: u64 = 600_000_000_000;

/// A latency distribution.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Latency {
    /// An empty distribution.
    pub fn new() -> Latency {
        Latency {
            // Bounds are constants within hdrhistogram's limits (low ≥ 1,
            // high ≥ 2 × low, 3 significant figures).
            hist: Histogram::new_with_bounds(LOW_NS, HIGH_NS, 3).expect("valid constant bounds"),
        }
    }

    /// Records a sample in nanoseconds (clamped to the trackable range).
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(LOW_NS, HIGH_NS));
    }

    /// Records a duration.
    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds another distribution's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so `add` cannot fail; saturate otherwise.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0–1), nanoseconds.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }

    /// Percentiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            min_ms: ms(self.hist.min()),
            mean_ms: self.hist.mean() / 1e6,
            p50_ms: ms(self.hist.value_at_quantile(0.50)),
            p90_ms: ms(self.hist.value_at_quantile(0.90)),
            p99_ms: ms(self.hist.value_at_quantile(0.99)),
            p999_ms: ms(self.hist.value_at_quantile(0.999)),
            max_ms: ms(self.hist.max()),
        }
    }

    /// `(quantile, milliseconds)` points for a percentile plot, from the
    /// median-free start (q = 0) to the maximum, evenly spaced on the
    /// `1/(1-q)` scale.
    pub fn percentile_curve(&self) -> Vec<(f64, f64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        // 0 … 5 "nines" (q = 0.99999) in steps of 0.05 nines.
        for step in 0..=100 {
            let nines = f64::from(step) * 0.05;
            let q = 1.0 - 10f64.powf(-nines);
            points.push((q, ms(self.hist.value_at_quantile(q))));
        }
        points.push((1.0, ms(self.hist.max())));
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut l = Latency::new();
        for i in 1..=1000u64 {
            l.record_ns(i * 1_000_000);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 2.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn merging_adds_samples() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record_ns(5_000);
        b.record(Duration::from_millis(3));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(Latency::new().summary().count, 0);
    }
}
