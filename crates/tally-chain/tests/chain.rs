//! The local chain's rules and durability, and the same chain over HTTP on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;
use tally_chain::extrinsic::{self, Call};
use tally_chain::{
    submit_call, Chain, ChainError, Genesis, HttpChain, LocalChain, NeuronInfo, SubnetParams,
};
use tally_core::Keypair;

const NET: u16 = 1;

fn key(i: u8) -> Keypair {
    Keypair::from_seed(&[i; 32])
}

fn params() -> SubnetParams {
    SubnetParams {
        netuid: NET,
        epoch_length: 10,
        epoch_offset: 0,
        block_ms: 100,
        weights_rate_limit: 3,
        commitment_max_bytes: 64,
        commitment_bytes_per_epoch: 100,
        max_uids: 5,
        min_validator_stake: 1_000,
        burn_uid: 0,
    }
}

fn genesis() -> Genesis {
    let n = |i: u8, stake: u64, permit: bool| {
        (
            NET,
            NeuronInfo {
                uid: 0,
                hotkey: key(i).hotkey(),
                stake,
                validator_permit: permit,
                axon: format!("127.0.0.1:{}", 9000 + i as u16),
                peer: String::new(),
                registered_at: 0,
            },
        )
    };
    Genesis {
        timestamp_ms: 1_000,
        subnets: vec![params()],
        neurons: vec![
            n(1, 60_000, true),
            n(2, 40_000, true),
            n(3, 0, false),
            n(4, 0, false),
        ],
    }
}

fn open(dir: &tempfile::TempDir) -> LocalChain {
    LocalChain::open(&dir.path().join("chain.redb"), &genesis()).unwrap()
}

#[test]
fn genesis_blocks_and_durability() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    let mg = c.metagraph(NET).unwrap();
    assert_eq!(
        mg.neurons.iter().map(|n| n.uid).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(c.params(NET).unwrap(), params());
    assert_eq!(c.params(9).unwrap_err(), ChainError::UnknownSubnet(9));
    let b0 = c.head().unwrap();
    let b1 = c.produce_block(2_000).unwrap();
    let b2 = c.produce_block(1_500).unwrap(); // time never runs backwards
    assert_eq!((b1.number, b2.number), (1, 2));
    assert_eq!(b2.timestamp_ms, 2_000);
    assert_ne!(b1.hash, b0.hash);
    submit_call(&c, &key(1), NET, extrinsic::commit(vec![1, 2, 3]).unwrap()).unwrap();
    drop(c);
    // reopened: the same head, blocks and commitments; genesis is not applied twice
    let c = open(&dir);
    assert_eq!(c.head().unwrap(), b2);
    assert_eq!(c.block(1).unwrap(), Some(b1));
    assert_eq!(c.block(9).unwrap(), None);
    assert_eq!(c.metagraph(NET).unwrap().neurons.len(), 4);
    assert_eq!(
        c.commitments(NET, &key(1).hotkey()).unwrap()[0].data,
        vec![1, 2, 3]
    );
}

#[test]
fn signatures_and_nonces() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    let ext = extrinsic::sign(&key(1), NET, 0, extrinsic::commit(vec![7]).unwrap()).unwrap();
    assert_eq!(c.submit(&ext).unwrap(), 0);
    // the same bytes again: replay refused
    assert_eq!(
        c.submit(&ext).unwrap_err(),
        ChainError::BadNonce {
            expected: 1,
            got: 0
        }
    );
    // a flipped signature byte
    let mut bad = extrinsic::sign(&key(1), NET, 1, extrinsic::commit(vec![8]).unwrap()).unwrap();
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert_eq!(c.submit(&bad).unwrap_err(), ChainError::BadSignature);
    assert!(matches!(
        c.submit(&[1, 2, 3]).unwrap_err(),
        ChainError::Malformed(_)
    ));
    assert_eq!(c.nonce(&key(1).hotkey()).unwrap(), 1);
}

#[test]
fn commitment_limits() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    let k = key(2);
    let err = submit_call(&c, &k, NET, extrinsic::commit(vec![0; 65]).unwrap()).unwrap_err();
    assert_eq!(err, ChainError::CommitmentTooLarge { len: 65, max: 64 });
    submit_call(&c, &k, NET, extrinsic::commit(vec![0; 60]).unwrap()).unwrap();
    let err = submit_call(&c, &k, NET, extrinsic::commit(vec![0; 41]).unwrap()).unwrap_err();
    assert_eq!(err, ChainError::CommitmentSpace { used: 60, max: 100 });
    submit_call(&c, &k, NET, extrinsic::commit(vec![0; 40]).unwrap())
        .unwrap_or_else(|e| panic!("{e}"));
    // next epoch (block 10): space again; history keeps the blocks
    for t in 0..10 {
        c.produce_block(2_000 + t).unwrap();
    }
    submit_call(&c, &k, NET, extrinsic::commit(vec![5; 50]).unwrap()).unwrap();
    let h = c.commitments(NET, &k.hotkey()).unwrap();
    assert_eq!(h.len(), 2); // two commits in block 0 share a slot: the later one wins
    assert_eq!((h[0].block, h[0].data.len()), (0, 40));
    assert_eq!((h[1].block, h[1].data.len()), (10, 50));
    // an unregistered hotkey cannot commit
    let err = submit_call(&c, &key(9), NET, extrinsic::commit(vec![1]).unwrap()).unwrap_err();
    assert!(matches!(err, ChainError::NotRegistered(_)));
}

