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
//! stake (Yuma-compatible). Under both, a miner is unscored this run (`None`) unless the stake
//! that scored it reaches `coverage` (the run sets it to the quorum's share of the eligible
//! stake, so under the trust assumption honest validators hold a strict majority of it) and half
//! of the participating stake.
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

/// Below this many entries the median is found by sorting.
const SMALL: usize = 32;
/// Largest sample of the bracketing step (16 below 128 entries).
const SAMPLE: usize = 32;

#[inline]
fn score_of(k: u64) -> u32 {
    (k >> 32) as u32
}
#[inline]
fn stake_of(k: u64, stakes: &[u64]) -> u64 {
    stakes.get(k as u32 as usize).copied().unwrap_or(0)
}

/// The first score, in descending order, at which the running stake reaches `need`, starting
/// from `acc`; `keys` must already be sorted ascending (they are walked from the top).
fn scan_desc(keys: &[u64], stakes: &[u64], mut acc: u64, need: u64) -> Option<u32> {
    for &k in keys.iter().rev() {
        acc += stake_of(k, stakes);
        if acc >= need {
            return Some(score_of(k));
        }
    }
    None
}

/// Weighted quickselect over packed keys: the largest score `s` with
/// `stake(score >= s) >= need`, for `1 <= need <= sum of stakes`. Reorders `v`.
fn quickselect(mut v: &mut [u64], stakes: &[u64], mut need: u64) -> u32 {
    loop {
        if v.len() <= SMALL {
            v.sort_unstable();
            // need <= the slice's stake by construction; the lowest score is the fallback
            let low = v.first().map(|&k| score_of(k)).unwrap_or(0);
            return scan_desc(v, stakes, 0, need).unwrap_or(low);
        }
        let n = v.len();
        let (a, b, c) = (score_of(v[0]), score_of(v[n / 2]), score_of(v[n - 1]));
        let pivot = a.max(b.min(c)).min(b.max(c)); // median of three
                                                   // three-way partition: [> pivot][== pivot][< pivot], summing stakes as we go
        let (mut lt, mut i, mut gt) = (0usize, 0usize, n);
        let (mut w_gt, mut w_eq) = (0u64, 0u64);
        while i < gt {
            let s = score_of(v[i]);
            if s > pivot {
                w_gt += stake_of(v[i], stakes);
                v.swap(lt, i);
                lt += 1;
                i += 1;
            } else if s < pivot {
                gt -= 1;
                v.swap(i, gt);
            } else {
                w_eq += stake_of(v[i], stakes);
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

/// The largest score `s` with `stake(score >= s) >= need` over packed keys
/// `(score << 32) | stake index`, for `1 <= need <= total = sum of stakes`.
///
/// Floyd–Rivest style: a sorted sample estimates where the answer lies, one branch-free pass
/// sums the stake above a bracket around the estimate and gathers the keys inside it, and only
/// those few are sorted. The estimate only has to be good, not exact: when it misses, a weighted
/// quickselect finishes on the side where the answer lies, so the result is always exact.
/// Reorders `keys`; `mid` is scratch.
fn select(keys: &mut [u64], stakes: &[u64], need: u64, total: u64, mid: &mut Vec<u64>) -> u32 {
    let n = keys.len();
    if n <= SMALL {
        return quickselect(keys, stakes, need);
    }
    // sample size and the sample positions on each side of the estimate that bound the
    // bracket: about two standard errors of the estimated stake share
    let (lo, hi) = if n < 128 {
        bracket::<16>(keys, stakes, need, total, 3)
    } else {
        bracket::<SAMPLE>(keys, stakes, need, total, 4)
    };
    if mid.len() < n {
        mid.resize(n, 0); // only the first `nm` slots, written by `classify`, are read
    }
    let (nm, w_above, w_mid) = classify(keys, stakes, lo, hi, mid);
    if w_above < need && need <= w_above + w_mid {
        let m = &mut mid[..nm];
        m.sort_unstable();
        if let Some(s) = scan_desc(m, stakes, w_above, need) {
            return s;
        }
    }
    // the estimate missed: the answer lies strictly above `hi` or strictly below `lo`, so
    // finish on that side only
    if need <= w_above {
        let k = partition_in_place(keys, |s| s > hi);
        quickselect(&mut keys[..k], stakes, need)
    } else if need > w_above + w_mid && lo > 0 {
        let k = partition_in_place(keys, |s| s < lo);
        quickselect(&mut keys[..k], stakes, need - w_above - w_mid)
    } else {
        quickselect(keys, stakes, need)
    }
}

/// One branch-free pass: the stake strictly above `hi`, the stake within `[lo, hi]`, and the
/// keys within `[lo, hi]` copied to the front of `mid` (as many as returned first). Kept out
/// of line so its loop has the registers to itself.
#[inline(never)]
fn classify(keys: &[u64], stakes: &[u64], lo: u32, hi: u32, mid: &mut [u64]) -> (usize, u64, u64) {
    let (mut nm, mut w_above, mut w_mid) = (0usize, 0u64, 0u64);
    for &k in keys {
        let s = score_of(k);
        let w = stake_of(k, stakes);
        let above = s > hi;
        let inside = (s >= lo) & !above;
        w_above += w & 0u64.wrapping_sub(above as u64);
        w_mid += w & 0u64.wrapping_sub(inside as u64);
        if let Some(slot) = mid.get_mut(nm) {
            *slot = k;
        }
        nm += inside as usize;
    }
    (nm, w_above, w_mid)
}

/// Estimates the answer from an evenly spaced sample of `S` keys and returns a bracket
/// `(lo, hi)` of scores `spread` sample positions either side of the estimate.
#[inline(never)]
fn bracket<const S: usize>(
    keys: &[u64],
    stakes: &[u64],
    need: u64,
    total: u64,
    spread: usize,
) -> (u32, u32) {
    let n = keys.len();
    let mut sample = [0u64; S];
    for (i, s) in sample.iter_mut().enumerate() {
        *s = keys.get(i * n / S).copied().unwrap_or(0);
    }
    sample.sort_unstable();
    // an estimate only: floating point is fine here, the caller verifies the bracket exactly
    let total_s: f64 = sample.iter().map(|&k| stake_of(k, stakes) as f64).sum();
    let need_s = need as f64 / total.max(1) as f64 * total_s;
    let mut cum = 0.0;
    let mut j = 0; // position from the top
    for (i, &k) in sample.iter().rev().enumerate() {
        cum += stake_of(k, stakes) as f64;
        j = i;
        if cum >= need_s {
            break;
        }
    }
    let at = |pos: usize| score_of(sample[S - 1 - pos]);
    let hi = if j >= spread {
        at(j - spread)
    } else {
        u32::MAX
    };
    let lo = if j + spread < S { at(j + spread) } else { 0 };
    (lo, hi)
}

/// Moves the keys whose score satisfies `keep` to the front; returns how many there are.
fn partition_in_place(keys: &mut [u64], keep: impl Fn(u32) -> bool) -> usize {
    let mut k = 0;
    for i in 0..keys.len() {
        if keep(score_of(keys[i])) {
            keys.swap(k, i);
            k += 1;
        }
    }
    k
}

/// The kappa-weighted median of `(score, stake)` pairs, or `None` when their stake is zero or
/// sums past `u64::MAX`.
pub fn weighted_median(entries: &[(u32, u64)], kappa: Fraction) -> Option<Score> {
    let total = entries.iter().try_fold(0u64, |a, e| a.checked_add(e.1))?;
    if total == 0 {
        return None;
    }
    let stakes: Vec<u64> = entries.iter().map(|e| e.1).collect();
    let mut keys: Vec<u64> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.0 as u64) << 32) | i as u64)
        .collect();
    let need = kappa.ceil_share_of(total as u128).max(1) as u64;
    Score::from_units(select(&mut keys, &stakes, need, total, &mut Vec::new())).ok()
}

fn check_inputs(reports: &[ValidatorScores<'_>], n_miners: usize) -> Result<u64, ConsensusError> {
    if reports.len() >= u32::MAX as usize {
        return Err(ConsensusError::InvalidParam {
            name: "reports",
            reason: "too many".into(),
        });
    }
    for (v, r) in reports.iter().enumerate() {
        // branch-free so it vectorizes; the lists are long and almost always valid
        let sorted = r
            .scores
            .windows(2)
            .fold(true, |ok, w| ok & (w[0].0 < w[1].0));
        if !sorted {
            return Err(ConsensusError::UnsortedScores { validator: v });
        }
        if let Some(&(m, _)) = r.scores.last() {
            if m as usize >= n_miners {
                return Err(ConsensusError::MinerOutOfRange {
                    validator: v,
                    miner: m,
                    n_miners,
                });
            }
        }
    }
    reports
        .iter()
        .try_fold(0u64, |a, r| a.checked_add(r.stake))
        .ok_or_else(|| ConsensusError::InvalidParam {
            name: "stake",
            reason: "participating stake sums past u64::MAX".into(),
        })
}

/// Least work (score entries) worth a thread of its own.
const MIN_ENTRIES_PER_THREAD: usize = 64 * 1024;

/// Miners per tile of the transpose: a tile is `TILE x validators` scores.
const TILE: usize = 32;

/// Consensus scores for miners `[lo, lo + out.len())`.
///
/// Works a tile of `TILE` miners at a time: each validator's entries for the tile are appended
/// to the rows of their miners (packed as `(score << 32) | validator`), so each row ends up
/// holding exactly the keys the median needs, contiguous and in cache.
fn range_scores(
    reports: &[ValidatorScores<'_>],
    lo: usize,
    out: &mut [Option<Score>],
    participating: u64,
    coverage: u64,
    kappa: Fraction,
    missing: MissingPolicy,
) {
    let nv = reports.len();
    let width = nv + 1; // one spare slot per row for the absent stake under `zero`
    let mut cursors: Vec<usize> = reports
        .iter()
        .map(|r| r.scores.partition_point(|e| (e.0 as usize) < lo))
        .collect();
    // validators' stakes, plus one slot for the absent stake under the `zero` policy
    let mut stakes: Vec<u64> = reports.iter().map(|r| r.stake).collect();
    stakes.push(0);
    let mut tile = vec![0u64; TILE * width];
    let mut mid = Vec::with_capacity(width);
    let need_all = kappa.ceil_share_of(participating as u128).max(1) as u64;
    let hi = lo + out.len();
    let mut m0 = lo;
    while m0 < hi {
        let m1 = (m0 + TILE).min(hi);
        let mut count = [0usize; TILE];
        let mut scored = [0u64; TILE];
        for (v, r) in reports.iter().enumerate() {
            let list = r.scores;
            let mut c = cursors[v];
            while let Some(&(m, score)) = list.get(c) {
                if m as usize >= m1 {
                    break;
                }
                let row = m as usize - m0;
                // rows hold at most one entry per validator: the lists were checked to be
                // strictly ascending, so `count[row] < nv` here
                if let Some(slot) = tile.get_mut(row * width + count[row]) {
                    *slot = ((score.units() as u64) << 32) | v as u64;
                }
                count[row] += 1;
                scored[row] += r.stake;
                c += 1;
            }
            cursors[v] = c;
        }
        for row in 0..m1 - m0 {
            let (mut n, scored) = (count[row].min(nv), scored[row]);
            let keys = &mut tile[row * width..(row + 1) * width];
            out[m0 - lo + row] = if participating == 0
                || (scored as u128) * 2 < participating as u128
                || scored < coverage
            {
                None
            } else {
                let (total, need) = match missing {
                    MissingPolicy::Abstain => {
                        (scored, kappa.ceil_share_of(scored as u128).max(1) as u64)
                    }
                    MissingPolicy::Zero => {
                        if participating > scored {
                            stakes[nv] = participating - scored;
                            keys[n] = nv as u64; // score 0, the absent stake
                            n += 1;
                        }
                        (participating, need_all)
                    }
                };
                if total == 0 {
                    None
                } else {
                    let s = select(&mut keys[..n], &stakes, need, total, &mut mid);
                    Score::from_units(s).ok()
                }
            };
        }
        m0 = m1;
    }
}

/// Consensus score per miner index `0..n_miners` from the accepted reports.
///
/// `threads` splits the miners into contiguous ranges (1 = on the caller's thread); the result
/// is identical for every thread count. Every accepted report's stake counts as participating.
/// A miner is scored only when the stake of the validators that scored it is at least `coverage`
/// and at least half of the participating stake ([`crate::run::decide_run`] passes the quorum's
/// share of the eligible stake; 0 leaves only the half rule).
pub fn consensus_scores(
    reports: &[ValidatorScores<'_>],
    n_miners: usize,
    kappa: Fraction,
    missing: MissingPolicy,
    coverage: u64,
    threads: usize,
) -> Result<Vec<Option<Score>>, ConsensusError> {
    if kappa == Fraction::ZERO {
        return Err(ConsensusError::InvalidParam {
            name: "kappa",
            reason: "must be above 0 and at most 1".into(),
        });
    }
    let participating = check_inputs(reports, n_miners)?;
    let mut out = vec![None; n_miners];
    // a helper thread costs tens of microseconds to start: below this much work one is faster
    let entries: usize = reports.iter().map(|r| r.scores.len()).sum();
    let threads = if entries < MIN_ENTRIES_PER_THREAD * 2 {
        1
    } else {
        threads
    };
    let threads = threads.clamp(1, 64).min(n_miners.div_ceil(TILE).max(1));
    if threads == 1 {
        range_scores(
            reports,
            0,
            &mut out,
            participating,
            coverage,
            kappa,
            missing,
        );
    } else {
        let chunk = n_miners.div_ceil(threads).div_ceil(TILE) * TILE;
        std::thread::scope(|s| {
            let mut parts = out.chunks_mut(chunk).enumerate();
            // the first range runs on this thread, the rest on helpers
            let first = parts.next();
            for (i, part) in parts {
                s.spawn(move || {
                    range_scores(
                        reports,
                        i * chunk,
                        part,
                        participating,
                        coverage,
                        kappa,
                        missing,
                    )
                });
            }
            if let Some((_, part)) = first {
                range_scores(reports, 0, part, participating, coverage, kappa, missing);
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
        let v: Vec<(u32, u64)> = pairs.iter().map(|&(x, w)| (s(x).units(), w)).collect();
        weighted_median(&v, f(kappa)).map(|x| x.to_f64())
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

    fn by_index(
        lists: &[(u64, Vec<(u32, f64)>)],
        n: usize,
        missing: MissingPolicy,
    ) -> Vec<Option<f64>> {
        let owned: Vec<Vec<(u32, Score)>> = lists
            .iter()
            .map(|(_, l)| l.iter().map(|&(m, x)| (m, s(x))).collect())
            .collect();
        let reports: Vec<ValidatorScores> = lists
            .iter()
            .zip(&owned)
            .map(|((st, _), l)| ValidatorScores {
                stake: *st,
                scores: l,
            })
            .collect();
        consensus_scores(&reports, n, f(0.5), missing, 0, 1)
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
        assert_eq!(
            by_index(&lists, 3, MissingPolicy::Abstain),
            vec![Some(0.7), Some(0.9), None]
        );
        // zero: B counts as 0 for miner 1 with 40; stake(>= 0.9) = 60 >= 50
        assert_eq!(
            by_index(&lists, 3, MissingPolicy::Zero),
            vec![Some(0.7), Some(0.9), None]
        );
        // B heavier: miner 1 is scored by 40% only, unscored under both
        let lists = vec![(40, vec![(0, 0.7), (1, 0.9)]), (60, vec![(0, 0.2)])];
        assert_eq!(
            by_index(&lists, 2, MissingPolicy::Abstain),
            vec![Some(0.2), None]
        );
        assert_eq!(
            by_index(&lists, 2, MissingPolicy::Zero),
            vec![Some(0.2), None]
        );
        // exactly half coverage is enough; zero then pulls the median down
        let lists = vec![(50, vec![(0, 0.7), (1, 0.9)]), (50, vec![(0, 0.2)])];
        assert_eq!(by_index(&lists, 2, MissingPolicy::Abstain)[1], Some(0.9));
        assert_eq!(by_index(&lists, 2, MissingPolicy::Zero)[1], Some(0.9));
        let lists = vec![
            (50, vec![(1, 0.9)]),
            (30, vec![(0, 0.2)]),
            (20, vec![(0, 0.3), (1, 0.1)]),
        ];
        assert_eq!(by_index(&lists, 2, MissingPolicy::Abstain)[1], Some(0.9));
        // zero: scores 0.9 (50), 0.1 (20), 0 (30): stake(>=0.9) = 50 >= 50
        assert_eq!(by_index(&lists, 2, MissingPolicy::Zero)[1], Some(0.9));
    }

    #[test]
    fn coverage_below_the_threshold_leaves_a_miner_unscored() {
        // eligible 90: A (30, byzantine-sized) and B (20) score miner 1; C (40) does not.
        // Half of the participating 90 is 45 <= 50, but coverage 60 (2/3 of 90) is not reached.
        let lists = [
            (30u64, vec![(0u32, 0.9), (1, 1.0)]),
            (20, vec![(0, 0.2), (1, 0.1)]),
            (40, vec![(0, 0.3)]),
        ];
        let scores = |coverage| {
            let l: Vec<Vec<(u32, Score)>> = lists
                .iter()
                .map(|(_, l)| {
                    l.iter()
                        .map(|&(m, x)| (m, Score::from_f64(x).unwrap()))
                        .collect()
                })
                .collect();
            let r: Vec<ValidatorScores> = lists
                .iter()
                .zip(&l)
                .map(|((st, _), l)| ValidatorScores {
                    stake: *st,
                    scores: l,
                })
                .collect();
            consensus_scores(&r, 2, f(0.5), MissingPolicy::Abstain, coverage, 1).unwrap()
        };
        assert_eq!(scores(0)[1], Some(Score::ONE)); // the 30 alone decides miner 1
        assert_eq!(scores(60)[1], None);
        assert_eq!(scores(60)[0], Some(Score::from_f64(0.3).unwrap()));
        assert_eq!(scores(90)[0], Some(Score::from_f64(0.3).unwrap()));
        assert_eq!(scores(91)[0], None);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let l = [(1u32, Score::ZERO), (1, Score::ONE)];
        let r = [ValidatorScores {
            stake: 1,
            scores: &l,
        }];
        assert_eq!(
            consensus_scores(&r, 4, f(0.5), MissingPolicy::Abstain, 0, 1),
            Err(ConsensusError::UnsortedScores { validator: 0 })
        );
        let l = [(4u32, Score::ZERO)];
        let r = [ValidatorScores {
            stake: 1,
            scores: &l,
        }];
        assert!(matches!(
            consensus_scores(&r, 4, f(0.5), MissingPolicy::Abstain, 0, 1),
            Err(ConsensusError::MinerOutOfRange { miner: 4, .. })
        ));
        assert!(consensus_scores(&[], 4, Fraction::ZERO, MissingPolicy::Abstain, 0, 1).is_err());
    }
}
