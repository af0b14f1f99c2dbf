//! Bounded SCALE encoding.
//!
//! Every value that arrives from a peer, a file or a user is decoded with [`decode_bounded`]:
//! the whole input is checked against a size cap first, then decoded with [`BoundedVec`] and
//! [`BoundedBytes`] fields whose length prefixes are checked against their own caps *and*
//! against the bytes actually left in the input before any memory is reserved for them, and
//! finally the input must be used up exactly (no trailing bytes, so one value has one
//! encoding).
//!
//! Signed payloads are `SCALE(domain tag) ‖ SHA-256(SCALE(body))`, see [`signing_payload`]: the
//! tag (`tally/<kind>/v1`) makes a signature for one kind useless as another.

use crate::CoreError;
use parity_scale_codec::{Compact, Decode, Encode, Input, Output};
use std::ops::Deref;

/// Reads a compact length prefix and checks it against `cap` and against what the input still
/// holds (`min_elem` bytes per element at least), before the caller allocates anything.
fn read_len<I: Input>(
    input: &mut I,
    cap: usize,
    min_elem: usize,
) -> Result<usize, parity_scale_codec::Error> {
    let len = Compact::<u32>::decode(input)?.0 as usize;
    if len > cap {
        return Err("length prefix over its cap".into());
    }
    if let Some(remaining) = input.remaining_len()? {
        if len.saturating_mul(min_elem.max(1)) > remaining {
            return Err("length prefix longer than the input".into());
        }
    }
    Ok(len)
}

/// A `Vec<T>` of at most `N` elements, decoded without allocating for an oversized prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BoundedVec<T, const N: usize>(Vec<T>);

impl<T, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        BoundedVec(Vec::new())
    }
}

impl<T, const N: usize> BoundedVec<T, N> {
    /// Wraps `v`, refusing more than `N` elements.
    pub fn new(v: Vec<T>) -> Result<Self, CoreError> {
        if v.len() > N {
            return Err(CoreError::LengthOverCap {
                len: v.len() as u64,
                cap: N,
            });
        }
        Ok(BoundedVec(v))
    }
    /// The elements.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
    /// The cap.
    pub const fn cap() -> usize {
        N
    }
}

impl<T, const N: usize> Deref for BoundedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Encode, const N: usize> Encode for BoundedVec<T, N> {
    fn size_hint(&self) -> usize {
        self.0.size_hint()
    }
    fn encode_to<W: Output + ?Sized>(&self, dest: &mut W) {
        self.0.encode_to(dest)
    }
}

impl<T: Decode, const N: usize> Decode for BoundedVec<T, N> {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let min = T::encoded_fixed_size().unwrap_or(1);
        let len = read_len(input, N, min)?;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(T::decode(input)?);
        }
        Ok(BoundedVec(v))
    }
}

/// A byte string of at most `N` bytes, decoded without allocating for an oversized prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BoundedBytes<const N: usize>(Vec<u8>);

impl<const N: usize> BoundedBytes<N> {
    /// Wraps `v`, refusing more than `N` bytes.
    pub fn new(v: impl Into<Vec<u8>>) -> Result<Self, CoreError> {
        let v = v.into();
        if v.len() > N {
            return Err(CoreError::LengthOverCap {
                len: v.len() as u64,
                cap: N,
            });
        }
        Ok(BoundedBytes(v))
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> Deref for BoundedBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> Encode for BoundedBytes<N> {
    fn size_hint(&self) -> usize {
        self.0.size_hint()
    }
    fn encode_to<W: Output + ?Sized>(&self, dest: &mut W) {
        self.0.encode_to(dest)
    }
}

impl<const N: usize> Decode for BoundedBytes<N> {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let len = read_len(input, N, 1)?;
        let mut v = vec![0u8; len];
        input.read(&mut v)?;
        Ok(BoundedBytes(v))
    }
}

/// Decodes one `T` from `bytes`: refuses input over `cap` bytes before looking at it, and
/// refuses trailing bytes after the value.
pub fn decode_bounded<T: Decode>(
    bytes: &[u8],
    cap: usize,
    what: &'static str,
) -> Result<T, CoreError> {
    if bytes.len() > cap {
        return Err(CoreError::TooLarge {
            what,
            len: bytes.len(),
            cap,
        });
    }
    let mut input = bytes;
    let v = T::decode(&mut input)?;
    if !input.is_empty() {
        return Err(CoreError::TrailingBytes(input.len()));
    }
    Ok(v)
}

/// The bytes a key signs for a value of some kind: `SCALE(tag) ‖ SHA-256(body_bytes)`.
///
/// Signing the digest rather than the body keeps verification at SHA-256 speed (hardware
/// accelerated) instead of the STROBE transcript's, which matters for reports of thousands of
/// scores; the digest is collision resistant, so the signature commits to the same bytes.
pub fn signing_payload(tag: &[u8], body_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 2 + 32);
    tag.encode_to(&mut out);
    out.extend_from_slice(&crate::sha256(body_bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_vec_round_trips_and_caps() {
        let v: BoundedVec<u32, 4> = BoundedVec::new(vec![1, 2, 3]).unwrap();
        let bytes = v.encode();
        assert_eq!(bytes, vec![1u32, 2, 3].encode());
        let back: BoundedVec<u32, 4> = decode_bounded(&bytes, 64, "t").unwrap();
        assert_eq!(back, v);
        assert!(BoundedVec::<u32, 2>::new(vec![1, 2, 3]).is_err());
        assert!(decode_bounded::<BoundedVec<u32, 2>>(&bytes, 64, "t").is_err());
    }

    #[test]
    fn prefix_longer_than_input_is_refused() {
        // claims 1000 u32s, holds one
        let mut bytes = Compact(1000u32).encode();
        bytes.extend_from_slice(&7u32.encode());
        let e = decode_bounded::<BoundedVec<u32, 100_000>>(&bytes, 1 << 20, "t").unwrap_err();
        assert!(matches!(e, CoreError::Decode(_)), "{e}");
    }

    #[test]
    fn trailing_bytes_and_oversized_input_are_refused() {
        let mut bytes = BoundedBytes::<8>::new(b"abc".to_vec()).unwrap().encode();
        bytes.push(0);
        assert_eq!(
            decode_bounded::<BoundedBytes<8>>(&bytes, 64, "t").unwrap_err(),
            CoreError::TrailingBytes(1)
        );
        assert!(matches!(
            decode_bounded::<BoundedBytes<8>>(&[0u8; 65], 64, "t").unwrap_err(),
            CoreError::TooLarge { cap: 64, .. }
        ));
    }
}
