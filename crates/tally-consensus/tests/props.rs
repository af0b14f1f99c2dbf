//! Property tests of the aggregation core.
//!
//! * With honest stake above one half of the participating stake and kappa = 0.5, every
//!   consensus score lies within the honest scores' range, whatever the rest report (any
//!   scores, any missing entries), under both missing-score policies.
//! * Under the trust assumption (byzantine stake below a third of the eligible stake), with
//!   honest validators abstaining on arbitrary subsets of miners (and some honest ones offline),
//!   every miner the run scores lies within the scores of the honest validators that scored it:
//!   the coverage rule (a miner needs scores from the quorum's share of the eligible stake).
//! * Results do not change when validators are reordered, when every stake is multiplied by the
//!   same factor, or with the thread count.
//! * The quickselect median equals the definition computed by brute force, for any kappa.

use proptest::prelude::*;
use tally_consensus::median::weighted_median;
use tally_consensus::{
    consensus_scores, decide_run, MissingPolicy, Params, RunInput, ValidatorScores,
};
use tally_core::{Fraction, Score};

const N_MINERS: usize = 12;

/// A validator: stake and a dense score row (None = did not score that miner).
type Row = (u64, Vec<Option<u32>>);

fn to_lists(rows: &[Row]) -> Vec<Vec<(u32, Score)>> {
    rows.iter()
        .map(|(_, r)| {
            r.iter()
                .enumerate()
                .filter_map(|(m, s)| s.map(|s| (m as u32, Score::from_units(s).unwrap())))
                .collect()
        })
        .collect()
}

fn run(
    rows: &[Row],
    kappa: Fraction,
    missing: MissingPolicy,
    threads: usize,
) -> Vec<Option<Score>> {
    let lists = to_lists(rows);
    let reports: Vec<ValidatorScores> = rows
        .iter()
        .zip(&lists)
        .map(|((st, _), l)| ValidatorScores {
            stake: *st,
            scores: l,
        })
        .collect();
    consensus_scores(&reports, N_MINERS, kappa, missing, 0, threads).unwrap()
}

fn score() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1_000_000_000u32), 0u32..=1_000_000_000]
}

fn honest_row() -> impl Strategy<Value = Row> {
    (
        1u64..1_000_000,
        proptest::collection::vec(score().prop_map(Some), N_MINERS),
    )
}

fn any_row() -> impl Strategy<Value = Row> {
    (
        0u64..1_000_000,
        proptest::collection::vec(proptest::option::weighted(0.8, score()), N_MINERS),
    )
}

