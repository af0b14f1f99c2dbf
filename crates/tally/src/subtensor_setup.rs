//! A devnet's subnet on a running Subtensor development chain (`tally devnet --chain ws://…
//! --sudo-seed //Alice`), set up the way a subnet owner and its operators would, with the sudo
//! key standing in for the governance a test cannot wait for.
//!
//! [`create_subnet`]: with the sudo key as the owner's coldkey it lowers the network rate limit,
//! registers a new subnet with the owner's hotkey (which becomes uid 0), sets a short tempo and
//! the limits a test needs (no weights rate limit, commit-reveal of weights off, registrations
//! and permits for every validator), waits out `DurationOfStartCall` and starts the subnet,
//! registers every validator and miner hotkey (`burned_register`, paid by the coldkey), stakes
//! to the validators, and waits for the chain's epoch so their validator permits are set. The
//! validators publish their own axons when they start (`serve_axon`). Every step is one signed
//! extrinsic (sudo and batched calls), checked for its events.

use tally_chain::subtensor::{runtime_call, SubtensorChain, Value};
use tally_chain::Chain;
use tally_core::{Hotkey, Keypair};

/// One TAO in rao.
pub const TAO: u64 = 1_000_000_000;

/// What to register.
pub struct Plan<'a> {
    /// The owner's hotkey (uid 0 of the new subnet).
    pub owner: &'a Hotkey,
    /// Validator hotkeys and the TAO (in rao) staked to each.
    pub validators: &'a [(Hotkey, u64)],
    /// Miner hotkeys.
    pub miners: &'a [Hotkey],
    /// The subnet's tempo: a Tally run is one epoch of the chain (`tempo + 1` blocks up to
    /// spec 422, `tempo` from spec 423).
    pub tempo: u16,
}

fn u(v: u64) -> Value {
    Value::u128(v as u128)
}

fn account(k: &Hotkey) -> Value {
    Value::from_bytes(k.0)
}

