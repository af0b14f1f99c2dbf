//! Property tests of encoding: SCALE round trips of reports and rosters, arbitrary bytes never
//! panic, and an oversized length prefix is refused without allocating for it (measured with a
//! counting global allocator).

use parity_scale_codec::{Compact, Encode};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tally_core::report::commitment_of;
use tally_core::roster::RosterMember;
use tally_core::{
    BoundedBytes, BoundedVec, FamilyId, Hotkey, Keypair, ReportBody, RosterBody, Score,
    ScoreReport, Signed,
};

/// Tracks the largest single allocation made by the current thread (tests run in parallel,
/// so the record is per thread).
struct Counting;
thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn reset() {
    LARGEST.with(|l| l.set(0));
}
fn largest() -> usize {
    LARGEST.with(|l| l.get())
}

// SAFETY: forwards every call unchanged to the system allocator; it only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(l.size())));
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn key(i: u32) -> Hotkey {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    Hotkey(k)
}

fn report(n: u32, run: u64, seed: u8) -> ScoreReport {
    let kp = Keypair::from_seed(&[seed; 32]);
    let scores = (0..n)
        .map(|i| {
            (
                key(i * 7919 % 100_003),
                Score::from_units(i * 13 % 1_000_000_001).unwrap(),
            )
        })
        .collect();
    let body = ReportBody::new(
        1,
        run,
        FamilyId::new("inference").unwrap(),
        kp.hotkey(),
        scores,
    )
    .unwrap();
    ScoreReport::sign(body, [seed; 32], &kp).unwrap()
}

#[test]
fn oversized_prefix_is_refused_without_allocating() {
    // a report whose score list claims 2^30 entries, in a small buffer
    let r = report(3, 5, 1);
    let bytes = r.to_bytes();
    let body_len = r.signed.body_bytes().len();
    let scores_at = body_len - (1 + 3 * 36); // compact(3) is one byte
    let mut forged = bytes[..scores_at].to_vec();
    forged.extend(Compact(1u32 << 30).encode());
    forged.extend_from_slice(&bytes[scores_at + 1..]);
    reset();
    let e = ScoreReport::from_bytes(&forged);
    let peak = largest();
    assert!(e.is_err());
    assert!(
        peak < 64 * 1024,
        "allocated {peak} bytes for a refused prefix"
    );

    // a prefix over the field's cap but within the input is refused as well
    let mut over: Vec<u8> = Compact(100u32).encode();
    over.extend(vec![0u8; 100]);
    reset();
    assert!(tally_core::codec::decode_bounded::<BoundedBytes<64>>(&over, 1024, "x").is_err());
    assert!(largest() < 100);
}

#[test]
fn signed_report_round_trip_and_commitment() {
    let r = report(50, 9, 2);
    r.verify().unwrap();
    let back = ScoreReport::from_bytes(&r.to_bytes()).unwrap();
    assert_eq!(back, r);
    back.verify().unwrap();
    assert_eq!(
        back.commitment(),
        commitment_of(r.signed.body_bytes(), &r.salt)
    );
    let mut other_salt = r.clone();
    other_salt.salt[0] ^= 1;
    assert_ne!(other_salt.commitment(), r.commitment());
    // a flipped score byte breaks the signature
    let mut bytes = r.to_bytes();
    let n = r.signed.body_bytes().len();
    bytes[n - 1] ^= 0x01;
    if let Ok(t) = ScoreReport::from_bytes(&bytes) {
        assert!(t.verify().is_err());
    }
}

#[test]
fn unsorted_or_repeated_scores_are_refused() {
    let kp = Keypair::from_seed(&[3; 32]);
    let fam = FamilyId::new("inference").unwrap();
    let dup = vec![(key(1), Score::ZERO), (key(1), Score::ONE)];
    assert!(ReportBody::new(1, 1, fam.clone(), kp.hotkey(), dup).is_err());
    // an unsorted list on the wire is refused at decode
    let body = ReportBody {
        netuid: 1,
        run: 1,
        family_id: fam,
        validator: kp.hotkey(),
        scores: BoundedVec::new(vec![(key(2), Score::ZERO), (key(1), Score::ZERO)]).unwrap(),
    };
    let forged = Signed::from_parts(body, kp.sign(b"x")).to_bytes();
    assert!(Signed::<ReportBody>::from_bytes(&forged).is_err());
    assert!(FamilyId::new("Bad Family").is_err());
    assert!(FamilyId::new("").is_err());
}

