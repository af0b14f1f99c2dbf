//! The machine at window edges, without sockets or timers: each step just below and at its
//! threshold, a late commitment, an unscorable run, and restarts in every step.
//!
//! Epochs of 20 blocks with DESIGN.md's windows: run 0 commits in blocks [12, 20), reveals in
//! [20, 30), collects from block 23 and aggregates from block 30.

use tally_consensus::WeightMode;
use tally_core::{FamilyId, Hotkey, Keypair, ReportBody, Score, ScoreReport};
use tally_protocol::rules::commitment_data;
use tally_validator::*;

const NETUID: u16 = 1;

fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32]).deterministic()
}

fn family() -> FamilyId {
    FamilyId::new("synthetic").unwrap()
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
            // validator 3 holds less, so validators 1 and 2 alone reach quorum
            stake: if i == 3 { 10_000 } else { 20_000 },
            validator_permit: true,
            axon: format!("127.0.0.1:{}", 9000 + i as u16),
        });
    }
    for i in 0..3u8 {
        m.push(Member {
            uid: 4 + i as u16,
            hotkey: key(50 + i).hotkey(),
            stake: 0,
            validator_permit: false,
            axon: String::new(),
        });
    }
    if NO_API.with(|c| c.get()) {
        m.push(Member {
            uid: 7,
            hotkey: key(4).hotkey(),
            stake: 5_000,
            validator_permit: true,
            axon: String::new(),
        });
    }
    m
}

fn miners() -> Vec<Hotkey> {
    (0..3u8).map(|i| key(50 + i).hotkey()).collect()
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
        seeds: vec![(epoch, [epoch as u8; 32])],
    }
}

fn machine() -> Machine {
    Machine::new(
        Config::new(NETUID, family(), WeightMode::Decentralized),
        key(1),
        [9; 32],
    )
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

fn scores(v: u32) -> Vec<(Hotkey, Score)> {
    miners()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, Score::from_units(v + i as u32 * 100_000_000).unwrap()))
        .collect()
}

fn has(out: &[Effect], f: impl Fn(&Effect) -> bool) -> bool {
    out.iter().any(f)
}

fn is_score(e: &Effect) -> bool {
    matches!(e, Effect::Score { .. })
}
fn is_commit(e: &Effect) -> bool {
    matches!(e, Effect::PostCommitment { .. })
}
fn is_serve(e: &Effect) -> bool {
    matches!(e, Effect::Serve { .. })
}
fn is_fetch(e: &Effect) -> bool {
    matches!(e, Effect::FetchReports { .. })
}
fn is_commitments(e: &Effect) -> bool {
    matches!(e, Effect::ReadCommitments { .. })
}

/// A machine that has scored run 0 at block 0.
fn scored() -> (Machine, Vec<u8>) {
    let mut m = machine();
    let out = head(&mut m, 0);
    assert!(has(&out, is_score), "{out:?}");
    let out = m.handle(Input::Scored {
        run: 0,
        result: Ok(scores(100_000_000)),
    });
    let wire = out
        .iter()
        .find_map(|e| match e {
            Effect::Persist(Persist::OwnReport { wire, .. }) => Some(wire.clone()),
            _ => None,
        })
        .expect("own report persisted");
    assert_eq!(m.step(0), Some(Step::Scored));
    (m, wire)
}

fn committed() -> (Machine, Vec<u8>) {
    let (mut m, wire) = scored();
    let out = head(&mut m, 12);
    assert!(has(&out, is_commit));
    let out = m.handle(Input::Committed {
        run: 0,
        result: Ok(12),
    });
    assert!(out.contains(&Effect::Persist(Persist::Step {
        run: 0,
        step: Step::Committed
    })));
    (m, wire)
}

#[test]
fn scores_once_per_run_and_signs_a_report_for_it() {
    let (mut m, wire) = scored();
    let r = ScoreReport::from_bytes(&wire).unwrap();
    r.verify().unwrap();
    assert_eq!(r.body().run, 0);
    assert_eq!(r.body().validator, key(1).hotkey());
    // no second scoring of the same run
    assert!(!has(&head(&mut m, 1), is_score));
}

