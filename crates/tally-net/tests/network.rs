//! DHT tests over real sockets on 127.0.0.1: 8 honest nodes and one adversary in one process.
//!
//! Chain time is simulated by the view: epochs of 100 one-second blocks, and the tests move
//! the chain position with `set_view`, so phases change without waiting. Every wait is bounded.

use parity_scale_codec::Encode;
use std::collections::BTreeMap;
use std::time::Duration;
use tally_core::{BoundedBytes, BoundedVec, Hotkey, Keypair};
use tally_net::reveals::{fetch_reveals, snapshot_commits, RevealFailure};
use tally_net::{system_clock, Dht, DhtConfig, StoreLimits};
use tally_protocol::payload::{hoster_commitment, Commit, HosterReveal, Payload};
use tally_protocol::predicate::Reject;
use tally_protocol::view::challenge_seed;
use tally_protocol::{
    record_key, ChainTime, ChainView, CommitBook, EpochClock, Heartbeat, Kind, Metagraph, Neuron,
    PhaseWindows, RecordBody, Role, SignedRecord, Tensor,
};

const NET: u16 = 3;
const HONEST: usize = 8;
const TTL: Duration = Duration::from_secs(600);

struct Net {
    nodes: Vec<Dht>,
    keys: Vec<Keypair>,
    adversary: Dht,
    adv_key: Keypair,
    metagraph: Metagraph,
}

fn key(i: usize) -> Keypair {
    Keypair::from_seed(&[i as u8 + 1; 32])
}

/// Nodes 0..4 are validators (node 3 below the minimum stake), 4..8 hosters; the adversary's
/// hotkey is a registered hoster too (index 8).
fn metagraph() -> Metagraph {
    Metagraph::new((0..=HONEST).map(|i| {
        let validator = i < 4;
        let stake = if i == 3 {
            5
        } else if validator {
            10_000
        } else {
            0
        };
        (
            key(i).hotkey(),
            Neuron {
                uid: i as u16,
                stake,
                validator_permit: validator,
            },
        )
    }))
    .unwrap()
}

fn view_at(mg: &Metagraph, block: u64) -> ChainView {
    let time = ChainTime {
        block,
        at_ms: (system_clock())(),
        block_ms: 1000,
    };
    let mut v = ChainView::new(
        NET,
        EpochClock {
            length: 100,
            offset: 0,
        },
        PhaseWindows::default(),
        time,
        mg.clone(),
        1_000,
    );
    for e in 0..20 {
        v.set_seed(e, challenge_seed(&[e as u8; 32], NET, e));
    }
    v
}

async fn start(block: u64) -> Net {
    start_with(block, StoreLimits::default()).await
}

