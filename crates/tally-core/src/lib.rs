//! Tally's primitives, shared by every other crate.
//!
//! * [`keys`]: hotkeys (sr25519 via schnorrkel, signing context `substrate`), SS58 addresses,
//!   key pairs from a seed, from randomness or from a Bittensor keyfile, and signatures that
//!   Bittensor's own tooling accepts.
//! * [`score`]: fixed-point scores and fractions (`u32`, 1.0 = 1_000_000_000), never floats in
//!   signed bytes.
//! * [`codec`]: bounded SCALE decoding (every length checked against its cap before allocation,
//!   a size cap for every top-level value, no trailing bytes) and domain-tagged signing payloads.
//! * [`hash`]: SHA-256 helpers.
//! * [`signed`]: the generic signed envelope `Signed<T>` used for score reports and rosters.
//! * [`report`] and [`roster`]: the protocol's score report (body, salt, signature, commitment)
//!   and the owner-signed roster of submissions.
//!
//! Nothing here does I/O except [`keys::Keypair::from_keyfile_json`], which parses bytes the
//! caller has read.
#![forbid(unsafe_code)]

pub mod codec;
pub mod error;
pub mod hash;
pub mod keys;
pub mod report;
pub mod roster;
pub mod score;
pub mod signed;

pub use codec::{BoundedBytes, BoundedVec};
pub use error::CoreError;
pub use hash::{sha256, Hash32};
pub use keys::{Hotkey, Keypair, Signature, SS58_DEFAULT_PREFIX};
pub use report::{FamilyId, ReportBody, ScoreReport, MAX_REPORT_SCORES};
pub use roster::{Roster, RosterBody, RosterMember, SignedRoster};
pub use score::{Fraction, Ratio, Score};
pub use signed::{Signable, Signed};
