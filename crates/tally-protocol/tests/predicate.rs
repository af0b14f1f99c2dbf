//! Every predicate rule, on both sides of every window edge.
//!
//! The view: epochs of 100 blocks from block 0, 1 s blocks observed at block 0 at time 0, so
//! `now_ms` equals the chain position in milli-blocks; skew 500 milli-blocks.

use parity_scale_codec::Encode;
use tally_core::{
    BoundedBytes, BoundedVec, FamilyId, Hotkey, Keypair, ReportBody, Score, ScoreReport,
};
use tally_protocol::payload::{hoster_commitment, Commit, HosterReveal};
use tally_protocol::predicate::{check, Mode, Reject};
use tally_protocol::view::challenge_seed;
use tally_protocol::{
    ChainTime, ChainView, EpochClock, Heartbeat, Kind, Metagraph, Neuron, PhaseWindows, RecordBody,
    Role, SignedRecord, Tensor,
};

const NET: u16 = 7;
const MIN_STAKE: u64 = 1_000;

struct Keys {
    v1: Keypair,
    v_poor: Keypair,
    hoster: Keypair,
    stranger: Keypair,
}

fn keys() -> Keys {
    Keys {
        v1: Keypair::from_seed(&[1; 32]),
        v_poor: Keypair::from_seed(&[2; 32]),
        hoster: Keypair::from_seed(&[3; 32]),
        stranger: Keypair::from_seed(&[4; 32]),
    }
}

fn view(k: &Keys) -> ChainView {
    let mg = Metagraph::new([
        (
            k.v1.hotkey(),
            Neuron {
                uid: 0,
                stake: 50_000,
                validator_permit: true,
            },
        ),
        (
            k.v_poor.hotkey(),
            Neuron {
                uid: 1,
                stake: 10,
                validator_permit: true,
            },
        ),
        (
            k.hoster.hotkey(),
            Neuron {
                uid: 2,
                stake: 0,
                validator_permit: false,
            },
        ),
    ])
    .unwrap();
    let mut v = ChainView::new(
        NET,
        EpochClock {
            length: 100,
            offset: 0,
        },
        PhaseWindows::default(),
        ChainTime {
            block: 0,
            at_ms: 0,
            block_ms: 1000,
        },
        mg,
        MIN_STAKE,
    );
    for e in 0..10 {
        v.set_seed(e, challenge_seed(&[e as u8; 32], NET, e));
    }
    v
}

fn payload(kind: Kind, epoch: u64, key: &Keypair) -> Vec<u8> {
    match kind {
        Kind::Heartbeat => Heartbeat {
            role: Role::Validator,
            peer_id: BoundedBytes::new(vec![1, 2, 3]).unwrap(),
            addrs: BoundedVec::new(vec![]).unwrap(),
            http: BoundedBytes::new(b"127.0.0.1:1".to_vec()).unwrap(),
            issued_at_ms: 5,
        }
        .encode(),
        Kind::Challenge => Tensor::f32(&[2], &[0.5, -1.0]).unwrap().encode(),
        Kind::HosterCommit | Kind::ValidatorCommit => Commit([9; 32]).encode(),
        Kind::HosterReveal => HosterReveal {
            salt: [1; 32],
            output: Tensor::f32(&[1], &[3.0]).unwrap(),
        }
        .encode(),
        Kind::ValidatorReveal => {
            let body = ReportBody::new(
                NET,
                epoch,
                FamilyId::new("inference").unwrap(),
                key.hotkey(),
                vec![(Hotkey([5; 32]), Score::from_units(7).unwrap())],
            )
            .unwrap();
            ScoreReport::sign(body, [3; 32], key).unwrap().to_bytes()
        }
    }
}

fn record(kind: Kind, epoch: u64, key: &Keypair, expires: u64) -> SignedRecord {
    let body = RecordBody {
        kind,
        netuid: NET,
        epoch,
        publisher: key.hotkey(),
        payload: BoundedBytes::new(payload(kind, epoch, key)).unwrap(),
        expires_at_ms: expires,
    };
    SignedRecord::sign(body, key).unwrap()
}

fn publisher_for(kind: Kind, k: &Keys) -> &Keypair {
    if kind.validator_only() {
        &k.v1
    } else {
        &k.hoster
    }
}

fn run(
    r: &SignedRecord,
    now: u64,
    v: &ChainView,
    existing: Option<&SignedRecord>,
    mode: Mode,
) -> Result<(), Reject> {
    check(&r.key(), &r.to_bytes(), now, v, existing, mode).map(|_| ())
}