#[test]
fn commits_from_the_first_block_of_the_commit_window() {
    let (mut m, wire) = scored();
    assert!(!has(&head(&mut m, 11), is_commit));
    let out = head(&mut m, 12);
    let h = ScoreReport::from_bytes(&wire).unwrap().commitment();
    assert!(out.contains(&Effect::PostCommitment {
        run: 0,
        data: commitment_data(0, &h)
    }));
    // one commitment at a time: not again while the first is out
    assert!(!has(&head(&mut m, 13), is_commit));
    // a failed post is retried on a later head
    m.handle(Input::Committed {
        run: 0,
        result: Err("transport".into()),
    });
    assert!(has(&head(&mut m, 14), is_commit));
}

#[test]
fn never_commits_once_the_reveal_window_has_opened() {
    let (mut m, _) = scored();
    // the node was away for the whole commit window
    let out = head(&mut m, 20);
    assert!(!has(&out, is_commit));
    assert!(!has(&out, is_serve));
    assert!(!has(&head(&mut m, 21), is_commit));
}

#[test]
fn reveals_at_the_first_block_of_the_reveal_window_only() {
    let (mut m, wire) = committed();
    assert!(!has(&head(&mut m, 19), is_serve));
    let out = head(&mut m, 20);
    assert!(out.contains(&Effect::Serve {
        run: 0,
        wire: wire.clone()
    }));
    assert!(has(
        &out,
        |e| matches!(e, Effect::Publish { kind: tally_protocol::Kind::ValidatorReveal, run: 0, payload } if *payload == wire)
    ));
    // and run 1 is scored in the same breath
    assert!(has(&out, |e| matches!(e, Effect::Score { run: 1, .. })));
}

#[test]
fn a_node_back_after_the_reveal_window_does_not_reveal() {
    let (mut m, _) = committed();
    assert!(!has(&head(&mut m, 30), is_serve));
}

#[test]
fn collects_from_the_configured_share_of_the_reveal_window() {
    let (mut m, _) = committed();
    head(&mut m, 20);
    assert!(!has(&head(&mut m, 22), is_fetch));
    let out = head(&mut m, 23);
    let targets = out
        .iter()
        .find_map(|e| match e {
            Effect::FetchReports { targets, .. } => Some(targets.clone()),
            _ => None,
        })
        .unwrap();
    // the two other validators, not itself
    assert_eq!(targets.len(), 2);
    assert!(targets.iter().all(|t| t.hotkey != key(1).hotkey()));
}

/// A peer's report for run 0, and its commitment bytes.
fn peer_report(i: u8, base: u32) -> (Vec<u8>, Vec<u8>) {
    let k = key(i);
    let body = ReportBody::new(NETUID, 0, family(), k.hotkey(), scores(base)).unwrap();
    let r = ScoreReport::sign(body, [i; 32], &k).unwrap();
    (r.to_bytes(), commitment_data(0, &r.commitment()))
}

