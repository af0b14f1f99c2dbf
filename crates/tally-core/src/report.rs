//! The score report: what a validator measured for every miner in one run.
//!
//! A [`ReportBody`] names `(netuid, run, family_id, validator)` and holds the scores as a list
//! of `(miner hotkey, score)` sorted by hotkey with no repeats. A [`ScoreReport`] is the signed
//! body plus the 32-byte salt of its commitment; the commitment is
//! `tagged_sha256("tally/score-commit/v1", [body_bytes, salt])`, published before anyone can see
//! the report and checked when it is revealed.
//!
//! Wire form of a report: `body_bytes ‖ signature (64) ‖ salt (32)`.

use crate::codec::BoundedBytes;
use crate::hash::{tagged_sha256, Hash32};
use crate::signed::{Signable, Signed};
use crate::{BoundedVec, CoreError, Hotkey, Keypair, Score};
use parity_scale_codec::{Decode, Encode};

/// Most scores one report may hold.
pub const MAX_REPORT_SCORES: usize = 16_384;
/// Domain tag of the commitment to a report.
pub const COMMIT_TAG: &[u8] = b"tally/score-commit/v1";

/// A task family's identifier: 1 to 64 bytes of `[a-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct FamilyId(BoundedBytes<64>);

impl FamilyId {
    /// Checks the format.
    pub fn new(s: &str) -> Result<Self, CoreError> {
        let f = FamilyId(BoundedBytes::new(s.as_bytes().to_vec())?);
        f.check()?;
        Ok(f)
    }
    fn check(&self) -> Result<(), CoreError> {
        let ok = !self.0.is_empty()
            && self
                .0
                .iter()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if ok {
            Ok(())
        } else {
            Err(CoreError::Invalid {
                what: "family id",
                reason: "1 to 64 bytes of [a-z0-9._-]".into(),
            })
        }
    }
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        // check() admits ASCII only, and every constructor and decode path runs it.
        std::str::from_utf8(self.0.as_bytes()).unwrap_or("")
    }
}

/// What a validator signs about one run.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ReportBody {
    /// The subnet.
    pub netuid: u16,
    /// The run's epoch.
    pub run: u64,
    /// The task family scored.
    pub family_id: FamilyId,
    /// The reporting validator.
    pub validator: Hotkey,
    /// `(miner, score)` sorted by miner hotkey, no repeats.
    pub scores: BoundedVec<(Hotkey, Score), MAX_REPORT_SCORES>,
}

impl ReportBody {
    /// Builds a body, sorting the scores; repeated miners are refused.
    pub fn new(
        netuid: u16,
        run: u64,
        family_id: FamilyId,
        validator: Hotkey,
        mut scores: Vec<(Hotkey, Score)>,
    ) -> Result<Self, CoreError> {
        scores.sort_unstable_by_key(|a| a.0);
        let body = ReportBody {
            netuid,
            run,
            family_id,
            validator,
            scores: BoundedVec::new(scores)?,
        };
        body.check()?;
        Ok(body)
    }
}

impl Signable for ReportBody {
    const TAG: &'static [u8] = b"tally/score-report/v1";
    const MAX_BODY_BYTES: usize = 2 + 8 + 65 + 32 + 5 + MAX_REPORT_SCORES * 36;
    const WHAT: &'static str = "score report";
    fn signer(&self) -> &Hotkey {
        &self.validator
    }
    fn check(&self) -> Result<(), CoreError> {
        self.family_id.check()?;
        if let Some(w) = self.scores.windows(2).find(|w| w[0].0 >= w[1].0) {
            return Err(CoreError::Invalid {
                what: "score report",
                reason: format!("scores not sorted by miner or repeated at {}", w[1].0),
            });
        }
        Ok(())
    }
}

/// A signed report with its commitment salt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScoreReport {
    /// The signed body.
    pub signed: Signed<ReportBody>,
    /// The commitment's salt.
    pub salt: [u8; 32],
}

impl ScoreReport {
    /// Signs `body` with `key` and attaches `salt`.
    pub fn sign(body: ReportBody, salt: [u8; 32], key: &Keypair) -> Result<Self, CoreError> {
        Ok(ScoreReport {
            signed: Signed::sign(body, key)?,
            salt,
        })
    }

    /// The body.
    pub fn body(&self) -> &ReportBody {
        self.signed.body()
    }

    /// `tagged_sha256(COMMIT_TAG, [body_bytes, salt])`.
    pub fn commitment(&self) -> Hash32 {
        commitment_of(self.signed.body_bytes(), &self.salt)
    }

    /// Wire form: `body_bytes ‖ signature ‖ salt`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signed.to_bytes();
        out.extend_from_slice(&self.salt);
        out
    }

    /// Decodes the wire form (bounded; structure checked; signature not checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CoreError> {
        if bytes.len() < 32 {
            return Err(CoreError::Decode(
                "score report shorter than its salt".into(),
            ));
        }
        let (signed, salt) = bytes.split_at(bytes.len() - 32);
        let signed = Signed::from_bytes(signed)?;
        let mut s = [0u8; 32];
        s.copy_from_slice(salt);
        Ok(ScoreReport { signed, salt: s })
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<(), CoreError> {
        self.signed.verify()
    }
}

/// The commitment to a report body's bytes under `salt`.
pub fn commitment_of(body_bytes: &[u8], salt: &[u8; 32]) -> Hash32 {
    tagged_sha256(COMMIT_TAG, &[body_bytes, salt])
}
