//! Record kinds: their domain tags, wire size caps and expiry caps.

use parity_scale_codec::{Decode, Encode};

/// What a DHT record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub enum Kind {
    /// Liveness, role and addresses; any time, short expiry, newest wins.
    #[codec(index = 0)]
    Heartbeat,
    /// The epoch's challenge tensor, by the elected validator.
    #[codec(index = 1)]
    Challenge,
    /// SHA-256 of (salt, output), by a hoster.
    #[codec(index = 2)]
    HosterCommit,
    /// Salt and output, by a hoster.
    #[codec(index = 3)]
    HosterReveal,
    /// The commitment to a score report, by a validator.
    #[codec(index = 4)]
    ValidatorCommit,
    /// The signed score report and its salt, by a validator, in the next epoch.
    #[codec(index = 5)]
    ValidatorReveal,
}

/// Bytes of the largest record of any kind.
pub const MAX_RECORD_BYTES: usize = 640 * 1024;

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Heartbeat,
        Kind::Challenge,
        Kind::HosterCommit,
        Kind::HosterReveal,
        Kind::ValidatorCommit,
        Kind::ValidatorReveal,
    ];

    /// The kind's name in DESIGN.md.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Heartbeat => "heartbeat",
            Kind::Challenge => "challenge",
            Kind::HosterCommit => "hoster-commit",
            Kind::HosterReveal => "hoster-reveal",
            Kind::ValidatorCommit => "validator-commit",
            Kind::ValidatorReveal => "validator-reveal",
        }
    }

    /// The domain tag its signatures start with.
    pub fn tag(self) -> &'static [u8] {
        match self {
            Kind::Heartbeat => b"tally/heartbeat/v1",
            Kind::Challenge => b"tally/challenge/v1",
            Kind::HosterCommit => b"tally/hoster-commit/v1",
            Kind::HosterReveal => b"tally/hoster-reveal/v1",
            Kind::ValidatorCommit => b"tally/validator-commit/v1",
            Kind::ValidatorReveal => b"tally/validator-reveal/v1",
        }
    }

    /// From the first byte of a record's wire form.
    pub fn from_byte(b: u8) -> Option<Kind> {
        Kind::ALL.get(b as usize).copied()
    }

    /// Cap on the whole signed record in bytes.
    pub fn max_bytes(self) -> usize {
        match self {
            Kind::Heartbeat => 4 * 1024,
            Kind::HosterCommit | Kind::ValidatorCommit => 512,
            Kind::Challenge | Kind::HosterReveal => 128 * 1024,
            Kind::ValidatorReveal => MAX_RECORD_BYTES,
        }
    }

    /// How far in the future a record's expiry may lie, in milliseconds.
    pub fn max_ttl_ms(self) -> u64 {
        match self {
            Kind::Heartbeat => 5 * 60 * 1000,
            _ => 3 * 24 * 60 * 60 * 1000,
        }
    }

    /// Whether only validators (with a permit and the minimum stake) may publish it.
    pub fn validator_only(self) -> bool {
        matches!(
            self,
            Kind::Challenge | Kind::ValidatorCommit | Kind::ValidatorReveal
        )
    }

    /// Whether a second, different record in the same slot is refused.
    pub fn write_once(self) -> bool {
        !matches!(self, Kind::Heartbeat)
    }

    /// Whether the kind is a commitment (a conflicting copy is equivocation evidence).
    pub fn is_commit(self) -> bool {
        matches!(self, Kind::HosterCommit | Kind::ValidatorCommit)
    }
}
