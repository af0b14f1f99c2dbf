//! The kappa-weighted median, per miner.
//!
//! For one miner, given the `(score, stake)` of the validators that count for it, the consensus
//! score is the largest score `s` such that the stake of validators scoring at least `s` is at
//! least `kappa` of the stake counted for that miner. It is found by a weighted quickselect in
//! expected linear time (no full sort), with the threshold `ceil(kappa * total)` computed once in
//! integers, so the decision is exact.
//!
//! Missing scores: under [`MissingPolicy::Abstain`] a validator that did not score a miner is left
//! out of that miner's total; under [`MissingPolicy::Zero`] it counts as a score of 0 with its
//! stake (Yuma-compatible). Under both, a miner scored by less than half of the participating
//! stake is unscored this run (`None`).
//!
//! [`consensus_scores`] works over dense miner indices (uids): it transposes the validators'
//! sorted lists tile by tile so each tile stays in cache, and may split the miners across
//! threads; the result does not depend on the thread count.

use crate::ConsensusError;
use tally_core::{Fraction, Score};

/// A dense miner index (a uid, or a position in a sorted key table).
pub type MinerIdx = u32;

/// What a validator that did not score a miner counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MissingPolicy {
    /// Left out of that miner's total (default).
    #[default]
    Abstain,
    /// Counted as a score of 0 (Yuma-compatible).
    Zero,
}

/// One accepted report, by miner index.
#[derive(Clone, Copy, Debug)]
pub struct ValidatorScores<'a> {
    /// The validator's stake at the start of the run.
    pub stake: u64,
    /// `(miner index, score)`, strictly ascending by index.
    pub scores: &'a [(MinerIdx, Score)],
}

const NONE: u32 = u32::MAX;
const SMALL: usize = 24;

/// The largest score `s` with `stake(score >= s) >= need`, for `1 <= need <= sum of stakes`.
/// Reorders `v`.
fn select(mut v: &mut [(u32, u64)], mut need: u128) -> u32 {
    loop {
        if v.len() <= SMALL {
            v.sort_unstable_by(|a, b| b.0.cmp(&a.0));
            let mut cum = 0u128;
            for &(s, w) in v.iter() {
                cum += w as u128;
                if cum >= need {
                    return s;
                }
            }
            // need <= sum holds by construction; the lowest score is the safe answer otherwise.
            return v.last().map(|x| x.0).unwrap_or(0);
        }
        let n = v.len();
        let (a, b, c) = (v[0].0, v[n / 2].0, v[n - 1].0);
        let pivot = a.max(b.min(c)).min(b.max(c)); // median of three
        // three-way partition: [> pivot][== pivot][< pivot], summing stakes as we go
        let (mut lt, mut i, mut gt) = (0usize, 0usize, n);
        let (mut w_gt, mut w_eq) = (0u128, 0u128);
        while i < gt {
            let s = v[i].0;
            if s > pivot {
                w_gt += v[i].1 as u128;
                v.swap(lt, i);
                lt += 1;
                i += 1;
            } else if s < pivot {
                gt -= 1;
                v.swap(i, gt);
            } else {
                w_eq += v[i].1 as u128;
                i += 1;
            }
        }
        if w_gt >= need {
            v = &mut v[..lt];
        } else if w_gt + w_eq >= need {
            return pivot;
        } else {
            need -= w_gt + w_eq;
            v = &mut v[gt..];
        }
    }
}

/// The kappa-weighted median of `(score, stake)` pairs, or `None` when their stake is zero.
pub fn weighted_median(entries: &mut [(u32, u64)], kappa: Fraction) -> Option<Score> {
    let total: u128 = entries.iter().map(|e| e.1 as u128).sum();
    if total == 0 {
        return None;
    }
    let need = kappa.ceil_share_of(total).max(1);
    Score::from_units(select(entries, need)).ok()
}

/// The per-miner rule: coverage, the missing policy, then the weighted median.
fn miner_score(
    scratch: &mut Vec<(u32, u64)>,
    scored: u128,
    participating: u128,
    kappa: Fraction,
    missing: MissingPolicy,
) -> Option<Score> {
    if participating == 0 || scored * 2 < participating {
        return None;
    }
    if missing == MissingPolicy::Zero && participating > scored {
        // the absent stake fits in u64 pieces; split if the sum exceeds one u64
        let mut rest = participating - scored;
        while rest > 0 {
            let part = rest.min(u64::MAX as u128);
            scratch.push((0, part as u64));
            rest -= part;
        }
    }
    weighted_median(scratch, kappa)
}