#[test]
fn weights_rules_and_winner() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    let w = |v: Vec<(u16, u16)>| extrinsic::set_weights(v).unwrap();
    // miners cannot set weights, unknown uids are refused
    assert!(matches!(
        submit_call(&c, &key(3), NET, w(vec![(2, 1)])).unwrap_err(),
        ChainError::NotValidator(_)
    ));
    assert_eq!(
        submit_call(&c, &key(1), NET, w(vec![(9, 1)])).unwrap_err(),
        ChainError::UnknownUid(9)
    );
    assert_eq!(c.winner(NET).unwrap(), None);
    // validator 1 (60k) picks uid 2, validator 2 (40k) uid 3: uid 2 wins
    submit_call(&c, &key(1), NET, w(vec![(2, u16::MAX)])).unwrap();
    submit_call(&c, &key(2), NET, w(vec![(3, u16::MAX)])).unwrap();
    assert_eq!(c.winner(NET).unwrap(), Some(2));
    // rate limit: 3 blocks
    assert_eq!(
        submit_call(&c, &key(1), NET, w(vec![(3, u16::MAX)])).unwrap_err(),
        ChainError::RateLimited { next: 3 }
    );
    for t in 0..3 {
        c.produce_block(5_000 + t).unwrap();
    }
    submit_call(&c, &key(1), NET, w(vec![(3, u16::MAX)])).unwrap();
    assert_eq!(c.winner(NET).unwrap(), Some(3));
    let hist = c.weights_history(NET, &key(1).hotkey()).unwrap();
    assert_eq!(hist.iter().map(|h| h.block).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(c.weights(NET).unwrap().len(), 2);
    // as of a block: only weights included strictly before it count
    assert_eq!(c.winner_at(NET, 0).unwrap(), None);
    assert_eq!(c.winner_at(NET, 1).unwrap(), Some(2));
    assert_eq!(c.winner_at(NET, 3).unwrap(), Some(2));
    assert!(
        c.winner_at(NET, 4).is_err(),
        "a block past the head is refused"
    );
    c.produce_block(9_000).unwrap();
    assert_eq!(c.winner_at(NET, 4).unwrap(), Some(3));
}

#[test]
fn metagraph_as_of_a_block_leaves_out_later_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    c.produce_block(1_000).unwrap();
    c.produce_block(2_000).unwrap();
    submit_call(
        &c,
        &key(5),
        NET,
        extrinsic::register("127.0.0.1:1", "").unwrap(),
    )
    .unwrap();
    let now = c.metagraph(NET).unwrap();
    let before = c.metagraph_at(NET, 1).unwrap();
    assert_eq!(now.neurons.len(), before.neurons.len() + 1);
    assert_eq!(before.block, 1);
    assert!(before.by_hotkey(&key(5).hotkey()).is_none());
    assert_eq!(
        c.metagraph_at(NET, 2)
            .unwrap()
            .by_hotkey(&key(5).hotkey())
            .map(|n| n.registered_at),
        Some(2)
    );
}

#[test]
fn registration() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    submit_call(
        &c,
        &key(5),
        NET,
        extrinsic::register("127.0.0.1:1", "").unwrap(),
    )
    .unwrap();
    let mg = c.metagraph(NET).unwrap();
    let n = mg.by_hotkey(&key(5).hotkey()).unwrap();
    assert_eq!((n.uid, n.stake, n.validator_permit), (4, 0, false));
    assert!(matches!(
        submit_call(&c, &key(5), NET, extrinsic::register("", "").unwrap()).unwrap_err(),
        ChainError::AlreadyRegistered(_)
    ));
    assert_eq!(
        submit_call(&c, &key(6), NET, extrinsic::register("", "").unwrap()).unwrap_err(),
        ChainError::SubnetFull(5)
    );
    submit_call(
        &c,
        &key(5),
        NET,
        extrinsic::serve("127.0.0.1:2", "/ip4/127.0.0.1/tcp/5").unwrap(),
    )
    .unwrap();
    assert_eq!(
        c.metagraph(NET).unwrap().by_uid(4).unwrap().axon,
        "127.0.0.1:2"
    );
}