#[test]
fn every_window_edge_both_sides() {
    let k = keys();
    let v = view(&k);
    let skew = v.windows.skew_mb;
    let epoch = 3;
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::Heartbeat) {
        let w = v.windows.of(kind).unwrap();
        let (start, end) = w.bounds_mb(&v.clock, epoch);
        let (start, end) = (start as u64, end as u64);
        let who = publisher_for(kind, &k);
        let at = |now: u64| {
            let r = record(kind, epoch, who, now + 60_000);
            run(&r, now, &v, None, Mode::Store)
        };
        assert_eq!(at(start - skew), Ok(()), "{} at start - skew", kind.name());
        assert!(
            at(start - skew - 1).is_err(),
            "{} just before start - skew",
            kind.name()
        );
        assert_eq!(
            at(end + skew - 1),
            Ok(()),
            "{} at end + skew - 1",
            kind.name()
        );
        assert!(at(end + skew).is_err(), "{} at end + skew", kind.name());
        assert_eq!(at((start + end) / 2), Ok(()), "{} mid-window", kind.name());
        // reading back: accepted once opened, also long after the window closed
        let r = record(kind, epoch, who, end + 100_000);
        assert_eq!(run(&r, end + 50_000, &v, None, Mode::Read), Ok(()));
        assert!(run(&r, start - skew - 1, &v, None, Mode::Read).is_err());
    }
}

#[test]
fn epoch_rule_names_the_reason() {
    let k = keys();
    let v = view(&k);
    // a hoster commit for epoch 3 at mid epoch 4: wrong epoch
    let r = record(Kind::HosterCommit, 3, &k.hoster, 500_000);
    assert_eq!(
        run(&r, 430_000, &v, None, Mode::Store),
        Err(Reject::WrongEpoch)
    );
    // the right epoch, the wrong phase
    assert_eq!(
        run(&r, 390_000, &v, None, Mode::Store),
        Err(Reject::OutsideWindow)
    );
    // a validator reveal names the previous epoch: at epoch 4 p=0.2 a reveal of run 4 is wrong
    let r = record(Kind::ValidatorReveal, 4, &k.v1, 500_000);
    assert_eq!(
        run(&r, 420_000, &v, None, Mode::Store),
        Err(Reject::WrongEpoch)
    );
    let r = record(Kind::ValidatorReveal, 3, &k.v1, 500_000);
    assert_eq!(run(&r, 420_000, &v, None, Mode::Store), Ok(()));
    // heartbeats: current epoch give or take one
    let hb = |e| record(Kind::Heartbeat, e, &k.hoster, 450_000);
    assert_eq!(run(&hb(4), 420_000, &v, None, Mode::Store), Ok(()));
    assert_eq!(run(&hb(3), 420_000, &v, None, Mode::Store), Ok(()));
    assert_eq!(
        run(&hb(2), 420_000, &v, None, Mode::Store),
        Err(Reject::WrongEpoch)
    );
}

#[test]
fn publisher_and_role_rules() {
    let k = keys();
    let v = view(&k);
    let now = 370_000; // epoch 3, p = 0.7: validator commits open
    let exp = now + 60_000;
    assert_eq!(
        run(
            &record(Kind::ValidatorCommit, 3, &k.v1, exp),
            now,
            &v,
            None,
            Mode::Store
        ),
        Ok(())
    );
    assert_eq!(
        run(
            &record(Kind::ValidatorCommit, 3, &k.hoster, exp),
            now,
            &v,
            None,
            Mode::Store
        ),
        Err(Reject::NotValidator)
    );
    assert_eq!(
        run(
            &record(Kind::ValidatorCommit, 3, &k.v_poor, exp),
            now,
            &v,
            None,
            Mode::Store
        ),
        Err(Reject::InsufficientStake)
    );
    assert_eq!(
        run(
            &record(Kind::ValidatorCommit, 3, &k.stranger, exp),
            now,
            &v,
            None,
            Mode::Store
        ),
        Err(Reject::UnknownPublisher)
    );
    // another netuid
    let mut body = record(Kind::ValidatorCommit, 3, &k.v1, exp).body().clone();
    body.netuid = NET + 1;
    let r = SignedRecord::sign(body, &k.v1).unwrap();
    assert_eq!(
        run(&r, now, &v, None, Mode::Store),
        Err(Reject::WrongNetuid)
    );
}

