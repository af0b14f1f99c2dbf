//! SHA-256, the protocol's hash (the chain's commitments pallet stores SHA-256 natively).
//!
//! [`tagged_sha256`] hashes a domain tag followed by parts, each part length-prefixed
//! (SCALE compact), so that no two different part lists give the same preimage.

use parity_scale_codec::{Compact, Encode};
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 digest.
pub type Hash32 = [u8; 32];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash32 {
    Sha256::digest(data).into()
}

/// SHA-256 over `SCALE(tag) ‖ SCALE(part_0) ‖ SCALE(part_1) …`, each part as a length-prefixed
/// byte string. Used for commitments and DHT keys.
pub fn tagged_sha256(tag: &[u8], parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(Compact(tag.len() as u32).encode());
    h.update(tag);
    for p in parts {
        h.update(Compact(p.len() as u32).encode());
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tagged_parts_are_unambiguous() {
        let a = tagged_sha256(b"t", &[b"ab", b"c"]);
        let b = tagged_sha256(b"t", &[b"a", b"bc"]);
        let c = tagged_sha256(b"u", &[b"ab", b"c"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, tagged_sha256(b"t", &[b"ab", b"c"]));
    }
}
