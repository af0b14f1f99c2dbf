//! `Signed<T>`: a body, the exact SCALE bytes it was decoded from, and its signer's signature.
//!
//! The signer signs [`crate::codec::signing_payload`]`(T::TAG, body_bytes)`. Keeping the body's
//! bytes next to the decoded body means a node re-serves byte-identical signed values, and
//! verification never re-encodes. The wire form is `body_bytes ‖ signature (64 bytes)`.
//!
//! Decoding checks the size cap, the body's structure ([`Signable::check`]) and exact length,
//! but not the signature: call [`Signed::verify`] (or use [`Signed::decode_verified`]).

use crate::codec::{decode_bounded, signing_payload};
use crate::{CoreError, Hotkey, Keypair, Signature};
use parity_scale_codec::{Decode, Encode};

/// A body kind that can be signed.
pub trait Signable: Encode + Decode + Sized {
    /// The domain tag, `tally/<kind>/v1`.
    const TAG: &'static [u8];
    /// Cap on the encoded body, in bytes.
    const MAX_BODY_BYTES: usize;
    /// A short name for errors.
    const WHAT: &'static str;
    /// The hotkey that must have signed the body.
    fn signer(&self) -> &Hotkey;
    /// Structural rules beyond decoding (ordering, uniqueness, formats).
    fn check(&self) -> Result<(), CoreError>;
}

/// A signed body with the exact bytes that were signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed<T> {
    body: T,
    body_bytes: Vec<u8>,
    signature: Signature,
}

impl<T: Signable> Signed<T> {
    /// Checks `body` and signs it with `key`, which must be the body's signer.
    pub fn sign(body: T, key: &Keypair) -> Result<Self, CoreError> {
        body.check()?;
        if *body.signer() != key.hotkey() {
            return Err(CoreError::Invalid {
                what: T::WHAT,
                reason: format!(
                    "body names signer {}, key is {}",
                    body.signer(),
                    key.hotkey()
                ),
            });
        }
        let body_bytes = body.encode();
        if body_bytes.len() > T::MAX_BODY_BYTES {
            return Err(CoreError::TooLarge {
                what: T::WHAT,
                len: body_bytes.len(),
                cap: T::MAX_BODY_BYTES,
            });
        }
        let signature = key.sign(&signing_payload(T::TAG, &body_bytes));
        Ok(Signed {
            body,
            body_bytes,
            signature,
        })
    }

    /// Assembles a signed value from parts (for instance a forged one in a test); nothing is
    /// checked until [`Signed::verify`].
    pub fn from_parts(body: T, signature: Signature) -> Self {
        let body_bytes = body.encode();
        Signed {
            body,
            body_bytes,
            signature,
        }
    }

    /// Checks the signature against the body's signer.
    pub fn verify(&self) -> Result<(), CoreError> {
        let payload = signing_payload(T::TAG, &self.body_bytes);
        if self.body.signer().verify(&payload, &self.signature) {
            Ok(())
        } else {
            Err(CoreError::BadSignature {
                what: T::WHAT,
                signer: self.body.signer().to_ss58(),
            })
        }
    }

    /// The body.
    pub fn body(&self) -> &T {
        &self.body
    }
    /// The exact SCALE bytes of the body that were signed.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body_bytes
    }
    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Wire form: `body_bytes ‖ signature`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_bytes.len() + 64);
        out.extend_from_slice(&self.body_bytes);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// Decodes the wire form (bounded, structure checked, signature not checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        let cap = T::MAX_BODY_BYTES + 64;
        if bytes.len() > cap {
            return Err(CoreError::TooLarge {
                what: T::WHAT,
                len: bytes.len(),
                cap,
            });
        }
        if bytes.len() < 64 {
            return Err(CoreError::Decode(format!(
                "{} shorter than a signature",
                T::WHAT
            )));
        }
        let (body_bytes, sig) = bytes.split_at(bytes.len() - 64);
        let body: T = decode_bounded(body_bytes, T::MAX_BODY_BYTES, T::WHAT)?;
        body.check()?;
        let mut s = [0u8; 64];
        s.copy_from_slice(sig);
        Ok(Signed {
            body,
            body_bytes: body_bytes.to_vec(),
            signature: Signature(s),
        })
    }

    /// Decodes the wire form and verifies the signature.
    pub fn decode_verified(bytes: &[u8]) -> Result<Self, CoreError> {
        let s = Self::from_bytes(bytes)?;
        s.verify()?;
        Ok(s)
    }
}

/// Decodes and verifies many wire-form values, spread over `threads` threads (1 = on the
/// caller's). The results are in input order.
pub fn decode_verify_many<T: Signable + Send>(
    items: &[&[u8]],
    threads: usize,
) -> Vec<Result<Signed<T>, CoreError>> {
    let threads = threads.clamp(1, 64).min(items.len().max(1));
    if threads == 1 {
        return items.iter().map(|b| Signed::decode_verified(b)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut out: Vec<Result<Signed<T>, CoreError>> = Vec::with_capacity(items.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                let h = s.spawn(move || {
                    c.iter()
                        .map(|b| Signed::<T>::decode_verified(b))
                        .collect::<Vec<_>>()
                });
                (c.len(), h)
            })
            .collect();
        for (n, h) in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                // keep results aligned with inputs even if a worker died
                Err(_) => out.extend(
                    (0..n).map(|_| Err(CoreError::Decode("verification worker panicked".into()))),
                ),
            }
        }
    });
    out
}