#[test]
fn challenge_needs_the_elected_validator() {
    let k = keys();
    let mut v = view(&k);
    let now = 305_000; // epoch 3, p = 0.05
    let r = record(Kind::Challenge, 3, &k.v1, now + 60_000);
    assert_eq!(run(&r, now, &v, None, Mode::Store), Ok(())); // the only eligible validator
                                                             // a second eligible validator: whoever is not elected is refused
    let other = Keypair::from_seed(&[6; 32]);
    let mut neurons: Vec<_> = v.metagraph.iter().map(|(a, b)| (*a, *b)).collect();
    neurons.push((
        other.hotkey(),
        Neuron {
            uid: 9,
            stake: 50_000,
            validator_permit: true,
        },
    ));
    v.metagraph = Metagraph::new(neurons).unwrap();
    let elected = v.elected(3).unwrap();
    let loser = if elected == k.v1.hotkey() {
        &other
    } else {
        &k.v1
    };
    let winner = if elected == k.v1.hotkey() {
        &k.v1
    } else {
        &other
    };
    assert_eq!(
        run(
            &record(Kind::Challenge, 3, winner, now + 60_000),
            now,
            &v,
            None,
            Mode::Store
        ),
        Ok(())
    );
    assert_eq!(
        run(
            &record(Kind::Challenge, 3, loser, now + 60_000),
            now,
            &v,
            None,
            Mode::Store
        ),
        Err(Reject::NotElected)
    );
    // no seed known for the epoch
    let r = record(Kind::Challenge, 20, &k.v1, 2_060_000);
    assert_eq!(
        run(&r, 2_005_000, &v, None, Mode::Store),
        Err(Reject::SeedUnknown)
    );
}

#[test]
fn expiry_edges() {
    let k = keys();
    let v = view(&k);
    let now = 220_000; // epoch 2, p = 0.2: hoster commits open
    let cap = Kind::HosterCommit.max_ttl_ms();
    let at = |exp| {
        run(
            &record(Kind::HosterCommit, 2, &k.hoster, exp),
            now,
            &v,
            None,
            Mode::Store,
        )
    };
    assert_eq!(at(now), Err(Reject::Expired));
    assert_eq!(at(now + 1), Ok(()));
    assert_eq!(at(now + cap), Ok(()));
    assert_eq!(at(now + cap + 1), Err(Reject::ExpiryTooFar));
}

#[test]
fn decode_key_signature_and_payload() {
    let k = keys();
    let v = view(&k);
    let now = 220_000;
    let r = record(Kind::HosterCommit, 2, &k.hoster, now + 1000);
    // wrong key
    let other = record(Kind::HosterCommit, 2, &k.v1, now + 1000);
    assert_eq!(
        check(&other.key(), &r.to_bytes(), now, &v, None, Mode::Store).unwrap_err(),
        Reject::KeyMismatch
    );
    // bad signature
    let mut bytes = r.to_bytes();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    assert_eq!(
        check(&r.key(), &bytes, now, &v, None, Mode::Store).unwrap_err(),
        Reject::BadSignature
    );
    // a body signed by another key
    let forged = SignedRecord::from_parts(r.body().clone(), k.v1.sign(b"x"));
    assert_eq!(
        run(&forged, now, &v, None, Mode::Store),
        Err(Reject::BadSignature)
    );
    // malformed and oversize
    assert_eq!(
        check(&r.key(), &[9, 1, 2], now, &v, None, Mode::Store).unwrap_err(),
        Reject::Malformed
    );
    assert_eq!(
        check(&r.key(), &bytes[..n - 70], now, &v, None, Mode::Store).unwrap_err(),
        Reject::Malformed
    );
    let mut big = vec![Kind::HosterCommit as u8];
    big.resize(Kind::HosterCommit.max_bytes() + 1, 0);
    assert_eq!(
        check(&r.key(), &big, now, &v, None, Mode::Store).unwrap_err(),
        Reject::Oversize
    );
    // payload schema: a commit that is not 32 bytes, a NaN challenge, a reveal for another run
    let mut body = r.body().clone();
    body.payload = BoundedBytes::new(vec![1, 2, 3]).unwrap();
    let bad = SignedRecord::sign(body, &k.hoster).unwrap();
    assert_eq!(
        run(&bad, now, &v, None, Mode::Store),
        Err(Reject::BadPayload)
    );
    let mut body = record(Kind::Challenge, 2, &k.v1, 260_000).body().clone();
    let nan = Tensor {
        dtype: tally_protocol::DType::F32,
        shape: BoundedVec::new(vec![1]).unwrap(),
        data: BoundedBytes::new(f32::NAN.to_le_bytes().to_vec()).unwrap(),
    };
    body.payload = BoundedBytes::new(nan.encode()).unwrap();
    let bad = SignedRecord::sign(body, &k.v1).unwrap();
    assert_eq!(
        run(&bad, 205_000, &v, None, Mode::Store),
        Err(Reject::BadPayload)
    );
    let mut body = record(Kind::ValidatorReveal, 2, &k.v1, 360_000)
        .body()
        .clone();
    body.payload = BoundedBytes::new(payload(Kind::ValidatorReveal, 1, &k.v1)).unwrap();
    let bad = SignedRecord::sign(body, &k.v1).unwrap();
    assert_eq!(
        run(&bad, 320_000, &v, None, Mode::Store),
        Err(Reject::BadPayload)
    );
}

