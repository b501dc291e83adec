//! Sink latency: milliseconds from a record's timestamp (the Kafka record's
//! `timestamp`, or the rate source's) to its acknowledged write. Each task
//! keeps an HDR histogram, ships it in its report row, and the scheduler
//! merges them per batch and per job, so percentiles are exact to 3
//! significant digits rather than averages of averages.

use hdrhistogram::Histogram;

/// One hour: anything slower is clamped (and is an outage, not a latency).
const MAX_MS: u64 = 3_600_000;

#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        // Bounds are constants that hdrhistogram accepts, so this cannot fail.
        let h = Histogram::new_with_bounds(1, MAX_MS, 3).expect("valid histogram bounds");
        Self(h)
    }

    /// Records one latency; negative values (clock skew between the producer
    /// and this host) count as 0.
    pub fn record(&mut self, ms: i64) {
        self.0.saturating_record((ms.max(0) as u64).min(MAX_MS));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: the add cannot overflow the range.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0..=1) in ms; 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    pub fn max(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.max() }
    }

    /// (value, count) pairs of the recorded buckets, little-endian u64s.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in self.0.iter_recorded() {
            out.extend_from_slice(&v.value_iterated_to().to_le_bytes());
            out.extend_from_slice(&v.count_at_value().to_le_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if !bytes.len().is_multiple_of(16) {
            return Err(format!("latency histogram of {} bytes", bytes.len()));
        }
        let mut h = Self::new();
        for pair in bytes.chunks_exact(16) {
            let (v, n) = pair.split_at(8);
            let v = u64::from_le_bytes(v.try_into().map_err(|_| "bad value")?);
            let n = u64::from_le_bytes(n.try_into().map_err(|_| "bad count")?);
            h.0.record_n(v.min(MAX_MS), n)
                .map_err(|e| format!("latency histogram: {e}"))?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_survive_encoding_and_merging() {
        let mut a = Latency::new();
        for ms in 1..=100 {
            a.record(ms);
        }
        let mut b = Latency::decode(&a.encode()).unwrap();
        assert_eq!(b.count(), 100);
        assert_eq!(b.quantile(0.5), 50);
        assert_eq!(b.quantile(0.99), 99);
        let mut c = Latency::new();
        c.record(5_000);
        c.record(-3); // clock skew
        b.merge(&c);
        assert_eq!(b.count(), 102);
        assert!((4_995..=5_005).contains(&b.max()), "{}", b.max());
        assert_eq!(b.quantile(0.0), 0);
        assert!(Latency::decode(&[1, 2, 3]).is_err());
        assert_eq!(Latency::new().quantile(0.99), 0);
    }
}
