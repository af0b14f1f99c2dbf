//! The owner's registry: miner submissions in, signed rosters and archives out.
//!
//! A miner posts `POST /v1/submissions` with the SCALE bytes of `(signed submission, archive)`:
//! the submission (`tally/submission/v1`, signed by the miner's hotkey) names the netuid, the
//! family, the archive's SHA-256 and a manifest. The owner refuses a bad signature, a miner that
//! is not registered, an archive that does not hash to the signed value, another netuid or
//! family, and anything over the size cap. The latest accepted submission of each miner goes
//! into the next roster. The owner signs a run's roster once, when the chain reaches the run
//! ([`Registry::freeze`], driven by the owner's head watcher, never by a request), keeps it in its
//! database across restarts and never rebuilds it. `GET /v1/runs/{run}/roster` only serves kept
//! rosters (404 otherwise), so no request can freeze, evict or change one;
//! `GET /v1/submissions/{id}/archive` serves every archive a latest submission or a kept roster
//! names, so a miner who resubmits never makes a roster point to a missing archive. Manifests and
//! rosters have caps that fit together (`tally_core::roster::MAX_ROSTER_BODY_BYTES`).

use crate::peer::MAX_RESPONSE;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parity_scale_codec::{Decode, Encode};
use redb::{Database, ReadableTable, TableDefinition};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tally_core::codec::decode_bounded;
use tally_core::hash::Hash32;
use tally_core::roster::{RosterMember, MAX_MANIFEST_BYTES, MAX_ROSTER_MEMBERS, MAX_SUBMISSION_ID};
use tally_core::signed::Signable;
use tally_core::{
    BoundedBytes, BoundedVec, CoreError, FamilyId, Hotkey, Keypair, RosterBody, Signed,
};

/// Largest archive accepted: the compile budget's size cap, one definition for the owner, the
/// validators' archive cache and the compile budget.
pub const MAX_ARCHIVE: usize = tally_exec::budget::MAX_ARCHIVE;

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

/// Why the registry could not do something.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The owner's database failed.
    #[error("owner database: {0}")]
    Storage(String),
    /// A roster was asked for a run the chain has not reached.
    #[error("run {run} has not started on chain (the chain is at run {reached})")]
    NotReached {
        /// The run asked for.
        run: u64,
        /// The chain's current run.
        reached: u64,
    },
    /// A roster was asked for a run older than the newest one signed, and it was never signed
    /// (or was pruned): it is never built after the fact.
    #[error(
        "run {run} has no roster and never will (the newest signed roster is for run {newest})"
    )]
    Closed {
        /// The run asked for.
        run: u64,
        /// The newest signed run.
        newest: u64,
    },
    /// Signing or encoding failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

