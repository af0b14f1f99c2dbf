//! The chain as the validator machine sees it: [`read_snapshot`] answers the machine's
//! `ReadChain` effect (parameters, the metagraph as of the epoch's first block, and challenge
//! seeds) from any [`Chain`], so the tokio driver and the simulator read the chain the same way.

use crate::Chain;
use tally_protocol::view::challenge_seed;
use tally_protocol::EpochClock;
use tally_validator::{ChainSnapshot, Member, NetParams};

/// Converts the chain's metagraph to the machine's members.
pub fn members_of(mg: &crate::Metagraph) -> Vec<Member> {
    mg.neurons
        .iter()
        .map(|n| Member {
            uid: n.uid,
            hotkey: n.hotkey,
            stake: n.stake,
            validator_permit: n.validator_permit,
            axon: n.axon.clone(),
        })
        .collect()
}

/// The error [`read_snapshot`] gives before the subnet's first epoch has started.
pub const NOT_STARTED: &str = "the chain has not reached epoch 0";

/// Reads what the machine's `ReadChain` asks for: parameters, metagraph and the seeds of the
/// epoch of `at_block` and the one before.
pub fn read_snapshot(
    chain: &dyn Chain,
    netuid: u16,
    at_block: u64,
) -> Result<ChainSnapshot, String> {
    let p = chain.params(netuid).map_err(|e| e.to_string())?;
    let clock = EpochClock {
        length: p.epoch_length,
        offset: p.epoch_offset,
    };
    let chain_head = chain.head().map_err(|e| e.to_string())?.number;
    let head = chain_head.max(at_block);
    let epoch = clock
        .epoch_of(head)
        .ok_or_else(|| NOT_STARTED.to_string())?;
    // the run of this epoch reads the metagraph as of its first block, whenever it is asked
    let at = tally_protocol::rules::metagraph_block(&clock, epoch).min(chain_head);
    let mg = chain.metagraph_at(netuid, at).map_err(|e| e.to_string())?;
    let mut seeds = Vec::new();
    for e in [epoch.saturating_sub(1), epoch] {
        if let Some(b) = chain.block(clock.start_of(e)).map_err(|e| e.to_string())? {
            seeds.push((e, challenge_seed(&b.hash, netuid, e)));
        }
    }
    Ok(ChainSnapshot {
        epoch,
        params: NetParams {
            epoch_length: p.epoch_length,
            epoch_offset: p.epoch_offset,
            block_ms: p.block_ms,
            min_validator_stake: p.min_validator_stake,
            burn_uid: p.burn_uid,
        },
        members: members_of(&mg),
        seeds,
    })
}
