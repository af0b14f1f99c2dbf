//! Miner-hosted mode in the machine, without sockets or timers: the elected validator's
//! challenge, the hoster commit snapshot at the commit window's close, judging reveals at the
//! reveal window's close (each miss with its reason), the report signed from the verdicts, the
//! `Both` mode merge, and restarts.
//!
//! Epochs of 20 blocks with DESIGN.md's windows and half a block of skew: the challenge window is
//! blocks [0, 3), hoster commits [3, 10) (closed for everyone from block 11), hoster reveals
//! [10, 12) (closed from block 13), validator commits [12, 20).

use tally_consensus::WeightMode;
use tally_core::{FamilyId, Hotkey, Keypair, Score, ScoreReport};
use tally_protocol::payload::{hoster_commitment, HosterReveal, Tensor};
use tally_protocol::Kind;
use tally_validator::*;

const NETUID: u16 = 1;

fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32]).deterministic()
}

/// Hosters: keys 50.. (uids 4..).
fn hoster(i: u8) -> Hotkey {
    key(50 + i).hotkey()
}

fn members() -> Vec<Member> {
    let mut m = vec![Member {
        uid: 0,
        hotkey: key(100).hotkey(),
        stake: 0,
        validator_permit: false,
        axon: String::new(),
    }];
    for i in 1..=3u8 {
        m.push(Member {
            uid: i as u16,
            hotkey: key(i).hotkey(),
            stake: 20_000,
            validator_permit: true,
            axon: format!("127.0.0.1:{}", 9000 + i as u16),
        });
    }
    for i in 0..5u8 {
        m.push(Member {
            uid: 4 + i as u16,
            hotkey: hoster(i),
            stake: 0,
            validator_permit: false,
            axon: String::new(),
        });
    }
    m
}

fn snapshot(epoch: u64) -> ChainSnapshot {
    ChainSnapshot {
        epoch,
        params: NetParams {
            epoch_length: 20,
            epoch_offset: 0,
            block_ms: 100,
            min_validator_stake: 1_000,
            burn_uid: 0,
        },
        members: members(),
        seeds: vec![(epoch, [epoch as u8 + 1; 32])],
    }
}

fn config(execution: Execution) -> Config {
    let mut c = Config::new(
        NETUID,
        FamilyId::new("inference").unwrap(),
        WeightMode::Decentralized,
    );
    c.execution = execution;
    c
}

fn machine(i: u8, execution: Execution) -> Machine {
    Machine::new(config(execution), key(i), [9; 32])
}

/// Feeds head `n`, answering a chain read with the snapshot of its epoch.
fn head(m: &mut Machine, n: u64) -> Vec<Effect> {
    let mut out = m.handle(Input::Head(Head {
        number: n,
        timestamp_ms: n * 100,
    }));
    let reads: Vec<u64> = out
        .iter()
        .filter_map(|e| match e {
            Effect::ReadChain { req, .. } => Some(*req),
            _ => None,
        })
        .collect();
    for req in reads {
        out.extend(m.handle(Input::Snapshot {
            req,
            result: Ok(snapshot(n / 20)),
        }));
    }
    out
}

fn elected() -> Hotkey {
    let c = config(Execution::Hosted);
    view_of(
        NETUID,
        c.windows,
        &snapshot(0),
        Head {
            number: 0,
            timestamp_ms: 0,
        },
    )
    .elected(0)
    .expect("an elected validator")
}

fn output(v: f32) -> Tensor {
    Tensor::f32(&[16], &[v; 16]).unwrap()
}

fn reveal(salt: u8, v: f32) -> HosterReveal {
    HosterReveal {
        salt: [salt; 32],
        output: output(v),
    }
}

/// Hoster `i`'s commitment to `r` for run 0.
fn commit_of(i: u8, r: &HosterReveal) -> tally_core::hash::Hash32 {
    hoster_commitment(&hoster(i), 0, &r.salt, &r.output)
}

fn commits_req(out: &[Effect]) -> Option<(u64, Vec<Hotkey>)> {
    out.iter().find_map(|e| match e {
        Effect::ReadHosterCommits { req, hosters, .. } => Some((*req, hosters.clone())),
        _ => None,
    })
}

