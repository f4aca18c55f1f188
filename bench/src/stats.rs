//! Client-side measurement: one latency histogram per client (merged at the
//! end), counters, and a per-second time series. No server clock is trusted.
//!
//! Two units are counted: *requests* (what an application asks for) and
//! *operations* (the commands the replicas order). A request is one operation
//! unless the run has a fan-out (`--fanout F`: F operations per request); then
//! each client also keeps a second histogram, of operations.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest latency tracked (1 microsecond), in nanoseconds.
const LOWEST_NS: u64 = 1_000;
/// Highest latency tracked (100 s), in nanoseconds; longer ones are clamped.
const HIGHEST_NS: u64 = 100_000_000_000;

/// A fresh latency histogram (nanoseconds, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, 3).expect("valid histogram bounds")
}

/// What happened to the operations of one second of the run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// Operations answered with success.
    pub ok: u64,
    /// Operations that certainly did not take effect.
    pub failed: u64,
    /// Operations given up on without an answer (they may have taken effect).
    pub timed_out: u64,
    /// Sum of the latencies of the successful operations, in nanoseconds.
    pub latency_sum_ns: u64,
}

/// The measurements of one client.
#[derive(Debug, Clone)]
pub struct ClientStats {
    /// Latencies of successful requests completed inside the measured window.
    pub hist: Histogram<u64>,
    /// Successful requests inside the window.
    pub ok: u64,
    /// Failed requests inside the window.
    pub failed: u64,
    /// Timed-out requests inside the window.
    pub timed_out: u64,
    /// Latencies of successful operations inside the window, when requests
    /// have several operations (`None`: every request is one operation, and
    /// `hist` holds both).
    pub op_hist: Option<Histogram<u64>>,
    /// Successful operations inside the window.
    pub ops_ok: u64,
    /// Failed operations inside the window.
    pub ops_failed: u64,
    /// Timed-out operations inside the window.
    pub ops_timed_out: u64,
    /// Replies for operations that were no longer outstanding (answered twice).
    pub duplicates: u64,
    /// Open-loop arrivals shed inside the window: they waited past
    /// `--max-wait-ms` for room in the client's window and were never sent.
    pub shed: u64,
    /// Operations, second by second since the start (warm-up and cool-down included).
    pub series: Vec<Second>,
    window: (u64, u64),
}

impl ClientStats {
    /// Stats that count requests and operations completing in `[from_ns,
    /// to_ns)` since the start, for requests of one operation each.
    pub fn new(from_ns: u64, to_ns: u64) -> Self {
        ClientStats {
            hist: new_histogram(),
            ok: 0,
            failed: 0,
            timed_out: 0,
            op_hist: None,
            ops_ok: 0,
            ops_failed: 0,
            ops_timed_out: 0,
            duplicates: 0,
            shed: 0,
            series: Vec::new(),
            window: (from_ns, to_ns),
        }
    }

    /// The same, for requests of several operations: operation latencies get
    /// their own histogram.
    pub fn with_op_histogram(mut self) -> Self {
        self.op_hist = Some(new_histogram());
        self
    }

    fn second(&mut self, at_ns: u64) -> &mut Second {
        let i = (at_ns / 1_000_000_000) as usize;
        if self.series.len() <= i {
            self.series.resize(i + 1, Second::default());
        }
        &mut self.series[i]
    }

    fn in_window(&self, at_ns: u64) -> bool {
        at_ns >= self.window.0 && at_ns < self.window.1
    }

    /// A request of one operation succeeded at `at_ns` (since the start), after `latency_ns`.
    pub fn record_ok(&mut self, at_ns: u64, latency_ns: u64) {
        self.record_op_ok(at_ns, latency_ns);
        self.record_request_ok(at_ns, latency_ns);
    }

    /// A request of one operation certainly failed at `at_ns`.
    pub fn record_failed(&mut self, at_ns: u64) {
        self.record_op_failed(at_ns);
        self.record_request_failed(at_ns);
    }