#[test]
fn signature_domain_separation() {
    // a report signature does not verify as a roster with the same bytes, and vice versa
    let kp = Keypair::from_seed(&[4; 32]);
    let roster = RosterBody {
        netuid: 1,
        run: 2,
        family_id: FamilyId::new("inference").unwrap(),
        owner: kp.hotkey(),
        members: BoundedVec::new(vec![]).unwrap(),
    };
    let signed = Signed::sign(roster, &kp).unwrap();
    signed.verify().unwrap();
    let payload_as_report =
        tally_core::codec::signing_payload(b"tally/score-report/v1", signed.body_bytes());
    assert!(!kp.hotkey().verify(&payload_as_report, signed.signature()));
}

fn arb_member() -> impl Strategy<Value = RosterMember> {
    (
        any::<[u8; 32]>(),
        "[a-z0-9]{1,16}",
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(m, id, h, man)| RosterMember {
            miner: Hotkey(m),
            submission_id: BoundedBytes::new(id.into_bytes()).unwrap(),
            archive_sha256: h,
            manifest: BoundedBytes::new(man).unwrap(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn report_round_trips(netuid in any::<u16>(), run in any::<u64>(),
                          scores in proptest::collection::btree_map(any::<[u8; 32]>(), 0u32..=1_000_000_000, 0..40),
                          salt in any::<[u8; 32]>(), seed in any::<[u8; 32]>()) {
        let kp = Keypair::from_seed(&seed);
        let scores = scores.into_iter().map(|(k, s)| (Hotkey(k), Score::from_units(s).unwrap())).collect();
        let body = ReportBody::new(netuid, run, FamilyId::new("fam-1").unwrap(), kp.hotkey(), scores).unwrap();
        let r = ScoreReport::sign(body, salt, &kp).unwrap();
        let bytes = r.to_bytes();
        let back = ScoreReport::from_bytes(&bytes).unwrap();
        prop_assert!(back.verify().is_ok());
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert_eq!(back, r);
    }

    #[test]
    fn roster_round_trips(members in proptest::collection::vec(arb_member(), 0..12), run in any::<u64>()) {
        let kp = Keypair::from_seed(&[8; 32]);
        let mut members = members;
        members.sort_by_key(|a| a.miner);
        members.dedup_by(|a, b| a.miner == b.miner);
        let body = RosterBody { netuid: 3, run, family_id: FamilyId::new("inference").unwrap(),
                                owner: kp.hotkey(), members: BoundedVec::new(members).unwrap() };
        let s = Signed::sign(body.clone(), &kp).unwrap();
        let back = Signed::<RosterBody>::decode_verified(&s.to_bytes()).unwrap();
        prop_assert_eq!(back.body(), &body);
        prop_assert!(back.verify_for(&kp.hotkey(), 3, run, &FamilyId::new("inference").unwrap()).is_ok());
        prop_assert!(back.verify_for(&kp.hotkey(), 3, run.wrapping_add(1), &FamilyId::new("inference").unwrap()).is_err());
        prop_assert!(back.verify_for(&Keypair::from_seed(&[9; 32]).hotkey(), 3, run, &FamilyId::new("inference").unwrap()).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ScoreReport::from_bytes(&bytes);
        let _ = Signed::<RosterBody>::from_bytes(&bytes);
        let _ = tally_core::codec::decode_bounded::<BoundedVec<(Hotkey, Score), 16>>(&bytes, 4096, "x");
    }

    #[test]
    fn random_length_prefixes_never_overallocate(len in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = Compact(len).encode();
        bytes.extend_from_slice(&tail);
        reset();
        let r = tally_core::codec::decode_bounded::<BoundedVec<(Hotkey, Score), 100_000>>(&bytes, 1 << 22, "x");
        // nothing larger than the input itself could have been reserved for the list
        prop_assert!(largest() <= 36 * (tail.len() / 36 + 1) + 64);
        if r.is_ok() { prop_assert!(len as usize * 36 == tail.len()); }
    }
}
