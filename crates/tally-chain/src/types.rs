//! Chain data types (JSON over HTTP, SCALE in the local chain's file) and the error type.

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use tally_core::Hotkey;
use thiserror::Error;

/// `[u8; 32]` as lowercase hex in JSON.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};
    /// Serialize as hex.
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    /// Deserialize from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Bytes as lowercase hex in JSON.
pub mod hexvec {
    use serde::{Deserialize, Deserializer, Serializer};
    /// Serialize as hex.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    /// Deserialize from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).map_err(serde::de::Error::custom)
    }
}

/// A produced block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct BlockInfo {
    /// Height.
    pub number: u64,
    /// Hash (SHA-256 of the parent hash, number and timestamp).
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    /// Unix milliseconds when produced.
    pub timestamp_ms: u64,
}

/// A subnet's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct SubnetParams {
    /// The subnet.
    pub netuid: u16,
    /// Blocks per epoch.
    pub epoch_length: u64,
    /// Block at which epoch 0 starts.
    pub epoch_offset: u64,
    /// Target milliseconds per block.
    pub block_ms: u64,
    /// Blocks a validator must wait between two weight settings.
    pub weights_rate_limit: u64,
    /// Largest commitment, in bytes.
    pub commitment_max_bytes: u32,
    /// Commitment bytes one hotkey may post per epoch.
    pub commitment_bytes_per_epoch: u32,
    /// Most uids on the subnet.
    pub max_uids: u16,
    /// Minimum stake of a validator whose reports count.
    pub min_validator_stake: u64,
    /// The uid that receives weight when there is no winner.
    pub burn_uid: u16,
}

/// A registered neuron.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct NeuronInfo {
    /// Its uid.
    pub uid: u16,
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its stake.
    pub stake: u64,
    /// Whether it holds a validator permit.
    pub validator_permit: bool,
    /// Its HTTP endpoint (`host:port`), possibly empty.
    pub axon: String,
    /// Its libp2p multiaddr, possibly empty.
    pub peer: String,
    /// The block it registered in (0 for genesis neurons).
    #[serde(default)]
    pub registered_at: u64,
}

/// A subnet's neurons at a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metagraph {
    /// The subnet.
    pub netuid: u16,
    /// The block it was read at.
    pub block: u64,
    /// Neurons by uid.
    pub neurons: Vec<NeuronInfo>,
}

impl Metagraph {
    /// The neuron of `hotkey`.
    pub fn by_hotkey(&self, hotkey: &Hotkey) -> Option<&NeuronInfo> {
        self.neurons.iter().find(|n| n.hotkey == *hotkey)
    }
    /// The neuron of `uid`.
    pub fn by_uid(&self, uid: u16) -> Option<&NeuronInfo> {
        self.neurons.iter().find(|n| n.uid == uid)
    }
}

/// A commitment and the block it was made at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// Inclusion block.
    pub block: u64,
    /// The committed bytes.
    #[serde(with = "hexvec")]
    pub data: Vec<u8>,
}

/// Weights a validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct WeightsSet {
    /// Inclusion block.
    pub block: u64,
    /// The validator.
    pub validator: Hotkey,
    /// `(uid, weight)`, weights as u16 shares of u16::MAX.
    pub weights: Vec<(u16, u16)>,
}

/// Chain errors; the message says what to do next where there is something to do. Serialized
/// over HTTP so a client gets back exactly the error the chain raised.
#[derive(Debug, Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum ChainError {
    /// No such subnet.
    #[error("subnet {0} does not exist")]
    UnknownSubnet(u16),
    /// The extrinsic's signature does not verify.
    #[error("extrinsic signature does not verify")]
    BadSignature,
    /// Wrong nonce (stale or replayed extrinsic).
    #[error(
        "nonce {got} is not the signer's next nonce {expected}: fetch the nonce and sign again"
    )]
    BadNonce { expected: u64, got: u64 },
    /// The signer is not registered on the subnet.
    #[error("{0} is not registered on the subnet")]
    NotRegistered(String),
    /// A validator-only call from a hotkey without a permit.
    #[error("{0} has no validator permit")]
    NotValidator(String),
    /// Weights set again before the rate limit allows.
    #[error("weights rate limit: next allowed at block {next}")]
    RateLimited { next: u64 },
    /// A commitment larger than allowed.
    #[error("commitment of {len} bytes is over the {max}-byte limit")]
    CommitmentTooLarge { len: usize, max: u32 },
    /// The hotkey used up its commitment space this epoch.
    #[error("commitment space for this epoch is used up ({used} of {max} bytes); wait for the next epoch")]
    CommitmentSpace { used: u32, max: u32 },
    /// No free uid.
    #[error("subnet is full ({0} uids)")]
    SubnetFull(u16),
    /// Registering a hotkey twice.
    #[error("{0} is already registered")]
    AlreadyRegistered(String),
    /// Weights naming a uid that does not exist.
    #[error("uid {0} does not exist")]
    UnknownUid(u16),
    /// Bytes that do not decode or break a structural rule.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The database failed or is corrupt.
    #[error("chain storage: {0}")]
    Storage(String),
    /// The HTTP transport failed.
    #[error("chain transport: {0}")]
    Transport(String),
}