    /// A request of one operation was given up on at `at_ns`.
    pub fn record_timeout(&mut self, at_ns: u64) {
        self.record_op_timeout(at_ns);
        self.record_request_timeout(at_ns);
    }

    /// An operation succeeded at `at_ns` after `latency_ns`.
    pub fn record_op_ok(&mut self, at_ns: u64, latency_ns: u64) {
        let s = self.second(at_ns);
        s.ok += 1;
        s.latency_sum_ns += latency_ns;
        if self.in_window(at_ns) {
            self.ops_ok += 1;
            if let Some(h) = &mut self.op_hist {
                h.saturating_record(latency_ns.max(LOWEST_NS));
            }
        }
    }

    /// An operation certainly failed at `at_ns`.
    pub fn record_op_failed(&mut self, at_ns: u64) {
        self.second(at_ns).failed += 1;
        if self.in_window(at_ns) {
            self.ops_failed += 1;
        }
    }

    /// An operation was given up on at `at_ns`.
    pub fn record_op_timeout(&mut self, at_ns: u64) {
        self.second(at_ns).timed_out += 1;
        if self.in_window(at_ns) {
            self.ops_timed_out += 1;
        }
    }

    /// A request (all its operations) succeeded at `at_ns` after `latency_ns`.
    pub fn record_request_ok(&mut self, at_ns: u64, latency_ns: u64) {
        if self.in_window(at_ns) {
            self.ok += 1;
            self.hist.saturating_record(latency_ns.max(LOWEST_NS));
        }
    }

    /// A request ended at `at_ns` with an operation that certainly failed.
    pub fn record_request_failed(&mut self, at_ns: u64) {
        if self.in_window(at_ns) {
            self.failed += 1;
        }
    }

    /// A request ended at `at_ns` with an operation given up on.
    pub fn record_request_timeout(&mut self, at_ns: u64) {
        if self.in_window(at_ns) {
            self.timed_out += 1;
        }
    }

    /// `n` open-loop arrivals were shed at `at_ns`, never sent.
    pub fn record_shed(&mut self, at_ns: u64, n: u64) {
        if n > 0 && self.in_window(at_ns) {
            self.shed += n;
        }
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
}

impl Latency {
    /// Percentiles of a nanosecond histogram, in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Latency {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1e3,
            min: us(h.min()),
        }
    }
}

/// All clients' measurements merged.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged request-latency histogram.
    pub hist: Histogram<u64>,
    /// Successful requests in the window.
    pub ok: u64,
    /// Failed requests in the window.
    pub failed: u64,
    /// Timed-out requests in the window.
    pub timed_out: u64,
    /// The merged operation-latency histogram (equal to `hist` when every
    /// request is one operation).
    pub op_hist: Histogram<u64>,
    /// Successful operations in the window.
    pub ops_ok: u64,
    /// Failed operations in the window.
    pub ops_failed: u64,
    /// Timed-out operations in the window.
    pub ops_timed_out: u64,
    /// Duplicate replies.
    pub duplicates: u64,
    /// Open-loop arrivals shed in the window, never sent.
    pub shed: u64,
    /// Per-second totals of operations.
    pub series: Vec<Second>,
}

