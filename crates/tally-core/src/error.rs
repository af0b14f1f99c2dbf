//! The error type of `tally-core`: one enum for key handling, encoding and verification, so
//! callers can match on the reason and print a message that says what to do next.

use thiserror::Error;

/// Everything that can go wrong in `tally-core`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// An SS58 string that is not valid base58, has the wrong length, or a bad checksum.
    #[error("invalid SS58 address: {0}")]
    InvalidSs58(String),
    /// An SS58 address whose network prefix is not the one expected.
    #[error("SS58 address has network prefix {found}, expected {expected}")]
    WrongSs58Prefix { found: u16, expected: u16 },
    /// Bytes that are not a valid sr25519 public key, secret or signature.
    #[error("invalid key material: {0}")]
    InvalidKey(String),
    /// Hex text that does not decode, or decodes to the wrong length.
    #[error("invalid hex for {what}: {reason}")]
    InvalidHex { what: &'static str, reason: String },
    /// A keyfile that cannot be used; the message says why and what to do.
    #[error("keyfile: {0}")]
    Keyfile(String),
    /// Input longer than the cap for its kind; nothing was allocated for it.
    #[error("{what} is {len} bytes, over the cap of {cap}")]
    TooLarge {
        what: &'static str,
        len: usize,
        cap: usize,
    },
    /// A length prefix above the cap for that field; nothing was allocated for it.
    #[error("length {len} over the cap of {cap}")]
    LengthOverCap { len: u64, cap: usize },
    /// SCALE bytes that do not decode.
    #[error("malformed encoding: {0}")]
    Decode(String),
    /// A value decoded, but bytes were left over after it.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// A score above 1.0 or otherwise out of range.
    #[error("score {0} is out of range: a score is in [0, 1] (0..=1_000_000_000 fixed point)")]
    ScoreOutOfRange(String),
    /// A structural rule of a report or roster was broken (ordering, uniqueness, ...).
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// A signature that does not verify for the claimed signer.
    #[error("bad signature by {signer} on {what}")]
    BadSignature { what: &'static str, signer: String },
}

impl From<parity_scale_codec::Error> for CoreError {
    fn from(e: parity_scale_codec::Error) -> Self {
        CoreError::Decode(e.to_string())
    }
}
