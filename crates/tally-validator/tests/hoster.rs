//! The hoster at window edges, without sockets or timers: the challenge read while its window
//! is open and the seed's fallback from the block at which it has closed, the commit only
//! inside the commit window (after the entry is persisted), the reveal only inside the reveal
//! window, and a restart that reveals the same bytes.
//!
//! Epochs of 100 blocks of 1 s with DESIGN.md's windows: for epoch 1 the challenge window is
//! blocks [100, 115) and has closed for everyone (half a block of skew) at block 116; the
//! hoster-commit window is blocks [115, 150), the hoster-reveal window [150, 160).

use parity_scale_codec::Decode;
use tally_core::{Hotkey, Keypair};
use tally_protocol::hosted::fallback_input;
use tally_protocol::payload::{hoster_commitment, Commit, HosterReveal, Tensor};
use tally_protocol::Kind;
use tally_validator::*;

const NETUID: u16 = 1;

fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32]).deterministic()
}

fn me() -> Hotkey {
    key(10).hotkey()
}

fn members(with_validator: bool) -> Vec<Member> {
    let mut m = vec![
        // the burn uid
        Member {
            uid: 0,
            hotkey: key(100).hotkey(),
            stake: 0,
            validator_permit: false,
            axon: String::new(),
        },
        Member {
            uid: 2,
            hotkey: me(),
            stake: 0,
            validator_permit: false,
            axon: String::new(),
        },
        Member {
            uid: 3,
            hotkey: key(11).hotkey(),
            stake: 0,
            validator_permit: false,
            axon: String::new(),
        },
    ];
    if with_validator {
        m.push(Member {
            uid: 1,
            hotkey: key(1).hotkey(),
            stake: 20_000,
            validator_permit: true,
            axon: "127.0.0.1:9001".into(),
        });
    }
    m
}

fn snapshot(epoch: u64, with_validator: bool) -> ChainSnapshot {
    ChainSnapshot {
        epoch,
        params: NetParams {
            epoch_length: 100,
            epoch_offset: 0,
            block_ms: 1_000,
            min_validator_stake: 1_000,
            burn_uid: 0,
        },
        members: members(with_validator),
        seeds: vec![(epoch, [epoch as u8 + 1; 32])],
    }
}

fn seed(epoch: u64) -> [u8; 32] {
    [epoch as u8 + 1; 32]
}

fn output(v: f32) -> Tensor {
    Tensor::f32(&[16], &[v; 16]).unwrap()
}

/// Milliseconds at block `n` (the hoster sees each head exactly on time).
fn at(n: u64) -> u64 {
    1_000_000 + n * 1_000
}

struct Rig {
    h: Hoster,
    with_validator: bool,
}

impl Rig {
    fn new(rng: u8, with_validator: bool) -> Rig {
        let mut h = Hoster::new(HosterConfig::new(NETUID), key(10), [rng; 32]);
        assert!(h.handle(HosterInput::Restore(Vec::new())).is_empty());
        Rig { h, with_validator }
    }

    /// Feeds head `n`, answering a chain read with the epoch's snapshot.
    fn head(&mut self, n: u64) -> Vec<HosterEffect> {
        let mut out = self.h.handle(HosterInput::Head(Head {
            number: n,
            timestamp_ms: at(n),
        }));
        let reads: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                HosterEffect::ReadChain { req, .. } => Some(*req),
                _ => None,
            })
            .collect();
        for req in reads {
            out.extend(self.h.handle(HosterInput::Snapshot {
                req,
                result: Ok(snapshot(n / 100, self.with_validator)),
            }));
        }
        out
    }
}

impl Rig {
    /// Feeds head `n` at or after the challenge window's close: the last challenge read it
    /// asks for finds nothing; what that answer produced is added.
    fn close(&mut self, n: u64) -> Vec<HosterEffect> {
        let mut e = self.head(n);
        if let Some((epoch, _)) = reads_challenge(&e) {
            assert!(infers(&e).is_none(), "no fallback before the last read");
            e.extend(self.h.handle(HosterInput::Challenge { epoch, found: None }));
        }
        e
    }
}

fn reads_challenge(effects: &[HosterEffect]) -> Option<(u64, Hotkey)> {
    effects.iter().find_map(|e| match e {
        HosterEffect::ReadChallenge { epoch, elected } => Some((*epoch, *elected)),
        _ => None,
    })
}

fn infers(effects: &[HosterEffect]) -> Option<(u64, Tensor)> {
    effects.iter().find_map(|e| match e {
        HosterEffect::Infer { epoch, input } => Some((*epoch, input.clone())),
        _ => None,
    })
}