fn hosted_req(out: &[Effect]) -> Option<u64> {
    out.iter().find_map(|e| match e {
        Effect::ReadHosted { req, .. } => Some(*req),
        _ => None,
    })
}

fn own_report(out: &[Effect]) -> Option<ScoreReport> {
    out.iter().find_map(|e| match e {
        Effect::Persist(Persist::OwnReport { wire, .. }) => ScoreReport::from_bytes(wire).ok(),
        _ => None,
    })
}

fn verdicts(out: &[Effect]) -> Option<Vec<HostedVerdict>> {
    out.iter().find_map(|e| match e {
        Effect::Persist(Persist::Hosted { verdicts, .. }) => Some(verdicts.clone()),
        _ => None,
    })
}

/// The epoch's hosters: 0 honest, 1 mismatch (reveals another output), 2 no reveal, 3 copycat
/// (reveals hoster 0's salt and output with no commit of its own), 4 lazy (zeros).
fn the_commits() -> Vec<(Hotkey, tally_core::hash::Hash32)> {
    vec![
        (hoster(0), commit_of(0, &reveal(1, 0.5))),
        (hoster(1), commit_of(1, &reveal(2, 0.5))),
        (hoster(2), commit_of(2, &reveal(3, 0.5))),
        (hoster(4), commit_of(4, &reveal(5, 0.0))),
    ]
}

fn the_reveals() -> Vec<(Hotkey, HosterReveal)> {
    vec![
        (hoster(0), reveal(1, 0.5)),
        (hoster(1), reveal(2, 0.25)),
        (hoster(3), reveal(1, 0.5)),
        (hoster(4), reveal(5, 0.0)),
    ]
}

/// Runs `m` (miner-hosted) to the point where the reveals are read; returns the read's request.
fn to_reveal_close(m: &mut Machine) -> u64 {
    for b in 0..11 {
        assert!(
            commits_req(&head(m, b)).is_none(),
            "no snapshot before block 11"
        );
    }
    let (req, hosters) = commits_req(&head(m, 11)).expect("the commit snapshot at block 11");
    assert_eq!(hosters, (0..5).map(hoster).collect::<Vec<_>>());
    let out = m.handle(Input::HosterCommits {
        req,
        run: 0,
        result: Ok(the_commits()),
    });
    assert!(out.contains(&Effect::Persist(Persist::HosterSnapshot {
        run: 0,
        commits: the_commits()
    })));
    assert!(
        hosted_req(&head(m, 12)).is_none(),
        "reveals read only once the window closed"
    );
    hosted_req(&head(m, 13)).expect("the reveals read at block 13")
}

#[test]
fn only_the_elected_validator_publishes_the_challenge_once() {
    let e = elected();
    let mut published = 0;
    for i in 1..=3u8 {
        let mut m = machine(i, Execution::Hosted);
        let out = head(&mut m, 0);
        let pos_persist = out
            .iter()
            .position(|x| matches!(x, Effect::Persist(Persist::ChallengeSent { run: 0 })));
        let pos_publish = out.iter().position(|x| {
            matches!(
                x,
                Effect::Publish {
                    kind: Kind::Challenge,
                    run: 0,
                    ..
                }
            )
        });
        if key(i).hotkey() == e {
            published += 1;
            // persisted before it is published: a restart never publishes a second record
            assert!(pos_persist.unwrap() < pos_publish.unwrap(), "{out:?}");
            let payload = out
                .iter()
                .find_map(|x| match x {
                    Effect::Publish { payload, .. } => Some(payload.clone()),
                    _ => None,
                })
                .unwrap();
            let t = <Tensor as parity_scale_codec::Decode>::decode(&mut &payload[..]).unwrap();
            assert_eq!(&t.shape[..], &[64]);
            t.check().unwrap();
            // not again on a later head of the window
            let again = head(&mut m, 1);
            assert!(!again.iter().any(|x| matches!(x, Effect::Publish { .. })));
            // nor after a restart that read the mark back
            let mut r = machine(i, Execution::Hosted);
            r.handle(Input::Restore(Stored {
                runs: vec![StoredRun {
                    run: 0,
                    challenge_sent: true,
                    ..Default::default()
                }],
                divergence: None,
            }));
            let out = head(&mut r, 1);
            assert!(
                !out.iter().any(|x| matches!(x, Effect::Publish { .. })),
                "{out:?}"
            );
        } else {
            assert!(pos_publish.is_none() && pos_persist.is_none(), "{out:?}");
        }
    }
    assert_eq!(published, 1);
    // validator-hosted mode publishes no challenge at all
    let i = (1..=3u8).find(|i| key(*i).hotkey() == e).unwrap();
    let mut m = machine(i, Execution::Validator);
    assert!(!head(&mut m, 0)
        .iter()
        .any(|x| matches!(x, Effect::Publish { .. })));
}

