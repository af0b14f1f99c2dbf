//! The owner-signed roster of one run: which submission each miner entered, pinned by the
//! SHA-256 of its archive.
//!
//! Validators pin the owner's hotkey and refuse a roster that is unsigned, signed by another
//! key, for another run or family, or altered ([`SignedRoster::verify_for`]); they then refuse
//! any archive whose bytes do not hash to the member's `archive_sha256`.

use crate::codec::BoundedBytes;
use crate::hash::Hash32;
use crate::report::FamilyId;
use crate::signed::{Signable, Signed};
use crate::{BoundedVec, CoreError, Hotkey};
use parity_scale_codec::{Decode, Encode};

/// Most members in a roster.
pub const MAX_ROSTER_MEMBERS: usize = 4_096;
/// Cap on a member's manifest bytes.
pub const MAX_MANIFEST_BYTES: usize = 4_096;

/// One miner's entry.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RosterMember {
    /// The miner.
    pub miner: Hotkey,
    /// The owner's identifier of the submission (1 to 64 bytes).
    pub submission_id: BoundedBytes<64>,
    /// SHA-256 of the archive's bytes.
    pub archive_sha256: Hash32,
    /// The submission's manifest (runtime, entry points, limits), opaque here.
    pub manifest: BoundedBytes<MAX_MANIFEST_BYTES>,
}

/// What the owner signs for one run.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RosterBody {
    /// The subnet.
    pub netuid: u16,
    /// The run's epoch.
    pub run: u64,
    /// The task family.
    pub family_id: FamilyId,
    /// The owner's hotkey.
    pub owner: Hotkey,
    /// Members sorted by miner hotkey, one per miner.
    pub members: BoundedVec<RosterMember, MAX_ROSTER_MEMBERS>,
}

impl Signable for RosterBody {
    const TAG: &'static [u8] = b"tally/roster/v1";
    const MAX_BODY_BYTES: usize = 2 + 8 + 65 + 32 + 5 + MAX_ROSTER_MEMBERS * (32 + 65 + 32 + 8);
    const WHAT: &'static str = "roster";
    fn signer(&self) -> &Hotkey {
        &self.owner
    }
    fn check(&self) -> Result<(), CoreError> {
        if let Some(w) = self.members.windows(2).find(|w| w[0].miner >= w[1].miner) {
            return Err(CoreError::Invalid {
                what: "roster",
                reason: format!("members not sorted by miner or repeated at {}", w[1].miner),
            });
        }
        if let Some(m) = self.members.iter().find(|m| m.submission_id.is_empty()) {
            return Err(CoreError::Invalid {
                what: "roster",
                reason: format!("empty submission id for {}", m.miner),
            });
        }
        Ok(())
    }
}

/// A signed roster.
pub type SignedRoster = Signed<RosterBody>;
/// Alias kept for readability at call sites.
pub type Roster = RosterBody;

impl SignedRoster {
    /// Verifies that this roster is signed by the pinned `owner` for `(netuid, run, family)`.
    pub fn verify_for(
        &self,
        owner: &Hotkey,
        netuid: u16,
        run: u64,
        family: &FamilyId,
    ) -> Result<(), CoreError> {
        let b = self.body();
        let bad = |reason: String| {
            Err(CoreError::Invalid {
                what: "roster",
                reason,
            })
        };
        if b.owner != *owner {
            return bad(format!(
                "signed by {}, the pinned owner is {owner}",
                b.owner
            ));
        }
        if b.netuid != netuid || b.run != run {
            return bad(format!(
                "for netuid {} run {}, expected netuid {netuid} run {run}",
                b.netuid, b.run
            ));
        }
        if b.family_id != *family {
            return bad(format!(
                "for family {}, expected {}",
                b.family_id.as_str(),
                family.as_str()
            ));
        }
        self.verify()
    }

    /// The member entry for `miner`.
    pub fn member(&self, miner: &Hotkey) -> Option<&RosterMember> {
        let m = &self.body().members;
        m.binary_search_by(|x| x.miner.cmp(miner))
            .ok()
            .map(|i| &m[i])
    }
}