fn check_inputs(reports: &[ValidatorScores<'_>], n_miners: usize) -> Result<(), ConsensusError> {
    for (v, r) in reports.iter().enumerate() {
        if r.scores.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ConsensusError::UnsortedScores { validator: v });
        }
        if let Some(&(m, _)) = r.scores.last() {
            if m as usize >= n_miners {
                return Err(ConsensusError::MinerOutOfRange { validator: v, miner: m, n_miners });
            }
        }
    }
    Ok(())
}

/// Miners per tile of the transpose: a tile is `TILE x validators` scores.
const TILE: usize = 64;

/// Consensus scores for miners `[lo, lo + out.len())`.
fn range_scores(
    reports: &[ValidatorScores<'_>],
    lo: usize,
    out: &mut [Option<Score>],
    participating: u128,
    kappa: Fraction,
    missing: MissingPolicy,
) {
    let nv = reports.len();
    let mut cursors: Vec<usize> =
        reports.iter().map(|r| r.scores.partition_point(|e| (e.0 as usize) < lo)).collect();
    let mut tile = vec![NONE; TILE * nv];
    let mut scratch: Vec<(u32, u64)> = Vec::with_capacity(nv + 1);
    let hi = lo + out.len();
    let mut m0 = lo;
    while m0 < hi {
        let m1 = (m0 + TILE).min(hi);
        tile.fill(NONE);
        for (v, r) in reports.iter().enumerate() {
            let list = r.scores;
            let mut c = cursors[v];
            while c < list.len() && (list[c].0 as usize) < m1 {
                tile[(list[c].0 as usize - m0) * nv + v] = list[c].1.units();
                c += 1;
            }
            cursors[v] = c;
        }
        for m in m0..m1 {
            let row = &tile[(m - m0) * nv..(m - m0 + 1) * nv];
            scratch.clear();
            let mut scored = 0u128;
            for (v, &s) in row.iter().enumerate() {
                if s != NONE {
                    scratch.push((s, reports[v].stake));
                    scored += reports[v].stake as u128;
                }
            }
            out[m - lo] = miner_score(&mut scratch, scored, participating, kappa, missing);
        }
        m0 = m1;
    }
}

/// Consensus score per miner index `0..n_miners` from the accepted reports.
///
/// `threads` splits the miners into contiguous ranges (1 = on the caller's thread); the result
/// is identical for every thread count. Every accepted report's stake counts as participating.
pub fn consensus_scores(
    reports: &[ValidatorScores<'_>],
    n_miners: usize,
    kappa: Fraction,
    missing: MissingPolicy,
    threads: usize,
) -> Result<Vec<Option<Score>>, ConsensusError> {
    if kappa == Fraction::ZERO {
        return Err(ConsensusError::InvalidParam {
            name: "kappa",
            reason: "must be above 0 and at most 1".into(),
        });
    }
    check_inputs(reports, n_miners)?;
    let participating: u128 = reports.iter().map(|r| r.stake as u128).sum();
    let mut out = vec![None; n_miners];
    let threads = threads.clamp(1, 64).min(n_miners.div_ceil(TILE).max(1));
    if threads == 1 {
        range_scores(reports, 0, &mut out, participating, kappa, missing);
    } else {
        let chunk = n_miners.div_ceil(threads).div_ceil(TILE) * TILE;
        std::thread::scope(|s| {
            for (i, part) in out.chunks_mut(chunk).enumerate() {
                s.spawn(move || {
                    range_scores(reports, i * chunk, part, participating, kappa, missing)
                });
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> Fraction {
        Fraction::from_f64(x).unwrap()
    }
    fn s(x: f64) -> Score {
        Score::from_f64(x).unwrap()
    }
    fn med(pairs: &[(f64, u64)], kappa: f64) -> Option<f64> {
        let mut v: Vec<(u32, u64)> = pairs.iter().map(|&(x, w)| (s(x).units(), w)).collect();
        weighted_median(&mut v, f(kappa)).map(|x| x.to_f64())
    }

    #[test]
    fn median_basic_and_exact_half_split() {
        assert_eq!(med(&[(0.2, 1), (0.5, 1), (0.9, 1)], 0.5), Some(0.5));
        // exact 50/50 split: stake(>= 0.8) = 50 = half of 100, so the larger side wins
        assert_eq!(med(&[(0.8, 50), (0.3, 50)], 0.5), Some(0.8));
        // one unit less on the high side and it no longer reaches half
        assert_eq!(med(&[(0.8, 49), (0.3, 51)], 0.5), Some(0.3));
        assert_eq!(med(&[], 0.5), None);
        assert_eq!(med(&[(0.4, 0)], 0.5), None);
    }

    #[test]
    fn median_other_kappas() {
        let v = [(0.1, 10), (0.4, 20), (0.6, 30), (0.9, 40)];
        // stake at least s: 0.9 -> 40, 0.6 -> 70, 0.4 -> 90, 0.1 -> 100
        assert_eq!(med(&v, 0.4), Some(0.9));
        assert_eq!(med(&v, 0.41), Some(0.6));
        assert_eq!(med(&v, 0.7), Some(0.6));
        assert_eq!(med(&v, 0.700000001), Some(0.4));
        assert_eq!(med(&v, 1.0), Some(0.1));
        assert_eq!(med(&v, 0.000000001), Some(0.9));
    }

    fn by_index(lists: &[(u64, Vec<(u32, f64)>)], n: usize, missing: MissingPolicy) -> Vec<Option<f64>> {
        let owned: Vec<Vec<(u32, Score)>> =
            lists.iter().map(|(_, l)| l.iter().map(|&(m, x)| (m, s(x))).collect()).collect();
        let reports: Vec<ValidatorScores> = lists
            .iter()
            .zip(&owned)
            .map(|((st, _), l)| ValidatorScores { stake: *st, scores: l })
            .collect();
        consensus_scores(&reports, n, f(0.5), missing, 1)
            .unwrap()
            .into_iter()
            .map(|o| o.map(|x| x.to_f64()))
            .collect()
    }

    #[test]
    fn abstain_zero_and_coverage() {
        // A (60) scores miners 0 and 1, B (40) scores miner 0 only.
        let lists = vec![(60, vec![(0, 0.7), (1, 0.9)]), (40, vec![(0, 0.2)])];
        // abstain: miner 1 is scored by 60% of the stake, median over A alone
        assert_eq!(by_index(&lists, 3, MissingPolicy::Abstain), vec![Some(0.7), Some(0.9), None]);
        // zero: B counts as 0 for miner 1 with 40; stake(>= 0.9) = 60 >= 50
        assert_eq!(by_index(&lists, 3, MissingPolicy::Zero), vec![Some(0.7), Some(0.9), None]);
        // B heavier: miner 1 is scored by 40% only, unscored under both
        let lists = vec![(40, vec![(0, 0.7), (1, 0.9)]), (60, vec![(0, 0.2)])];
        assert_eq!(by_index(&lists, 2, MissingPolicy::Abstain), vec![Some(0.2), None]);
        assert_eq!(by_index(&lists, 2, MissingPolicy::Zero), vec![Some(0.2), None]);
        // exactly half coverage is enough; zero then pulls the median down
        let lists = vec![(50, vec![(0, 0.7), (1, 0.9)]), (50, vec![(0, 0.2)])];
        assert_eq!(by_index(&lists, 2, MissingPolicy::Abstain)[1], Some(0.9));
        assert_eq!(by_index(&lists, 2, MissingPolicy::Zero)[1], Some(0.9));
        let lists = vec![(50, vec![(1, 0.9)]), (30, vec![(0, 0.2)]), (20, vec![(0, 0.3), (1, 0.1)])];
        assert_eq!(by_index(&lists, 2, MissingPolicy::Abstain)[1], Some(0.9));
        // zero: scores 0.9 (50), 0.1 (20), 0 (30): stake(>=0.9) = 50 >= 50
        assert_eq!(by_index(&lists, 2, MissingPolicy::Zero)[1], Some(0.9));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let l = [(1u32, Score::ZERO), (1, Score::ONE)];
        let r = [ValidatorScores { stake: 1, scores: &l }];
        assert_eq!(
            consensus_scores(&r, 4, f(0.5), MissingPolicy::Abstain, 1),
            Err(ConsensusError::UnsortedScores { validator: 0 })
        );
        let l = [(4u32, Score::ZERO)];
        let r = [ValidatorScores { stake: 1, scores: &l }];
        assert!(matches!(
            consensus_scores(&r, 4, f(0.5), MissingPolicy::Abstain, 1),
            Err(ConsensusError::MinerOutOfRange { miner: 4, .. })
        ));
        assert!(consensus_scores(&[], 4, Fraction::ZERO, MissingPolicy::Abstain, 1).is_err());
    }
}