/// The bytes a signer would send if it bypassed `extrinsic::sign` (which refuses a bad axon).
fn raw_serve(k: &Keypair, nonce: u64, axon: &str) -> Vec<u8> {
    use parity_scale_codec::Encode;
    let body = extrinsic::ExtrinsicBody {
        netuid: NET,
        signer: k.hotkey(),
        nonce,
        call: Call::Serve {
            axon: tally_core::BoundedBytes::new(axon.as_bytes().to_vec()).unwrap(),
            peer: tally_core::BoundedBytes::new(Vec::new()).unwrap(),
        },
    }
    .encode();
    let sig = k.sign(&tally_core::codec::signing_payload(
        b"tally/extrinsic/v1",
        &body,
    ));
    [body, sig.0.to_vec()].concat()
}

#[test]
fn axons_other_than_ip_and_port_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir);
    let bad = [
        "127.0.0.1:9003/v1/weights?run=1",
        "evil.example:80",
        "user@127.0.0.1:9003",
        "127.0.0.1:9003@evil.example",
        "http://127.0.0.1:9003",
        "127.0.0.1",
        "0.0.0.0:9003",
    ];
    for axon in bad {
        // the builders refuse it
        assert!(
            matches!(extrinsic::serve(axon, ""), Err(ChainError::Malformed(_))),
            "{axon}"
        );
        assert!(matches!(
            extrinsic::register(axon, ""),
            Err(ChainError::Malformed(_))
        ));
        // and so does the chain, for bytes signed without them
        let nonce = c.nonce(&key(3).hotkey()).unwrap();
        let err = c.submit(&raw_serve(&key(3), nonce, axon)).unwrap_err();
        assert!(
            matches!(&err, ChainError::Malformed(m) if m.contains("axon")),
            "{axon}: {err}"
        );
    }
    assert_eq!(
        c.metagraph(NET).unwrap().by_uid(2).unwrap().axon,
        "127.0.0.1:9003"
    );
    // a valid axon, and an empty one (not serving), pass the same path
    for axon in ["127.0.0.1:9555", "[::1]:9555", ""] {
        let nonce = c.nonce(&key(3).hotkey()).unwrap();
        c.submit(&raw_serve(&key(3), nonce, axon)).unwrap();
        assert_eq!(c.metagraph(NET).unwrap().by_uid(2).unwrap().axon, axon);
    }
}

#[test]
fn corrupt_file_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("chain.redb");
    std::fs::write(&p, b"this is not a redb file, it is junk junk junk junk").unwrap();
    let err = LocalChain::open(&p, &genesis())
        .err()
        .expect("a corrupt file must not open");
    assert!(err.to_string().contains("move it away"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_chain_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<LocalChain> = Arc::new(open(&dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared: Arc<dyn Chain> = local.clone();
    let server = tokio::spawn(tally_chain::server::serve(shared, listener));
    let local2 = local.clone();
    tokio::task::spawn_blocking(move || {
        let remote = HttpChain::new(&format!("http://{addr}"), Duration::from_secs(5));
        assert_eq!(remote.head().unwrap(), local2.head().unwrap());
        assert_eq!(remote.metagraph(NET).unwrap(), local2.metagraph(NET).unwrap());
        assert_eq!(remote.metagraph_at(NET, 0).unwrap(), local2.metagraph_at(NET, 0).unwrap());
        assert_eq!(remote.winner_at(NET, 0).unwrap(), local2.winner_at(NET, 0).unwrap());
        assert_eq!(remote.params(NET).unwrap(), params());
        submit_call(&remote, &key(1), NET, extrinsic::commit(vec![4; 8]).unwrap()).unwrap();
        assert_eq!(remote.commitments(NET, &key(1).hotkey()).unwrap(), local2.commitments(NET, &key(1).hotkey()).unwrap());
        // errors come back as the chain raised them
        let replay = extrinsic::sign(&key(1), NET, 0, Call::Commit { data: tally_core::BoundedBytes::new(vec![1]).unwrap() }).unwrap();
        assert_eq!(remote.submit(&replay).unwrap_err(), ChainError::BadNonce { expected: 1, got: 0 });
        assert_eq!(remote.params(7).unwrap_err(), ChainError::UnknownSubnet(7));
        // a malformed address in the path is a 400 naming the problem
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut r = agent.get(&format!("http://{addr}/chain/v1/subnets/1/commitments/notanaddress")).call().unwrap();
        assert_eq!(r.status().as_u16(), 400);
        assert!(r.body_mut().read_to_string().unwrap().contains("malformed"));
        // an oversized body is refused before the chain sees it
        assert!(remote.submit(&vec![0u8; 100 * 1024]).is_err());
        assert_eq!(local2.nonce(&key(1).hotkey()).unwrap(), 1);
        // a dead address is a transport error that names it
        let dead = HttpChain::new("http://127.0.0.1:1", Duration::from_millis(500));
        assert!(matches!(dead.head().unwrap_err(), ChainError::Transport(m) if m.contains("127.0.0.1:1")));
    })
    .await
    .unwrap();
    // a producer makes blocks on its own and stops when dropped
    let before = local.head().unwrap().number;
    let producer = local.spawn_producer(20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(producer);
    let after = local.head().unwrap().number;
    assert!(after >= before + 3, "{before} -> {after}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(local.head().unwrap().number, after);
    server.abort();
}
