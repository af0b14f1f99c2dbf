//! The Subtensor adapter against a real Subtensor runtime (opt-in: set `TALLY_SUBTENSOR_URL`,
//! e.g. `ws://127.0.0.1:9944` for a chain started with `../shared/subtensor-local/start.sh`;
//! without it the test says it was skipped and asserts nothing).
//!
//! As `//Alice` (the dev chain's sudo and a funded account) it creates a subnet with a short
//! tempo, registers and stakes a validator hotkey, then, signed by that hotkey through
//! [`Chain::execute`] exactly as a validator does: serves its axon, posts a score commitment and
//! sets weights. Everything is read back through the same adapter: the metagraph at a block,
//! the commitment with its block (and `commitments_in` over the commit window), the weights and
//! the incumbent, the epoch clock against the chain's own epoch blocks.
#![cfg(feature = "subtensor")]

use std::time::Duration;
use subxt::dynamic::Value;
use tally_chain::extrinsic;
use tally_chain::subtensor::{subtensor_runs_epoch, SubtensorChain};
use tally_chain::Chain;
use tally_core::Keypair;

/// `//Alice`'s secret seed (Substrate's well-known development key).
const ALICE: &str = "e5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a";
/// One TAO in rao.
const TAO: u128 = 1_000_000_000;

fn url() -> Option<String> {
    match std::env::var("TALLY_SUBTENSOR_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "SKIPPED: set TALLY_SUBTENSOR_URL=ws://127.0.0.1:9944 (a chain from \
                 ../shared/subtensor-local/start.sh) to run the live Subtensor test"
            );
            None
        }
    }
}

fn u(x: u128) -> Value {
    Value::u128(x)
}

fn account(k: &Keypair) -> Value {
    Value::from_bytes(k.hotkey().0)
}