fn missing() -> impl Strategy<Value = MissingPolicy> {
    prop_oneof![Just(MissingPolicy::Abstain), Just(MissingPolicy::Zero)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn honest_majority_bounds_every_score(
        honest in proptest::collection::vec(honest_row(), 1..8),
        byz in proptest::collection::vec(any_row(), 0..8),
        policy in missing(),
    ) {
        let h_stake: u128 = honest.iter().map(|r| r.0 as u128).sum();
        let b_stake: u128 = byz.iter().map(|r| r.0 as u128).sum();
        prop_assume!(h_stake > b_stake); // honest stake above one half of the participants
        let mut rows = honest.clone();
        rows.extend(byz);
        let half = Fraction::from_units(500_000_000).unwrap();
        let out = run(&rows, half, policy, 1);
        for (m, c) in out.iter().enumerate() {
            let c = c.expect("honest validators score every miner, so it is covered").units();
            let lo = honest.iter().map(|r| r.1[m].unwrap()).min().unwrap();
            let hi = honest.iter().map(|r| r.1[m].unwrap()).max().unwrap();
            prop_assert!(lo <= c && c <= hi, "miner {} consensus {} outside honest [{}, {}]", m, c, lo, hi);
        }
    }

    #[test]
    fn honest_abstentions_never_let_a_minority_decide(
        honest in proptest::collection::vec(any_row(), 1..8),
        byz in proptest::collection::vec(any_row(), 0..6),
        offline in 0u64..1_000_000,
    ) {
        let h_stake: u128 = honest.iter().map(|r| r.0 as u128).sum();
        let b_stake: u128 = byz.iter().map(|r| r.0 as u128).sum();
        let eligible = h_stake + b_stake + offline as u128;
        prop_assume!(b_stake * 3 < eligible); // byzantine below one third of the eligible stake
        let report = |r: &Row| -> (u64, Vec<(usize, Score)>) {
            let l = r.1.iter().enumerate()
                .filter_map(|(m, s)| s.map(|s| (m, Score::from_units(s).unwrap())))
                .collect();
            (r.0, l)
        };
        let input = RunInput {
            eligible_stake: eligible,
            reports: honest.iter().chain(&byz).map(report).collect(),
            incumbent: None,
        };
        let out = decide_run(&input, &Params::default(), 1).unwrap();
        for &(m, c) in &out.consensus {
            let honest_scores: Vec<u32> = honest.iter().filter(|r| r.0 > 0).filter_map(|r| r.1[m]).collect();
            prop_assert!(!honest_scores.is_empty(), "miner {} scored by byzantine stake alone", m);
            let lo = *honest_scores.iter().min().unwrap();
            let hi = *honest_scores.iter().max().unwrap();
            prop_assert!(lo <= c.units() && c.units() <= hi,
                "miner {} consensus {} outside the honest [{}, {}]", m, c.units(), lo, hi);
        }
    }

    #[test]
    fn invariant_under_order_scale_and_threads(
        rows in proptest::collection::vec(any_row(), 1..12),
        kappa in 1u32..=1_000_000_000,
        factor in 1u64..1000,
        rot in 0usize..12,
        policy in missing(),
    ) {
        let kappa = Fraction::from_units(kappa).unwrap();
        let base = run(&rows, kappa, policy, 1);
        let mut reordered = rows.clone();
        let r = rot % reordered.len();
        reordered.rotate_left(r);
        reordered.reverse();
        prop_assert_eq!(&run(&reordered, kappa, policy, 1), &base);
        let scaled: Vec<Row> = rows.iter().map(|(s, r)| (s * factor, r.clone())).collect();
        prop_assert_eq!(&run(&scaled, kappa, policy, 1), &base);
        prop_assert_eq!(&run(&rows, kappa, policy, 3), &base);
    }

    #[test]
    fn quickselect_matches_definition(
        entries in proptest::collection::vec((score(), 0u64..1000), 0..300),
        kappa in 1u32..=1_000_000_000,
    ) {
        let kappa = Fraction::from_units(kappa).unwrap();
        let total: u128 = entries.iter().map(|e| e.1 as u128).sum();
        // the largest s among the scores with stake(score >= s) / total >= kappa, exactly
        let expect = entries
            .iter()
            .map(|e| e.0)
            .filter(|&s| {
                let at_least: u128 = entries.iter().filter(|e| e.0 >= s).map(|e| e.1 as u128).sum();
                kappa.is_met_by(at_least, total)
            })
            .max();
        let got = weighted_median(&entries, kappa).map(|s| s.units());
        prop_assert_eq!(got, if total == 0 { None } else { expect });
    }
}

#[test]
fn large_thread_split_matches_single_thread() {
    // 4,000 miners x 40 validators: enough work that the miners are split across threads
    let n = 4000usize;
    let rows: Vec<(u64, Vec<(u32, Score)>)> = (0..40u64)
        .map(|v| {
            let l = (0..n as u32)
                .filter(|m| !(m + v as u32).is_multiple_of(7))
                .map(|m| {
                    (
                        m,
                        Score::from_units((m * 7919 + v as u32 * 104_729) % 1_000_000_001).unwrap(),
                    )
                })
                .collect();
            (v * 13 + 1, l)
        })
        .collect();
    let reports: Vec<ValidatorScores> = rows
        .iter()
        .map(|(s, l)| ValidatorScores {
            stake: *s,
            scores: l,
        })
        .collect();
    let k = Fraction::from_units(500_000_000).unwrap();
    let one = consensus_scores(&reports, n, k, MissingPolicy::Abstain, 0, 1).unwrap();
    for t in [2, 3, 8] {
        assert_eq!(
            consensus_scores(&reports, n, k, MissingPolicy::Abstain, 0, t).unwrap(),
            one
        );
    }
    assert!(one.iter().all(|s| s.is_some()));
}
