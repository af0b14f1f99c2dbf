//! Byzantine actors: each wraps an honest [`Machine`] and changes what it publishes, using only
//! the machine's own vocabulary of inputs and effects, so the same adversary runs in the
//! simulator and (for the strategies the devnet offers) under the real tokio driver.
//!
//! | strategy | what it does | who gains | expected outcome |
//! | --- | --- | --- | --- |
//! | `inflate` | scores its lowest miner 1.0, commits and reveals that consistently | a validator boosting a miner | kept, but the median does not move past the honest range |
//! | `equivocate` | serves the committed report over HTTP and a different signed one in the DHT | a validator showing peers different scores | proven and excluded (`equivocation`) |
//! | `copy` | reveals a re-signed copy of a peer's report instead of what it committed | a lazy validator | excluded (`commitment_mismatch`) |
//! | `withhold` | commits, never reveals | a validator hiding its scores | excluded (`no_report`) |
//! | `forge` | serves a report signed by another key | an outsider posing as a validator | excluded (`wrong_signer`) |
//! | `commit-late` | skips its commitment, copies a peer's revealed report and commits to it late | a lazy validator copying weights | excluded (`no_commitment`) |
//! | `split-view` | shows its report to some peers only, publishes nothing in the DHT | a validator splitting honest views | honest validators still agree |
//! | `lone-score` | scores only its lowest miner, at 1.0, abstaining on every other | a minority deciding a miner honest validators abstained on | kept; the coverage rule leaves a miner unscored unless the quorum's share of eligible stake scored it |
//! | `sway` | sets weights every block, alternating between its runner-up miner and the burn uid, so the live winner on chain changes from block to block | a validator making honest validators crown different miners | honest validators read the incumbent as of the block the run fixes and agree |
//! | `split-reports` | serves its committed report to some peers and a different signed one to the others, nothing in the DHT | a validator showing peers different scores | the exchange at reveal close brings both together: proven and excluded (`equivocation`) by every honest validator |
//! | `silent` | goes silent mid-run, after committing | a validator that stalls the subnet | excluded (`no_report`); quorum holds while honest stake suffices |

use parity_scale_codec::Encode;
use tally_core::{hash::Hash32, Hotkey, Keypair, ReportBody, Score, ScoreReport};
use tally_protocol::rules::commitment_data;
use tally_protocol::Kind;
use tally_validator::{Actor, Effect, Input, Machine, Member, Target};

/// A byzantine strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strategy {
    /// Boost one miner to 1.0.
    Inflate,
    /// Different reports over HTTP and in the DHT.
    Equivocate,
    /// Reveal a re-signed copy of a peer's report.
    Copy,
    /// Commit, never reveal.
    Withhold,
    /// Serve a report signed by another key.
    Forge,
    /// Copy a revealed report and commit to it late.
    CommitLate,
    /// Show the report to some peers only.
    SplitView,
    /// Go silent after committing.
    Silent,
    /// Score one miner only, at 1.0.
    LoneScore,
    /// Flip the weights on chain every block.
    Sway,
    /// Different reports to different peers over HTTP.
    SplitReports,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 11] = [
        Strategy::Inflate,
        Strategy::Equivocate,
        Strategy::Copy,
        Strategy::Withhold,
        Strategy::Forge,
        Strategy::CommitLate,
        Strategy::SplitView,
        Strategy::Silent,
        Strategy::LoneScore,
        Strategy::Sway,
        Strategy::SplitReports,
    ];
    /// The strategies the devnet offers (they need nothing but HTTP, the DHT and the chain).
    pub const DEVNET: [Strategy; 5] = [
        Strategy::Inflate,
        Strategy::Equivocate,
        Strategy::Copy,
        Strategy::Withhold,
        Strategy::Forge,
    ];

    /// The strategy's name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Inflate => "inflate",
            Strategy::Equivocate => "equivocate",
            Strategy::Copy => "copy",
            Strategy::Withhold => "withhold",
            Strategy::Forge => "forge",
            Strategy::CommitLate => "commit-late",
            Strategy::SplitView => "split-view",
            Strategy::Silent => "silent",
            Strategy::LoneScore => "lone-score",
            Strategy::Sway => "sway",
            Strategy::SplitReports => "split-reports",
        }
    }

    /// The reason honest validators give when they leave this strategy out, if they do.
    pub fn expected_exclusion(self) -> Option<&'static str> {
        match self {
            Strategy::Inflate | Strategy::SplitView | Strategy::LoneScore | Strategy::Sway => None,
            Strategy::Equivocate | Strategy::SplitReports => Some("equivocation"),
            Strategy::Copy => Some("commitment_mismatch"),
            Strategy::Withhold | Strategy::Silent => Some("no_report"),
            Strategy::Forge => Some("wrong_signer"),
            Strategy::CommitLate => Some("no_commitment"),
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Strategy::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown byzantine strategy {s:?}: use {}",
                    Strategy::ALL.map(|x| x.name()).join(", ")
                )
            })
    }
}

