//! The node's one database file (redb).
//!
//! Tables: the node's own signed reports (exact wire bytes, so a restart serves byte-identical
//! reports), its measured scores, peer reports it accepted, the reports it rejected with
//! reasons, evidence (equivocation proofs), commitment snapshots, run outcomes, the divergence
//! window, the weight history, the node's progress (the last step done per run, so a restart
//! resumes where it was) and miner-hosted state per run (the hoster commit snapshot, this node's
//! verdicts, whether it published the challenge). Every write is one transaction.

use parity_scale_codec::{Decode, Encode};
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use tally_core::hash::Hash32;
use tally_core::Hotkey;
use tally_validator::{Member, Persist, RunOutcome, Stored, StoredRun};
use thiserror::Error;

const OWN: TableDefinition<u64, &[u8]> = TableDefinition::new("own_reports");
const SCORES: TableDefinition<u64, &[u8]> = TableDefinition::new("scores");
const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peer_reports");
const REJECTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rejected_reports");
const EVIDENCE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("evidence");
const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("commit_snapshots");
const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
const WEIGHTS: TableDefinition<u64, &[u8]> = TableDefinition::new("weights");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const PROGRESS: TableDefinition<u64, u8> = TableDefinition::new("progress");
/// Runs whose own report this node revealed (`Step::Done` alone does not say).
const REVEALED: TableDefinition<u64, u8> = TableDefinition::new("revealed");
/// Miner-hosted mode, per run: `SCALE(HostedState)`.
const HOSTED: TableDefinition<u64, &[u8]> = TableDefinition::new("hosted");

/// A run's miner-hosted state as stored: the hoster commit snapshot (the first stays), this
/// node's verdicts (the first stay) and whether it published the run's challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
struct HostedState {
    commits: Option<Vec<(Hotkey, Hash32)>>,
    verdicts: Option<Vec<tally_validator::HostedVerdict>>,
    challenge_sent: bool,
}

/// Store errors.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database failed or holds something that does not decode.
    #[error("node database: {0}")]
    Db(String),
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

fn run_key(run: u64, who: &Hotkey) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&run.to_be_bytes());
    k[8..].copy_from_slice(&who.0);
    k
}

pub use tally_validator::Step;

/// The node's database.
pub struct NodeStore {
    db: Database,
}