/// Drives aggregation of run 0 from block 29 to the outcome; `peer3_commit_block` is when
/// validator 3 committed.
fn aggregate(peer3_commit_block: u64) -> RunOutcome {
    let (mut m, own) = committed();
    head(&mut m, 20);
    // the collect round of block 23 is still out when the window closes; the commitments and
    // the incumbent are read from that block on
    let early = head(&mut m, 23);
    let collect = early
        .iter()
        .find_map(|e| match e {
            Effect::FetchReports { req, .. } => Some(*req),
            _ => None,
        })
        .unwrap();
    let (mut creq, mut ireq) = (None, None);
    for e in &early {
        match e {
            Effect::ReadCommitments { req, from, to, .. } => {
                assert_eq!((*from, *to), (12, 30));
                creq = Some(*req)
            }
            Effect::ReadIncumbent { req, .. } => ireq = Some(*req),
            _ => {}
        }
    }
    assert!(creq.is_some() && ireq.is_some());
    assert!(!has(&head(&mut m, 29), is_commitments));
    let out = head(&mut m, 30);
    // aggregation waits for that round rather than asking everyone again
    assert!(!has(&out, is_fetch));
    let (w2, c2) = peer_report(2, 110_000_000);
    let (w3, c3) = peer_report(3, 120_000_000);
    let own_c = commitment_data(0, &ScoreReport::from_bytes(&own).unwrap().commitment());
    let fetched = vec![
        Fetched {
            hotkey: key(2).hotkey(),
            http: Some(w2.clone()),
            dht: Some(w2),
            evidence: vec![],
            relayed: vec![],
            exchanged: false,
        },
        Fetched {
            hotkey: key(3).hotkey(),
            http: Some(w3),
            dht: None,
            evidence: vec![],
            relayed: vec![],
            exchanged: false,
        },
    ];
    // validator 3's report is held from HTTP only: it could be one side of an equivocation,
    // so the close brings one more round asking every peer for its proofs
    let out = m.handle(Input::Reports {
        req: collect,
        run: 0,
        fetched,
    });
    let (req, targets) = out
        .iter()
        .find_map(|e| match e {
            Effect::FetchReports { req, targets, .. } => Some((*req, targets.clone())),
            _ => None,
        })
        .expect("an evidence round");
    assert_eq!(targets.len(), 2);
    assert!(targets.iter().all(|t| t.evidence && t.relay));
    // both peers answer with what they hold, nothing new: a quiet round, but the exchange always
    // asks a second time, a head later
    let quiet = || {
        [2u8, 3]
            .map(|i| Fetched {
                exchanged: true,
                ..Fetched::empty(key(i).hotkey())
            })
            .to_vec()
    };
    assert!(m
        .handle(Input::Reports {
            req,
            run: 0,
            fetched: quiet()
        })
        .is_empty());
    let out = head(&mut m, 31);
    let (req, targets) = out
        .iter()
        .find_map(|e| match e {
            Effect::FetchReports { req, targets, .. } => Some((*req, targets.clone())),
            _ => None,
        })
        .expect("a second exchange round");
    assert_eq!(targets.len(), 2);
    assert!(m
        .handle(Input::Reports {
            req,
            run: 0,
            fetched: quiet()
        })
        .is_empty());
    m.handle(Input::Commitments {
        req: creq.unwrap(),
        run: 0,
        result: Ok(vec![
            (key(1).hotkey(), 12, own_c),
            (key(2).hotkey(), 13, c2),
            (key(3).hotkey(), peer3_commit_block, c3),
        ]),
    });
    let out = m.handle(Input::Incumbent {
        req: ireq.unwrap(),
        run: 0,
        result: Ok(None),
    });
    let weights = out
        .iter()
        .find_map(|e| match e {
            Effect::SetWeights { weights, .. } => Some(weights.clone()),
            _ => None,
        })
        .expect("weights set");
    // the best miner is uid 6 (scores rise with the index)
    assert_eq!(weights, vec![(6, u16::MAX)]);
    let out = m.handle(Input::WeightsSet {
        run: 0,
        result: Ok(31),
    });
    assert_eq!(m.step(0), Some(Step::Done));
    out.into_iter()
        .find_map(|e| match e {
            Effect::Persist(Persist::Finish { outcome }) => Some(*outcome),
            _ => None,
        })
        .unwrap()
}

#[test]
fn aggregates_from_the_reveal_close_block() {
    let o = aggregate(19);
    assert!(o.quorum_met);
    assert_eq!(o.accepted.len(), 3);
    assert!(o.excluded.is_empty());
    assert_eq!(o.weights_set_at_block, Some(31));
    assert_eq!(o.reveal_closed_block, 30);
    // the typed outcome round-trips through its JSON
    assert_eq!(RunOutcome::from_json(&o.to_json()).unwrap(), o);
}

#[test]
fn a_commitment_at_the_reveal_open_block_does_not_count() {
    let o = aggregate(20);
    assert_eq!(o.accepted.len(), 2);
    assert_eq!(
        o.excluded,
        vec![Excluded {
            validator: key(3).hotkey(),
            reason: "no_commitment".into()
        }]
    );
}

