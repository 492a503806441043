//! Attempt durations as a fixed log-scale histogram, so percentiles per queue and minute come
//! from a few counters the completer adds to, never from a scan of the jobs.
//!
//! The buckets grow by a factor of √2: bucket 0 holds durations under 1 ms, bucket `k` those
//! from `BOUNDS[k - 1]` up to (not including) `BOUNDS[k]` (1, 2, 3, 4, 6, 8, 11, 16, 23, 32,
//! 45, 64, 91, 128, 181, 256, 362, 512, 724, 1 024 ms … 8 388 608 ms, each `round(√2ⁿ)`), and
//! the last bucket everything from 8 388 608 ms (2 h 20 min) up. A percentile is the upper
//! bound of the bucket its rank falls in: never below the true value, at most 41 % above it
//! (one bucket), and for the last bucket its lower bound.

use std::sync::LazyLock;

/// How many buckets (columns `d0` … `d46` of `hangar_queue_minutes`).
pub const BUCKETS: usize = 47;

/// The upper bound (exclusive) of each bucket but the last, in milliseconds.
pub static BOUNDS: LazyLock<[i64; BUCKETS - 1]> = LazyLock::new(|| {
    let mut bounds = [0; BUCKETS - 1];
    let mut n = 0;
    let mut k = 0;
    while n < bounds.len() {
        let bound = 2f64.powf(f64::from(k) / 2.0).round() as i64;
        k += 1;
        // √2¹ rounds to 1 like √2⁰: keep the bounds strictly increasing.
        if n > 0 && bounds[n - 1] >= bound {
            continue;
        }
        bounds[n] = bound;
        n += 1;
    }
    bounds
});

/// The bucket of a duration in milliseconds (a negative one counts as 0).
pub fn bucket_of(duration_ms: i64) -> usize {
    BOUNDS.partition_point(|bound| *bound <= duration_ms.max(0))
}

/// The `q` quantile (0 < q ≤ 1) of the durations counted in `counts` (one per bucket), in
/// milliseconds: the upper bound of the bucket where the rank `⌈q·n⌉` falls (the last
/// bucket's lower bound); `None` when nothing was counted.
pub fn percentile(counts: &[i64], q: f64) -> Option<i64> {
    let total: i64 = counts.iter().map(|c| c.max(&0)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (bucket, count) in counts.iter().enumerate() {
        seen += count.max(&0);
        if seen >= rank {
            return Some(BOUNDS[bucket.min(BUCKETS - 2)]);
        }
    }
    BOUNDS.last().copied()
}

/// The column of bucket `k` in `hangar_queue_minutes`.
pub fn column(k: usize) -> String {
    format!("d{k}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounds are √2 apart and strictly increasing, from 1 ms to 2 h 20 min.
    #[test]
    fn bounds_grow_by_the_square_root_of_two() {
        assert_eq!(&BOUNDS[..12], &[1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64]);
        assert_eq!(BOUNDS[BUCKETS - 2], 8_388_608);
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
        for w in BOUNDS[4..].windows(2) {
            let ratio = w[1] as f64 / w[0] as f64;
            assert!((1.3..1.5).contains(&ratio), "{w:?}");
        }
    }

    #[test]
    fn a_duration_goes_to_the_bucket_under_its_upper_bound() {
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(300), bucket_of(256));
        assert_eq!(BOUNDS[bucket_of(300)], 362);
        assert_eq!(bucket_of(362), bucket_of(300) + 1);
        assert_eq!(bucket_of(i64::MAX), BUCKETS - 1);
    }

    /// 90 attempts of 10 ms, 9 of 300 ms and one of 5 s: p50 is under 11 ms, p95 under
    /// 362 ms, p99 under 362 ms, p100 under 5 793 ms.
    #[test]
    fn percentiles_are_the_upper_bound_of_the_ranks_bucket() {
        let mut counts = [0i64; BUCKETS];
        counts[bucket_of(10)] += 90;
        counts[bucket_of(300)] += 9;
        counts[bucket_of(5_000)] += 1;
        assert_eq!(percentile(&counts, 0.5), Some(11));
        assert_eq!(percentile(&counts, 0.9), Some(11));
        assert_eq!(percentile(&counts, 0.95), Some(362));
        assert_eq!(percentile(&counts, 0.99), Some(362));
        assert_eq!(percentile(&counts, 1.0), Some(5_793));
        assert_eq!(percentile(&[0; BUCKETS], 0.5), None);
        let mut long = [0i64; BUCKETS];
        long[BUCKETS - 1] = 1;
        assert_eq!(percentile(&long, 0.5), Some(8_388_608));
    }
}