impl NodeStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<NodeStore, StoreError> {
        let d = Database::create(path).map_err(|e| {
            StoreError::Db(format!(
                "cannot open {}: {e} (if the file is corrupt, move it away; the node re-syncs from peers and the chain)",
                path.display()
            ))
        })?;
        let tx = d.begin_write().map_err(db)?;
        tx.open_table(OWN).map_err(db)?;
        tx.open_table(SCORES).map_err(db)?;
        tx.open_table(PEERS).map_err(db)?;
        tx.open_table(REJECTED).map_err(db)?;
        tx.open_table(EVIDENCE).map_err(db)?;
        tx.open_table(SNAPSHOTS).map_err(db)?;
        tx.open_table(OUTCOMES).map_err(db)?;
        tx.open_table(WEIGHTS).map_err(db)?;
        tx.open_table(META).map_err(db)?;
        tx.open_table(PROGRESS).map_err(db)?;
        tx.open_table(HOSTED).map_err(db)?;
        tx.open_table(REVEALED).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(NodeStore { db: d })
    }

    fn put_u64(&self, t: TableDefinition<u64, &[u8]>, k: u64, v: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(t).map_err(db)?.insert(k, v).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn get_u64(
        &self,
        t: TableDefinition<u64, &[u8]>,
        k: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(t).map_err(db)?;
        Ok(t.get(k).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// Stores this node's signed report for `run` together with its scores and marks the run
    /// scored, in one transaction. An existing report is never replaced: the first one is
    /// what was (or will be) committed, and it is returned.
    pub fn put_own_report(
        &self,
        run: u64,
        wire: &[u8],
        scores: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        let kept = {
            let mut own = tx.open_table(OWN).map_err(db)?;
            let existing = own.get(run).map_err(db)?.map(|v| v.value().to_vec());
            match existing {
                Some(e) => e,
                None => {
                    own.insert(run, wire).map_err(db)?;
                    tx.open_table(SCORES)
                        .map_err(db)?
                        .insert(run, scores)
                        .map_err(db)?;
                    let mut p = tx.open_table(PROGRESS).map_err(db)?;
                    let cur = p.get(run).map_err(db)?.map(|v| v.value()).unwrap_or(0);
                    p.insert(run, cur.max(Step::Scored as u8)).map_err(db)?;
                    wire.to_vec()
                }
            }
        };
        tx.commit().map_err(db)?;
        Ok(kept)
    }

    /// This node's report for `run` (exact wire bytes).
    pub fn own_report(&self, run: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_u64(OWN, run)
    }

    /// This node's measured scores for `run` (as stored).
    pub fn scores(&self, run: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_u64(SCORES, run)
    }

    /// Marks `step` done for `run` (never moves backwards).
    pub fn mark(&self, run: u64, step: Step) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut p = tx.open_table(PROGRESS).map_err(db)?;
            let cur = p.get(run).map_err(db)?.map(|v| v.value()).unwrap_or(0);
            p.insert(run, cur.max(step as u8)).map_err(db)?;
            if step == Step::Revealed {
                tx.open_table(REVEALED)
                    .map_err(db)?
                    .insert(run, 1)
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Whether this node revealed its report for `run`.
    pub fn revealed(&self, run: u64) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(REVEALED).map_err(db)?;
        Ok(t.get(run).map_err(db)?.is_some())
    }

    /// The last step done for `run`.
    pub fn progress(&self, run: u64) -> Result<Option<Step>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(PROGRESS).map_err(db)?;
        Ok(t.get(run)
            .map_err(db)?
            .and_then(|v| Step::from_u8(v.value())))
    }

    /// Stores an accepted peer report.
    pub fn put_peer_report(
        &self,
        run: u64,
        validator: &Hotkey,
        wire: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(PEERS)
            .map_err(db)?
            .insert(&run_key(run, validator)[..], wire)
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Records why a validator's report for `run` was rejected.
    pub fn put_rejected(
        &self,
        run: u64,
        validator: &Hotkey,
        reason: &str,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(REJECTED)
            .map_err(db)?
            .insert(&run_key(run, validator)[..], reason.as_bytes())
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// Entries of a `(run, hotkey)`-keyed table for `run`, in hotkey order.
    fn by_run(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        run: u64,
    ) -> Result<Vec<(Hotkey, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(table).map_err(db)?;
        let (lo, hi) = (
            run_key(run, &Hotkey([0; 32])),
            run_key(run, &Hotkey([0xff; 32])),
        );
        let mut out = Vec::new();
        for e in t.range(&lo[..]..=&hi[..]).map_err(db)? {
            let (k, v) = e.map_err(db)?;
            let mut h = [0u8; 32];
            h.copy_from_slice(&k.value()[8..40]);
            out.push((Hotkey(h), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Accepted peer reports of `run`.
    pub fn peer_reports(&self, run: u64) -> Result<Vec<(Hotkey, Vec<u8>)>, StoreError> {
        self.by_run(PEERS, run)
    }

    /// Rejected reports of `run` with reasons.
    pub fn rejected(&self, run: u64) -> Result<Vec<(Hotkey, String)>, StoreError> {
        Ok(self
            .by_run(REJECTED, run)?
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    /// Stores an evidence item under its hash; returns the hash.
    pub fn put_evidence(&self, bytes: &[u8]) -> Result<Hash32, StoreError> {
        let id = tally_core::sha256(bytes);
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(EVIDENCE)
            .map_err(db)?
            .insert(&id[..], bytes)
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    /// All evidence, by id.
    pub fn evidence(&self) -> Result<Vec<(Hash32, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(EVIDENCE).map_err(db)?;
        let mut out = Vec::new();
        for e in t.iter().map_err(db)? {
            let (k, v) = e.map_err(db)?;
            let mut id = [0u8; 32];
            id.copy_from_slice(k.value());
            out.push((id, v.value().to_vec()));
        }
        Ok(out)
    }

    /// Stores the commitment snapshot of `run` (the first one stays).
    pub fn put_snapshot(&self, run: u64, commits: &[(Hotkey, Hash32)]) -> Result<(), StoreError> {
        if self.get_u64(SNAPSHOTS, run)?.is_some() {
            return Ok(());
        }
        self.put_u64(SNAPSHOTS, run, &commits.to_vec().encode())
    }

    /// The commitment snapshot of `run`.
    pub fn snapshot(&self, run: u64) -> Result<Option<Vec<(Hotkey, Hash32)>>, StoreError> {
        match self.get_u64(SNAPSHOTS, run)? {
            None => Ok(None),
            Some(b) => Vec::<(Hotkey, Hash32)>::decode(&mut &b[..])
                .map(Some)
                .map_err(db),
        }
    }

    /// Stores a run's outcome (JSON) and weights, and marks it done, in one transaction.
    pub fn finish_run(
        &self,
        run: u64,
        outcome_json: &[u8],
        weights: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(OUTCOMES)
            .map_err(db)?
            .insert(run, outcome_json)
            .map_err(db)?;
        tx.open_table(WEIGHTS)
            .map_err(db)?
            .insert(run, weights)
            .map_err(db)?;
        {
            let mut p = tx.open_table(PROGRESS).map_err(db)?;
            p.insert(run, Step::Done as u8).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// A run's outcome (JSON).
    pub fn outcome(&self, run: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_u64(OUTCOMES, run)
    }

    /// Runs with an outcome, oldest first.
    pub fn runs(&self) -> Result<Vec<u64>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(OUTCOMES).map_err(db)?;
        let mut out = Vec::new();
        for e in t.iter().map_err(db)? {
            out.push(e.map_err(db)?.0.value());
        }
        Ok(out)
    }

    /// The weights decided for `run`.
    pub fn weights(&self, run: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_u64(WEIGHTS, run)
    }

    /// Stores a named blob (the divergence window, …).
    pub fn put_meta(&self, name: &str, v: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(META)
            .map_err(db)?
            .insert(name, v)
            .map_err(db)?;
        tx.commit().map_err(db)
    }

    /// A named blob.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(META).map_err(db)?;
        Ok(t.get(name).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// The metagraph `run` was scored against.
    pub fn members(&self, run: u64) -> Result<Option<Vec<Member>>, StoreError> {
        match self.meta(&format!("members:{run}"))? {
            None => Ok(None),
            Some(b) => Vec::<Member>::decode(&mut &b[..]).map(Some).map_err(db),
        }
    }

    /// Changes `run`'s miner-hosted state with `f`, in one transaction.
    fn update_hosted(&self, run: u64, f: impl FnOnce(&mut HostedState)) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(HOSTED).map_err(db)?;
            let mut h = match t.get(run).map_err(db)? {
                Some(v) => HostedState::decode(&mut v.value()).map_err(db)?,
                None => HostedState::default(),
            };
            f(&mut h);
            t.insert(run, &h.encode()[..]).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn hosted(&self, run: u64) -> Result<HostedState, StoreError> {
        match self.get_u64(HOSTED, run)? {
            None => Ok(HostedState::default()),
            Some(b) => HostedState::decode(&mut &b[..]).map_err(db),
        }
    }

    /// This node's verdicts on `run`'s hosters (miner-hosted mode).
    pub fn hosted_verdicts(
        &self,
        run: u64,
    ) -> Result<Option<Vec<tally_validator::HostedVerdict>>, StoreError> {
        Ok(self.hosted(run)?.verdicts)
    }

    /// The most recent `limit` runs the node has any progress for, with what a restarted
    /// machine needs, and the divergence window.
    pub fn load(&self, limit: usize) -> Result<Stored, StoreError> {
        let runs: Vec<(u64, u8)> = {
            let tx = self.db.begin_read().map_err(db)?;
            let t = tx.open_table(PROGRESS).map_err(db)?;
            let mut v = std::collections::BTreeMap::new();
            for e in t.iter().map_err(db)?.rev().take(limit) {
                let (k, s) = e.map_err(db)?;
                v.insert(k.value(), s.value());
            }
            // runs with only miner-hosted state so far (a snapshot taken before scoring)
            let h = tx.open_table(HOSTED).map_err(db)?;
            for e in h.iter().map_err(db)?.rev().take(limit) {
                let (k, _) = e.map_err(db)?;
                v.entry(k.value()).or_insert(0);
            }
            v.into_iter().rev().take(limit).collect()
        };
        let mut out = Stored {
            runs: Vec::new(),
            divergence: self.meta("divergence")?,
        };
        for (run, step) in runs {
            let hosted = self.hosted(run)?;
            out.runs.push(StoredRun {
                run,
                step: Step::from_u8(step),
                own_report: self.own_report(run)?,
                members: self.members(run)?,
                hoster_commits: hosted.commits,
                hosted: hosted.verdicts,
                challenge_sent: hosted.challenge_sent,
                revealed: self.revealed(run)?,
            });
        }
        Ok(out)
    }

    /// Applies one write the machine asked for, as one transaction. A finished run's outcome
    /// is stamped with `now_ms`.
    pub fn apply(&self, p: &Persist, now_ms: u64) -> Result<(), StoreError> {
        match p {
            Persist::OwnReport { run, wire, scores } => {
                self.put_own_report(*run, wire, scores).map(|_| ())
            }
            Persist::Members { run, members } => {
                self.put_meta(&format!("members:{run}"), &members.encode())
            }
            Persist::Step { run, step } => self.mark(*run, *step),
            Persist::Snapshot { run, commits } => self.put_snapshot(*run, commits),
            Persist::PeerReport {
                run,
                validator,
                wire,
            } => self.put_peer_report(*run, validator, wire),
            Persist::Rejected {
                run,
                validator,
                reason,
            } => self.put_rejected(*run, validator, reason),
            Persist::Evidence { bytes } => self.put_evidence(bytes).map(|_| ()),
            Persist::Divergence { bytes } => self.put_meta("divergence", bytes),
            Persist::HosterSnapshot { run, commits } => self.update_hosted(*run, |h| {
                h.commits.get_or_insert_with(|| commits.clone());
            }),
            Persist::Hosted { run, verdicts } => self.update_hosted(*run, |h| {
                h.verdicts.get_or_insert_with(|| verdicts.clone());
            }),
            Persist::ChallengeSent { run } => self.update_hosted(*run, |h| h.challenge_sent = true),
            Persist::Finish { outcome } => {
                let mut o = (**outcome).clone();
                o.aggregated_at_ms = Some(now_ms);
                self.finish_run(
                    o.run,
                    &o.to_json(),
                    &o.uid_weights.clone().unwrap_or_default().encode(),
                )
            }
        }
    }

    /// A run's typed outcome.
    pub fn run_outcome(&self, run: u64) -> Result<Option<RunOutcome>, StoreError> {
        match self.outcome(run)? {
            None => Ok(None),
            Some(b) => RunOutcome::from_json(&b).map(Some).map_err(StoreError::Db),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_state_and_the_revealed_mark_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.redb");
        let h = |i: u8| Hotkey([i; 32]);
        let verdict = |i: u8, reason: Option<&str>| tally_validator::HostedVerdict {
            hoster: h(i),
            score: tally_core::Score::ZERO,
            reason: reason.map(str::to_string),
        };
        {
            let s = NodeStore::open(&path).unwrap();
            // run 7: only hosted state so far (a snapshot taken before the report was signed)
            s.apply(
                &Persist::HosterSnapshot {
                    run: 7,
                    commits: vec![(h(1), [1; 32])],
                },
                0,
            )
            .unwrap();
            // the first snapshot and verdicts stay
            s.apply(
                &Persist::HosterSnapshot {
                    run: 7,
                    commits: vec![(h(2), [2; 32])],
                },
                0,
            )
            .unwrap();
            s.apply(&Persist::ChallengeSent { run: 7 }, 0).unwrap();
            s.apply(
                &Persist::Hosted {
                    run: 7,
                    verdicts: vec![verdict(1, Some("no_reveal"))],
                },
                0,
            )
            .unwrap();
            s.apply(
                &Persist::Hosted {
                    run: 7,
                    verdicts: vec![verdict(1, None)],
                },
                0,
            )
            .unwrap();
            // run 5 revealed then done; run 6 done without a reveal
            s.mark(5, Step::Revealed).unwrap();
            s.mark(5, Step::Done).unwrap();
            s.mark(6, Step::Done).unwrap();
        }
        let s = NodeStore::open(&path).unwrap();
        let l = s.load(8).unwrap();
        let run = |r: u64| l.runs.iter().find(|x| x.run == r).unwrap().clone();
        let r7 = run(7);
        assert_eq!(r7.step, None);
        assert_eq!(r7.hoster_commits, Some(vec![(h(1), [1; 32])]));
        assert_eq!(r7.hosted, Some(vec![verdict(1, Some("no_reveal"))]));
        assert!(r7.challenge_sent);
        assert!(run(5).revealed && run(5).step == Some(Step::Done));
        assert!(!run(6).revealed);
        // the newest runs first, at most `limit`
        assert_eq!(
            s.load(2)
                .unwrap()
                .runs
                .iter()
                .map(|r| r.run)
                .collect::<Vec<_>>(),
            vec![7, 6]
        );
    }

    #[test]
    fn own_report_is_never_replaced_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.redb");
        let s = NodeStore::open(&p).unwrap();
        assert_eq!(s.put_own_report(5, b"first", b"s").unwrap(), b"first");
        assert_eq!(s.put_own_report(5, b"second", b"t").unwrap(), b"first");
        assert_eq!(s.progress(5).unwrap(), Some(Step::Scored));
        s.mark(5, Step::Revealed).unwrap();
        s.mark(5, Step::Committed).unwrap(); // never backwards
        let v = Hotkey([3; 32]);
        s.put_peer_report(5, &v, b"peer").unwrap();
        s.put_peer_report(6, &v, b"other run").unwrap();
        s.put_rejected(5, &Hotkey([4; 32]), "equivocation").unwrap();
        s.put_snapshot(5, &[(v, [1; 32])]).unwrap();
        s.put_snapshot(5, &[(v, [2; 32])]).unwrap(); // first stays
        s.put_evidence(b"proof").unwrap();
        s.finish_run(5, b"{}", b"w").unwrap();
        drop(s);
        let s = NodeStore::open(&p).unwrap();
        assert_eq!(s.own_report(5).unwrap().unwrap(), b"first");
        assert_eq!(s.progress(5).unwrap(), Some(Step::Done));
        assert_eq!(s.peer_reports(5).unwrap(), vec![(v, b"peer".to_vec())]);
        assert_eq!(
            s.rejected(5).unwrap(),
            vec![(Hotkey([4; 32]), "equivocation".to_string())]
        );
        assert_eq!(s.snapshot(5).unwrap().unwrap(), vec![(v, [1; 32])]);
        assert_eq!(s.evidence().unwrap().len(), 1);
        assert_eq!(s.runs().unwrap(), vec![5]);
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.redb");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let e = NodeStore::open(&p).err().unwrap().to_string();
        assert!(e.contains("move it away"), "{e}");
    }
}
