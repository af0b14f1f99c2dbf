//! Miner-hosted mode in the simulator: one hoster per strategy next to the synthetic miners,
//! validators in `Both` mode. Invariants 7 and 8 hold (the strategies that must score 0 do, the
//! refused records never entered the DHT, each hoster scores the same everywhere, the honest
//! one exactly 1.0), also with lost requests, partitions, and crashes of validators and of the
//! honest hoster; one seed replays the same trace; a store that forgot the window rule is
//! caught.

use tally_sim::sweep::{hoster_strategies, replay_command};
use tally_sim::world::HosterSummary;
use tally_sim::{sweep, Faults, HosterStrategy, SimConfig, SimResult, SweepConfig, World};

fn run(c: SimConfig) -> SimResult {
    World::new(c).unwrap().run()
}

fn with_hosters(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed);
    c.hosters = HosterStrategy::ALL.to_vec();
    c
}

fn hoster(r: &SimResult, s: HosterStrategy) -> &HosterSummary {
    r.hosters.iter().find(|h| h.strategy == s).unwrap()
}

fn faults() -> Faults {
    Faults {
        loss_permille: 50,
        partitions: true,
        crashes: true,
        abstain: false,
    }
}

#[test]
fn every_hoster_strategy_gets_what_it_earns_and_the_honest_hoster_wins() {
    let r = run(with_hosters(1));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.quorum_runs, 4);
    assert_eq!(r.outcomes, 7 * 4);
    assert!(r.exclusions.is_empty(), "{:?}", r.exclusions);
    assert_eq!(r.hosters.len(), HosterStrategy::ALL.len());
    for h in &r.hosters {
        // every honest outcome scored every hoster but the copycat: validators run both
        // families here, and a member that committed nothing is left to the executed scorer,
        // which has no submission of it (no score at all, so no weight either)
        let scored = if h.strategy == HosterStrategy::Copycat {
            0
        } else {
            r.outcomes
        };
        assert_eq!(h.consensus.len(), scored, "{:?}", h.strategy);
        let reason =
            |why: &str| h.reasons.len() == 1 && h.reasons.get(why) == Some(&(r.outcomes as u64));
        match h.strategy {
            HosterStrategy::Honest => {
                assert!(h.consensus.iter().all(|c| *c == 1.0), "{h:?}");
                // no miner reaches 1.0 (the best is 0.9 give or take 0.02): it wins every run
                assert_eq!(h.wins, r.outcomes as u64, "{h:?}");
                assert!(reason("scored"), "{h:?}");
            }
            HosterStrategy::Noisy => {
                // 1 % off everywhere: 0.98 on the toy model's curve, below the honest hoster
                assert!(
                    h.consensus.iter().all(|c| (0.97..0.99).contains(c)),
                    "{h:?}"
                );
                assert!(reason("scored"), "{h:?}");
            }
            s => {
                assert!(s.scores_zero());
                assert!(h.consensus.iter().all(|c| *c == 0.0), "{h:?}");
                let why = match s {
                    HosterStrategy::Lazy => "inaccurate",
                    HosterStrategy::Copycat => "no_commit",
                    HosterStrategy::NoReveal => "no_reveal",
                    HosterStrategy::Mismatch => "mismatch",
                    // every validator's store refused it as late, and was told so
                    HosterStrategy::Late => "late_reveal",
                    _ => unreachable!(),
                };
                assert!(reason(why), "{h:?}");
            }
        }
        assert_eq!(h.wins > 0, h.strategy == HosterStrategy::Honest, "{h:?}");
        assert_eq!(h.restarts, 0, "no crashes without the fault");
    }
    // the copycat's late commit and the late hoster's reveal were refused by the store; the
    // copycat's reveals (of another's output), those it got in before the window closed, were
    // stored and counted for nothing (how many depends on when the honest reveal reached it)
    let copycat = hoster(&r, HosterStrategy::Copycat);
    assert_eq!(copycat.commits, 0, "{copycat:?}");
    assert!((1..=4).contains(&copycat.reveals), "{copycat:?}");
    let late = hoster(&r, HosterStrategy::Late);
    assert_eq!((late.commits, late.reveals), (4, 0), "{late:?}");
    let no_reveal = hoster(&r, HosterStrategy::NoReveal);
    assert_eq!((no_reveal.commits, no_reveal.reveals), (4, 0));
    let honest = hoster(&r, HosterStrategy::Honest);
    assert_eq!((honest.commits, honest.reveals), (4, 4));
}

