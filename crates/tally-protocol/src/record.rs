//! The signed record envelope and its DHT key.
//!
//! `RecordBody = {kind, netuid, epoch, publisher, payload, expires_at_ms}` is SCALE-encoded and
//! signed by the publisher's hotkey over `SCALE(kind tag) ‖ SHA-256(body)`. The wire form is
//! `body ‖ signature (64)`; its first byte is the kind, so the kind's size cap is checked before
//! anything else is decoded.
//!
//! A record is stored under `record_key = tagged_sha256("tally/dht-key/v1", [netuid, kind,
//! epoch, publisher])`, so every publisher has its own slot per kind and epoch. Heartbeats use
//! epoch 0 in their key: one slot per publisher, refreshed in place.

use crate::kind::{Kind, MAX_RECORD_BYTES};
use parity_scale_codec::{Decode, Encode};
use tally_core::codec::{decode_bounded, signing_payload};
use tally_core::hash::{tagged_sha256, Hash32};
use tally_core::{BoundedBytes, CoreError, Hotkey, Keypair, Signature};

/// The envelope's body.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RecordBody {
    /// What the record is.
    pub kind: Kind,
    /// The subnet.
    pub netuid: u16,
    /// The epoch it belongs to (a validator reveal names the run it reveals: the previous
    /// epoch). Heartbeats carry the epoch they were made in.
    pub epoch: u64,
    /// The signer.
    pub publisher: Hotkey,
    /// The kind's payload, see [`crate::payload`].
    pub payload: BoundedBytes<MAX_RECORD_BYTES>,
    /// Unix milliseconds after which the record is dropped.
    pub expires_at_ms: u64,
}

/// The DHT key of `(netuid, kind, epoch, publisher)`.
pub fn record_key(netuid: u16, kind: Kind, epoch: u64, publisher: &Hotkey) -> Hash32 {
    let epoch = if kind == Kind::Heartbeat { 0 } else { epoch };
    tagged_sha256(
        b"tally/dht-key/v1",
        &[
            &netuid.encode(),
            &[kind as u8],
            &epoch.encode(),
            &publisher.0,
        ],
    )
}

/// A signed record with the exact bytes that were signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRecord {
    body: RecordBody,
    body_bytes: Vec<u8>,
    signature: Signature,
}

impl SignedRecord {
    /// Signs `body`; `key` must be the publisher and the record within its kind's size cap.
    pub fn sign(body: RecordBody, key: &Keypair) -> Result<Self, CoreError> {
        if body.publisher != key.hotkey() {
            return Err(CoreError::Invalid {
                what: "record",
                reason: format!("publisher {} is not the signing key", body.publisher),
            });
        }
        let body_bytes = body.encode();
        let cap = body.kind.max_bytes();
        if body_bytes.len() + 64 > cap {
            return Err(CoreError::TooLarge {
                what: "record",
                len: body_bytes.len() + 64,
                cap,
            });
        }
        let signature = key.sign(&signing_payload(body.kind.tag(), &body_bytes));
        Ok(SignedRecord {
            body,
            body_bytes,
            signature,
        })
    }

    /// Assembles a record from parts without checking anything (tests and adversaries).
    pub fn from_parts(body: RecordBody, signature: Signature) -> Self {
        let body_bytes = body.encode();
        SignedRecord {
            body,
            body_bytes,
            signature,
        }
    }

    /// Decodes the wire form with the kind's size cap; the signature is not checked here.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        let kind = bytes
            .first()
            .and_then(|&b| Kind::from_byte(b))
            .ok_or_else(|| CoreError::Decode("unknown record kind".into()))?;
        let cap = kind.max_bytes();
        if bytes.len() > cap {
            return Err(CoreError::TooLarge {
                what: "record",
                len: bytes.len(),
                cap,
            });
        }
        if bytes.len() < 64 {
            return Err(CoreError::Decode("record shorter than a signature".into()));
        }
        let (body_bytes, sig) = bytes.split_at(bytes.len() - 64);
        let body: RecordBody = decode_bounded(body_bytes, cap, "record")?;
        let mut s = [0u8; 64];
        s.copy_from_slice(sig);
        Ok(SignedRecord {
            body,
            body_bytes: body_bytes.to_vec(),
            signature: Signature(s),
        })
    }

    /// Wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.body_bytes.len() + 64);
        v.extend_from_slice(&self.body_bytes);
        v.extend_from_slice(&self.signature.0);
        v
    }

    /// Whether the publisher signed it.
    pub fn signature_valid(&self) -> bool {
        let payload = signing_payload(self.body.kind.tag(), &self.body_bytes);
        self.body.publisher.verify(&payload, &self.signature)
    }

    /// The body.
    pub fn body(&self) -> &RecordBody {
        &self.body
    }
    /// The signed bytes of the body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body_bytes
    }
    /// The key this record belongs under.
    pub fn key(&self) -> Hash32 {
        record_key(
            self.body.netuid,
            self.body.kind,
            self.body.epoch,
            &self.body.publisher,
        )
    }
}
