//! Divergence between the owner's view and the consensus (shadow mode).
//!
//! Metrics over two score vectors keyed by miner:
//! * [`top1_agreement`]: whether both name the same winner;
//! * [`spearman`]: Spearman rank correlation over the miners both score, with average ranks for
//!   ties; undefined (`None`) below two points or when either side is constant;
//! * [`top_k_overlap`]: `|top_k(a) ∩ top_k(b)| / k` (ties to the smaller key).
//!
//! [`DivergenceTracker`] keeps one entry per run for the last `capacity` runs (recording a run
//! again replaces its entry) and persists as bounded SCALE bytes. Spearman is stored as a signed
//! fixed-point integer so the persisted form holds no floats.

use crate::ConsensusError;
use parity_scale_codec::{Decode, Encode};
use tally_core::codec::decode_bounded;
use tally_core::{BoundedVec, Fraction, Score};

/// Most runs a tracker window may hold.
pub const MAX_WINDOW: usize = 10_000;

/// True when both winners exist and are the same.
pub fn top1_agreement<K: PartialEq>(a: Option<&K>, b: Option<&K>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x == y)
}

/// Average (1-based) ranks of `values`, ties sharing the mean of their positions.
fn average_ranks(values: &[u32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by_key(|&i| values[i]);
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && values[idx[j + 1]] == values[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rho over the keys present in both `a` and `b` (each sorted by key).
pub fn spearman<K: Ord>(a: &[(K, Score)], b: &[(K, Score)]) -> Option<f64> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                x.push(a[i].1.units());
                y.push(b[j].1.units());
                i += 1;
                j += 1;
            }
        }
    }
    if x.len() < 2 {
        return None;
    }
    let (rx, ry) = (average_ranks(&x), average_ranks(&y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, q) in rx.iter().zip(&ry) {
        sxy += (p - mx) * (q - my);
        sxx += (p - mx) * (p - mx);
        syy += (q - my) * (q - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

fn top_k<K: Ord + Clone>(v: &[(K, Score)], k: usize) -> Vec<K> {
    let mut s: Vec<&(K, Score)> = v.iter().collect();
    s.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    let mut out: Vec<K> = s.into_iter().take(k).map(|e| e.0.clone()).collect();
    out.sort();
    out
}

/// `|top_k(a) ∩ top_k(b)| / k`; `k` is capped to the longer vector, and zero gives zero.
pub fn top_k_overlap<K: Ord + Clone>(a: &[(K, Score)], b: &[(K, Score)], k: usize) -> Fraction {
    let k = k.min(a.len().max(b.len()));
    if k == 0 {
        return Fraction::ZERO;
    }
    let (ta, tb) = (top_k(a, k), top_k(b, k));
    let common = ta.iter().filter(|x| tb.binary_search(x).is_ok()).count();
    Fraction::ratio(common as u128, k as u128).unwrap_or(Fraction::ZERO)
}

/// One run's divergence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DivergenceEntry {
    /// The run.
    pub run: u64,
    /// Whether the owner's winner was the consensus winner.
    pub top1_agree: bool,
    /// Spearman rho times 1e9, rounded; `None` when undefined.
    pub spearman_ppb: Option<i32>,
    /// Top-k overlap.
    pub topk_overlap: Fraction,
}

impl DivergenceEntry {
    /// Computes an entry from the owner's scores and the consensus, both sorted by key.
    pub fn compute<K: Ord + Clone>(
        run: u64,
        owner_winner: Option<&K>,
        consensus_winner: Option<&K>,
        owner_scores: &[(K, Score)],
        consensus: &[(K, Score)],
        k: usize,
    ) -> Self {
        DivergenceEntry {
            run,
            top1_agree: top1_agreement(owner_winner, consensus_winner),
            spearman_ppb: spearman(owner_scores, consensus).map(|r| (r * 1e9).round() as i32),
            topk_overlap: top_k_overlap(owner_scores, consensus, k),
        }
    }
}

/// Averages over a tracker's window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DivergenceSummary {
    /// Runs in the window.
    pub runs: usize,
    /// Share of runs whose winners agreed.
    pub top1_agreement_rate: Fraction,
    /// Mean Spearman over the runs where it is defined.
    pub mean_spearman: Option<f64>,
    /// Mean top-k overlap.
    pub mean_topk_overlap: Fraction,
}

/// The last `capacity` runs' divergence, one entry per run.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DivergenceTracker {
    capacity: u32,
    entries: BoundedVec<DivergenceEntry, MAX_WINDOW>,
}

