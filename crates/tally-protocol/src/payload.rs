//! Payload schemas of the record kinds, decoded with bounds and checked.
//!
//! * heartbeat: [`Heartbeat`] (role, libp2p peer id, listen addresses, HTTP endpoint, issue
//!   time). Signed by the hotkey, it binds the peer id to the hotkey.
//! * challenge: a [`Tensor`] (dtype, shape of 1 to 4 dimensions, element count capped, data
//!   length equal to count x dtype size, floating-point values finite). Never deserialized
//!   with anything that can execute code: it is plain little-endian numbers.
//! * hoster-commit, validator-commit: a 32-byte hash.
//! * hoster-reveal: [`HosterReveal`], salt and output tensor; its commitment is
//!   [`hoster_commitment`].
//! * validator-reveal: a score report's wire form (body, signature, salt) for the run the
//!   record names, signed by the publisher.

use crate::kind::Kind;
use crate::record::RecordBody;
use parity_scale_codec::{Decode, Encode};
use tally_core::codec::decode_bounded;
use tally_core::hash::{tagged_sha256, Hash32};
use tally_core::{BoundedBytes, BoundedVec, Hotkey, ScoreReport};

/// Most elements a tensor may hold.
pub const MAX_TENSOR_ELEMENTS: usize = 16 * 1024;
/// Most bytes of tensor data.
pub const MAX_TENSOR_BYTES: usize = MAX_TENSOR_ELEMENTS * 4;

/// What a node does on the subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Role {
    /// Scores miners and sets weights.
    #[codec(index = 0)]
    Validator,
    /// Serves miner work (miner-hosted execution).
    #[codec(index = 1)]
    Hoster,
}

/// A heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Heartbeat {
    /// The publisher's role.
    pub role: Role,
    /// The libp2p peer id (its bytes) this hotkey runs as.
    pub peer_id: BoundedBytes<64>,
    /// libp2p listen addresses (multiaddr bytes).
    pub addrs: BoundedVec<BoundedBytes<128>, 8>,
    /// HTTP endpoint (`host:port`), possibly empty.
    pub http: BoundedBytes<128>,
    /// Unix milliseconds when issued; a newer heartbeat replaces an older one.
    pub issued_at_ms: u64,
}

/// Element types of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum DType {
    /// Little-endian IEEE-754 binary32.
    #[codec(index = 0)]
    F32,
    /// Little-endian two's complement 32-bit.
    #[codec(index = 1)]
    I32,
    /// Bytes.
    #[codec(index = 2)]
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::U8 => 1,
        }
    }
}

/// A small dense tensor.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Tensor {
    /// Element type.
    pub dtype: DType,
    /// Dimensions (1 to 4, each at least 1).
    pub shape: BoundedVec<u32, 4>,
    /// Little-endian element bytes, row-major.
    pub data: BoundedBytes<MAX_TENSOR_BYTES>,
}

impl Tensor {
    /// An f32 tensor of `shape` from `values`.
    pub fn f32(shape: &[u32], values: &[f32]) -> Result<Tensor, String> {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = Tensor {
            dtype: DType::F32,
            shape: BoundedVec::new(shape.to_vec()).map_err(|e| e.to_string())?,
            data: BoundedBytes::new(data).map_err(|e| e.to_string())?,
        };
        t.check()?;
        Ok(t)
    }