#[test]
fn a_validator_commits_serves_and_sets_weights_on_a_real_subtensor() {
    let Some(url) = url() else { return };
    let chain = SubtensorChain::new(&url, Duration::from_secs(60), 0).unwrap();
    let alice = Keypair::from_seed_hex(ALICE).unwrap();
    assert_eq!(
        hex::encode(alice.hotkey().0),
        "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
    );
    let (name, spec) = chain.runtime_version().unwrap();
    eprintln!(
        "{url}: {name} spec {spec}, head {}",
        chain.head().unwrap().number
    );

    // a subnet of our own, with a fresh owner hotkey
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).unwrap();
    let owner_hot = Keypair::from_seed(&seed);
    seed[0] ^= 1;
    let validator = Keypair::from_seed(&seed);
    chain
        .sudo(
            &alice,
            "AdminUtils",
            "sudo_set_network_rate_limit",
            vec![u(0)],
        )
        .unwrap();
    let added = chain
        .submit_dynamic(
            &alice,
            "SubtensorModule",
            "register_network",
            vec![account(&owner_hot)],
        )
        .unwrap();
    let f = added
        .event("SubtensorModule", "NetworkAdded")
        .expect("NetworkAdded");
    let netuid = u16::from_le_bytes([f[0], f[1]]);
    eprintln!("subnet {netuid} added in block {}", added.block);
    chain.dev_new_blocks(11).unwrap();
    chain
        .submit_dynamic(
            &alice,
            "SubtensorModule",
            "start_call",
            vec![u(netuid as u128)],
        )
        .unwrap();
    let n = netuid as u128;
    for (call, args) in [
        ("sudo_set_tempo", vec![u(n), u(10)]),
        ("sudo_set_weights_set_rate_limit", vec![u(n), u(0)]),
        (
            "sudo_set_commit_reveal_weights_enabled",
            vec![u(n), Value::bool(false)],
        ),
        (
            "sudo_set_target_registrations_per_interval",
            vec![u(n), u(100)],
        ),
        ("sudo_set_max_registrations_per_block", vec![u(n), u(100)]),
        ("sudo_set_stake_threshold", vec![u(0)]),
    ] {
        chain.sudo(&alice, "AdminUtils", call, args).unwrap();
    }
    let p = chain.params(netuid).unwrap();
    assert_eq!(p.epoch_length, 11, "tempo 10");
    assert_eq!(p.weights_rate_limit, 0);

    // the validator: registered by its coldkey (Alice), staked, then acting on its own
    chain
        .submit_dynamic(
            &alice,
            "SubtensorModule",
            "burned_register",
            vec![u(n), account(&validator)],
        )
        .unwrap();
    chain
        .submit_dynamic(
            &alice,
            "SubtensorModule",
            "add_stake",
            vec![account(&validator), u(n), u(100 * TAO)],
        )
        .unwrap();
    let served = chain
        .execute(
            &validator,
            netuid,
            extrinsic::serve("127.0.0.2:8091", "").unwrap(),
        )
        .unwrap();
    let data: Vec<u8> = (0..40u8).collect();
    let committed = chain
        .execute(&validator, netuid, extrinsic::commit(data.clone()).unwrap())
        .unwrap();
    eprintln!("axon served in block {served}, commitment in block {committed}");

    // the commitment, with the block it was made in, alone and within a window
    let c = chain.commitments(netuid, &validator.hotkey()).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].block, &c[0].data), (committed, &data));
    let window = chain
        .commitments_in(netuid, committed, committed + 1)
        .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].0, validator.hotkey());
    assert!(chain
        .commitments_in(netuid, committed + 1, committed + 5)
        .unwrap()
        .is_empty());

    // an epoch later the validator holds a permit; the metagraph as of a block says so
    chain.dev_new_blocks(12).unwrap();
    let mg = chain.metagraph(netuid).unwrap();
    let me = mg.by_hotkey(&validator.hotkey()).expect("registered");
    assert_eq!(me.axon, "127.0.0.2:8091");
    assert!(me.stake > 0, "{me:?}");
    assert!(me.validator_permit, "{me:?}");
    let before = chain.metagraph_at(netuid, added.block).unwrap();
    assert!(before.by_hotkey(&validator.hotkey()).is_none());

    // weights: max-upscaled on the way, read back, and the incumbent from them
    let owner_uid = mg.by_hotkey(&owner_hot.hotkey()).expect("owner uid").uid;
    let set = chain
        .execute(
            &validator,
            netuid,
            extrinsic::set_weights(vec![(owner_uid, 40_000), (me.uid, 10_000)]).unwrap(),
        )
        .unwrap();
    let w = chain.weights(netuid).unwrap();
    let mine = w
        .iter()
        .find(|w| w.validator == validator.hotkey())
        .expect("weights set");
    assert_eq!(mine.block, set);
    assert!(mine.weights.contains(&(owner_uid, 65_535)), "{mine:?}");
    assert_eq!(chain.winner_at(netuid, set + 1).unwrap(), Some(owner_uid));
    assert_eq!(chain.winner_at(netuid, set).unwrap(), None);

    // a dispatch error comes back by name: weights naming a uid that does not exist
    let err = chain
        .execute(
            &validator,
            netuid,
            extrinsic::set_weights(vec![(4000, 1)]).unwrap(),
        )
        .unwrap_err();
    eprintln!("refused as expected: {err}");
    assert!(err.to_string().contains("SubtensorModule::"), "{err}");

    // with commit-reveal of weights on, the same call commits now and reveals in the chain's
    // window: the weights appear once revealed
    chain
        .sudo(
            &alice,
            "AdminUtils",
            "sudo_set_commit_reveal_weights_enabled",
            vec![u(n), Value::bool(true)],
        )
        .unwrap();
    assert!(chain.commit_reveal_enabled(netuid).unwrap());
    let committed_w = chain
        .execute(
            &validator,
            netuid,
            extrinsic::set_weights(vec![(me.uid, 50_000)]).unwrap(),
        )
        .unwrap();
    let pending = chain.weight_commits(netuid, &validator.hotkey()).unwrap();
    let now = chain.weights(netuid).unwrap();
    eprintln!("weights committed in block {committed_w}: pending {pending:?}, weights now {now:?}");
    let t = std::time::Instant::now();
    loop {
        let w = chain.weights(netuid).unwrap();
        let mine = w
            .iter()
            .find(|w| w.validator == validator.hotkey())
            .unwrap();
        if mine.weights == vec![(me.uid, 65_535)] {
            eprintln!("weights revealed by block {}", mine.block);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(240),
            "the reveal never landed: {mine:?}"
        );
        chain.dev_new_blocks(2).unwrap();
    }

    // the epoch clock: a Tally epoch starts right after a block in which the chain ran one
    let head = chain.head().unwrap().number;
    let starts: Vec<u64> = (head.saturating_sub(30)..head)
        .filter(|b| {
            (b + 1) >= p.epoch_offset && (b + 1 - p.epoch_offset).is_multiple_of(p.epoch_length)
        })
        .collect();
    assert!(!starts.is_empty());
    for s in starts {
        assert!(subtensor_runs_epoch(netuid, 10, s));
    }
}