impl DivergenceTracker {
    /// An empty window of `capacity` runs (1..=10,000).
    pub fn new(capacity: usize) -> Result<Self, ConsensusError> {
        if capacity == 0 || capacity > MAX_WINDOW {
            return Err(ConsensusError::InvalidParam {
                name: "divergence window",
                reason: format!("must be 1..={MAX_WINDOW} runs"),
            });
        }
        Ok(DivergenceTracker {
            capacity: capacity as u32,
            entries: BoundedVec::default(),
        })
    }

    /// Records `entry`, replacing any entry of the same run and dropping the oldest runs past
    /// the capacity.
    pub fn record(&mut self, entry: DivergenceEntry) {
        let mut v = std::mem::take(&mut self.entries).into_inner();
        match v.binary_search_by_key(&entry.run, |e| e.run) {
            Ok(i) => v[i] = entry,
            Err(i) => v.insert(i, entry),
        }
        let excess = v.len().saturating_sub(self.capacity as usize);
        v.drain(..excess);
        // the length is at most capacity <= MAX_WINDOW
        self.entries = BoundedVec::new(v).unwrap_or_default();
    }

    /// Entries, oldest run first.
    pub fn entries(&self) -> &[DivergenceEntry] {
        &self.entries
    }

    /// The window's capacity in runs.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Averages over the window.
    pub fn summary(&self) -> DivergenceSummary {
        let n = self.entries.len();
        let agree = self.entries.iter().filter(|e| e.top1_agree).count();
        let sp: Vec<i32> = self.entries.iter().filter_map(|e| e.spearman_ppb).collect();
        let overlap: u128 = self
            .entries
            .iter()
            .map(|e| e.topk_overlap.units() as u128)
            .sum();
        DivergenceSummary {
            runs: n,
            top1_agreement_rate: Fraction::ratio(agree as u128, n as u128)
                .unwrap_or(Fraction::ZERO),
            mean_spearman: (!sp.is_empty())
                .then(|| sp.iter().map(|&x| x as f64).sum::<f64>() / sp.len() as f64 / 1e9),
            mean_topk_overlap: Fraction::saturating_from_units(
                overlap.checked_div(n as u128).unwrap_or(0) as u64,
            ),
        }
    }