fn publishes(effects: &[HosterEffect], kind: Kind) -> Vec<(u64, Vec<u8>, u64, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            HosterEffect::Publish {
                kind: k,
                epoch,
                payload,
                expires_at_ms,
                raw,
            } if *k == kind => Some((*epoch, payload.clone(), *expires_at_ms, *raw)),
            _ => None,
        })
        .collect()
}

fn all_publishes(effects: &[HosterEffect]) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, HosterEffect::Publish { .. }))
        .count()
}

/// Runs epoch 1 without a challenge up to the inference at block 116; returns what the
/// answer to it produced.
fn to_inference(r: &mut Rig, out_value: f32) -> Vec<HosterEffect> {
    for n in 100..116 {
        let e = r.head(n);
        assert!(infers(&e).is_none(), "block {n}: inferred before the close");
        if let Some((epoch, _)) = reads_challenge(&e) {
            r.h.handle(HosterInput::Challenge { epoch, found: None });
        }
    }
    let e = r.close(116);
    let (epoch, input) = infers(&e).expect("the fallback at the close");
    assert_eq!(epoch, 1);
    assert_eq!(input, fallback_input(&seed(1), &[64]).unwrap());
    r.h.handle(HosterInput::Inferred {
        epoch,
        result: Ok(output(out_value)),
    })
}

#[test]
fn commit_only_in_its_window_reveal_only_in_its_window_and_the_reveal_opens_the_commit() {
    let mut r = Rig::new(1, true);
    let e = to_inference(&mut r, 0.25);
    // the entry is persisted before the commit goes out
    let persist = e
        .iter()
        .position(|x| matches!(x, HosterEffect::Persist(_)))
        .expect("persisted");
    let commit = e
        .iter()
        .position(|x| {
            matches!(
                x,
                HosterEffect::Publish {
                    kind: Kind::HosterCommit,
                    ..
                }
            )
        })
        .expect("committed at block 116");
    assert!(persist < commit, "{e:?}");
    let HosterEffect::Persist(entry) = e[persist].clone() else {
        unreachable!()
    };
    assert_eq!(entry.epoch, 1);
    assert_eq!(entry.output, output(0.25));
    // four epochs of 100 blocks of 1 s after the head was seen
    assert_eq!(entry.commit_expires_at_ms, at(116) + 400_000);
    assert_eq!(entry.reveal_expires_at_ms, at(116) + 400_000);
    let c = publishes(&e, Kind::HosterCommit);
    assert_eq!(c.len(), 1);
    let (epoch, payload, expires, raw) = c[0].clone();
    assert_eq!(
        (epoch, expires, raw),
        (1, entry.commit_expires_at_ms, false)
    );
    let Commit(committed) = Commit::decode(&mut &payload[..]).unwrap();
    assert_eq!(r.h.entry(1), Some(&entry));
    // once: nothing more until the reveal window opens and the commit window has closed for
    // everyone (150 plus half a block of skew: block 151), so no store takes a commit once a
    // reveal can be seen
    for n in 117..151 {
        assert_eq!(all_publishes(&r.head(n)), 0, "block {n}");
    }
    let e = r.head(151);
    let rv = publishes(&e, Kind::HosterReveal);
    assert_eq!(rv.len(), 1, "{e:?}");
    assert_eq!(all_publishes(&e), 1);
    let (epoch, payload, expires, raw) = rv[0].clone();
    assert_eq!(
        (epoch, expires, raw),
        (1, entry.reveal_expires_at_ms, false)
    );
    let reveal = HosterReveal::decode(&mut &payload[..]).unwrap();
    assert_eq!(
        hoster_commitment(&key(10).hotkey(), 1, &reveal.salt, &reveal.output),
        committed
    );
    assert_eq!(reveal.output, output(0.25));
    assert_eq!(reveal.salt, entry.salt);
    // once, and never after the window
    for n in 152..260 {
        let e = r.head(n);
        assert!(
            publishes(&e, Kind::HosterReveal).iter().all(|p| p.0 != 1),
            "block {n}"
        );
    }
}