#[test]
fn hosters_are_judged_at_the_reveal_close_and_misses_score_zero_with_reasons() {
    let mut m = machine(1, Execution::Hosted);
    let out = head(&mut m, 0);
    assert!(
        !out.iter().any(|e| matches!(e, Effect::Score { .. })),
        "miner-hosted mode executes nothing"
    );
    let req = to_reveal_close(&mut m);
    let out = m.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: the_reveals(),
    });
    // only the outputs whose reveals counted are scored, on the seed's fallback input
    let (input, outputs) = out
        .iter()
        .find_map(|e| match e {
            Effect::ScoreHosted { input, outputs, .. } => Some((input.clone(), outputs.clone())),
            _ => None,
        })
        .expect("scoring asked for");
    assert_eq!(
        input,
        tally_protocol::hosted::fallback_input(&[1; 32], &[64]).unwrap()
    );
    let scored: Vec<Hotkey> = outputs.iter().map(|x| x.0).collect();
    assert_eq!(scored, vec![hoster(0), hoster(4)]);
    assert!(
        own_report(&out).is_none(),
        "not signed before the scores are in"
    );
    let out = m.handle(Input::HostedScored {
        run: 0,
        result: Ok(vec![(hoster(0), Score::ONE), (hoster(4), Score::ZERO)]),
    });
    let v = verdicts(&out).expect("verdicts persisted");
    let reason = |h: Hotkey| {
        v.iter()
            .find(|x| x.hoster == h)
            .map(|x| (x.score, x.reason.clone()))
    };
    assert_eq!(reason(hoster(0)), Some((Score::ONE, None)));
    assert_eq!(
        reason(hoster(1)),
        Some((Score::ZERO, Some("mismatch".into())))
    );
    assert_eq!(
        reason(hoster(2)),
        Some((Score::ZERO, Some("no_reveal".into())))
    );
    assert_eq!(
        reason(hoster(3)),
        Some((Score::ZERO, Some("no_commit".into())))
    );
    assert_eq!(
        reason(hoster(4)),
        Some((Score::ZERO, Some("inaccurate".into())))
    );
    let r = own_report(&out).expect("the report is signed from the verdicts");
    let s: Vec<(Hotkey, Score)> = r.body().scores.to_vec();
    assert_eq!(s.len(), 5);
    assert!(s.contains(&(hoster(0), Score::ONE)));
    assert!(s.contains(&(hoster(3), Score::ZERO)));
    assert_eq!(m.step(0), Some(Step::Scored));
}