/// Merges per-client stats.
pub fn merge(clients: &[ClientStats]) -> Merged {
    let mut m = Merged {
        hist: new_histogram(),
        ok: 0,
        failed: 0,
        timed_out: 0,
        op_hist: new_histogram(),
        ops_ok: 0,
        ops_failed: 0,
        ops_timed_out: 0,
        duplicates: 0,
        shed: 0,
        series: Vec::new(),
    };
    for c in clients {
        m.hist.add(&c.hist).expect("histograms share their bounds");
        m.op_hist
            .add(c.op_hist.as_ref().unwrap_or(&c.hist))
            .expect("histograms share their bounds");
        m.ok += c.ok;
        m.failed += c.failed;
        m.timed_out += c.timed_out;
        m.ops_ok += c.ops_ok;
        m.ops_failed += c.ops_failed;
        m.ops_timed_out += c.ops_timed_out;
        m.duplicates += c.duplicates;
        m.shed += c.shed;
        if m.series.len() < c.series.len() {
            m.series.resize(c.series.len(), Second::default());
        }
        for (a, b) in m.series.iter_mut().zip(&c.series) {
            a.ok += b.ok;
            a.failed += b.failed;
            a.timed_out += b.timed_out;
            a.latency_sum_ns += b.latency_sum_ns;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(sorted: &[u64], q: f64) -> u64 {
        // hdrhistogram's definition: the smallest value with at least q of the samples at or below it.
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Per-client histograms merged give the percentiles of all samples together,
        /// within the histogram's 3 significant digits.
        #[test]
        fn merged_percentiles_match_brute_force(
            samples in proptest::collection::vec((0usize..4, 1_000u64..50_000_000), 1..2000)
        ) {
            let mut clients: Vec<ClientStats> = (0..4).map(|_| ClientStats::new(0, u64::MAX)).collect();
            let mut all = Vec::new();
            for (c, lat) in &samples {
                clients[*c].record_ok(1, *lat);
                all.push(*lat);
            }
            all.sort();
            let m = merge(&clients);
            prop_assert_eq!(m.ok, samples.len() as u64);
            for q in [0.5, 0.9, 0.99, 0.999] {
                let exact = brute(&all, q) as f64;
                let got = m.hist.value_at_quantile(q) as f64;
                // Three significant digits, and below 2 us the histogram's
                // 1 us lowest discernible value gives 512 ns buckets.
                prop_assert!((got - exact).abs() <= exact * 0.001 + 512.0, "q {}: {} vs {}", q, got, exact);
            }
            let mean = all.iter().sum::<u64>() as f64 / all.len() as f64;
            prop_assert!((m.hist.mean() - mean).abs() <= mean * 0.001 + 512.0);
            prop_assert!((m.hist.max() as f64 - *all.last().unwrap() as f64).abs() <= *all.last().unwrap() as f64 * 0.001 + 512.0);
        }
    }

    #[test]
    fn window_and_series() {
        let mut c = ClientStats::new(1_000_000_000, 2_000_000_000);
        c.record_ok(500_000_000, 10_000); // warm-up: series only
        c.record_ok(1_500_000_000, 20_000);
        c.record_failed(1_600_000_000);
        c.record_timeout(2_500_000_000); // cool-down
        assert_eq!((c.ok, c.failed, c.timed_out), (1, 1, 0));
        assert_eq!((c.ops_ok, c.ops_failed, c.ops_timed_out), (1, 1, 0));
        assert_eq!(c.series.len(), 3);
        assert_eq!(c.series[0].ok, 1);
        assert_eq!(
            c.series[1],
            Second {
                ok: 1,
                failed: 1,
                timed_out: 0,
                latency_sum_ns: 20_000
            }
        );
        assert_eq!(c.series[2].timed_out, 1);
    }
}

#[cfg(test)]
mod fanout_tests {
    use super::*;

    /// Requests of several operations: operations and requests are counted
    /// apart, and a run without fan-out has equal operation and request figures.
    #[test]
    fn operations_and_requests_are_counted_apart() {
        let mut c = ClientStats::new(0, u64::MAX).with_op_histogram();
        for i in 0..4 {
            c.record_op_ok(10 + i, 1_000_000);
        }
        c.record_request_ok(20, 4_000_000);
        let m = merge(&[c]);
        assert_eq!((m.ok, m.ops_ok), (1, 4));
        assert_eq!(m.hist.len(), 1);
        assert_eq!(m.op_hist.len(), 4);
        assert_eq!(m.series[0].ok, 4);
        let mut one = ClientStats::new(0, u64::MAX);
        one.record_ok(5, 2_000_000);
        let m = merge(&[one]);
        assert_eq!((m.ok, m.ops_ok), (1, 1));
        assert_eq!(Latency::of(&m.hist), Latency::of(&m.op_hist));
    }
}