#[test]
fn an_unscorable_run_publishes_nothing_but_is_still_aggregated() {
    let mut m = machine();
    head(&mut m, 0);
    let out = m.handle(Input::Scored {
        run: 0,
        result: Err("roster unavailable".into()),
    });
    assert!(out.is_empty());
    assert_eq!(m.step(0), None);
    assert!(!has(&head(&mut m, 12), is_commit));
    assert!(!has(&head(&mut m, 20), is_serve));
    assert!(has(&head(&mut m, 23), is_commitments));
}

fn restored(step: Option<Step>, wire: &[u8]) -> Machine {
    let mut m = Machine::new(
        Config::new(NETUID, family(), WeightMode::Decentralized),
        key(1),
        [7; 32], // a new seed after the restart
    );
    let out = m.handle(Input::Restore(Stored {
        runs: vec![StoredRun {
            run: 0,
            step,
            own_report: step.map(|_| wire.to_vec()),
            members: Some(members()),
            revealed: step >= Some(Step::Revealed),
            ..Default::default()
        }],
        divergence: None,
    }));
    if step >= Some(Step::Revealed) {
        // a revealed run is served again at once, byte for byte
        assert_eq!(
            out,
            vec![Effect::Serve {
                run: 0,
                wire: wire.to_vec()
            }]
        );
    } else {
        assert!(out.is_empty());
    }
    m
}

#[test]
fn restarts_in_every_step_resume_where_they_were() {
    let (_, wire) = scored();
    // before scoring: scores
    let mut m = restored(None, &wire);
    assert!(has(&head(&mut m, 5), is_score));
    // scored: not scored again; commits the stored report at the window
    let mut m = restored(Some(Step::Scored), &wire);
    assert!(!has(&head(&mut m, 5), is_score));
    let h = ScoreReport::from_bytes(&wire).unwrap().commitment();
    assert!(head(&mut m, 12).contains(&Effect::PostCommitment {
        run: 0,
        data: commitment_data(0, &h)
    }));
    // committed: reveals the same bytes
    let mut m = restored(Some(Step::Committed), &wire);
    assert!(!has(&head(&mut m, 15), is_commit));
    assert!(head(&mut m, 20).contains(&Effect::Serve {
        run: 0,
        wire: wire.clone()
    }));
    // revealed: served at restore (checked in `restored`), not revealed twice, aggregated
    let mut m = restored(Some(Step::Revealed), &wire);
    assert!(!has(&head(&mut m, 21), is_serve));
    assert!(has(&head(&mut m, 23), is_commitments));
    // done: nothing more for run 0
    let mut m = restored(Some(Step::Done), &wire);
    let out = head(&mut m, 23);
    assert!(!has(&out, is_commitments));
    let out = head(&mut m, 30);
    assert!(!has(&out, |e| matches!(e, Effect::SetWeights { .. })));
}

#[test]
fn a_done_run_that_was_never_revealed_is_not_served_after_a_restart() {
    // the node signed a report, never committed it (it was away), and aggregated the run: its
    // report was never shown; serving it after a restart would show peers a report without a
    // commitment (some would judge `no_commitment`, others `no_report`)
    let (_, wire) = scored();
    let mut m = Machine::new(
        Config::new(NETUID, family(), WeightMode::Decentralized),
        key(1),
        [7; 32],
    );
    let out = m.handle(Input::Restore(Stored {
        runs: vec![StoredRun {
            run: 0,
            step: Some(Step::Done),
            own_report: Some(wire.to_vec()),
            members: Some(members()),
            revealed: false,
            ..Default::default()
        }],
        divergence: None,
    }));
    assert!(!has(&out, is_serve), "{out:?}");
}

#[test]
fn equivocation_seen_while_collecting_is_proven_at_once() {
    let (mut m, _) = committed();
    head(&mut m, 20);
    let out = head(&mut m, 23);
    let req = out
        .iter()
        .find_map(|e| match e {
            Effect::FetchReports { req, .. } => Some(*req),
            _ => None,
        })
        .unwrap();
    let (a, _) = peer_report(2, 110_000_000);
    let (b, _) = peer_report(2, 300_000_000);
    let out = m.handle(Input::Reports {
        req,
        run: 0,
        fetched: vec![Fetched {
            hotkey: key(2).hotkey(),
            http: Some(a),
            dht: Some(b),
            evidence: vec![],
            relayed: vec![],
            exchanged: false,
        }],
    });
    assert!(has(&out, |e| matches!(
        e,
        Effect::Persist(Persist::Evidence { .. })
    )));
}

