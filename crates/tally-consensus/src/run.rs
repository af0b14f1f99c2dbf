//! One run's decision for keyed input: quorum, consensus, winner and weights.
//!
//! [`decide_run`] interns the miner keys into a sorted table (so a smaller index is a smaller
//! key, which is how ties go to the smaller hotkey), computes the consensus with
//! [`crate::median::consensus_scores`] (a miner scored by less than the quorum's share of the
//! eligible stake is unscored: the coverage rule), checks quorum against the eligible stake, and picks
//! weights by the [`WeightPolicy`]:
//!
//! * winner-take-all with hysteresis ([`winner_take_all`]): the incumbent keeps the crown unless
//!   a challenger's consensus score is at least the incumbent's plus `margin` (inclusive); an
//!   absent or unscored incumbent is replaced by the top scorer; ties go to the smaller key;
//! * proportional: weights are the consensus scores normalized to sum to one.
//!
//! No scored miner (or all-zero scores under proportional) means [`Weights::Burn`]. A quorum miss
//! means [`Weights::Hold`]: the last weights stay on chain and the incumbent keeps the crown.

use crate::median::{consensus_scores, MissingPolicy, ValidatorScores};
use crate::ConsensusError;
use std::collections::BTreeSet;
use tally_core::{Fraction, Ratio, Score};

/// How weights follow from the consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPolicy {
    /// One winner takes all weight, with hysteresis.
    WinnerTakeAll,
    /// Weights proportional to consensus scores.
    Proportional,
}

/// Aggregation parameters; [`Params::default`] holds DESIGN.md's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// kappa of the weighted median (default 0.5).
    pub kappa: Fraction,
    /// Missing-score policy (default abstain).
    pub missing: MissingPolicy,
    /// Quorum as an exact share of eligible stake (default 2/3: 2 of 3 equal stakes reach it).
    pub quorum: Ratio,
    /// Hysteresis margin (default 0.05).
    pub margin: Score,
    /// Weight policy (default winner-take-all).
    pub policy: WeightPolicy,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            kappa: Fraction::from_units(500_000_000).unwrap_or(Fraction::ONE),
            missing: MissingPolicy::Abstain,
            quorum: Ratio::TWO_THIRDS,
            margin: Score::from_units(50_000_000).unwrap_or(Score::ZERO),
            policy: WeightPolicy::WinnerTakeAll,
        }
    }
}

/// The accepted reports of one run.
#[derive(Clone, Debug)]
pub struct RunInput<K> {
    /// Total stake of the validators eligible for this run (from the run's metagraph snapshot).
    pub eligible_stake: u128,
    /// Accepted reports: `(stake, [(miner, score)])`, any order within a list, no repeats.
    pub reports: Vec<(u64, Vec<(K, Score)>)>,
    /// The last winner on chain, if any.
    pub incumbent: Option<K>,
}

/// Weights to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Weights<K> {
    /// These targets and shares (summing to at most one).
    Set(Vec<(K, Fraction)>),
    /// All weight to the configured burn uid.
    Burn,
    /// Keep the weights already on chain.
    Hold,
}

/// What a run decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome<K> {
    /// Whether accepted stake reached the quorum.
    pub quorum_met: bool,
    /// Accepted stake over eligible stake (rounded down), or zero when nothing is eligible.
    pub participating: Fraction,
    /// Consensus score of every scored miner, sorted by key.
    pub consensus: Vec<(K, Score)>,
    /// The winner (on a quorum miss, the incumbent held).
    pub winner: Option<K>,
    /// Weights to set.
    pub weights: Weights<K>,
}

/// Winner-take-all with hysteresis over `consensus` sorted by key.
pub fn winner_take_all<K: Ord + Clone>(
    consensus: &[(K, Score)],
    incumbent: Option<&K>,
    margin: Score,
) -> Option<K> {
    // the top scorer; iterating in key order and replacing only on a strictly higher score
    // gives ties to the smaller key
    let top = |skip: Option<&K>| {
        let mut best: Option<&(K, Score)> = None;
        for e in consensus {
            if Some(&e.0) == skip {
                continue;
            }
            if best.is_none_or(|b| e.1 > b.1) {
                best = Some(e);
            }
        }
        best
    };
    let inc = incumbent.and_then(|k| {
        consensus
            .binary_search_by(|e| e.0.cmp(k))
            .ok()
            .map(|i| &consensus[i])
    });
    match inc {
        None => top(None).map(|e| e.0.clone()),
        Some(inc) => match top(Some(&inc.0)) {
            Some(ch) if ch.1.units() as u64 >= inc.1.units() as u64 + margin.units() as u64 => {
                Some(ch.0.clone())
            }
            _ => Some(inc.0.clone()),
        },
    }
}

