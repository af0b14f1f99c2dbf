//! [`ExecScorer`]: the validator measures miners first-hand by running their submissions.
//!
//! For each run it fetches the owner's roster, checks it is signed by the pinned owner hotkey
//! for this netuid, run and family (refusing it otherwise), fetches each listed archive through
//! the bounded cache that refuses bytes not hashing to the roster's pin, runs the family's tasks
//! (derived from the run's challenge seed) in the fuel-metered sandbox, and scores each miner by
//! its mean task score against the validator's own reference. A miner with no usable submission
//! scores 0; a miner this validator could not evaluate for reasons of its own (archive
//! unavailable, compile past this node's deadline) is left out of the report (abstain).

use crate::peer::{PeerClient, PeerPath};
use crate::scorer::Scorer;
use std::sync::Arc;
use std::time::Instant;
use tally_core::hash::Hash32;
use tally_core::{FamilyId, Hotkey, RosterBody, Score, Signed};
use tally_exec::archive::ArchiveCache;
use tally_exec::runtime::WasmRuntime;
use tally_exec::Family;
use tracing::warn;

/// Scores miners by executing their submissions.
pub struct ExecScorer {
    /// The owner's endpoint (`host:port`).
    pub owner_addr: String,
    /// The pinned owner hotkey.
    pub owner: Hotkey,
    /// The subnet.
    pub netuid: u16,
    /// The family id in rosters.
    pub family_id: FamilyId,
    /// The sandbox.
    pub runtime: Arc<WasmRuntime>,
    /// The family.
    pub family: Arc<dyn Family>,
    /// Verified archives.
    pub cache: ArchiveCache,
    /// Signed HTTP client.
    pub peers: PeerClient,
    /// Tasks per run.
    pub tasks: usize,
    /// The validator's ledger of tool calls (bounded: the oldest go first).
    pub ledger: std::sync::Mutex<std::collections::VecDeque<tally_exec::runtime::ToolCall>>,
}

/// How often a roster the owner has not signed yet (404) is asked for, and how far apart.
const ROSTER_TRIES: u32 = 60;
const ROSTER_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Most tool calls the ledger keeps.
pub const LEDGER_CAP: usize = 10_000;

impl ExecScorer {
    fn roster(&self, run: u64, deadline: Instant) -> Result<Signed<RosterBody>, String> {
        // the owner signs a run's roster once it sees the chain reach the run, which may be a
        // moment after this validator does: a 404 is asked again for a bounded time, never
        // past the scoring deadline
        let mut tries = 0;
        let (status, body) = loop {
            let (status, body) = self
                .peers
                .get(&self.owner, &self.owner_addr, &PeerPath::roster(run))
                .map_err(|e| e.to_string())?;
            tries += 1;
            if status != 404 || tries >= ROSTER_TRIES || Instant::now() + ROSTER_RETRY >= deadline {
                break (status, body);
            }
            std::thread::sleep(ROSTER_RETRY);
        };
        if status != 200 {
            return Err(format!("owner answered HTTP {status} for the roster"));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let wire = hex::decode(v["wire"].as_str().ok_or("no wire")?).map_err(|e| e.to_string())?;
        let r = Signed::<RosterBody>::from_bytes(&wire).map_err(|e| e.to_string())?;
        r.verify_for(&self.owner, self.netuid, run, &self.family_id)
            .map_err(|e| format!("roster refused: {e}"))?;
        Ok(r)
    }

    /// The miner's score, or `None` when this validator could not evaluate it for reasons of
    /// its own (the archive could not be fetched or did not match the roster's pin, or its
    /// compile did not fit this node's deadline): then it abstains on the miner instead of
    /// scoring a 0 the miner did not earn.
    fn miner_score(
        &self,
        roster: &Signed<RosterBody>,
        miner: &Hotkey,
        seed: &Hash32,
        deadline: Instant,
    ) -> Option<Score> {
        let Some(m) = roster.member(miner) else {
            return Some(Score::ZERO);
        };
        let id = String::from_utf8_lossy(&m.submission_id).into_owned();
        let fetch = || {
            let path = PeerPath::archive(&id).map_err(|e| e.to_string())?;
            let (status, body) = self
                .peers
                .get(&self.owner, &self.owner_addr, &path)
                .map_err(|e| e.to_string())?;
            if status == 200 {
                Ok(body)
            } else {
                Err(format!("HTTP {status}"))
            }
        };
        let archive = match self.cache.get_or_fetch(&m.archive_sha256, fetch) {
            Ok(a) => a,
            Err(e) => {
                warn!(miner = %miner, "archive unavailable, abstaining on this miner: {e}");
                return None;
            }
        };
        let module = match self
            .runtime
            .load_until(&archive, self.family.imports(), deadline)
        {
            Ok(m) => m,
            Err(e @ tally_exec::Failure::Busy(_)) => {
                warn!(miner = %miner, "abstaining on this miner: {e}");
                return None;
            }
            Err(e) => {
                warn!(miner = %miner, "submission does not load: {e}");
                return Some(Score::ZERO);
            }
        };
        let tasks = self.family.tasks(seed, self.tasks.max(1));
        let mut limits = tally_exec::runtime::Limits::default();
        // the evaluation ends by the scoring deadline; one it cut short says nothing about the
        // miner, so the validator abstains on it rather than scoring the cut
        limits.wall = limits
            .wall
            .min(deadline.saturating_duration_since(Instant::now()));
        let ev = tally_exec::family::evaluate(
            self.family.as_ref(),
            &self.runtime,
            &module,
            &tasks,
            &limits,
            &id,
        );
        if Instant::now() >= deadline {
            warn!(miner = %miner, "the scoring deadline cut this miner's evaluation: abstaining");
            return None;
        }
        if let Ok(mut l) = self.ledger.lock() {
            l.extend(ev.tool_calls);
            while l.len() > LEDGER_CAP {
                l.pop_front();
            }
        }
        Some(ev.score)
    }
}

impl Scorer for ExecScorer {
    fn score(
        &self,
        run: u64,
        seed: &Hash32,
        _validator: &Hotkey,
        miners: &[Hotkey],
        deadline: Instant,
    ) -> Vec<(Hotkey, Score)> {
        let roster = match self.roster(run, deadline) {
            Ok(r) => r,
            Err(e) => {
                warn!(run, "no usable roster: {e}");
                return Vec::new();
            }
        };
        let mut scores = Vec::new();
        for (i, m) in miners.iter().enumerate() {
            if Instant::now() >= deadline {
                warn!(
                    run,
                    "scoring deadline reached: abstaining on the {} miners not evaluated yet",
                    miners.len() - i
                );
                break;
            }
            if let Some(s) = self.miner_score(&roster, m, seed, deadline) {
                scores.push((*m, s));
            }
        }
        scores
    }
}