#[test]
fn an_output_known_before_the_commit_window_waits_for_it() {
    let mut r = Rig::new(1, true);
    let e = r.head(100);
    let (epoch, elected) = reads_challenge(&e).expect("the challenge is read");
    assert_eq!((epoch, elected), (1, key(1).hotkey()));
    let challenge = Tensor::f32(&[64], &[0.5; 64]).unwrap();
    let e = r.h.handle(HosterInput::Challenge {
        epoch: 1,
        found: Some(challenge.clone()),
    });
    assert_eq!(infers(&e), Some((1, challenge)));
    let e = r.h.handle(HosterInput::Inferred {
        epoch: 1,
        result: Ok(output(0.5)),
    });
    // persisted, but block 100 is before the commit window
    assert!(e.iter().any(|x| matches!(x, HosterEffect::Persist(_))));
    assert_eq!(all_publishes(&e), 0);
    for n in 101..115 {
        let e = r.head(n);
        assert_eq!(all_publishes(&e), 0, "block {n}");
        assert!(reads_challenge(&e).is_none() && infers(&e).is_none());
    }
    let e = r.head(115);
    let c = publishes(&e, Kind::HosterCommit);
    assert_eq!(c.len(), 1);
    assert_eq!(
        c[0].1,
        r.h.entry(1).unwrap().commit_payload(&key(10).hotkey())
    );
}

#[test]
fn a_challenge_of_the_wrong_shape_or_none_falls_back_only_after_the_close() {
    let mut r = Rig::new(1, true);
    let e = r.head(100);
    assert!(reads_challenge(&e).is_some());
    // one outstanding read per epoch
    assert!(reads_challenge(&r.head(101)).is_none());
    let short = Tensor::f32(&[63], &[0.5; 63]).unwrap();
    let e = r.h.handle(HosterInput::Challenge {
        epoch: 1,
        found: Some(short),
    });
    assert!(infers(&e).is_none(), "a wrong-shaped challenge is not used");
    assert!(r.h.take_error().unwrap().contains("not an f32 tensor"));
    // asked again while the window is open; no fallback before the close
    for n in 102..116 {
        let e = r.head(n);
        assert!(infers(&e).is_none(), "block {n}");
        let (epoch, _) = reads_challenge(&e).expect("asked again");
        r.h.handle(HosterInput::Challenge { epoch, found: None });
    }
    // at the close: one last read (a challenge of the window's last block is not missed),
    // then the fallback
    let e = r.head(116);
    assert!(reads_challenge(&e).is_some() && infers(&e).is_none());
    let e = r.h.handle(HosterInput::Challenge {
        epoch: 1,
        found: None,
    });
    assert_eq!(
        infers(&e),
        Some((1, fallback_input(&seed(1), &[64]).unwrap()))
    );
    // a challenge that arrives after the fallback started changes nothing
    let late = Tensor::f32(&[64], &[0.5; 64]).unwrap();
    assert!(infers(&r.h.handle(HosterInput::Challenge {
        epoch: 1,
        found: Some(late),
    }))
    .is_none());
}

#[test]
fn a_found_challenge_of_the_right_shape_is_the_input() {
    let mut r = Rig::new(1, true);
    let e = r.head(100);
    assert!(reads_challenge(&e).is_some());
    let e = r.h.handle(HosterInput::Challenge {
        epoch: 1,
        found: None,
    });
    assert!(infers(&e).is_none());
    let e = r.head(110);
    assert!(reads_challenge(&e).is_some());
    let good = Tensor::f32(&[64], &[-0.75; 64]).unwrap();
    let e = r.h.handle(HosterInput::Challenge {
        epoch: 1,
        found: Some(good.clone()),
    });
    assert_eq!(infers(&e), Some((1, good)));
    // inferring: neither read nor fallback on later heads
    for n in 111..120 {
        let e = r.head(n);
        assert!(reads_challenge(&e).is_none() && infers(&e).is_none());
    }
}

#[test]
fn without_an_elected_validator_no_challenge_is_read() {
    let mut r = Rig::new(1, false);
    for n in 100..116 {
        let e = r.head(n);
        assert!(reads_challenge(&e).is_none(), "block {n}");
        assert!(infers(&e).is_none(), "block {n}");
    }
    let e = r.head(116);
    assert_eq!(
        infers(&e),
        Some((1, fallback_input(&seed(1), &[64]).unwrap()))
    );
}

