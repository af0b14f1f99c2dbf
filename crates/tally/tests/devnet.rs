//! Integration tests: whole subnets on 127.0.0.1 (chain over HTTP, owner endpoint, validators
//! with DHT nodes, HTTP APIs and databases), one per byzantine strategy, plus quorum loss and a
//! restart. Short epochs (20 blocks of 80 ms), one devnet at a time, keep each test to a few seconds.

use tally::devnet::Byzantine;
use tally::devnet::{run, DevnetConfig, HosterStrategy, Report};
use tally_consensus::WeightMode;

/// The devnets run one at a time: each is a dozen tasks on tight block times, and running them
/// side by side on two cores only makes every one of them late.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(dir: &tempfile::TempDir, validators: usize, byzantine: Vec<Byzantine>) -> DevnetConfig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    DevnetConfig {
        binary: env!("CARGO_BIN_EXE_tally").into(),
        validators,
        miners: 4,
        epochs: 2,
        mode: WeightMode::Decentralized,
        seed: 11,
        block_ms: 80,
        epoch_length: 20,
        byzantine,
        offline: 0,
        offline_after: None,
        out: dir.path().join("out"),
        progress: false,
        restart: None,
        dense: false,
        synthetic: true,
        hostile: 0,
        subtensor: None,
        hosters: 0,
        hoster_strategies: Vec::new(),
        restart_hoster: None,
    }
}

fn honest_winner(r: &Report) -> String {
    r.best_miner.to_ss58()
}

fn byz_hotkey(r: &Report) -> String {
    r.validators
        .iter()
        .find(|v| v.2.is_some())
        .map(|v| v.0.to_ss58())
        .unwrap()
}

fn strategy_test(b: Byzantine, reason: Option<&str>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = run(config(&dir, 5, vec![b])).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    for run in &r.runs {
        assert!(run.quorum_met, "run {}: {:?}", run.run, run);
        assert_eq!(
            run.winner.as_deref(),
            Some(honest_winner(&r).as_str()),
            "run {}",
            run.run
        );
        let byz = byz_hotkey(&r);
        let ex: Vec<_> = run
            .excluded
            .iter()
            .filter(|(v, _)| *v == byz)
            .map(|(_, why)| why.as_str())
            .collect();
        match reason {
            Some(why) => assert_eq!(ex, vec![why], "run {}: {:?}", run.run, run.excluded),
            None => assert!(ex.is_empty(), "run {}: {:?}", run.run, run.excluded),
        }
        // honest validators are never excluded
        assert_eq!(
            run.excluded.len(),
            usize::from(reason.is_some()),
            "{:?}",
            run.excluded
        );
    }
    let out = dir.path().join("out");
    assert!(out.join("summary.json").exists());
    assert!(out.join("chain.redb").exists());
    assert!(std::fs::read_dir(out.join("evidence")).unwrap().count() > 0);
}

#[test]
fn honest_subnet_agrees_on_the_best_miner() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let r = run(config(&dir, 4, vec![])).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert_eq!(r.runs.len(), 2);
    // every validator stopped cleanly on SIGTERM
    for i in 0..4 {
        let log = std::fs::read_to_string(dir.path().join(format!("out/logs/validator-{i}.log")))
            .unwrap();
        assert!(log.contains(" stopped"), "{log}");
    }
    for run in &r.runs {
        assert!(run.quorum_met);
        assert!(run.excluded.is_empty(), "{:?}", run.excluded);
        assert_eq!(run.winner.as_deref(), Some(honest_winner(&r).as_str()));
        // every consensus score is within 0.02 of the true quality
        for (m, q) in &r.miners {
            let c = run.consensus[&m.to_ss58()];
            assert!(
                (c - q.to_f64()).abs() <= 0.02 + 1e-9,
                "{c} vs {}",
                q.to_f64()
            );
        }
    }
}

#[test]
fn inflater_is_kept_but_cannot_change_the_winner() {
    strategy_test(Byzantine::Inflate, None);
}

#[test]
fn equivocator_is_excluded() {
    strategy_test(Byzantine::Equivocate, Some("equivocation"));
}

#[test]
fn copier_is_excluded() {
    strategy_test(Byzantine::Copy, Some("commitment_mismatch"));
}

#[test]
fn withholder_is_excluded() {
    strategy_test(Byzantine::Withhold, Some("no_report"));
}

#[test]
fn forger_is_excluded() {
    strategy_test(Byzantine::Forge, Some("wrong_signer"));
}

#[test]
fn two_offline_validators_miss_quorum_and_hold_the_incumbent() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, 4, vec![]);
    c.epochs = 3;
    c.offline = 2;
    c.offline_after = Some(0);
    let r = run(c).unwrap();
    // run 0 with everyone: the best miner wins and becomes the incumbent on chain
    assert!(r.runs[0].quorum_met);
    assert_eq!(
        r.runs[0].winner.as_deref(),
        Some(honest_winner(&r).as_str())
    );
    // later runs: half the stake is gone, quorum (2/3) is missed, the incumbent is held
    let last = r.runs.last().unwrap();
    assert!(!last.quorum_met, "{last:?}");
    assert_eq!(last.winner, r.runs[0].winner);
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
}

#[test]
fn restarted_node_serves_identical_bytes_and_resumes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, 4, vec![]);
    c.restart = Some((1, 1));
    let r = run(c).unwrap();
    let (before, after) = r.restart_bytes.clone().unwrap();
    assert!(!before.is_empty());
    assert_eq!(before, after);
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert!(
        r.runs.iter().all(|x| x.quorum_met && x.excluded.is_empty()),
        "{:?}",
        r.runs
    );
}