/// The scores of a report's wire bytes, each replaced by `1 - score`.
fn flipped(wire: &[u8]) -> Vec<(Hotkey, Score)> {
    ScoreReport::from_bytes(wire)
        .map(|r| {
            r.body()
                .scores
                .iter()
                .map(|(k, s)| {
                    (
                        *k,
                        Score::saturating_from_units(1_000_000_000 - s.units() as u64),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The half of the peers a split view shows its committed report to. (Not the first byte's
/// parity: a Ristretto encoding's lowest bit is always 0.)
fn shown_half(peer: &Hotkey) -> bool {
    peer.0[1].is_multiple_of(2)
}

/// Request ids the adversary uses for its own fetches (far above the machine's).
const OWN_REQ: u64 = 1 << 62;

/// An honest machine wrapped by a strategy.
pub struct Byzantine {
    inner: Machine,
    strategy: Strategy,
    key: Keypair,
    salt: u64,
    members: Vec<Member>,
    /// Runs whose copy is still wanted: `run -> outstanding request`.
    copying: std::collections::BTreeMap<u64, Option<u64>>,
    next_req: u64,
    silent: bool,
    /// `sway`: the uids it alternates between (runner-up, burn).
    sway: Option<(u16, u16)>,
    burn: u16,
    /// `split-reports`: the other report, by run (the last few).
    alt: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl Byzantine {
    /// Wraps `inner`, which signs with `key`.
    pub fn new(inner: Machine, key: Keypair, strategy: Strategy) -> Byzantine {
        Byzantine {
            inner,
            strategy,
            key,
            salt: 0,
            members: Vec::new(),
            copying: Default::default(),
            next_req: OWN_REQ,
            silent: false,
            sway: None,
            burn: 0,
            alt: Default::default(),
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    fn sign(&mut self, run: u64, scores: Vec<(Hotkey, Score)>, key: &Keypair) -> Option<Vec<u8>> {
        self.salt += 1;
        let salt: Hash32 = tally_core::sha256(&(self.key.hotkey(), run, self.salt).encode());
        let cfg = self.inner.config();
        let body =
            ReportBody::new(cfg.netuid, run, cfg.family.clone(), key.hotkey(), scores).ok()?;
        ScoreReport::sign(body, salt, key)
            .ok()
            .map(|r| r.to_bytes())
    }

    fn fetch_peers(&mut self, run: u64) -> Effect {
        let me = self.key.hotkey();
        let req = self.next_req;
        self.next_req += 1;
        self.copying.insert(run, Some(req));
        Effect::FetchReports {
            req,
            run,
            targets: self
                .members
                .iter()
                .filter(|m| m.validator_permit && m.hotkey != me)
                .map(|m| Target {
                    hotkey: m.hotkey,
                    axon: m.axon.clone(),
                    http: true,
                    dht: true,
                    evidence: false,
                    relay: false,
                })
                .collect(),
            known: Vec::new(),
        }
    }

    fn rewrite(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        let mut out = Vec::new();
        for e in effects {
            match (self.strategy, e) {
                (Strategy::SplitReports, Effect::Serve { run, wire }) => {
                    let key = self.key.clone();
                    if let Some(w) = self.sign(run, flipped(&wire), &key) {
                        self.alt.insert(run, w);
                        while self.alt.len() > 8 {
                            self.alt.pop_first();
                        }
                    }
                    out.push(Effect::Serve { run, wire });
                }
                (
                    Strategy::Withhold | Strategy::SplitView | Strategy::SplitReports,
                    Effect::Publish {
                        kind: Kind::ValidatorReveal,
                        ..
                    },
                ) => {}
                (Strategy::Withhold, Effect::Serve { .. }) => {}
                (
                    Strategy::Equivocate,
                    Effect::Publish {
                        kind: Kind::ValidatorReveal,
                        run,
                        payload,
                    },
                ) => {
                    let shifted = flipped(&payload);
                    let key = self.key.clone();
                    if let Some(w) = self.sign(run, shifted, &key) {
                        out.push(Effect::Publish {
                            kind: Kind::ValidatorReveal,
                            run,
                            payload: w,
                        });
                    }
                }
                (Strategy::Forge, Effect::Serve { run, wire }) => {
                    let other = Keypair::from_seed(&tally_core::sha256(&self.key.hotkey().0))
                        .deterministic();
                    let scores = ScoreReport::from_bytes(&wire)
                        .map(|r| r.body().scores.to_vec())
                        .unwrap_or_default();
                    if let Some(w) = self.sign(run, scores, &other) {
                        out.push(Effect::Serve { run, wire: w });
                    }
                }
                (
                    Strategy::Forge,
                    Effect::Publish {
                        kind: Kind::ValidatorReveal,
                        ..
                    },
                ) => {}
                (
                    Strategy::Copy | Strategy::CommitLate,
                    Effect::Publish {
                        kind: Kind::ValidatorReveal,
                        ..
                    },
                ) => {}
                (Strategy::Copy | Strategy::CommitLate, Effect::Serve { run, .. }) => {
                    out.push(self.fetch_peers(run));
                }
                (
                    Strategy::CommitLate,
                    Effect::PostCommitment { .. }
                    | Effect::Publish {
                        kind: Kind::ValidatorCommit,
                        ..
                    },
                ) => {}
                (_, e) => out.push(e),
            }
        }
        out
    }

    /// A copy of the first peer report among `fetched`, re-signed.
    fn copied(&mut self, run: u64, fetched: &[tally_validator::Fetched]) -> Option<Vec<u8>> {
        let scores = fetched
            .iter()
            .filter_map(|f| f.http.as_ref().or(f.dht.as_ref()))
            .find_map(|w| ScoreReport::from_bytes(w).ok())?
            .body()
            .scores
            .to_vec();
        let key = self.key.clone();
        self.sign(run, scores, &key)
    }
}

impl Actor for Byzantine {
    fn handle(&mut self, input: Input) -> Vec<Effect> {
        if self.silent {
            return Vec::new();
        }
        let input = match input {
            Input::Scored {
                run,
                result: Ok(scores),
            } if self.strategy == Strategy::Sway => {
                let mut ranked = scores.clone();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let uid = |h: &Hotkey| self.members.iter().find(|m| m.hotkey == *h).map(|m| m.uid);
                if let Some(second) = ranked.get(1).and_then(|e| uid(&e.0)) {
                    self.sway = Some((second, self.burn));
                }
                Input::Scored {
                    run,
                    result: Ok(scores),
                }
            }
            Input::Snapshot { req, result: Ok(s) } => {
                self.members = s.members.clone();
                self.burn = s.params.burn_uid;
                Input::Snapshot { req, result: Ok(s) }
            }
            Input::Scored {
                run,
                result: Ok(mut scores),
            } if matches!(self.strategy, Strategy::Inflate | Strategy::LoneScore) => {
                if let Some(low) = scores.iter_mut().min_by_key(|s| s.1) {
                    low.1 = Score::ONE;
                }
                if self.strategy == Strategy::LoneScore {
                    scores.retain(|s| s.1 == Score::ONE);
                    scores.truncate(1);
                }
                Input::Scored {
                    run,
                    result: Ok(scores),
                }
            }
            Input::Reports { req, run, fetched } if req >= OWN_REQ => {
                if self.copying.get(&run) != Some(&Some(req)) {
                    return Vec::new();
                }
                let Some(w) = self.copied(run, &fetched) else {
                    // nothing revealed yet: ask again on the next head
                    self.copying.insert(run, None);
                    return Vec::new();
                };
                self.copying.remove(&run);
                let mut out = Vec::new();
                if self.strategy == Strategy::CommitLate {
                    if let Ok(r) = ScoreReport::from_bytes(&w) {
                        out.push(Effect::PostCommitment {
                            run,
                            data: commitment_data(run, &r.commitment()),
                        });
                    }
                }
                out.push(Effect::Serve {
                    run,
                    wire: w.clone(),
                });
                out.push(Effect::Publish {
                    kind: Kind::ValidatorReveal,
                    run,
                    payload: w,
                });
                return out;
            }
            other => other,
        };
        let committed_run = match &input {
            Input::Committed {
                run, result: Ok(_), ..
            } => Some(*run),
            _ => None,
        };
        let mut out = Vec::new();
        if let (Input::Head(h), Some((a, b))) = (&input, self.sway) {
            let uid = if h.number % 2 == 0 { a } else { b };
            out.push(Effect::SetWeights {
                run: u64::MAX,
                weights: vec![(uid, u16::MAX)],
            });
        }
        if let Input::Head(_) = &input {
            let retry: Vec<u64> = self
                .copying
                .iter()
                .filter(|(_, r)| r.is_none())
                .map(|(k, _)| *k)
                .collect();
            for run in retry {
                out.push(self.fetch_peers(run));
            }
        }
        let inner = self.inner.handle(input);
        // commit-late skips the commitment but lets its machine believe it was made
        let fake: Vec<u64> = if self.strategy == Strategy::CommitLate {
            inner
                .iter()
                .filter_map(|e| match e {
                    Effect::PostCommitment { run, .. } => Some(*run),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        out.extend(self.rewrite(inner));
        for run in fake {
            let more = self.inner.handle(Input::Committed { run, result: Ok(0) });
            out.extend(self.rewrite(more));
        }
        if self.strategy == Strategy::Silent && committed_run.is_some() {
            self.silent = true;
        }
        out
    }

    fn serves_to(&self, _run: u64, peer: &Hotkey) -> bool {
        self.strategy != Strategy::SplitView || shown_half(peer)
    }

    fn shown_to(&self, run: u64, peer: &Hotkey) -> Option<Vec<u8>> {
        if self.strategy != Strategy::SplitReports || shown_half(peer) {
            return None;
        }

        self.alt.get(&run).cloned()
    }
}