#[test]
fn hosters_keep_every_invariant_under_loss_partitions_and_crashes() {
    // eight hosters: every strategy, and a second honest one; the byzantine validators mixed
    let c = SweepConfig {
        seeds: 24,
        first_seed: 1,
        validators: 7,
        miners: 6,
        epochs: 4,
        byzantine: None,
        faults: Some(faults()),
        hosters: 8,
    };
    let r = sweep(&c, |_, _| {}).unwrap();
    let bad: Vec<_> = r
        .runs
        .iter()
        .filter(|(_, x)| !x.violations.is_empty())
        .map(|(s, x)| (replay_command(s), x.violations.clone()))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    let honest = |x: &SimResult| -> Vec<HosterSummary> {
        x.hosters
            .iter()
            .filter(|h| h.strategy == HosterStrategy::Honest)
            .cloned()
            .collect()
    };
    // honest hosters crashed and came back, between their commit and their reveal too, and
    // still scored 1.0 wherever they were scored
    let (restarts, before_reveal) = r
        .runs
        .iter()
        .flat_map(|(_, x)| honest(x))
        .fold((0, 0), |(a, b), h| {
            (a + h.restarts, b + h.restarts_before_reveal)
        });
    assert!(
        restarts >= 24 && before_reveal >= 12,
        "{restarts} {before_reveal}"
    );
    for (s, x) in &r.runs {
        assert_eq!(s.hosters, hoster_strategies(8));
        for h in honest(x) {
            assert!(!h.consensus.is_empty(), "seed {}: {h:?}", s.seed);
            assert!(
                h.consensus.iter().all(|c| *c == 1.0),
                "seed {}: {h:?}",
                s.seed
            );
            assert_eq!(h.reveals, 4, "seed {}: {h:?}", s.seed);
        }
        for h in x.hosters.iter().filter(|h| h.strategy.scores_zero()) {
            assert!(
                h.consensus.iter().all(|c| *c == 0.0),
                "seed {}: {h:?}",
                s.seed
            );
        }
    }
    assert!(r.runs.iter().any(|(s, _)| !s.byzantine.is_empty()));
    assert!(r.runs.iter().all(|(_, x)| x.quorum_runs >= 3));
}

#[test]
fn one_seed_with_hosters_twice_gives_the_same_trace() {
    let mut c = with_hosters(5);
    c.faults = faults();
    let a = run(c.clone());
    let b = run(c.clone());
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.effects, b.effects);
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    c.seed = 6;
    assert_ne!(run(c).trace, a.trace);
    // hosters change the world: the same seed without them gives another trace
    let mut plain = SimConfig::new(5);
    plain.faults = faults();
    assert_ne!(run(plain).trace, a.trace);
}

#[test]
fn a_store_that_forgets_the_window_rule_is_caught() {
    let mut c = with_hosters(3);
    assert!(run(c.clone()).violations.is_empty());
    // the late hoster's reveal and the copycat's commit, sent past their windows, get in
    c.broken_hoster_store = true;
    let r = run(c);
    for what in [
        "the DHT holds a hoster-reveal of late hoster",
        "the DHT holds a hoster-commit of copycat hoster",
    ] {
        assert!(
            r.violations.iter().any(|v| v.contains(what)),
            "{what}: {:?}",
            r.violations
        );
    }
}
