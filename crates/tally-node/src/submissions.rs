//! The owner's registry: miner submissions in, signed rosters and archives out.
//!
//! A miner posts `POST /v1/submissions` with the SCALE bytes of `(signed submission, archive)`:
//! the submission (`tally/submission/v1`, signed by the miner's hotkey) names the netuid, the
//! family, the archive's SHA-256 and a manifest. The owner refuses a bad signature, a miner that
//! is not registered, an archive that does not hash to the signed value, another netuid or
//! family, and anything over the size cap. The latest accepted submission of each miner goes
//! into the next roster. `GET /v1/runs/{run}/roster` returns the roster of a run, built and signed
//! by the owner on first request and then frozen, so it cannot change under the validators;
//! `GET /v1/submissions/{id}/archive` returns an archive's bytes.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parity_scale_codec::{Decode, Encode};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tally_core::codec::decode_bounded;
use tally_core::hash::Hash32;
use tally_core::roster::{RosterMember, MAX_MANIFEST_BYTES};
use tally_core::signed::Signable;
use tally_core::{
    BoundedBytes, BoundedVec, CoreError, FamilyId, Hotkey, Keypair, RosterBody, Signed,
};

/// Largest archive accepted.
pub const MAX_ARCHIVE: usize = 8 * 1024 * 1024;
/// Rosters kept.
const MAX_ROSTERS: usize = 64;

/// What a miner signs about its submission.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SubmissionBody {
    /// The subnet.
    pub netuid: u16,
    /// The miner.
    pub miner: Hotkey,
    /// The family it competes in.
    pub family_id: FamilyId,
    /// SHA-256 of the archive.
    pub archive_sha256: Hash32,
    /// Runtime, entry points, limits (opaque here).
    pub manifest: BoundedBytes<MAX_MANIFEST_BYTES>,
    /// Unix milliseconds when made; a newer submission replaces an older one.
    pub created_ms: u64,
}

impl Signable for SubmissionBody {
    const TAG: &'static [u8] = b"tally/submission/v1";
    const MAX_BODY_BYTES: usize = 2 + 32 + 65 + 32 + MAX_MANIFEST_BYTES + 5 + 8;
    const WHAT: &'static str = "submission";
    fn signer(&self) -> &Hotkey {
        &self.miner
    }
    fn check(&self) -> Result<(), CoreError> {
        Ok(())
    }
}

/// The POST body: the signed submission's wire bytes and the archive.
#[derive(Encode, Decode)]
pub struct Upload {
    /// `Signed<SubmissionBody>` wire bytes.
    pub submission: BoundedBytes<{ SubmissionBody::MAX_BODY_BYTES + 64 }>,
    /// The archive.
    pub archive: BoundedBytes<MAX_ARCHIVE>,
}

/// Builds the upload a miner posts.
pub fn upload(
    key: &Keypair,
    netuid: u16,
    family: &FamilyId,
    archive: &[u8],
    created_ms: u64,
) -> Result<Vec<u8>, CoreError> {
    let body = SubmissionBody {
        netuid,
        miner: key.hotkey(),
        family_id: family.clone(),
        archive_sha256: tally_core::sha256(archive),
        manifest: BoundedBytes::new(b"runtime=wasm".to_vec())?,
        created_ms,
    };
    let s = Signed::sign(body, key)?;
    Ok(Upload {
        submission: BoundedBytes::new(s.to_bytes())?,
        archive: BoundedBytes::new(archive.to_vec())?,
    }
    .encode())
}

struct Entry {
    id: String,
    body: SubmissionBody,
    archive: Arc<Vec<u8>>,
}

/// The owner's registry.
pub struct Registry {
    key: Keypair,
    netuid: u16,
    family: FamilyId,
    /// Miners allowed to submit (registered on the subnet).
    pub miners: RwLock<HashSet<Hotkey>>,
    latest: Mutex<BTreeMap<Hotkey, Entry>>,
    rosters: Mutex<BTreeMap<u64, Vec<u8>>>,
}

