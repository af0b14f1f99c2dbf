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
/// Cap on a member's manifest bytes (a submission's manifest is capped by the same constant).
pub const MAX_MANIFEST_BYTES: usize = 512;
/// Longest submission id.
pub const MAX_SUBMISSION_ID: usize = 64;
/// Most SCALE bytes of one member: miner, id and manifest at their caps (each with a 2-byte
/// compact length), archive hash.
pub const MAX_MEMBER_BYTES: usize = 32 + (2 + MAX_SUBMISSION_ID) + 32 + (2 + MAX_MANIFEST_BYTES);
/// Most SCALE bytes of a roster body: derived from the member cap, so a roster of
/// [`MAX_ROSTER_MEMBERS`] members with caps-sized manifests always signs (the caps fit together
/// by construction; a sybil with large manifests cannot make a roster unsignable).
pub const MAX_ROSTER_BODY_BYTES: usize =
    2 + 8 + (2 + 64) + 32 + 5 + MAX_ROSTER_MEMBERS * MAX_MEMBER_BYTES;

/// One miner's entry.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RosterMember {
    /// The miner.
    pub miner: Hotkey,
    /// The owner's identifier of the submission (1 to 64 bytes).
    pub submission_id: BoundedBytes<MAX_SUBMISSION_ID>,
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
    const MAX_BODY_BYTES: usize = MAX_ROSTER_BODY_BYTES;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    #[test]
    fn a_full_roster_of_caps_sized_members_signs() {
        let owner = Keypair::from_seed(&[1; 32]).deterministic();
        let members: Vec<RosterMember> = (0..MAX_ROSTER_MEMBERS)
            .map(|i| {
                let mut miner = [0u8; 32];
                miner[..8].copy_from_slice(&(i as u64).to_be_bytes());
                RosterMember {
                    miner: Hotkey(miner),
                    submission_id: BoundedBytes::new(vec![b'x'; MAX_SUBMISSION_ID]).unwrap(),
                    archive_sha256: [7; 32],
                    manifest: BoundedBytes::new(vec![b'm'; MAX_MANIFEST_BYTES]).unwrap(),
                }
            })
            .collect();
        let body = RosterBody {
            netuid: 1,
            run: 9,
            family_id: FamilyId::new(&"f".repeat(64)).unwrap(),
            owner: owner.hotkey(),
            members: BoundedVec::new(members).unwrap(),
        };
        let encoded = body.encode().len();
        assert!(
            encoded <= MAX_ROSTER_BODY_BYTES,
            "{encoded} > {MAX_ROSTER_BODY_BYTES}"
        );
        let signed = SignedRoster::sign(body, &owner).expect("a full roster signs");
        let back = SignedRoster::from_bytes(&signed.to_bytes()).unwrap();
        back.verify_for(
            &owner.hotkey(),
            1,
            9,
            &FamilyId::new(&"f".repeat(64)).unwrap(),
        )
        .unwrap();
    }
}