fn storage(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

/// Rosters kept (and served), newest first; older ones are dropped with the archives only they
/// name.
pub const KEEP_ROSTERS: usize = 64;

const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
const ARCHIVES: TableDefinition<&str, &[u8]> = TableDefinition::new("archives");
const ROSTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("rosters");

// a full roster, hex-encoded in its JSON reply, fits what a validator's client accepts
const _: () = assert!(2 * (RosterBody::MAX_BODY_BYTES + 256) + 1024 <= MAX_RESPONSE as usize);

/// The owner's registry, kept in its database (redb): the latest submission of each miner, the
/// archives, and the signed roster of each run the chain has reached, signed once and never
/// rebuilt.
pub struct Registry {
    key: Keypair,
    netuid: u16,
    family: FamilyId,
    /// Miners allowed to submit (registered on the subnet).
    pub miners: RwLock<HashSet<Hotkey>>,
    db: Database,
    latest: Mutex<BTreeMap<Hotkey, (String, SubmissionBody)>>,
    /// Signed rosters by run, with the submission ids each names.
    rosters: Mutex<BTreeMap<u64, Kept>>,
}

/// A kept roster: its wire bytes and the submission ids it names.
type Kept = (Arc<Vec<u8>>, Vec<String>);

fn err(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

impl Registry {
    /// Opens (or creates) the registry's database at `path`.
    pub fn open(
        path: &std::path::Path,
        key: Keypair,
        netuid: u16,
        family: FamilyId,
    ) -> Result<Registry, RegistryError> {
        let db = Database::create(path).map_err(|e| {
            RegistryError::Storage(format!(
                "cannot open {}: {e} (if it is corrupt, move it away; rosters already served \
                 are then lost)",
                path.display()
            ))
        })?;
        Registry::with_db(db, key, netuid, family)
    }

    /// A registry held in memory (tests).
    pub fn in_memory(
        key: Keypair,
        netuid: u16,
        family: FamilyId,
    ) -> Result<Registry, RegistryError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)?;
        Registry::with_db(db, key, netuid, family)
    }

    fn with_db(
        db: Database,
        key: Keypair,
        netuid: u16,
        family: FamilyId,
    ) -> Result<Registry, RegistryError> {
        let tx = db.begin_write().map_err(storage)?;
        tx.open_table(LATEST).map_err(storage)?;
        tx.open_table(ARCHIVES).map_err(storage)?;
        tx.open_table(ROSTERS).map_err(storage)?;
        tx.commit().map_err(storage)?;
        let mut latest = BTreeMap::new();
        let mut rosters = BTreeMap::new();
        {
            let tx = db.begin_read().map_err(storage)?;
            for e in tx
                .open_table(LATEST)
                .map_err(storage)?
                .iter()
                .map_err(storage)?
            {
                let (_, v) = e.map_err(storage)?;
                let (id, body): (String, SubmissionBody) =
                    Decode::decode(&mut v.value()).map_err(storage)?;
                latest.insert(body.miner, (id, body));
            }
            for e in tx
                .open_table(ROSTERS)
                .map_err(storage)?
                .iter()
                .map_err(storage)?
            {
                let (k, v) = e.map_err(storage)?;
                let wire = v.value().to_vec();
                let ids = Signed::<RosterBody>::from_bytes(&wire)?
                    .body()
                    .members
                    .iter()
                    .map(|m| String::from_utf8_lossy(&m.submission_id).into_owned())
                    .collect();
                rosters.insert(k.value(), (Arc::new(wire), ids));
            }
        }
        Ok(Registry {
            key,
            netuid,
            family,
            miners: RwLock::new(HashSet::new()),
            db,
            latest: Mutex::new(latest),
            rosters: Mutex::new(rosters),
        })
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
        let internal = |e: RegistryError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        let mut latest = self.latest.lock().map_err(|_| internal(storage("lock")))?;
        match latest.get(&b.miner) {
            Some(e) if e.1.created_ms > b.created_ms => {
                return Err((
                    StatusCode::CONFLICT,
                    "a newer submission from this miner is already in".into(),
                ))
            }
            None if latest.len() >= MAX_ROSTER_MEMBERS => {
                return Err((
                    StatusCode::INSUFFICIENT_STORAGE,
                    format!("the registry holds {MAX_ROSTER_MEMBERS} miners, a roster's cap"),
                ))
            }
            _ => {}
        }
        let tx = self.db.begin_write().map_err(storage).map_err(internal)?;
        {
            let mut a = tx.open_table(ARCHIVES).map_err(storage).map_err(internal)?;
            a.insert(id.as_str(), &up.archive[..])
                .map_err(storage)
                .map_err(internal)?;
            let mut l = tx.open_table(LATEST).map_err(storage).map_err(internal)?;
            l.insert(&b.miner.0[..], (id.clone(), b.clone()).encode().as_slice())
                .map_err(storage)
                .map_err(internal)?;
        }
        tx.commit().map_err(storage).map_err(internal)?;
        let old = latest.insert(b.miner, (id.clone(), b.clone()));
        drop(latest);
        if let Some((old_id, _)) = old {
            self.collect_garbage(&[old_id]).map_err(internal)?;
        }
        Ok(id)
    }

    /// Signs the roster of `run` from the latest submissions, once: `reached` is the run the
    /// chain is at, and no roster is signed for a later run, nor for a run older than the newest
    /// signed one (those are never built after the fact). Returns the roster (the stored one
    /// when it was signed before).
    pub fn freeze(&self, run: u64, reached: u64) -> Result<Arc<Vec<u8>>, RegistryError> {
        if run > reached {
            return Err(RegistryError::NotReached { run, reached });
        }
        let mut rosters = self.rosters.lock().map_err(|_| storage("lock"))?;
        if let Some((w, _)) = rosters.get(&run) {
            return Ok(w.clone());
        }
        if let Some(&newest) = rosters.keys().next_back() {
            if run < newest {
                return Err(RegistryError::Closed { run, newest });
            }
        }
        let mut ids = Vec::new();
        let members: Vec<RosterMember> = self
            .latest
            .lock()
            .map_err(|_| storage("lock"))?
            .values()
            .map(|(id, body)| {
                ids.push(id.clone());
                Ok(RosterMember {
                    miner: body.miner,
                    submission_id: BoundedBytes::new(id.as_bytes().to_vec())?,
                    archive_sha256: body.archive_sha256,
                    manifest: body.manifest.clone(),
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
        let wire = Arc::new(Signed::sign(body, &self.key)?.to_bytes());
        let mut dropped = Vec::new();
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut t = tx.open_table(ROSTERS).map_err(storage)?;
            t.insert(run, wire.as_slice()).map_err(storage)?;
            while rosters.len() + 1 > KEEP_ROSTERS {
                let Some((old, (_, old_ids))) = rosters.pop_first() else {
                    break;
                };
                t.remove(old).map_err(storage)?;
                dropped.extend(old_ids);
            }
        }
        tx.commit().map_err(storage)?;
        rosters.insert(run, (wire.clone(), ids));
        drop(rosters);
        self.collect_garbage(&dropped)?;
        Ok(wire)
    }

    /// Deletes the archives among `ids` that neither a latest submission nor a kept roster
    /// names.
    fn collect_garbage(&self, ids: &[String]) -> Result<(), RegistryError> {
        if ids.is_empty() {
            return Ok(());
        }
        let latest = self.latest.lock().map_err(|_| storage("lock"))?;
        let rosters = self.rosters.lock().map_err(|_| storage("lock"))?;
        let named = |id: &String| {
            latest.values().any(|(x, _)| x == id) || rosters.values().any(|(_, r)| r.contains(id))
        };
        let unused: Vec<&String> = ids.iter().filter(|id| !named(id)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut a = tx.open_table(ARCHIVES).map_err(storage)?;
            for id in unused {
                a.remove(id.as_str()).map_err(storage)?;
            }
        }
        tx.commit().map_err(storage)
    }

    /// The signed roster of `run`, if it was signed and is still kept.
    pub fn roster(&self, run: u64) -> Option<Arc<Vec<u8>>> {
        self.rosters.lock().ok()?.get(&run).map(|r| r.0.clone())
    }

    /// The newest run with a signed roster.
    pub fn newest_roster(&self) -> Option<u64> {
        self.rosters.lock().ok()?.keys().next_back().copied()
    }

    /// The latest submission of every miner: `(miner, submission id, archive)`.
    pub fn latest(&self) -> Vec<(Hotkey, String, Arc<Vec<u8>>)> {
        let ids: Vec<(Hotkey, String)> = self
            .latest
            .lock()
            .map(|l| l.values().map(|(id, b)| (b.miner, id.clone())).collect())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|(m, id)| {
                let a = self.archive(&id)?;
                Some((m, id, a))
            })
            .collect()
    }

    /// An archive by submission id: any a latest submission or a kept roster names.
    pub fn archive(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        let tx = self.db.begin_read().ok()?;
        let t = tx.open_table(ARCHIVES).ok()?;
        let v = t.get(id).ok()??;
        Some(Arc::new(v.value().to_vec()))
    }
}

/// The registry's routes.
pub fn router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/v1/submissions",
            post(|State(r): State<Arc<Registry>>, body: Bytes| async move {
                match tokio::task::spawn_blocking(move || r.accept(&body)).await {
                    Ok(Ok(id)) => {
                        (StatusCode::CREATED, Json(json!({"submission_id": id}))).into_response()
                    }
                    Ok(Err((s, m))) => err(s, m),
                    Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }),
        )
        .route(
            "/v1/runs/{run}/roster",
            get(
                |State(r): State<Arc<Registry>>, Path(run): Path<u64>| async move {
                    match r.roster(run) {
                        Some(w) => Json(json!({"run": run, "wire": hex::encode(w.as_slice())}))
                            .into_response(),
                        None => err(
                            StatusCode::NOT_FOUND,
                            format!(
                                "no roster for run {run}: the owner signs a run's roster once \
                                 the chain reaches it, and keeps the last {KEEP_ROSTERS}"
                            ),
                        ),
                    }
                },
            ),
        )
        .route(
            "/v1/submissions/{id}/archive",
            get(
                |State(r): State<Arc<Registry>>, Path(id): Path<String>| async move {
                    if id.len() > MAX_SUBMISSION_ID {
                        return err(StatusCode::BAD_REQUEST, "submission id too long");
                    }
                    match tokio::task::spawn_blocking(move || r.archive(&id)).await {
                        Ok(Some(a)) => ([("content-type", "application/wasm")], a.as_ref().clone())
                            .into_response(),
                        _ => err(StatusCode::NOT_FOUND, "no such submission"),
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
        let reg = Registry::in_memory(owner.clone(), 1, fam.clone()).unwrap();
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
        // no roster for a run the chain has not reached; a request never makes one
        assert!(matches!(
            reg.freeze(6, 5),
            Err(RegistryError::NotReached { run: 6, reached: 5 })
        ));
        assert!(reg.roster(5).is_none());
        // the roster pins the archive, is signed by the owner, and is frozen per run
        let w = reg.freeze(5, 5).unwrap();
        let r = Signed::<RosterBody>::from_bytes(&w).unwrap();
        r.verify_for(&owner.hotkey(), 1, 5, &fam).unwrap();
        assert!(r.verify_for(&miner.hotkey(), 1, 5, &fam).is_err());
        assert_eq!(
            r.member(&miner.hotkey()).unwrap().archive_sha256,
            tally_core::sha256(&archive)
        );
        // the miner resubmits: run 5's roster stays as it was and its archive stays served
        reg.accept(&upload(&miner, 1, &fam, b"newer", 20).unwrap())
            .unwrap();
        assert_eq!(*reg.freeze(5, 5).unwrap(), r.to_bytes());
        assert_eq!(*reg.roster(5).unwrap(), r.to_bytes());
        assert_eq!(reg.archive(&id).unwrap().as_slice(), &archive[..]);
        let r6 = reg.freeze(6, 6).unwrap();
        assert_ne!(*r6, r.to_bytes());
        // an older run that was never signed is never built after the fact
        assert!(matches!(
            reg.freeze(4, 6),
            Err(RegistryError::Closed { run: 4, newest: 6 })
        ));
    }
}

#[cfg(test)]
mod persistence {
    use super::*;

    #[test]
    fn rosters_survive_a_restart_and_old_archives_go_with_their_rosters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.redb");
        let owner = Keypair::from_seed(&[1; 32]);
        let miner = Keypair::from_seed(&[2; 32]);
        let fam = FamilyId::new("inference").unwrap();
        let open = || Registry::open(&path, owner.clone(), 1, fam.clone()).unwrap();
        let reg = open();
        reg.miners.write().unwrap().insert(miner.hotkey());
        let first = reg
            .accept(&upload(&miner, 1, &fam, b"v1", 1).unwrap())
            .unwrap();
        let w = reg.freeze(0, 0).unwrap();
        let second = reg
            .accept(&upload(&miner, 1, &fam, b"v2", 2).unwrap())
            .unwrap();
        drop(reg);
        // reopened: the same roster bytes (never re-signed), both archives still served
        let reg = open();
        assert_eq!(reg.roster(0).unwrap(), w);
        assert_eq!(*reg.freeze(0, 3).unwrap(), *w);
        assert_eq!(reg.archive(&first).unwrap().as_slice(), b"v1");
        assert_eq!(reg.latest().len(), 1);
        // once every roster naming v1 is pruned, v1's archive goes; v2 (latest) stays
        for run in 1..=KEEP_ROSTERS as u64 {
            reg.freeze(run, run).unwrap();
        }
        assert!(reg.roster(0).is_none());
        assert!(reg.archive(&first).is_none());
        assert_eq!(reg.archive(&second).unwrap().as_slice(), b"v2");
    }
}