#[test]
fn a_commit_read_after_the_snapshot_never_counts() {
    let mut m = machine(1, Execution::Hosted);
    let req = to_reveal_close(&mut m);
    // a second commit answer (a late commit the DHT returned later) is ignored
    let out = m.handle(Input::HosterCommits {
        req,
        run: 0,
        result: Ok(vec![(hoster(3), commit_of(3, &reveal(1, 0.5)))]),
    });
    assert!(out.is_empty());
    let out = m.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: the_reveals(),
    });
    let outputs = out
        .iter()
        .find_map(|e| match e {
            Effect::ScoreHosted { outputs, .. } => Some(outputs.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!outputs.iter().any(|x| x.0 == hoster(3)));
}

#[test]
fn a_challenge_of_the_right_shape_is_the_input_and_a_wrong_one_falls_back() {
    for (challenge, expect_fallback) in [
        (Tensor::f32(&[64], &[0.25; 64]).unwrap(), false),
        (Tensor::f32(&[32], &[0.25; 32]).unwrap(), true),
    ] {
        let mut m = machine(1, Execution::Hosted);
        head(&mut m, 0);
        let req = to_reveal_close(&mut m);
        let out = m.handle(Input::Hosted {
            req,
            run: 0,
            challenge: Some(challenge.clone()),
            reveals: the_reveals(),
        });
        let input = out
            .iter()
            .find_map(|e| match e {
                Effect::ScoreHosted { input, .. } => Some(input.clone()),
                _ => None,
            })
            .unwrap();
        if expect_fallback {
            assert_eq!(
                input,
                tally_protocol::hosted::fallback_input(&[1; 32], &[64]).unwrap()
            );
        } else {
            assert_eq!(input, challenge);
        }
    }
}

#[test]
fn a_node_without_a_snapshot_abstains_on_every_hoster() {
    let mut m = machine(1, Execution::Hosted);
    head(&mut m, 0);
    // away from block 1 to block 13: the commit window closed without it
    let out = head(&mut m, 13);
    assert!(commits_req(&out).is_none());
    assert!(hosted_req(&out).is_none());
    assert!(own_report(&out).is_none(), "no report: it measured nothing");
}

#[test]
fn the_snapshot_survives_a_restart() {
    let mut m = machine(1, Execution::Hosted);
    head(&mut m, 0);
    to_reveal_close(&mut m);
    // restart between the snapshot and the reveal close, with the store's contents
    let mut r = machine(1, Execution::Hosted);
    r.handle(Input::Restore(Stored {
        runs: vec![StoredRun {
            run: 0,
            hoster_commits: Some(the_commits()),
            ..Default::default()
        }],
        divergence: None,
    }));
    let out = head(&mut r, 13);
    assert!(commits_req(&out).is_none(), "no second snapshot");
    let req = hosted_req(&out).expect("judges with the stored snapshot");
    let out = r.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: the_reveals(),
    });
    assert!(out
        .iter()
        .any(|e| matches!(e, Effect::ScoreHosted { outputs, .. } if outputs.len() == 2)));
}

#[test]
fn both_mode_takes_the_higher_of_the_executed_and_hosted_scores() {
    let mut m = machine(1, Execution::Both);
    let out = head(&mut m, 0);
    assert!(out.iter().any(|e| matches!(e, Effect::Score { .. })));
    // executed scores: hoster 1 has a submission worth 0.7, hoster 0 none
    let half = Score::from_units(500_000_000).unwrap();
    let seven = Score::from_units(700_000_000).unwrap();
    let out = m.handle(Input::Scored {
        run: 0,
        result: Ok(vec![(hoster(0), Score::ZERO), (hoster(1), seven)]),
    });
    assert!(own_report(&out).is_none(), "waits for the hosted verdicts");
    let req = to_reveal_close(&mut m);
    m.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: the_reveals(),
    });
    let out = m.handle(Input::HostedScored {
        run: 0,
        result: Ok(vec![(hoster(0), half), (hoster(4), Score::ZERO)]),
    });
    let r = own_report(&out).expect("signed once both parts are in");
    let s: Vec<(Hotkey, Score)> = r.body().scores.to_vec();
    assert!(s.contains(&(hoster(0), half)), "{s:?}");
    assert!(s.contains(&(hoster(1), seven)), "{s:?}");
    assert!(s.contains(&(hoster(2), Score::ZERO)), "{s:?}");
    // hoster 3 committed nothing and the executed scorer did not reach it: no score at all,
    // not a hosted 0 over the abstention
    assert!(!s.iter().any(|x| x.0 == hoster(3)), "{s:?}");
}