#[test]
fn write_once_replication_and_heartbeat_refresh() {
    let k = keys();
    let v = view(&k);
    let now = 220_000;
    let first = record(Kind::HosterCommit, 2, &k.hoster, now + 10_000);
    let again = first.clone();
    let verdict = check(
        &again.key(),
        &again.to_bytes(),
        now,
        &v,
        Some(&first),
        Mode::Store,
    )
    .unwrap();
    assert!(verdict.replica);
    // a different commit in the same slot: refused, and it is signed, so it is evidence
    let mut body = first.body().clone();
    body.payload = BoundedBytes::new(Commit([1; 32]).encode()).unwrap();
    let second = SignedRecord::sign(body, &k.hoster).unwrap();
    assert_eq!(
        run(&second, now, &v, Some(&first), Mode::Store),
        Err(Reject::Conflict)
    );
    assert!(second.signature_valid());
    // the same on read-back
    assert_eq!(
        run(&second, now, &v, Some(&first), Mode::Read),
        Err(Reject::Conflict)
    );
    // heartbeats: newer replaces, older or equal is stale
    let hb = |issued: u64| {
        let h = Heartbeat {
            role: Role::Hoster,
            peer_id: BoundedBytes::new(vec![1]).unwrap(),
            addrs: BoundedVec::new(vec![]).unwrap(),
            http: BoundedBytes::new(vec![]).unwrap(),
            issued_at_ms: issued,
        };
        let body = RecordBody {
            kind: Kind::Heartbeat,
            netuid: NET,
            epoch: 2,
            publisher: k.hoster.hotkey(),
            payload: BoundedBytes::new(h.encode()).unwrap(),
            expires_at_ms: now + 60_000 + issued,
        };
        SignedRecord::sign(body, &k.hoster).unwrap()
    };
    assert_eq!(run(&hb(10), now, &v, Some(&hb(5)), Mode::Store), Ok(()));
    assert_eq!(
        run(&hb(5), now, &v, Some(&hb(10)), Mode::Store),
        Err(Reject::Stale)
    );
}

#[test]
fn replaced_commit_is_a_conflict_even_after_the_window() {
    let k = keys();
    let v = view(&k);
    let out = Tensor::f32(&[2], &[1.0, 2.0]).unwrap();
    let commit = |salt: [u8; 32]| {
        let body = RecordBody {
            kind: Kind::HosterCommit,
            netuid: NET,
            epoch: 2,
            publisher: k.hoster.hotkey(),
            payload: BoundedBytes::new(
                Commit(hoster_commitment(&k.hoster.hotkey(), 2, &salt, &out)).encode(),
            )
            .unwrap(),
            expires_at_ms: 900_000,
        };
        SignedRecord::sign(body, &k.hoster).unwrap()
    };
    let first = commit([1; 32]);
    let second = commit([2; 32]);
    // at epoch 2, p = 0.55: the hoster-reveal window, commits closed
    assert_eq!(
        run(&second, 255_000, &v, None, Mode::Store),
        Err(Reject::OutsideWindow)
    );
    assert_eq!(
        run(&second, 255_000, &v, Some(&first), Mode::Store),
        Err(Reject::Conflict)
    );
}

#[test]
fn reject_names_are_unique() {
    let mut names: Vec<&str> = Reject::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Reject::ALL.len());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), key in any::<[u8; 32]>(), now in any::<u64>()) {
            let k = keys();
            let v = view(&k);
            let _ = check(&key, &bytes, now, &v, None, Mode::Store);
            let _ = check(&key, &bytes, now, &v, None, Mode::Read);
        }

        #[test]
        fn mutated_records_never_panic(kind in 0usize..6, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), now in 0u64..1_000_000) {
            let k = keys();
            let v = view(&k);
            let kind = Kind::ALL[kind];
            let r = record(kind, 3, publisher_for(kind, &k), 400_000);
            let mut bytes = r.to_bytes();
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] ^= b | 1;
            }
            let res = check(&r.key(), &bytes, now, &v, None, Mode::Store);
            // a mutated record is never accepted as the original
            if let Ok(verdict) = res {
                prop_assert_eq!(verdict.record.to_bytes(), bytes);
            }
        }
    }
}