    /// The values of an f32 tensor (`None` for another dtype or a ragged buffer).
    pub fn f32_values(&self) -> Option<Vec<f32>> {
        if self.dtype != DType::F32 || !self.data.len().is_multiple_of(4) {
            return None;
        }
        Some(
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    /// Checks shape, size and finite values.
    pub fn check(&self) -> Result<(), String> {
        if self.shape.is_empty() || self.shape.contains(&0) {
            return Err("tensor shape must have 1 to 4 dimensions, each at least 1".into());
        }
        let count = element_count(&self.shape)?;
        if self.data.len() != count * self.dtype.size() {
            return Err(format!(
                "tensor data is {} bytes, shape and dtype need {}",
                self.data.len(),
                count * self.dtype.size()
            ));
        }
        if self.dtype == DType::F32
            && self
                .data
                .chunks_exact(4)
                .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
        {
            return Err("tensor holds NaN or infinite values".into());
        }
        Ok(())
    }
}

/// A 32-byte commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Commit(pub Hash32);

/// A hoster's reveal.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HosterReveal {
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The output.
    pub output: Tensor,
}

/// The elements a tensor of `shape` holds, at most [`MAX_TENSOR_ELEMENTS`].
pub fn element_count(shape: &[u32]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
        .filter(|&c| c <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| format!("tensor has more than {MAX_TENSOR_ELEMENTS} elements"))
}

/// The commitment of `hoster` to its output for `epoch`: `tagged_sha256("tally/hoster-output/v2",
/// [hotkey, SCALE(epoch), salt, SCALE(output)])`. The hotkey and epoch are bound in: a hoster
/// that copies another's commit hash (visible in the commit window) cannot later reveal the
/// other's salt and output as its own, nor reuse a commit of another epoch.
pub fn hoster_commitment(hoster: &Hotkey, epoch: u64, salt: &[u8; 32], output: &Tensor) -> Hash32 {
    tagged_sha256(
        b"tally/hoster-output/v2",
        &[&hoster.0, &epoch.encode(), salt, &output.encode()],
    )
}

/// A payload that passed its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// See [`Heartbeat`].
    Heartbeat(Heartbeat),
    /// The challenge tensor.
    Challenge(Tensor),
    /// A commitment (hoster or validator).
    Commit(Hash32),
    /// See [`HosterReveal`].
    HosterReveal(HosterReveal),
    /// A signed score report with its salt.
    ValidatorReveal(Box<ScoreReport>),
}

impl Payload {
    /// The hash a reveal by `publisher` for `epoch` must match in the commit book, if this is a
    /// reveal.
    pub fn reveal_commitment(&self, publisher: &Hotkey, epoch: u64) -> Option<Hash32> {
        match self {
            Payload::HosterReveal(r) => {
                Some(hoster_commitment(publisher, epoch, &r.salt, &r.output))
            }
            Payload::ValidatorReveal(r) => Some(r.commitment()),
            _ => None,
        }
    }
}

/// Decodes and checks the payload of `body` against its kind's schema.
pub fn parse(body: &RecordBody) -> Result<Payload, String> {
    let bytes: &[u8] = &body.payload;
    let cap = body.kind.max_bytes();
    let e = |x: tally_core::CoreError| x.to_string();
    match body.kind {
        Kind::Heartbeat => {
            let h: Heartbeat = decode_bounded(bytes, cap, "heartbeat").map_err(e)?;
            if h.peer_id.is_empty() {
                return Err("heartbeat without a peer id".into());
            }
            Ok(Payload::Heartbeat(h))
        }
        Kind::Challenge => {
            let t: Tensor = decode_bounded(bytes, cap, "challenge").map_err(e)?;
            t.check()?;
            Ok(Payload::Challenge(t))
        }
        Kind::HosterCommit | Kind::ValidatorCommit => {
            let c: Commit = decode_bounded(bytes, 32, "commit").map_err(e)?;
            Ok(Payload::Commit(c.0))
        }
        Kind::HosterReveal => {
            let r: HosterReveal = decode_bounded(bytes, cap, "hoster reveal").map_err(e)?;
            r.output.check()?;
            Ok(Payload::HosterReveal(r))
        }
        Kind::ValidatorReveal => {
            let r = ScoreReport::from_bytes(bytes).map_err(e)?;
            let b = r.body();
            if b.run != body.epoch || b.netuid != body.netuid {
                return Err(format!(
                    "report is for netuid {} run {}, the record says netuid {} epoch {}",
                    b.netuid, b.run, body.netuid, body.epoch
                ));
            }
            if b.validator != body.publisher {
                return Err(format!(
                    "report is by {}, published by {}",
                    b.validator, body.publisher
                ));
            }
            r.verify().map_err(e)?;
            Ok(Payload::ValidatorReveal(Box::new(r)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_schema() {
        assert!(Tensor::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]).is_ok());
        assert!(Tensor::f32(&[2, 2], &[1.0, 2.0, 3.0]).is_err());
        assert!(Tensor::f32(&[2, 0], &[]).is_err());
        assert!(Tensor::f32(&[], &[]).is_err());
        assert!(Tensor::f32(&[1], &[f32::NAN]).is_err());
        assert!(Tensor::f32(&[1], &[f32::INFINITY]).is_err());
        let huge = Tensor {
            dtype: DType::U8,
            shape: BoundedVec::new(vec![65_536, 65_536, 65_536, 65_536]).unwrap(),
            data: BoundedBytes::new(vec![]).unwrap(),
        };
        assert!(huge.check().unwrap_err().contains("more than"));
    }
}