#[test]
fn a_refused_late_reveal_is_named_in_the_outcome_but_scores_the_same() {
    let mut m = machine(1, Execution::Hosted);
    head(&mut m, 0);
    let req = to_reveal_close(&mut m);
    // hoster 2's reveal came after the window: the node's DHT refused it; an outsider's
    // refused record (not a hoster of the run) is ignored
    m.handle(Input::LateReveal {
        run: 0,
        hoster: hoster(2),
    });
    m.handle(Input::LateReveal {
        run: 0,
        hoster: key(77).hotkey(),
    });
    m.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: the_reveals(),
    });
    let out = m.handle(Input::HostedScored {
        run: 0,
        result: Ok(vec![(hoster(0), Score::ONE), (hoster(4), Score::ZERO)]),
    });
    let v = verdicts(&out).unwrap();
    // the report (and so the consensus) holds the same 0 either way
    assert_eq!(
        v.iter().find(|x| x.hoster == hoster(2)).unwrap().score,
        Score::ZERO
    );
    assert!(!v.iter().any(|x| x.hoster == key(77).hotkey()));
}

#[test]
fn both_mode_still_reports_the_hosters_when_execution_fails() {
    let mut m = machine(1, Execution::Both);
    head(&mut m, 0);
    // the roster could not be fetched: no executed score at all
    let out = m.handle(Input::Scored {
        run: 0,
        result: Err("roster unavailable".into()),
    });
    assert!(own_report(&out).is_none());
    let req = to_reveal_close(&mut m);
    m.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: the_reveals(),
    });
    let out = m.handle(Input::HostedScored {
        run: 0,
        result: Ok(vec![(hoster(0), Score::ONE), (hoster(4), Score::ZERO)]),
    });
    let r = own_report(&out).expect("a report from the hosted verdicts alone");
    assert!(r.body().scores.to_vec().contains(&(hoster(0), Score::ONE)));
    // validator-hosted mode alone publishes nothing in the same case
    let mut v = machine(1, Execution::Validator);
    head(&mut v, 0);
    let out = v.handle(Input::Scored {
        run: 0,
        result: Err("roster unavailable".into()),
    });
    assert!(own_report(&out).is_none());
    assert_eq!(v.step(0), None);
}

#[test]
fn a_hoster_that_copied_another_commit_hash_gets_a_mismatch() {
    // hoster 3 read hoster 0's commit in the commit window and published the same hash as its
    // own; after hoster 0 revealed, it reveals hoster 0's salt and output: the commitment
    // binds the hotkey, so the copy does not match
    let mut m = machine(1, Execution::Hosted);
    head(&mut m, 0);
    for b in 1..11 {
        head(&mut m, b);
    }
    let (req, _) = commits_req(&head(&mut m, 11)).unwrap();
    let honest = commit_of(0, &reveal(1, 0.5));
    m.handle(Input::HosterCommits {
        req,
        run: 0,
        result: Ok(vec![(hoster(0), honest), (hoster(3), honest)]),
    });
    head(&mut m, 12);
    let req = hosted_req(&head(&mut m, 13)).unwrap();
    let out = m.handle(Input::Hosted {
        req,
        run: 0,
        challenge: None,
        reveals: vec![(hoster(0), reveal(1, 0.5)), (hoster(3), reveal(1, 0.5))],
    });
    let outputs = out
        .iter()
        .find_map(|e| match e {
            Effect::ScoreHosted { outputs, .. } => Some(outputs.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        outputs.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![hoster(0)]
    );
    let out = m.handle(Input::HostedScored {
        run: 0,
        result: Ok(vec![(hoster(0), Score::ONE)]),
    });
    let v = verdicts(&out).unwrap();
    let three = v.iter().find(|x| x.hoster == hoster(3)).unwrap();
    assert_eq!(
        (three.score, three.reason.as_deref()),
        (Score::ZERO, Some("mismatch"))
    );
}

#[test]
fn a_slow_commit_read_is_waited_for_not_abstained_on() {
    let mut m = machine(1, Execution::Hosted);
    for b in 0..11 {
        head(&mut m, b);
    }
    let (req, _) = commits_req(&head(&mut m, 11)).unwrap();
    // the read asked for at the close is still out when the reveal window closes
    let out = head(&mut m, 13);
    assert!(
        hosted_req(&out).is_none() && own_report(&out).is_none(),
        "{out:?}"
    );
    assert!(commits_req(&out).is_none(), "not asked twice");
    m.handle(Input::HosterCommits {
        req,
        run: 0,
        result: Ok(the_commits()),
    });
    assert!(
        hosted_req(&head(&mut m, 14)).is_some(),
        "judged once the snapshot is in"
    );
}