    /// Persisted form (SCALE).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// Restores a persisted tracker, checking its invariants.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConsensusError> {
        let cap = 4 + 5 + MAX_WINDOW * 22;
        let t: DivergenceTracker = decode_bounded(bytes, cap, "divergence tracker")
            .map_err(|e| ConsensusError::Corrupt(e.to_string()))?;
        if t.capacity == 0 || t.capacity as usize > MAX_WINDOW {
            return Err(ConsensusError::Corrupt(
                "window capacity out of range".into(),
            ));
        }
        if t.entries.len() > t.capacity as usize
            || t.entries.windows(2).any(|w| w[0].run >= w[1].run)
        {
            return Err(ConsensusError::Corrupt(
                "entries over capacity or not one per run".into(),
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(x: &[(u8, u32)]) -> Vec<(u8, Score)> {
        x.iter()
            .map(|&(k, s)| (k, Score::from_units(s).unwrap()))
            .collect()
    }

    #[test]
    fn spearman_cases() {
        let a = v(&[(1, 10), (2, 20), (3, 30)]);
        assert_eq!(spearman(&a, &a), Some(1.0));
        let b = v(&[(1, 30), (2, 20), (3, 10)]);
        assert_eq!(spearman(&a, &b), Some(-1.0));
        // ties get average ranks: x ranks 1,2,3,4 ; y ranks 1.5,1.5,3,4
        let x = v(&[(1, 1), (2, 2), (3, 3), (4, 4)]);
        let y = v(&[(1, 5), (2, 5), (3, 7), (4, 9)]);
        let r = spearman(&x, &y).unwrap();
        // by hand: dx = -1.5,-.5,.5,1.5 ; dy = -1,-1,.5,1.5 ; sxy=4.5 sxx=5 syy=4.5
        assert!((r - 4.5 / (5.0f64 * 4.5).sqrt()).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&v(&[(1, 1)]), &v(&[(1, 1)])), None);
        assert_eq!(spearman(&x, &v(&[(1, 5), (2, 5), (3, 5), (4, 5)])), None);
        // only common keys count
        assert_eq!(spearman(&v(&[(1, 1), (9, 2)]), &v(&[(1, 1), (8, 2)])), None);
    }

    #[test]
    fn top_k_and_top1() {
        let a = v(&[(1, 90), (2, 80), (3, 70), (4, 10)]);
        let b = v(&[(1, 10), (2, 80), (3, 70), (4, 90)]);
        assert_eq!(top_k_overlap(&a, &b, 1).units(), 0);
        assert_eq!(top_k_overlap(&a, &b, 2).units(), 500_000_000);
        assert_eq!(top_k_overlap(&a, &b, 3).units(), 666_666_666);
        assert_eq!(top_k_overlap(&a, &a, 10), Fraction::ONE);
        assert!(top1_agreement(Some(&1), Some(&1)));
        assert!(!top1_agreement(Some(&1), Some(&2)));
        assert!(!top1_agreement::<u8>(None, None));
    }

    fn entry(run: u64, agree: bool) -> DivergenceEntry {
        DivergenceEntry {
            run,
            top1_agree: agree,
            spearman_ppb: Some(500_000_000),
            topk_overlap: Fraction::ONE,
        }
    }

    #[test]
    fn tracker_window_and_persistence() {
        let mut t = DivergenceTracker::new(3).unwrap();
        for r in [5, 1, 3, 4] {
            t.record(entry(r, r % 2 == 1));
        }
        assert_eq!(
            t.entries().iter().map(|e| e.run).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        t.record(entry(4, true)); // replaces run 4
        assert_eq!(t.entries().len(), 3);
        assert_eq!(t.summary().top1_agreement_rate, Fraction::ONE);
        let back = DivergenceTracker::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(back, t);
        let mut bad = t.to_bytes();
        bad.truncate(bad.len() - 1);
        assert!(DivergenceTracker::from_bytes(&bad).is_err());
        assert!(DivergenceTracker::new(0).is_err());
    }

    proptest! {
        #[test]
        fn tracker_keeps_last_runs_one_each(cap in 1usize..20, runs in proptest::collection::vec(0u64..60, 0..120)) {
            let mut t = DivergenceTracker::new(cap).unwrap();
            for (i, &r) in runs.iter().enumerate() {
                t.record(entry(r, i % 2 == 0));
            }
            let mut distinct: Vec<u64> = runs.clone();
            distinct.sort_unstable();
            distinct.dedup();
            // entries: the newest `cap` distinct runs in order... except runs recorded after
            // being evicted come back only if they are among the newest
            let got: Vec<u64> = t.entries().iter().map(|e| e.run).collect();
            prop_assert!(got.len() <= cap);
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            if let Some(&last) = runs.last() {
                // the run just recorded is present unless `cap` newer runs exist
                let newer = distinct.iter().filter(|&&r| r > last).count();
                prop_assert_eq!(got.contains(&last), newer < cap);
            }
            let back = DivergenceTracker::from_bytes(&t.to_bytes()).unwrap();
            prop_assert_eq!(back, t);
        }
    }
}