#[test]
fn a_restart_reveals_the_same_bytes_with_the_same_expiry() {
    let mut r = Rig::new(1, true);
    let e = to_inference(&mut r, 0.125);
    let first_commit = publishes(&e, Kind::HosterCommit);
    let entry = r.h.entry(1).unwrap().clone();
    // the commit window closed for everyone at block 151 (150 plus half a block of skew)
    assert!(publishes(&r.head(150), Kind::HosterReveal).is_empty());
    let first_reveal = publishes(&r.head(151), Kind::HosterReveal);
    assert_eq!(first_reveal.len(), 1);

    // restarted in the reveal window, with another RNG: the stored salt and expiry
    let mut r2 = Rig::new(9, true);
    assert!(r2
        .h
        .handle(HosterInput::Restore(vec![entry.clone()]))
        .is_empty());
    let e = r2.head(152);
    assert_eq!(publishes(&e, Kind::HosterReveal), first_reveal);
    assert!(publishes(&e, Kind::HosterCommit).is_empty());
    assert!(infers(&e).is_none());
    assert!(publishes(&r2.head(153), Kind::HosterReveal).is_empty());

    // restarted in the commit window: the identical commit goes out again (a replica), no
    // second inference, then the same reveal
    let mut r3 = Rig::new(7, true);
    r3.h.handle(HosterInput::Restore(vec![entry]));
    let e = r3.head(130);
    assert_eq!(publishes(&e, Kind::HosterCommit), first_commit);
    assert!(infers(&e).is_none() && reads_challenge(&e).is_none());
    assert_eq!(publishes(&r3.head(151), Kind::HosterReveal), first_reveal);

    // back only at the reveal window's end block (160; stores take reveals until 160.5): it
    // still reveals; one block later it does not
    let mut r4 = Rig::new(5, true);
    r4.h.handle(HosterInput::Restore(vec![r.h.entry(1).unwrap().clone()]));
    assert_eq!(publishes(&r4.head(160), Kind::HosterReveal), first_reveal);
    let mut r5 = Rig::new(6, true);
    r5.h.handle(HosterInput::Restore(vec![r.h.entry(1).unwrap().clone()]));
    assert!(publishes(&r5.head(161), Kind::HosterReveal).is_empty());
}

#[test]
fn a_bad_output_or_a_failed_model_is_not_committed() {
    let mut r = Rig::new(1, true);
    for n in 100..116 {
        if let Some((epoch, _)) = reads_challenge(&r.head(n)) {
            r.h.handle(HosterInput::Challenge { epoch, found: None });
        }
    }
    assert!(infers(&r.close(116)).is_some());
    let e = r.h.handle(HosterInput::Inferred {
        epoch: 1,
        result: Ok(Tensor::f32(&[8], &[0.5; 8]).unwrap()),
    });
    assert!(e.is_empty(), "{e:?}");
    assert!(r.h.entry(1).is_none());
    assert!(r.h.take_error().unwrap().contains("not an f32 tensor"));
    // tried again on a later head, a bounded number of times
    let mut tries = 1;
    for n in 117..150 {
        if infers(&r.head(n)).is_some() {
            tries += 1;
            let e = r.h.handle(HosterInput::Inferred {
                epoch: 1,
                result: Err("out of memory".into()),
            });
            assert!(e.is_empty());
        }
    }
    assert_eq!(tries, tally_validator::hoster::MAX_INFER_ATTEMPTS);
    assert!(r.h.take_error().unwrap().contains("out of memory"));
    assert_eq!(all_publishes(&r.head(150)), 0);
}

#[test]
fn stale_heads_are_ignored_and_old_entries_dropped() {
    let mut r = Rig::new(1, true);
    to_inference(&mut r, 0.5);
    assert!(r.h.entry(1).is_some());
    // a stale head changes nothing: no time, no publish
    assert!(r.head(110).is_empty());
    // the snapshot is read once per epoch
    let reads = |e: &[HosterEffect]| {
        e.iter()
            .filter(|x| matches!(x, HosterEffect::ReadChain { .. }))
            .count()
    };
    assert_eq!(reads(&r.head(200)), 1);
    assert_eq!(reads(&r.head(201)), 0);
    for epoch in 3..=5 {
        r.head(epoch * 100);
    }
    assert!(r.h.entry(1).is_none(), "kept four epochs");
    // members without a permit, but not the burn uid or the hoster itself
    assert_eq!(r.h.hosters(), vec![key(11).hotkey()]);
    assert_eq!(r.h.view().unwrap().netuid, NETUID);
}

#[test]
fn an_unregistered_hoster_computes_nothing() {
    let mut h = Hoster::new(HosterConfig::new(NETUID), key(42), [1; 32]);
    h.handle(HosterInput::Restore(Vec::new()));
    let e = h.handle(HosterInput::Head(Head {
        number: 120,
        timestamp_ms: at(120),
    }));
    let HosterEffect::ReadChain { req, .. } = e[0] else {
        panic!("{e:?}")
    };
    let e = h.handle(HosterInput::Snapshot {
        req,
        result: Ok(snapshot(1, true)),
    });
    assert!(infers(&e).is_none() && reads_challenge(&e).is_none());
    assert!(h.take_error().unwrap().contains("not registered"));
}