#[test]
fn shadow_mode_sets_the_owner_pick_and_tracks_divergence() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, 4, vec![Byzantine::Inflate]);
    c.mode = WeightMode::Shadow;
    let r = run(c).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    // the node's database holds one divergence entry per run; the owner picked the best miner,
    // which is also the consensus winner
    let store = tally_node::store::NodeStore::open(
        &dir.path().join("out/nodes/validator-0/validator.redb"),
    )
    .unwrap();
    let t = tally_consensus::divergence::DivergenceTracker::from_bytes(
        &store.meta("divergence").unwrap().unwrap(),
    )
    .unwrap();
    assert_eq!(
        t.entries().iter().map(|e| e.run).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert!(t.entries().iter().all(|e| e.top1_agree));
    assert!(t.summary().mean_spearman.unwrap() > 0.9);
}

#[test]
fn real_execution_ranks_the_faithful_miner_first() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, 4, vec![]);
    c.synthetic = false;
    c.miners = 5; // faithful, quantized, noisy, slow, lazy
    let r = run(c).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    let faithful = r.miners[0].0.to_ss58();
    let lazy = r.miners[4].0.to_ss58();
    for run in &r.runs {
        assert!(run.quorum_met && run.excluded.is_empty(), "{run:?}");
        assert_eq!(run.winner.as_deref(), Some(faithful.as_str()));
        assert_eq!(run.consensus[&faithful], 1.0);
        assert_eq!(run.consensus[&lazy], 0.0);
    }
}

#[test]
fn hostile_miners_do_not_delay_any_aggregation() {
    // Two miners submit the most expensive module to compile within the compile budget and
    // the most expensive to run; a third submits the review's 50 KB module the budget refuses.
    // Without the budget and the compile thread, the refused module alone held every
    // validator's step loop for over 10 s, so no run was aggregated within the epoch.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, 4, vec![]);
    c.synthetic = false;
    c.miners = 5; // faithful, quantized, then the three hostile ones
    c.hostile = 3;
    // 200 ms blocks (4 s runs): at 150 ms one CI run in several missed every commit of a run
    // under load; the check below still scales with the block time
    c.block_ms = 200;
    let r = run(c).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert!(r.late.is_empty(), "{:?}", r.late);
    assert_eq!(r.aggregation_ms.len(), 4 * r.runs.len());
    let faithful = r.miners[0].0.to_ss58();
    for run in &r.runs {
        assert!(run.quorum_met && run.excluded.is_empty(), "{run:?}");
        assert_eq!(run.winner.as_deref(), Some(faithful.as_str()), "{run:?}");
        for (m, _) in &r.miners[2..] {
            // refused or empty output: zero, or unscored when honest validators abstained
            assert!(
                run.consensus.get(&m.to_ss58()).is_none_or(|s| *s == 0.0),
                "{run:?}"
            );
        }
    }
}

/// Miner-hosted mode over the network on 127.0.0.1: four honest validators and seven hosters,
/// one per strategy, the honest one killed (SIGKILL) between its commit and its reveal of the
/// first run and restarted. The honest hoster scores 1.0 and wins; copycat, lazy, no-reveal,
/// mismatch and late score 0 with their reasons; every honest validator gives every hoster the
/// same score (the devnet reports a mismatch otherwise).
#[test]
fn hosted_subnet_scores_honest_hosters_and_zeroes_every_cheat() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir, 4, vec![]);
    cfg.miners = 0;
    cfg.hosters = 7;
    cfg.restart_hoster = Some(0);
    // hosted judging and signing fit between the reveal window's close (block 13 of 20) and
    // the scoring deadline (block 16): blocks of 300 ms leave a second for it
    cfg.block_ms = 300;
    let r = run(cfg).unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert!(r.hoster_restarted);
    let by = |s: HosterStrategy| {
        r.hosters
            .iter()
            .find(|h| h.1 == s)
            .map(|h| h.0.to_ss58())
            .unwrap()
    };
    for run in &r.runs {
        assert!(run.quorum_met, "run {}: {:?}", run.run, run);
        let honest = by(HosterStrategy::Honest);
        assert_eq!(run.winner.as_deref(), Some(honest.as_str()), "{run:?}");
        assert_eq!(run.consensus[&honest], 1.0, "{run:?}");
        assert_eq!(run.hosted[&honest], (1.0, None));
        let noisy = run.consensus[&by(HosterStrategy::Noisy)];
        assert!(noisy > 0.0 && noisy < 1.0, "noisy {noisy}");
        for (s, reasons) in [
            (HosterStrategy::Lazy, &["inaccurate"][..]),
            (HosterStrategy::Copycat, &["no_commit"][..]),
            (HosterStrategy::NoReveal, &["no_reveal"][..]),
            (HosterStrategy::Mismatch, &["mismatch"][..]),
            (HosterStrategy::Late, &["late_reveal", "no_reveal"][..]),
        ] {
            let h = by(s);
            assert_eq!(run.consensus[&h], 0.0, "{} in {run:?}", s.name());
            let (score, why) = &run.hosted[&h];
            assert_eq!(*score, 0.0);
            assert!(
                why.as_deref().is_some_and(|w| reasons.contains(&w)),
                "{}: {why:?}",
                s.name()
            );
        }
    }
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out").join("summary.json")).unwrap(),
    )
    .unwrap();
    let hosters = summary["hosters"].as_array().unwrap();
    assert_eq!(hosters.len(), 7);
    assert_eq!(hosters[3]["strategy"], "copycat");
    assert!(summary["runs"][0]["consensus"][hosters[0]["hotkey"].as_str().unwrap()].is_number());
}