#[test]
fn an_empty_score_list_is_no_report() {
    // a scorer that evaluated no miner (say the roster could not be fetched) must not produce a
    // signed report: an empty one would count toward quorum without measuring anything
    let mut m = machine();
    head(&mut m, 0);
    let out = m.handle(Input::Scored {
        run: 0,
        result: Ok(Vec::new()),
    });
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(m.step(0), None);
    assert!(!has(&head(&mut m, 12), is_commit));
    assert!(!has(&head(&mut m, 20), is_serve));
}

#[test]
fn scoring_stops_at_the_middle_of_the_commit_window() {
    // the commit window of run 1 is blocks 32..40 (0.6 to 1.0 of 20-block epochs); blocks
    // are 100 ms apart, so the scorer must start no miner after block 36's time (3.6 s), and
    // the second half of the window is left for the commitment
    let mut m = machine();
    let out = head(&mut m, 21);
    let deadline = out.iter().find_map(|e| match e {
        Effect::Score {
            run: 1,
            deadline_ms,
            ..
        } => Some(*deadline_ms),
        _ => None,
    });
    assert_eq!(deadline, Some(3_600));
}

thread_local! {
    /// Adds a permit holder with stake but no API on chain (the owner's hotkey on Subtensor,
    /// which runs no validator) to this test thread's snapshots.
    static NO_API: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A peer's answer to an exchange round: nothing new, and whether it answered with its list.
fn answer(i: u8, exchanged: bool) -> Fetched {
    Fetched {
        exchanged,
        ..Fetched::empty(key(i).hotkey())
    }
}

/// The exchange round among `out`.
fn round(out: &[Effect]) -> Option<(u64, Vec<Target>)> {
    out.iter().find_map(|e| match e {
        Effect::FetchReports { req, targets, .. } => Some((*req, targets.clone())),
        _ => None,
    })
}

/// Run 0 committed, collected (validators 2 and 3 from both sources, validator 4 with no API
/// from neither), then the reveal window closes; the first exchange round is answered with
/// `exchanged` per peer (2, 3, 4). Returns the machine, that round's targets and what it does
/// at the next head.
fn exchange_answered(exchanged: [bool; 3]) -> (Machine, Vec<Target>, Vec<Effect>) {
    NO_API.with(|c| c.set(true));
    let (mut m, _) = committed();
    head(&mut m, 20);
    let out = head(&mut m, 23);
    let (collect, _) = round(&out).unwrap();
    let (w2, _) = peer_report(2, 110_000_000);
    let (w3, _) = peer_report(3, 120_000_000);
    let got = |i: u8, w: Option<&Vec<u8>>| Fetched {
        http: w.cloned(),
        dht: w.cloned(),
        ..Fetched::empty(key(i).hotkey())
    };
    m.handle(Input::Reports {
        req: collect,
        run: 0,
        fetched: vec![got(2, Some(&w2)), got(3, Some(&w3)), got(4, None)],
    });
    let (req, targets) = round(&head(&mut m, 30)).expect("the exchange at reveal close");
    m.handle(Input::Reports {
        req,
        run: 0,
        fetched: (2..=4)
            .map(|i| answer(i, exchanged[i as usize - 2]))
            .collect(),
    });
    let next = head(&mut m, 31);
    (m, targets, next)
}

#[test]
fn the_exchange_ends_at_a_quiet_round_and_waits_only_for_peers_with_an_api() {
    // every peer is in the exchange; the one with no API only through the DHT
    let (mut m, targets, next) = exchange_answered([true, true, false]);
    assert_eq!(targets.len(), 3);
    let no_api = targets
        .iter()
        .find(|t| t.hotkey == key(4).hotkey())
        .unwrap();
    assert!(!no_api.http && no_api.dht);
    // a quiet first round is followed by a second, a head later, asking every peer again (a
    // peer may have learned more since it answered)
    let (req, again) = round(&next).expect("a second round");
    assert_eq!(again.len(), 3);
    // a validator with no API on chain cannot answer an exchange: it does not keep the
    // exchange going (it would cost every honest node a round per head, up to the limit)
    m.handle(Input::Reports {
        req,
        run: 0,
        fetched: vec![answer(2, true), answer(3, true), answer(4, false)],
    });
    assert!(round(&head(&mut m, 32)).is_none());
    // a peer with an API that did not answer keeps the exchange going, every peer asked again
    let (mut m, _, next) = exchange_answered([true, false, false]);
    let (req, again) = round(&next).expect("a second round");
    assert_eq!(again.len(), 3);
    m.handle(Input::Reports {
        req,
        run: 0,
        fetched: vec![answer(2, true), answer(3, false), answer(4, false)],
    });
    assert!(round(&head(&mut m, 32)).is_some(), "a third round");
}

#[test]
fn a_restart_after_the_reveal_close_sits_the_run_out() {
    // the node revealed run 0, collected, crashed, and is back at the close block: what it
    // collected is gone and can no longer be fetched first-hand, and its own report would count
    // for it alone if no peer had fetched it; it tells peers it holds nothing and decides nothing
    let (_, wire) = scored();
    let mut m = restored(Some(Step::Revealed), &wire);
    let out = head(&mut m, 30);
    assert!(
        out.contains(&Effect::ServeHeld {
            run: 0,
            reports: vec![],
            proofs: vec![]
        }),
        "{out:?}"
    );
    assert!(
        !has(&out, is_fetch) && !has(&out, is_commitments),
        "{out:?}"
    );
    for n in 31..40 {
        let out = head(&mut m, n);
        assert!(!has(&out, is_fetch), "{out:?}");
        assert!(!has(&out, |e| matches!(
            e,
            Effect::SetWeights { .. } | Effect::Persist(Persist::Finish { .. })
        )));
    }
    // back before the close, it collects again and takes part
    let mut m = restored(Some(Step::Revealed), &wire);
    let out = head(&mut m, 29);
    assert!(has(&out, is_fetch) && has(&out, is_commitments), "{out:?}");
    let out = head(&mut m, 30);
    assert!(
        !has(&out, |e| matches!(e, Effect::ServeHeld { .. })),
        "{out:?}"
    );
}

#[test]
fn exchange_rounds_nobody_answered_do_not_count() {
    // cut off from every peer at the close: rounds no quorum answered do not end the exchange
    // after `MAX_EXCHANGE_ROUNDS`; it goes on, a round per head (here until run 0's epoch of
    // aggregation ends at block 40, before `EXCHANGE_ROUND_CAP`), and decides nothing alone
    let (mut m, _, mut next) = exchange_answered([false, false, false]);
    let mut rounds = 1;
    while let Some((req, _)) = round(&next) {
        rounds += 1;
        let out = m.handle(Input::Reports {
            req,
            run: 0,
            fetched: vec![answer(2, false), answer(3, false), answer(4, false)],
        });
        assert!(!has(&out, |e| matches!(e, Effect::SetWeights { .. })));
        next = head(&mut m, 30 + rounds as u64);
    }
    assert!(rounds > collect::MAX_EXCHANGE_ROUNDS, "{rounds}");
    assert!(rounds <= collect::EXCHANGE_ROUND_CAP, "{rounds}");
    // answered by peers holding a quorum, the same rounds count: it ends after the limit
    let (mut m, _, mut next) = exchange_answered([true, false, false]);
    let mut rounds = 1;
    while let Some((req, _)) = round(&next) {
        rounds += 1;
        m.handle(Input::Reports {
            req,
            run: 0,
            fetched: vec![answer(2, true), answer(3, false), answer(4, false)],
        });
        next = head(&mut m, 30 + rounds as u64);
    }
    assert_eq!(rounds, collect::MAX_EXCHANGE_ROUNDS);
}
