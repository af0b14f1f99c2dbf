//! The chain as Tally sees it.
//!
//! * [`Chain`]: the trait every chain adapter implements: block height and hashes (the epoch
//!   clock and its randomness), subnet parameters, metagraph snapshots (uids, hotkeys, stake,
//!   validator permits, addresses), commitments with the block they were made at and their
//!   history, weights set and read, and the last winner.
//! * [`local::LocalChain`]: an embedded chain durable in one redb file, producing blocks on a
//!   configurable block time and mirroring the real chain's limits that matter (commitment size
//!   and space per epoch, a rate limit on setting weights, registration up to a uid cap, signed
//!   extrinsics with nonces).
//! * [`server`]: serves any `Chain` over HTTP (`tally chain serve`), so several processes share
//!   one devnet chain; [`client::HttpChain`] implements `Chain` against it.
//! * [`http_server`]: the hardened HTTP/1.1 accept loop every Tally server runs on (connection
//!   caps overall and per IP, header-read and request timeouts, body limit, back-off on `EMFILE`).
//! * [`snapshot`]: the chain snapshot the validator machine asks for, read from any `Chain`.
//! * `subtensor` (feature `subtensor`): Subtensor, Bittensor's chain, over JSON-RPC with
//!   `subxt`: the same reads at a block, writes as runtime calls signed by the hotkey, and the
//!   epoch clock derived from the subnet's tempo as Subtensor computes its epochs.
//! * [`extrinsic`]: signed calls (register, commit, set weights), SCALE-encoded with the domain
//!   tag `tally/extrinsic/v1` and a per-hotkey nonce against replay.
#![forbid(unsafe_code)]

pub mod client;
pub mod extrinsic;
pub mod http_server;
pub mod local;
pub mod server;
pub mod snapshot;
#[cfg(feature = "subtensor")]
pub mod subtensor;
pub mod types;

pub use client::HttpChain;
pub use extrinsic::{Call, ExtrinsicBody};
pub use local::{Genesis, LocalChain};
pub use types::{
    BlockInfo, ChainError, Commitment, Metagraph, NeuronInfo, SubnetParams, WeightsSet,
};

use tally_core::Hotkey;

/// Public endpoints of the Bittensor networks, by `--network` name: `finney` (mainnet), `test`
/// (testnet), `local` (a node on this machine).
pub fn network_url(name: &str) -> Option<&'static str> {
    match name {
        "finney" => Some("wss://entrypoint-finney.opentensor.ai:443"),
        "test" => Some("wss://test.finney.opentensor.ai:443"),
        "local" => Some("ws://127.0.0.1:9944"),
        _ => None,
    }
}

/// What Tally needs from a chain. Synchronous: the local chain answers from its file, and the
/// HTTP client blocks; async callers use `spawn_blocking`.
pub trait Chain: Send + Sync {
    /// The head block.
    fn head(&self) -> Result<BlockInfo, ChainError>;
    /// Block `number`, if produced.
    fn block(&self, number: u64) -> Result<Option<BlockInfo>, ChainError>;
    /// A subnet's parameters.
    fn params(&self, netuid: u16) -> Result<SubnetParams, ChainError>;
    /// The subnet's metagraph at the head.
    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError>;
    /// The next nonce `hotkey` must use.
    fn nonce(&self, hotkey: &Hotkey) -> Result<u64, ChainError>;
    /// Submits a signed extrinsic (wire bytes); returns the block it was included in.
    fn submit(&self, extrinsic: &[u8]) -> Result<u64, ChainError>;
    /// Signs `call` for `netuid` with `key` and submits it; returns the block it was included
    /// in. The embedded chain takes Tally's own extrinsics ([`submit_call`]); Subtensor maps the
    /// call to its runtime's.
    fn execute(
        &self,
        key: &tally_core::Keypair,
        netuid: u16,
        call: Call,
    ) -> Result<u64, ChainError> {
        let nonce = self.nonce(&key.hotkey())?;
        let ext = extrinsic::sign(key, netuid, nonce, call)?;
        self.submit(&ext)
    }
    /// `hotkey`'s commitments on the subnet, oldest first (the most recent 256).
    fn commitments(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<Commitment>, ChainError>;
    /// Every commitment on the subnet made in blocks `[from, to)`, as `(hotkey, commitment)`
    /// (at most 65,536).
    fn commitments_in(
        &self,
        netuid: u16,
        from: u64,
        to: u64,
    ) -> Result<Vec<(Hotkey, Commitment)>, ChainError>;
    /// The latest weights of every validator that set any.
    fn weights(&self, netuid: u16) -> Result<Vec<WeightsSet>, ChainError>;
    /// `hotkey`'s weights history, oldest first (the most recent 256).
    fn weights_history(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<WeightsSet>, ChainError>;
    /// The uid with the most stake-weighted weight in the latest weights (ties to the smaller
    /// uid), if any weights are set: the incumbent.
    fn winner(&self, netuid: u16) -> Result<Option<u16>, ChainError>;
    /// The subnet's metagraph as of block `block` (at most the head): the neurons registered by
    /// then, with their stakes and permits at that block.
    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError>;
    /// The incumbent as of block `block`: [`Chain::winner`] over the latest weights each
    /// permit holder set in a block strictly before `block`, weighed by stakes at `block`.
    fn winner_at(&self, netuid: u16, block: u64) -> Result<Option<u16>, ChainError>;
}

/// Signs `call` for `netuid` with `key` and submits it ([`Chain::execute`]).
pub fn submit_call(
    chain: &dyn Chain,
    key: &tally_core::Keypair,
    netuid: u16,
    call: Call,
) -> Result<u64, ChainError> {
    chain.execute(key, netuid, call)
}
