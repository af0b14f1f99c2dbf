//! Signed extrinsics: what a hotkey asks the chain to do.
//!
//! An [`ExtrinsicBody`] `{netuid, signer, nonce, call}` is signed by the signer over
//! `SCALE("tally/extrinsic/v1") ‖ SHA-256(body)`. The chain accepts it only with the signer's
//! next nonce, so a captured extrinsic cannot be replayed.

use crate::types::ChainError;
use parity_scale_codec::{Decode, Encode};
use tally_core::signed::{Signable, Signed};
use tally_core::{BoundedBytes, BoundedVec, CoreError, Hotkey, Keypair};

/// Most weights in one call.
pub const MAX_WEIGHTS: usize = 4_096;
/// Largest commitment a call can carry (the subnet's limit is usually lower).
pub const MAX_COMMITMENT: usize = 1_024;

/// What the signer asks for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Call {
    /// Register the signer on the subnet (no stake, no permit), serving `axon` and `peer`.
    #[codec(index = 0)]
    Register {
        axon: BoundedBytes<128>,
        peer: BoundedBytes<256>,
    },
    /// Update the signer's advertised addresses.
    #[codec(index = 1)]
    Serve {
        axon: BoundedBytes<128>,
        peer: BoundedBytes<256>,
    },
    /// Post a commitment.
    #[codec(index = 2)]
    Commit { data: BoundedBytes<MAX_COMMITMENT> },
    /// Set weights `(uid, weight)`.
    #[codec(index = 3)]
    SetWeights {
        weights: BoundedVec<(u16, u16), MAX_WEIGHTS>,
    },
}

/// The signed part of an extrinsic.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ExtrinsicBody {
    /// The subnet.
    pub netuid: u16,
    /// The signing hotkey.
    pub signer: Hotkey,
    /// The signer's next nonce.
    pub nonce: u64,
    /// The call.
    pub call: Call,
}

impl Signable for ExtrinsicBody {
    const TAG: &'static [u8] = b"tally/extrinsic/v1";
    const MAX_BODY_BYTES: usize = 2 + 32 + 8 + 1 + 5 + MAX_WEIGHTS * 4 + 512;
    const WHAT: &'static str = "extrinsic";
    fn signer(&self) -> &Hotkey {
        &self.signer
    }
    fn check(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

/// Signs `call` as `key` with `nonce`; returns the wire bytes.
pub fn sign(key: &Keypair, netuid: u16, nonce: u64, call: Call) -> Result<Vec<u8>, ChainError> {
    let body = ExtrinsicBody {
        netuid,
        signer: key.hotkey(),
        nonce,
        call,
    };
    Signed::sign(body, key)
        .map(|s| s.to_bytes())
        .map_err(|e| ChainError::Malformed(e.to_string()))
}

/// Decodes and verifies wire bytes.
pub fn open(bytes: &[u8]) -> Result<ExtrinsicBody, ChainError> {
    let s = Signed::<ExtrinsicBody>::from_bytes(bytes)
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    s.verify().map_err(|_| ChainError::BadSignature)?;
    Ok(s.body().clone())
}

/// A register call.
pub fn register(axon: &str, peer: &str) -> Result<Call, ChainError> {
    Ok(Call::Register {
        axon: bytes(axon)?,
        peer: bytes(peer)?,
    })
}

/// A serve call.
pub fn serve(axon: &str, peer: &str) -> Result<Call, ChainError> {
    Ok(Call::Serve {
        axon: bytes(axon)?,
        peer: bytes(peer)?,
    })
}

/// A commit call.
pub fn commit(data: Vec<u8>) -> Result<Call, ChainError> {
    Ok(Call::Commit {
        data: BoundedBytes::new(data).map_err(|e| ChainError::Malformed(e.to_string()))?,
    })
}

/// A set-weights call.
pub fn set_weights(weights: Vec<(u16, u16)>) -> Result<Call, ChainError> {
    Ok(Call::SetWeights {
        weights: BoundedVec::new(weights).map_err(|e| ChainError::Malformed(e.to_string()))?,
    })
}

fn bytes<const N: usize>(s: &str) -> Result<BoundedBytes<N>, ChainError> {
    BoundedBytes::new(s.as_bytes().to_vec()).map_err(|e| ChainError::Malformed(e.to_string()))
}