/// Consensus scores normalized to sum to one (rounded down), or burn when they sum to zero.
pub fn proportional<K: Clone>(consensus: &[(K, Score)]) -> Weights<K> {
    let total: u128 = consensus.iter().map(|e| e.1.units() as u128).sum();
    if total == 0 {
        return Weights::Burn;
    }
    Weights::Set(
        consensus
            .iter()
            .filter(|e| e.1 > Score::ZERO)
            .map(|e| {
                let share = Fraction::ratio(e.1.units() as u128, total).unwrap_or(Fraction::ZERO);
                (e.0.clone(), share)
            })
            .collect(),
    )
}

/// Decides one run. `threads` is passed to the median (1 keeps it on this thread).
pub fn decide_run<K: Ord + Clone>(
    input: &RunInput<K>,
    params: &Params,
    threads: usize,
) -> Result<RunOutcome<K>, ConsensusError> {
    // each report lists its miners in key order (reports are checked sorted and unique when
    // signed); when every list names the same miners, which is the common case, they are the
    // key table as they stand and each index is a position
    let first: Vec<&K> = input
        .reports
        .first()
        .map(|(_, l)| l.iter().map(|e| &e.0).collect())
        .unwrap_or_default();
    let same = first.windows(2).all(|w| w[0] < w[1])
        && input
            .reports
            .iter()
            .all(|(_, l)| l.len() == first.len() && l.iter().zip(&first).all(|(e, k)| e.0 == **k));
    let keys: Vec<K> = if same {
        first.into_iter().cloned().collect()
    } else {
        input
            .reports
            .iter()
            .flat_map(|(_, l)| l.iter().map(|e| e.0.clone()))
            .collect::<BTreeSet<K>>()
            .into_iter()
            .collect()
    };
    let mut indexed: Vec<Vec<(u32, Score)>> = Vec::with_capacity(input.reports.len());
    for (v, (_, list)) in input.reports.iter().enumerate() {
        let mut l: Vec<(u32, Score)> = if same {
            list.iter()
                .enumerate()
                .map(|(i, (_, s))| (i as u32, *s))
                .collect()
        } else {
            list.iter()
                .map(|(k, s)| (keys.binary_search(k).unwrap_or(0) as u32, *s))
                .collect()
        };
        if !same {
            l.sort_unstable_by_key(|e| e.0);
        }
        if l.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(ConsensusError::UnsortedScores { validator: v });
        }
        indexed.push(l);
    }
    let reports: Vec<ValidatorScores<'_>> = input
        .reports
        .iter()
        .zip(&indexed)
        .map(|((stake, _), l)| ValidatorScores {
            stake: *stake,
            scores: l,
        })
        .collect();
    // coverage: a miner counts only when validators holding the quorum's share of the eligible
    // stake scored it; byzantine stake below a third then never decides it on its own
    let coverage = params
        .quorum
        .ceil_share_of(input.eligible_stake)
        .min(u64::MAX as u128) as u64;
    let scores = consensus_scores(
        &reports,
        keys.len(),
        params.kappa,
        params.missing,
        coverage,
        threads,
    )?;
    let consensus: Vec<(K, Score)> = keys
        .into_iter()
        .zip(scores)
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect();
    let accepted: u128 = input.reports.iter().map(|r| r.0 as u128).sum();
    let participating = Fraction::ratio(accepted.min(input.eligible_stake), input.eligible_stake)
        .unwrap_or(Fraction::ZERO);
    let quorum_met = params.quorum.is_met_by(accepted, input.eligible_stake);
    if !quorum_met {
        return Ok(RunOutcome {
            quorum_met,
            participating,
            consensus,
            winner: input.incumbent.clone(),
            weights: Weights::Hold,
        });
    }
    let (winner, weights) = match params.policy {
        WeightPolicy::WinnerTakeAll => {
            let w = winner_take_all(&consensus, input.incumbent.as_ref(), params.margin);
            let weights = match &w {
                Some(k) => Weights::Set(vec![(k.clone(), Fraction::ONE)]),
                None => Weights::Burn,
            };
            (w, weights)
        }
        WeightPolicy::Proportional => {
            let w = winner_take_all(&consensus, None, Score::ZERO);
            (w, proportional(&consensus))
        }
    };
    Ok(RunOutcome {
        quorum_met,
        participating,
        consensus,
        winner,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Score {
        Score::from_f64(x).unwrap()
    }
    fn c(v: &[(&'static str, f64)]) -> Vec<(&'static str, Score)> {
        v.iter().map(|&(k, x)| (k, s(x))).collect()
    }

    #[test]
    fn hysteresis_margin_is_inclusive() {
        let m = s(0.05);
        // challenger exactly at incumbent + margin takes the crown
        assert_eq!(
            winner_take_all(&c(&[("a", 0.60), ("b", 0.65)]), Some(&"a"), m),
            Some("b")
        );
        // one unit short keeps the incumbent
        let mut v = c(&[("a", 0.60), ("b", 0.65)]);
        v[1].1 = Score::from_units(649_999_999).unwrap();
        assert_eq!(winner_take_all(&v, Some(&"a"), m), Some("a"));
        // an incumbent near 1.0 cannot be overtaken at all (no saturation shortcut)
        assert_eq!(
            winner_take_all(&c(&[("a", 0.97), ("b", 1.0)]), Some(&"a"), m),
            Some("a")
        );
    }

    #[test]
    fn absent_incumbent_ties_and_empty() {
        let m = s(0.05);
        let v = c(&[("a", 0.5), ("b", 0.9), ("c", 0.9)]);
        assert_eq!(winner_take_all(&v, Some(&"zz"), m), Some("b"));
        assert_eq!(winner_take_all(&v, None, m), Some("b"));
        let empty: Vec<(&str, Score)> = vec![];
        assert_eq!(winner_take_all(&empty, Some(&"a"), m), None);
        // zero margin: a tie with the incumbent is enough for the smaller challenger
        assert_eq!(
            winner_take_all(&c(&[("a", 0.9), ("b", 0.9)]), Some(&"b"), Score::ZERO),
            Some("a")
        );
    }

    fn input(
        reports: Vec<(u64, Vec<(&'static str, f64)>)>,
        eligible: u128,
        inc: Option<&'static str>,
    ) -> RunInput<&'static str> {
        RunInput {
            eligible_stake: eligible,
            reports: reports.into_iter().map(|(st, l)| (st, c(&l))).collect(),
            incumbent: inc,
        }
    }

    #[test]
    fn quorum_miss_holds_incumbent() {
        let i = input(vec![(60, vec![("a", 0.2), ("b", 0.9)])], 100, Some("a"));
        let o = decide_run(&i, &Params::default(), 1).unwrap();
        assert!(!o.quorum_met);
        assert_eq!(o.weights, Weights::Hold);
        assert_eq!(o.winner, Some("a"));
        assert_eq!(o.participating.units(), 600_000_000);
        // exactly 2/3 of eligible stake meets it: 2 of 3 equal stakes
        let i = input(vec![(1, vec![("a", 0.2)]), (1, vec![("a", 0.3)])], 3, None);
        assert!(decide_run(&i, &Params::default(), 1).unwrap().quorum_met);
        let i = input(vec![(666_666_666, vec![("a", 0.2)])], 1_000_000_000, None);
        assert!(!decide_run(&i, &Params::default(), 1).unwrap().quorum_met);
    }

    #[test]
    fn full_run_wta_and_proportional() {
        let reports = vec![
            (40, vec![("a", 0.5), ("b", 0.7), ("c", 0.1)]),
            (35, vec![("a", 0.52), ("b", 0.69), ("c", 0.0)]),
            (25, vec![("a", 1.0), ("b", 0.0), ("c", 0.0)]), // inflates a, buries b
        ];
        let i = input(reports, 100, Some("a"));
        let o = decide_run(&i, &Params::default(), 1).unwrap();
        assert!(o.quorum_met);
        // a: 1.0(25) .52(35) .5(40): stake>=.52 is 60 -> .52; b: .7(40) .69(35) 0(25) -> .69
        assert_eq!(o.consensus, c(&[("a", 0.52), ("b", 0.69), ("c", 0.0)]));
        assert_eq!(o.winner, Some("b")); // .69 >= .52 + .05
        assert_eq!(o.weights, Weights::Set(vec![("b", Fraction::ONE)]));
        let p = Params {
            policy: WeightPolicy::Proportional,
            ..Params::default()
        };
        let o = decide_run(&i, &p, 1).unwrap();
        let Weights::Set(w) = o.weights else {
            panic!("expected weights")
        };
        assert_eq!(w.len(), 2);
        assert_eq!(
            w[0].1.units(),
            (520_000_000u128 * 1_000_000_000 / 1_210_000_000) as u32
        );
    }

    #[test]
    fn no_scores_burns() {
        let i = input(vec![(100, vec![])], 100, None);
        let o = decide_run(&i, &Params::default(), 1).unwrap();
        assert_eq!(o.weights, Weights::Burn);
        assert_eq!(o.winner, None);
        let p = Params {
            policy: WeightPolicy::Proportional,
            ..Params::default()
        };
        let i = input(vec![(100, vec![("a", 0.0)])], 100, None);
        assert_eq!(decide_run(&i, &p, 1).unwrap().weights, Weights::Burn);
    }

    #[test]
    fn repeated_miner_in_a_report_is_an_error() {
        let i = input(vec![(100, vec![("a", 0.1), ("a", 0.2)])], 100, None);
        assert!(decide_run(&i, &Params::default(), 1).is_err());
    }
}