fn err(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

impl Registry {
    /// A registry signing rosters with `key`.
    pub fn new(key: Keypair, netuid: u16, family: FamilyId) -> Self {
        Registry {
            key,
            netuid,
            family,
            miners: RwLock::new(HashSet::new()),
            latest: Mutex::new(BTreeMap::new()),
            rosters: Mutex::new(BTreeMap::new()),
        }
    }

    /// Accepts an upload; returns the submission id.
    pub fn accept(&self, bytes: &[u8]) -> Result<String, (StatusCode, String)> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        let up: Upload = decode_bounded(
            bytes,
            MAX_ARCHIVE + SubmissionBody::MAX_BODY_BYTES + 128,
            "upload",
        )
        .map_err(|e| bad(e.to_string()))?;
        let s =
            Signed::<SubmissionBody>::from_bytes(&up.submission).map_err(|e| bad(e.to_string()))?;
        s.verify()
            .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
        let b = s.body();
        if b.netuid != self.netuid || b.family_id != self.family {
            return Err(bad(format!(
                "for netuid {} family {}, this owner runs netuid {} family {}",
                b.netuid,
                b.family_id.as_str(),
                self.netuid,
                self.family.as_str()
            )));
        }
        if !self
            .miners
            .read()
            .map(|m| m.contains(&b.miner))
            .unwrap_or(false)
        {
            return Err((
                StatusCode::FORBIDDEN,
                format!("{} is not a registered miner", b.miner),
            ));
        }
        if tally_core::sha256(&up.archive) != b.archive_sha256 {
            return Err(bad(
                "the archive does not hash to the signed archive_sha256".into(),
            ));
        }
        let id = hex::encode(&tally_core::sha256(&s.to_bytes())[..16]);
        let mut latest = self.latest.lock().map_err(|_| bad("lock".into()))?;
        if latest
            .get(&b.miner)
            .is_some_and(|e| e.body.created_ms > b.created_ms)
        {
            return Err((
                StatusCode::CONFLICT,
                "a newer submission from this miner is already in".into(),
            ));
        }
        latest.insert(
            b.miner,
            Entry {
                id: id.clone(),
                body: b.clone(),
                archive: Arc::new(up.archive.to_vec()),
            },
        );
        Ok(id)
    }

    /// The signed roster of `run` (built on first request, then frozen).
    pub fn roster(&self, run: u64) -> Result<Vec<u8>, CoreError> {
        let mut rosters = self
            .rosters
            .lock()
            .map_err(|_| CoreError::Decode("lock".into()))?;
        if let Some(r) = rosters.get(&run) {
            return Ok(r.clone());
        }
        let members: Vec<RosterMember> = self
            .latest
            .lock()
            .map_err(|_| CoreError::Decode("lock".into()))?
            .values()
            .map(|e| {
                Ok(RosterMember {
                    miner: e.body.miner,
                    submission_id: BoundedBytes::new(e.id.as_bytes().to_vec())?,
                    archive_sha256: e.body.archive_sha256,
                    manifest: e.body.manifest.clone(),
                })
            })
            .collect::<Result<_, CoreError>>()?;
        let body = RosterBody {
            netuid: self.netuid,
            run,
            family_id: self.family.clone(),
            owner: self.key.hotkey(),
            members: BoundedVec::new(members)?,
        };
        let wire = Signed::sign(body, &self.key)?.to_bytes();
        rosters.insert(run, wire.clone());
        while rosters.len() > MAX_ROSTERS {
            rosters.pop_first();
        }
        Ok(wire)
    }

    /// The latest submission of every miner: `(miner, submission id, archive)`.
    pub fn latest(&self) -> Vec<(Hotkey, String, Arc<Vec<u8>>)> {
        self.latest
            .lock()
            .map(|l| {
                l.values()
                    .map(|e| (e.body.miner, e.id.clone(), e.archive.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An archive by submission id.
    pub fn archive(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        self.latest
            .lock()
            .ok()?
            .values()
            .find(|e| e.id == id)
            .map(|e| e.archive.clone())
    }
}

/// The registry's routes.
pub fn router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/v1/submissions",
            post(|State(r): State<Arc<Registry>>, body: Bytes| async move {
                match r.accept(&body) {
                    Ok(id) => {
                        (StatusCode::CREATED, Json(json!({"submission_id": id}))).into_response()
                    }
                    Err((s, m)) => err(s, m),
                }
            }),
        )
        .route(
            "/v1/runs/{run}/roster",
            get(
                |State(r): State<Arc<Registry>>, Path(run): Path<u64>| async move {
                    match r.roster(run) {
                        Ok(w) => Json(json!({"run": run, "wire": hex::encode(w)})).into_response(),
                        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e),
                    }
                },
            ),
        )
        .route(
            "/v1/submissions/{id}/archive",
            get(
                |State(r): State<Arc<Registry>>, Path(id): Path<String>| async move {
                    match r.archive(&id) {
                        Some(a) => ([("content-type", "application/wasm")], a.as_ref().clone())
                            .into_response(),
                        None => err(StatusCode::NOT_FOUND, "no such submission"),
                    }
                },
            ),
        )
        .layer(DefaultBodyLimit::max(MAX_ARCHIVE + 64 * 1024))
        .with_state(reg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_rosters_and_refusals() {
        let owner = Keypair::from_seed(&[1; 32]);
        let miner = Keypair::from_seed(&[2; 32]);
        let fam = FamilyId::new("inference").unwrap();
        let reg = Registry::new(owner.clone(), 1, fam.clone());
        let archive = b"\\0asm pretend".to_vec();
        // unregistered miner
        let up = upload(&miner, 1, &fam, &archive, 10).unwrap();
        assert_eq!(reg.accept(&up).unwrap_err().0, StatusCode::FORBIDDEN);
        reg.miners.write().unwrap().insert(miner.hotkey());
        let id = reg.accept(&up).unwrap();
        assert_eq!(reg.archive(&id).unwrap().as_slice(), &archive[..]);
        // an archive swapped after signing
        let mut u: Upload = Upload::decode(&mut &up[..]).unwrap();
        u.archive = BoundedBytes::new(b"other".to_vec()).unwrap();
        assert_eq!(
            reg.accept(&u.encode()).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        // a forged signature
        let mut forged = up.clone();
        let n = forged.len() - archive.len() - 2;
        forged[n - 1] ^= 1;
        assert!(reg.accept(&forged).is_err());
        // wrong family, older submission
        assert_eq!(
            reg.accept(&upload(&miner, 1, &FamilyId::new("other").unwrap(), &archive, 11).unwrap())
                .unwrap_err()
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            reg.accept(&upload(&miner, 1, &fam, &archive, 9).unwrap())
                .unwrap_err()
                .0,
            StatusCode::CONFLICT
        );
        // the roster pins the archive, is signed by the owner, and is frozen per run
        let r = Signed::<RosterBody>::from_bytes(&reg.roster(5).unwrap()).unwrap();
        r.verify_for(&owner.hotkey(), 1, 5, &fam).unwrap();
        assert!(r.verify_for(&miner.hotkey(), 1, 5, &fam).is_err());
        assert_eq!(
            r.member(&miner.hotkey()).unwrap().archive_sha256,
            tally_core::sha256(&archive)
        );
        reg.accept(&upload(&miner, 1, &fam, b"newer", 20).unwrap())
            .unwrap();
        assert_eq!(reg.roster(5).unwrap(), r.to_bytes());
        assert_ne!(reg.roster(6).unwrap(), r.to_bytes());
    }
}