async fn start_with(block: u64, limits: StoreLimits) -> Net {
    let mg = metagraph();
    let first = Dht::start(
        DhtConfig {
            limits,
            ..DhtConfig::default()
        },
        libp2p::identity::Keypair::generate_ed25519(),
        key(0),
        view_at(&mg, block),
        system_clock(),
    )
    .await
    .unwrap();
    let boot = first.listen_addrs().await.unwrap()[0].clone();
    let mut nodes = vec![first];
    for i in 1..=HONEST {
        let cfg = DhtConfig {
            bootstrap: vec![boot.clone()],
            limits,
            ..DhtConfig::default()
        };
        let n = Dht::start(
            cfg,
            libp2p::identity::Keypair::generate_ed25519(),
            key(i),
            view_at(&mg, block),
            system_clock(),
        )
        .await
        .unwrap();
        nodes.push(n);
    }
    let adversary = nodes.pop().unwrap();
    // everyone learns everyone: dial all pairs once so routing tables are full
    let mut addrs = Vec::new();
    for n in nodes.iter().chain([&adversary]) {
        addrs.push(n.listen_addrs().await.unwrap()[0].clone());
    }
    for n in nodes.iter().chain([&adversary]) {
        for a in &addrs {
            let _ = n.dial(a.clone()).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    Net {
        nodes,
        keys: (0..HONEST).map(key).collect(),
        adversary,
        adv_key: key(HONEST),
        metagraph: mg,
    }
}

impl Net {
    fn set_block(&self, block: u64) {
        for n in self.nodes.iter().chain([&self.adversary]) {
            n.set_view(view_at(&self.metagraph, block));
        }
    }
    async fn holders(&self, key: [u8; 32]) -> usize {
        let mut c = 0;
        for n in &self.nodes {
            if n.held(key).await.unwrap().is_some() {
                c += 1;
            }
        }
        c
    }
    fn count(&self, r: Reject) -> u64 {
        self.nodes.iter().map(|n| n.reject_counts()[&r]).sum()
    }
}

async fn wait_for(mut f: impl AsyncFnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn commit_payload(by: &Keypair, epoch: u64, salt: [u8; 32], out: &Tensor) -> Vec<u8> {
    Commit(hoster_commitment(&by.hotkey(), epoch, &salt, out)).encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_record_is_found_by_every_node() {
    let net = start(220).await; // epoch 2, p = 0.2: hoster commits open
    let out = Tensor::f32(&[2], &[0.25, 0.5]).unwrap();
    let publisher = &net.nodes[5];
    publisher
        .publish(
            Kind::HosterCommit,
            2,
            commit_payload(&net.keys[5], 2, [7; 32], &out),
            TTL,
        )
        .await
        .unwrap();
    for (i, n) in net.nodes.iter().enumerate() {
        let got = n
            .get(Kind::HosterCommit, 2, &net.keys[5].hotkey())
            .await
            .unwrap();
        let v = got.unwrap_or_else(|| panic!("node {i} did not find the record"));
        assert_eq!(
            v.payload,
            Payload::Commit(hoster_commitment(&net.keys[5].hotkey(), 2, &[7; 32], &out))
        );
    }
    // re-replicating an identical, accepted record is not refused
    let slot = record_key(NET, Kind::HosterCommit, 2, &net.keys[5].hotkey());
    let bytes = publisher.held(slot).await.unwrap().unwrap();
    let refused_before: u64 = Reject::ALL.iter().map(|r| net.count(*r)).sum();
    net.adversary.put_raw(slot, bytes.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused_after: u64 = Reject::ALL.iter().map(|r| net.count(*r)).sum();
    assert_eq!(
        refused_before, refused_after,
        "an identical copy was refused"
    );
    for n in &net.nodes {
        if let Some(h) = n.held(slot).await.unwrap() {
            assert_eq!(h, bytes);
        }
    }
    // the publisher retrying the same payload (a retried commit) re-sends the same record: no
    // conflict anywhere, so no peer keeps evidence against an honest node
    let conflicts = net.count(Reject::Conflict);
    publisher
        .publish(
            Kind::HosterCommit,
            2,
            commit_payload(&net.keys[5], 2, [7; 32], &out),
            TTL,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(net.count(Reject::Conflict), conflicts);
    assert_eq!(publisher.held(slot).await.unwrap().unwrap(), bytes);
    // a different payload for the same slot is still refused, at home first
    assert!(publisher
        .publish(
            Kind::HosterCommit,
            2,
            commit_payload(&net.keys[5], 2, [8; 32], &out),
            TTL
        )
        .await
        .is_err());
    // many at once, with absent publishers reported as absent
    let hks: Vec<Hotkey> = net.keys.iter().map(|k| k.hotkey()).collect();
    let many = net.nodes[0].get_many(Kind::HosterCommit, 2, &hks).await;
    let found: Vec<bool> = many.iter().map(|(_, r)| matches!(r, Ok(Some(_)))).collect();
    assert_eq!(
        found,
        vec![false, false, false, false, false, true, false, false]
    );
    // heartbeats bind hotkeys to peer ids and list live peers by role
    for n in &net.nodes {
        let role = if net.metagraph.get(&n.hotkey()).unwrap().validator_permit {
            Role::Validator
        } else {
            Role::Hoster
        };
        tally_net::heartbeat::publish_heartbeat(n, role, "127.0.0.1:8080", Duration::from_secs(60))
            .await
            .unwrap();
    }
    let validators = tally_net::heartbeat::live_peers(&net.nodes[7], Role::Validator)
        .await
        .unwrap();
    let hosters = tally_net::heartbeat::live_peers(&net.nodes[7], Role::Hoster)
        .await
        .unwrap();
    assert_eq!(validators.len(), 4);
    assert_eq!(hosters.len(), 4); // the adversary sent none
    assert_eq!(
        net.nodes[7].peer_of(&net.keys[2].hotkey()),
        Some(net.nodes[2].peer_id())
    );
}

/// Builds a record of `kind` by `signer`, with `edit` applied to the body before signing.
fn signed(
    kind: Kind,
    epoch: u64,
    signer: &Keypair,
    payload: Vec<u8>,
    expires: u64,
) -> SignedRecord {
    let body = RecordBody {
        kind,
        netuid: NET,
        epoch,
        publisher: signer.hotkey(),
        payload: BoundedBytes::new(payload).unwrap(),
        expires_at_ms: expires,
    };
    SignedRecord::sign(body, signer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reject_reason_keeps_the_record_out() {
    let net = start(220).await; // epoch 2, p = 0.2
    let now = (system_clock())();
    let later = now + 60_000;
    let out = Tensor::f32(&[1], &[1.0]).unwrap();
    let commit = commit_payload(&net.keys[5], 2, [1; 32], &out);
    let adv = &net.adv_key;
    let stranger = Keypair::from_seed(&[99; 32]);
    let hoster = &net.keys[4];
    let poor_validator = &net.keys[3];
    let good = signed(Kind::HosterCommit, 2, adv, commit.clone(), later);

    // held commit for the conflict case: the adversary's honest first commit, published normally
    net.adversary
        .publish(Kind::HosterCommit, 2, commit.clone(), TTL)
        .await
        .unwrap();
    let adv_key = good.key();
    wait_for(
        async || net.holders(adv_key).await >= 1,
        "the first commit to replicate",
    )
    .await;

    let wrong_net = {
        let body = RecordBody {
            netuid: NET + 1,
            ..good.body().clone()
        };
        SignedRecord::sign(body, adv).unwrap()
    };
    let other_elected_epoch = 2;
    let mut cases: Vec<(Reject, [u8; 32], Vec<u8>)> = vec![
        (Reject::Malformed, [1; 32], vec![2, 0, 1, 2, 3]),
        (Reject::Oversize, [2; 32], {
            let mut b = vec![Kind::HosterCommit as u8];
            b.resize(4096, 0);
            b
        }),
        (
            Reject::KeyMismatch,
            [3; 32],
            signed(Kind::HosterCommit, 2, hoster, commit.clone(), later).to_bytes(),
        ),
        (
            Reject::BadSignature,
            record_key(NET, Kind::HosterCommit, 2, &hoster.hotkey()),
            SignedRecord::from_parts(
                signed(Kind::HosterCommit, 2, hoster, commit.clone(), later)
                    .body()
                    .clone(),
                adv.sign(b"no"),
            )
            .to_bytes(),
        ),
        (Reject::WrongNetuid, wrong_net.key(), wrong_net.to_bytes()),
        (
            Reject::UnknownPublisher,
            signed(Kind::HosterCommit, 2, &stranger, commit.clone(), later).key(),
            signed(Kind::HosterCommit, 2, &stranger, commit.clone(), later).to_bytes(),
        ),
        (
            Reject::NotValidator,
            signed(Kind::ValidatorCommit, 2, hoster, commit.clone(), later).key(),
            signed(Kind::ValidatorCommit, 2, hoster, commit.clone(), later).to_bytes(),
        ),
        (
            Reject::InsufficientStake,
            signed(
                Kind::ValidatorCommit,
                2,
                poor_validator,
                commit.clone(),
                later,
            )
            .key(),
            signed(
                Kind::ValidatorCommit,
                2,
                poor_validator,
                commit.clone(),
                later,
            )
            .to_bytes(),
        ),
        (
            Reject::SeedUnknown,
            signed(Kind::Challenge, 50, &net.keys[0], out.encode(), later).key(),
            signed(Kind::Challenge, 50, &net.keys[0], out.encode(), later).to_bytes(),
        ),
        (
            Reject::WrongEpoch,
            signed(Kind::HosterCommit, 7, hoster, commit.clone(), later).key(),
            signed(Kind::HosterCommit, 7, hoster, commit.clone(), later).to_bytes(),
        ),
        (
            Reject::OutsideWindow,
            signed(
                Kind::HosterReveal,
                2,
                hoster,
                HosterReveal {
                    salt: [1; 32],
                    output: out.clone(),
                }
                .encode(),
                later,
            )
            .key(),
            signed(
                Kind::HosterReveal,
                2,
                hoster,
                HosterReveal {
                    salt: [1; 32],
                    output: out.clone(),
                }
                .encode(),
                later,
            )
            .to_bytes(),
        ),
        (
            Reject::Expired,
            signed(Kind::HosterCommit, 2, &net.keys[5], commit.clone(), now - 1).key(),
            signed(Kind::HosterCommit, 2, &net.keys[5], commit.clone(), now - 1).to_bytes(),
        ),
        (
            Reject::ExpiryTooFar,
            signed(
                Kind::HosterCommit,
                2,
                &net.keys[6],
                commit.clone(),
                now + 10 * 86_400_000,
            )
            .key(),
            signed(
                Kind::HosterCommit,
                2,
                &net.keys[6],
                commit.clone(),
                now + 10 * 86_400_000,
            )
            .to_bytes(),
        ),
        (
            Reject::BadPayload,
            signed(Kind::HosterCommit, 2, &net.keys[7], vec![1, 2, 3], later).key(),
            signed(Kind::HosterCommit, 2, &net.keys[7], vec![1, 2, 3], later).to_bytes(),
        ),
        (
            Reject::Conflict,
            adv_key,
            signed(
                Kind::HosterCommit,
                2,
                adv,
                commit_payload(&net.adv_key, 2, [2; 32], &out),
                later,
            )
            .to_bytes(),
        ),
    ];
    // not elected: with two eligible validators (0 and 1), the one not elected for epoch 2
    let v = net.nodes[0].view().unwrap();
    let elected = v.elected(other_elected_epoch).unwrap();
    let loser = if elected == net.keys[0].hotkey() {
        &net.keys[1]
    } else {
        &net.keys[0]
    };
    let ch = signed(Kind::Challenge, 2, loser, out.encode(), later);
    let not_elected = (Reject::NotElected, ch.key(), ch.to_bytes());
    // a stale heartbeat: publish a fresh one for node 4 first, then an older one
    let hb = |issued: u64| Heartbeat {
        role: Role::Hoster,
        peer_id: BoundedBytes::new(net.nodes[4].peer_id().to_bytes()).unwrap(),
        addrs: BoundedVec::new(vec![]).unwrap(),
        http: BoundedBytes::new(vec![]).unwrap(),
        issued_at_ms: issued,
    };
    let fresh = signed(
        Kind::Heartbeat,
        2,
        hoster,
        hb(now + 5).encode(),
        now + 60_000,
    );
    net.adversary
        .put_raw(fresh.key(), fresh.to_bytes())
        .await
        .unwrap();
    wait_for(
        async || net.holders(fresh.key()).await >= HONEST,
        "the fresh heartbeat",
    )
    .await;
    let stale = signed(Kind::Heartbeat, 2, hoster, hb(now).encode(), now + 60_000);
    cases.push((Reject::Stale, stale.key(), stale.to_bytes()));

    for (reason, key, bytes) in cases.into_iter().chain([not_elected]) {
        if reason == Reject::NotElected {
            net.set_block(205); // the challenge window (p = 0.05)
        }
        let before = net.count(reason);
        let had = net.holders(key).await;
        net.adversary.put_raw(key, bytes.clone()).await.unwrap();
        let what = format!(
            "{reason} (counts now: {:?})",
            Reject::ALL
                .iter()
                .map(|r| (r.name(), net.count(*r)))
                .filter(|x| x.1 > 0)
                .collect::<Vec<_>>()
        );
        wait_for(async || net.count(reason) > before, &what).await;
        // the bytes are held by no honest node (for conflict/stale: the earlier record stays)
        for (i, n) in net.nodes.iter().enumerate() {
            let held = n.held(key).await.unwrap();
            assert_ne!(
                held.as_deref(),
                Some(&bytes[..]),
                "node {i} stored a record refused as {reason}"
            );
        }
        assert_eq!(net.holders(key).await, had, "{reason}: holders changed");
    }
    // the conflicting commit is kept as evidence by the nodes that held the first
    let ev: Vec<_> = net.nodes.iter().flat_map(|n| n.evidence()).collect();
    assert!(!ev.is_empty());
    assert!(ev.iter().all(|e| e.held.body().publisher == adv.hotkey()
        && e.held != e.offered
        && e.offered.signature_valid()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_commit_after_reveals_is_refused_and_mismatched_reveal_rejected() {
    let net = start(220).await; // epoch 2 hoster-commit window
    let honest = &net.nodes[4];
    let cheat = &net.nodes[5];
    let honest_out = Tensor::f32(&[2], &[1.0, 2.0]).unwrap();
    let cheat_out = Tensor::f32(&[2], &[9.0, 9.0]).unwrap();
    honest
        .publish(
            Kind::HosterCommit,
            2,
            commit_payload(&net.keys[4], 2, [4; 32], &honest_out),
            TTL,
        )
        .await
        .unwrap();
    cheat
        .publish(
            Kind::HosterCommit,
            2,
            commit_payload(&net.keys[5], 2, [5; 32], &cheat_out),
            TTL,
        )
        .await
        .unwrap();
    let hosters = vec![net.keys[4].hotkey(), net.keys[5].hotkey()];
    let cheat_slot = record_key(NET, Kind::HosterCommit, 2, &net.keys[5].hotkey());
    wait_for(
        async || net.holders(cheat_slot).await >= HONEST - 1,
        "commits to replicate",
    )
    .await;

    // the commit window closes: a consumer (validator 0) snapshots the commits
    net.set_block(251);
    let consumer = &net.nodes[0];
    let mut book = CommitBook::new(8);
    assert_eq!(
        snapshot_commits(consumer, &mut book, Kind::HosterCommit, 2, &hosters).await,
        Some(2)
    );

    // reveal window: the honest hoster reveals
    honest
        .publish(
            Kind::HosterReveal,
            2,
            HosterReveal {
                salt: [4; 32],
                output: honest_out.clone(),
            }
            .encode(),
            TTL,
        )
        .await
        .unwrap();
    // the cheat, having seen it, tries to replace its commit with one matching the honest output
    let replacement = signed(
        Kind::HosterCommit,
        2,
        &net.keys[5],
        commit_payload(&net.keys[5], 2, [6; 32], &honest_out),
        (system_clock())() + 60_000,
    );
    let before = net.count(Reject::Conflict);
    cheat
        .put_raw(cheat_slot, replacement.to_bytes())
        .await
        .unwrap();
    wait_for(
        async || net.count(Reject::Conflict) > before,
        "the replacement to be refused",
    )
    .await;
    for n in &net.nodes {
        assert_ne!(
            n.held(cheat_slot).await.unwrap().as_deref(),
            Some(&replacement.to_bytes()[..])
        );
    }
    let evidence: Vec<_> = net
        .nodes
        .iter()
        .flat_map(|n| n.evidence())
        .filter(|e| e.offered == replacement)
        .collect();
    assert!(!evidence.is_empty(), "the attempt is kept as evidence");
    // and reveals the honest output under the new salt: the DHT takes it (its schema is fine),
    // but the consumer refuses it because it does not match the snapshot commit
    cheat
        .publish(
            Kind::HosterReveal,
            2,
            HosterReveal {
                salt: [6; 32],
                output: honest_out.clone(),
            }
            .encode(),
            TTL,
        )
        .await
        .unwrap();
    let reveals = fetch_reveals(
        consumer,
        &book,
        Kind::HosterReveal,
        2,
        &hosters,
        &BTreeMap::new(),
    )
    .await;
    assert!(matches!(&reveals[0].1, Ok(Payload::HosterReveal(r)) if r.output == honest_out));
    assert!(
        matches!(
            &reveals[1].1,
            Err(RevealFailure::Commit(tally_protocol::RevealError::Mismatch))
        ),
        "{:?}",
        reveals[1].1
    );
    // a snapshot is taken once: a later attempt changes nothing
    assert_eq!(
        snapshot_commits(consumer, &mut book, Kind::HosterCommit, 2, &hosters).await,
        None
    );
}

/// The review finding over real sockets (issue 9, item 13): a registered hoster floods every
/// node with long-lived hoster commits, one per epoch (one slot per epoch) across many
/// epochs, into stores whose record cap is smaller than the flood. Each node keeps only the
/// flooder's quota of them (its newest two), and a validator's commit afterwards still
/// stores on every node. Without the quotas the flood fills every store and the validator's
/// own publish is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_hoster_cannot_crowd_out_a_validators_commit() {
    const FLOOD: u64 = 24;
    let limits = StoreLimits {
        max_records: 16,
        ..StoreLimits::default()
    };
    let net = start_with(220, limits).await;
    let adv = &net.adv_key;
    let out = Tensor::f32(&[1], &[1.0]).unwrap();
    let long = (system_clock())() + 3 * 86_400_000 - 60_000; // the longest expiry allowed
    let mut flood = Vec::new();
    for e in 2..2 + FLOOD {
        net.set_block(e * 100 + 20); // epoch e's hoster-commit window
        let r = signed(
            Kind::HosterCommit,
            e,
            adv,
            commit_payload(&net.adv_key, e, [e as u8; 32], &out),
            long,
        );
        net.adversary.put_raw(r.key(), r.to_bytes()).await.unwrap();
        // every node took it, or (without quotas) its store is full
        wait_for(
            async || {
                for n in &net.nodes {
                    let full = n.stored().await.unwrap().0 >= limits.max_records;
                    if !full && n.held(r.key()).await.unwrap().is_none() {
                        return false;
                    }
                }
                true
            },
            &format!("flood record of epoch {e}"),
        )
        .await;
        flood.push(r.key());
    }
    // the validator-commit window of the last epoch: validator 0 commits
    let last = 1 + FLOOD;
    net.set_block(last * 100 + 70);
    let key = net.nodes[0]
        .publish(Kind::ValidatorCommit, last, Commit([9; 32]).encode(), TTL)
        .await
        .expect("a validator's commit in a flooded store");
    wait_for(
        async || net.holders(key).await == HONEST,
        "the validator's commit on every node",
    )
    .await;
    // each node keeps the flooder's newest two
    for (i, n) in net.nodes.iter().enumerate() {
        let mut held = Vec::new();
        for (e, k) in (2..).zip(&flood) {
            if n.held(*k).await.unwrap().is_some() {
                held.push(e);
            }
        }
        assert_eq!(
            held,
            vec![last - 1, last],
            "node {i} holds the flooder's records of epochs {held:?}"
        );
        assert!(n.store_evictions() >= FLOOD - 2, "node {i}");
    }
}

/// A hoster restarted between its commit and its reveal publishes its commit again (the
/// same payload and the same persisted expiry, from a new process with a new peer id): peers
/// take it as a replica, not as a second record of a write-once slot. A republish that
/// re-signs with a fresh expiry would be a conflict: refused and kept as evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hoster_republishes_its_commit_as_a_replica() {
    let net = start(220).await; // epoch 2 hoster-commit window
    let out = Tensor::f32(&[2], &[1.0, 2.0]).unwrap();
    let payload = commit_payload(&net.keys[6], 2, [6; 32], &out);
    let expires = (system_clock())() + 600_000;
    let slot = record_key(NET, Kind::HosterCommit, 2, &net.keys[6].hotkey());
    net.nodes[6]
        .publish_until(Kind::HosterCommit, 2, payload.clone(), expires)
        .await
        .unwrap();
    wait_for(
        async || net.holders(slot).await >= HONEST - 1,
        "the commit to replicate",
    )
    .await;
    let conflicts = net.count(Reject::Conflict);
    // "restart": a new node with the same hotkey, which kept nothing in memory
    let restart = || async {
        let boot = net.nodes[0].listen_addrs().await.unwrap()[0].clone();
        let d = Dht::start(
            DhtConfig {
                bootstrap: vec![boot],
                ..DhtConfig::default()
            },
            libp2p::identity::Keypair::generate_ed25519(),
            key(6),
            view_at(&net.metagraph, 221),
            system_clock(),
        )
        .await
        .unwrap();
        for n in &net.nodes {
            let _ = d.dial(n.listen_addrs().await.unwrap()[0].clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        d
    };
    let restarted = restart().await;
    restarted
        .publish_until(Kind::HosterCommit, 2, payload.clone(), expires)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        net.count(Reject::Conflict),
        conflicts,
        "a replica, not a conflict"
    );
    assert!(net.nodes.iter().all(|n| n.evidence().is_empty()));
    // the same path with a fresh expiry (what a restart without the persisted expiry would
    // send) is a conflict
    let again = restart().await;
    again
        .publish_until(Kind::HosterCommit, 2, payload, expires + 1)
        .await
        .ok();
    wait_for(
        async || net.count(Reject::Conflict) > conflicts,
        "the re-signed record to be refused",
    )
    .await;
}