fn admin(call: &str, args: Vec<Value>) -> Value {
    runtime_call("AdminUtils", call, args)
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Waits until the head reaches `block`, asking the development node for blocks (chopsticks
/// builds them on request; a node that does not offer `dev_newBlock` is waited for).
fn reach(chain: &SubtensorChain, block: u64) -> Result<u64, String> {
    let t = std::time::Instant::now();
    loop {
        let head = chain.head().map_err(|e| err("head", e))?.number;
        if head >= block {
            return Ok(head);
        }
        if t.elapsed() > std::time::Duration::from_secs(600) {
            return Err(format!(
                "the chain did not reach block {block} in 10 minutes"
            ));
        }
        if chain.dev_new_blocks((block - head).min(3) as u32).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// Creates and starts a subnet as `plan` says, signing as `sudo` (the chain's sudo key, also the
/// owner's and every neuron's coldkey); returns its netuid once every validator holds a permit.
pub fn create_subnet(
    chain: &SubtensorChain,
    sudo: &Keypair,
    plan: &Plan<'_>,
    progress: bool,
) -> Result<u16, String> {
    let say = |m: String| {
        if progress {
            eprintln!("subtensor: {m}");
        }
    };
    let (name, spec) = chain
        .runtime_version()
        .map_err(|e| err(&format!("cannot reach {}", chain.url()), e))?;
    say(format!("{} runtime {name} spec {spec}", chain.url()));
    chain
        .sudo_batch(
            sudo,
            vec![
                admin("sudo_set_network_rate_limit", vec![u(0)]),
                admin("sudo_set_tx_rate_limit", vec![u(0)]),
                admin("sudo_set_stake_threshold", vec![u(0)]),
            ],
        )
        .map_err(|e| err("sudo (is --sudo-seed the chain's sudo key?)", e))?;
    let inc = chain
        .submit_dynamic(
            sudo,
            "SubtensorModule",
            "register_network",
            vec![account(plan.owner)],
        )
        .map_err(|e| err("register_network", e))?;
    let netuid = inc
        .event("SubtensorModule", "NetworkAdded")
        .and_then(|f| Some(u16::from_le_bytes([*f.first()?, *f.get(1)?])))
        .ok_or("register_network: no NetworkAdded event")?;
    say(format!("subnet {netuid} registered in block {}", inc.block));
    let n = plan.validators.len() as u64;
    chain
        .sudo_batch(
            sudo,
            vec![
                admin(
                    "sudo_set_tempo",
                    vec![u(netuid as u64), u(plan.tempo as u64)],
                ),
                admin(
                    "sudo_set_weights_set_rate_limit",
                    vec![u(netuid as u64), u(0)],
                ),
                admin(
                    "sudo_set_commit_reveal_weights_enabled",
                    vec![u(netuid as u64), Value::bool(false)],
                ),
                admin(
                    "sudo_set_target_registrations_per_interval",
                    vec![u(netuid as u64), u(1024)],
                ),
                admin(
                    "sudo_set_max_registrations_per_block",
                    vec![u(netuid as u64), u(1024)],
                ),
                admin("sudo_set_min_allowed_weights", vec![u(netuid as u64), u(1)]),
                admin(
                    "sudo_set_max_weight_limit",
                    vec![u(netuid as u64), u(u16::MAX as u64)],
                ),
                admin("sudo_set_serving_rate_limit", vec![u(netuid as u64), u(0)]),
                // the owner's uid 0 and the validators: miners never take a permit from them
                admin(
                    "sudo_set_max_allowed_validators",
                    vec![u(netuid as u64), u(n + 1)],
                ),
            ],
        )
        .map_err(|e| err("subnet hyperparameters", e))?;
    say(format!(
        "tempo {}, no weights rate limit, commit-reveal off, {} permits",
        plan.tempo,
        n + 1
    ));
    // start_call waits DurationOfStartCall (10 blocks on development runtimes) after registration
    let registered = chain.registered_at(netuid).map_err(|e| err("read", e))?;
    reach(chain, registered.max(inc.block) + 10)?;
    chain
        .submit_dynamic(
            sudo,
            "SubtensorModule",
            "start_call",
            vec![u(netuid as u64)],
        )
        .map_err(|e| err("start_call", e))?;
    let registrations: Vec<Value> = plan
        .validators
        .iter()
        .map(|v| &v.0)
        .chain(plan.miners)
        .map(|k| {
            runtime_call(
                "SubtensorModule",
                "burned_register",
                vec![u(netuid as u64), account(k)],
            )
        })
        .collect();
    let count = registrations.len();
    chain
        .batch(sudo, registrations)
        .map_err(|e| err("burned_register", e))?;
    let stakes: Vec<Value> = plan
        .validators
        .iter()
        .map(|(k, rao)| {
            runtime_call(
                "SubtensorModule",
                "add_stake",
                vec![account(k), u(netuid as u64), u(*rao)],
            )
        })
        .collect();
    let inc = chain.batch(sudo, stakes).map_err(|e| err("add_stake", e))?;
    say(format!(
        "started; {count} hotkeys registered, {n} validators staked (block {})",
        inc.block
    ));
    // permits are handed out by the chain's next epoch, whichever rule schedules it: watch for
    // them block by block, within two epochs
    let limit = inc.block + 2 * (plan.tempo as u64 + 1) + 2;
    let mut head = inc.block;
    loop {
        let mg = chain.metagraph(netuid).map_err(|e| err("metagraph", e))?;
        let without: Vec<String> = plan
            .validators
            .iter()
            .filter(|(k, _)| {
                !mg.neurons
                    .iter()
                    .any(|m| m.hotkey == *k && m.validator_permit && m.stake > 0)
            })
            .map(|(k, _)| k.to_ss58())
            .collect();
        if without.is_empty() {
            break;
        }
        if head >= limit {
            return Err(format!(
                "by block {head}, two epochs after staking, validators without a permit: {}",
                without.join(", ")
            ));
        }
        head = reach(chain, head + 1)?;
    }
    // and Tally's first run starts in the block after that epoch
    let head = reach(chain, head + 1)?;
    say(format!("every validator holds a permit (block {head})"));
    Ok(netuid)
}
