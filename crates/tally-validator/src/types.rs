//! The machine's vocabulary: what it is told ([`Input`]) and what it asks for ([`Effect`]),
//! and the chain data it reasons about.
//!
//! Every effect that expects an answer carries a request id (`req`) or a run; the driver answers
//! each with exactly one input naming the same id, with an error string when the call failed
//! (the machine then retries on a later head). Effects are independent: a driver may run them
//! concurrently.

use parity_scale_codec::{Decode, Encode};
use tally_core::hash::Hash32;
use tally_core::{Hotkey, Score};
use tally_protocol::payload::{HosterReveal, Tensor};
use tally_protocol::{ChainTime, ChainView, Kind};

use crate::outcome::RunOutcome;

/// A registered neuron as the machine sees it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Member {
    /// Its uid.
    pub uid: u16,
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its stake.
    pub stake: u64,
    /// Whether it holds a validator permit.
    pub validator_permit: bool,
    /// Its HTTP endpoint (`host:port`), possibly empty.
    pub axon: String,
}

/// The subnet parameters the machine needs.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct NetParams {
    /// Blocks per epoch.
    pub epoch_length: u64,
    /// Block at which epoch 0 starts.
    pub epoch_offset: u64,
    /// Target milliseconds per block.
    pub block_ms: u64,
    /// Minimum stake of a validator whose reports count.
    pub min_validator_stake: u64,
    /// The uid that receives weight when there is no winner.
    pub burn_uid: u16,
}

/// A head block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Height.
    pub number: u64,
    /// Unix milliseconds at which the node saw this head (its own clock). The drivers pass the
    /// observation time rather than the block's timestamp: the machine extrapolates the chain's
    /// position from it, and a development chain's block timestamps can be far from any clock.
    pub timestamp_ms: u64,
}

/// What the chain says at the start of an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// The epoch the snapshot was read for.
    pub epoch: u64,
    /// Subnet parameters.
    pub params: NetParams,
    /// The metagraph.
    pub members: Vec<Member>,
    /// Challenge seeds of recent epochs (at least `epoch` once its first block exists).
    pub seeds: Vec<(u64, Hash32)>,
}

impl ChainSnapshot {
    /// The subnet's epoch clock.
    pub fn clock(&self) -> tally_protocol::EpochClock {
        tally_protocol::EpochClock {
            length: self.params.epoch_length,
            offset: self.params.epoch_offset,
        }
    }
    /// Whether this snapshot is the one for `block`'s epoch (a block before the first epoch
    /// has none, and any snapshot does for it): a node reads the chain again when it is not.
    pub fn covers(&self, block: u64) -> bool {
        self.clock().epoch_of(block).is_none_or(|e| e == self.epoch)
    }
    /// The challenge seed of `epoch`, if the snapshot holds it.
    pub fn seed(&self, epoch: u64) -> Option<Hash32> {
        self.seeds.iter().find(|(e, _)| *e == epoch).map(|x| x.1)
    }
}

/// How far a run has got, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Step {
    /// Scored and report signed.
    Scored = 1,
    /// Commitment posted (chain and DHT).
    Committed = 2,
    /// Revealed (DHT record published; HTTP serves it).
    Revealed = 3,
    /// Aggregated and weights decided.
    Done = 4,
}

impl Step {
    /// From its stored byte.
    pub fn from_u8(v: u8) -> Option<Step> {
        match v {
            1 => Some(Step::Scored),
            2 => Some(Step::Committed),
            3 => Some(Step::Revealed),
            4 => Some(Step::Done),
            _ => None,
        }
    }
}

/// One run as the store holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredRun {
    /// The run.
    pub run: u64,
    /// The last step done.
    pub step: Option<Step>,
    /// The node's own signed report (exact wire bytes).
    pub own_report: Option<Vec<u8>>,
    /// The metagraph the run was scored against.
    pub members: Option<Vec<Member>>,
    /// Miner-hosted mode: the hoster commits snapshotted when the run's commit window closed.
    pub hoster_commits: Option<Vec<(Hotkey, Hash32)>>,
    /// Miner-hosted mode: this node's verdict on each hoster.
    pub hosted: Option<Vec<HostedVerdict>>,
    /// Miner-hosted mode: this node published the run's challenge (it is not published again).
    pub challenge_sent: bool,
    /// The node revealed its report for the run (a run can be done without: it was never
    /// committed; such a report is never served).
    pub revealed: bool,
}

/// A validator's verdict on one hoster for a run: its score, and why it is 0 when it is.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HostedVerdict {
    /// The hoster.
    pub hoster: Hotkey,
    /// Its score.
    pub score: Score,
    /// Why it scores 0 (`no_commit`, `no_reveal`, `mismatch`, `bad_output`, `inaccurate`), if
    /// it does.
    pub reason: Option<String>,
}

/// What a restarted node reads back from its store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Recent runs, any order.
    pub runs: Vec<StoredRun>,
    /// The divergence window.
    pub divergence: Option<Vec<u8>>,
}

/// A validator to fetch a report from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its HTTP endpoint (empty: skip HTTP).
    pub axon: String,
    /// Fetch its report over HTTP.
    pub http: bool,
    /// Read its `validator-reveal` record from the DHT.
    pub dht: bool,
    /// Ask it for the equivocation proofs it holds.
    pub evidence: bool,
    /// Ask it for the other validators' reports it holds (the exchange at reveal close).
    pub relay: bool,
}

/// A report this node holds for another validator, as served at the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldReport {
    /// Its signer.
    pub validator: Hotkey,
    /// SHA-256 of `wire`.
    pub digest: Hash32,
    /// Wire bytes.
    pub wire: Vec<u8>,
}

/// What was fetched for one validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The validator.
    pub hotkey: Hotkey,
    /// Its report over HTTP (wire bytes), if it answered.
    pub http: Option<Vec<u8>>,
    /// Its `validator-reveal` DHT record's report (wire bytes), if one passed the predicate.
    pub dht: Option<Vec<u8>>,
    /// Equivocation proofs it served.
    pub evidence: Vec<Vec<u8>>,
    /// Other validators' reports it holds and served, those whose digests the asker did not
    /// know (wire bytes; the receiver keeps at most one per eligible validator and checks each
    /// like any copy).
    pub relayed: Vec<Vec<u8>>,
    /// Whether it answered the exchange with the list of what it holds (a peer that did not
    /// was not reached and is asked again).
    pub exchanged: bool,
}

impl Fetched {
    /// Nothing fetched yet for `hotkey`.
    pub fn empty(hotkey: Hotkey) -> Fetched {
        Fetched {
            hotkey,
            http: None,
            dht: None,
            evidence: Vec::new(),
            relayed: Vec::new(),
            exchanged: false,
        }
    }
}

/// The owner's pick for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerPick {
    /// Its winner.
    pub winner: Hotkey,
    /// Its scores, sorted by hotkey.
    pub scores: Vec<(Hotkey, Score)>,
}

/// What the outside world tells the machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// The state read back from the store after a (re)start; the first input.
    Restore(Stored),
    /// A new head block.
    Head(Head),
    /// The answer to [`Effect::ReadChain`].
    Snapshot {
        /// Request id.
        req: u64,
        /// The snapshot, or why it could not be read.
        result: Result<ChainSnapshot, String>,
    },
    /// The answer to [`Effect::Score`]: the miners' scores, or why the run could not be
    /// evaluated (then the node publishes no report for it).
    Scored {
        /// The run.
        run: u64,
        /// Scores, or the reason there are none.
        result: Result<Vec<(Hotkey, Score)>, String>,
    },
    /// The answer to [`Effect::PostCommitment`]: the inclusion block.
    Committed {
        /// The run.
        run: u64,
        /// Inclusion block, or the chain's error.
        result: Result<u64, String>,
    },
    /// The answer to [`Effect::FetchReports`].
    Reports {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// One entry per target asked (missing entries count as nothing fetched).
        fetched: Vec<Fetched>,
    },
    /// The answer to [`Effect::ReadCommitments`]: `(hotkey, inclusion block, posted bytes)`.
    Commitments {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The commitments, or the chain's error.
        result: Result<Vec<(Hotkey, u64, Vec<u8>)>, String>,
    },
    /// The answer to [`Effect::ReadIncumbent`]: the uid of the winner on chain.
    Incumbent {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The uid, or the chain's error.
        result: Result<Option<u16>, String>,
    },
    /// The answer to [`Effect::FetchOwnerPick`] (`None`: the owner did not answer).
    OwnerPick {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The pick.
        pick: Option<OwnerPick>,
    },
    /// The answer to [`Effect::ReadHosterCommits`]: each hoster's commit found in the DHT.
    HosterCommits {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// `(hoster, commit)`, or why the DHT could not be read.
        result: Result<Vec<(Hotkey, Hash32)>, String>,
    },
    /// The answer to [`Effect::ReadHosted`]: the run's challenge and the hosters' reveals found.
    Hosted {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The elected validator's challenge, if one passed the predicate.
        challenge: Option<Tensor>,
        /// The reveals that passed the predicate (hosters absent here revealed nothing).
        reveals: Vec<(Hotkey, HosterReveal)>,
    },
    /// The answer to [`Effect::ScoreHosted`]: each output's score, or why the reference could
    /// not be computed (the node then abstains on the hosters it would have scored).
    HostedScored {
        /// The run.
        run: u64,
        /// Scores, in any order.
        result: Result<Vec<(Hotkey, Score)>, String>,
    },
    /// The node's DHT refused `hoster`'s reveal for `run` as outside its window (the reason of a
    /// 0 becomes `late_reveal` instead of `no_reveal`; the score does not change).
    LateReveal {
        /// The run.
        run: u64,
        /// The hoster.
        hoster: Hotkey,
    },
    /// The answer to [`Effect::SetWeights`].
    WeightsSet {
        /// The run.
        run: u64,
        /// Inclusion block, or the chain's error.
        result: Result<u64, String>,
    },
}

/// A write to the node's store; each is one transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Persist {
    /// The node's own signed report and its scores (SCALE); marks the run scored. The store
    /// keeps the first report of a run for good.
    OwnReport {
        /// The run.
        run: u64,
        /// Wire bytes.
        wire: Vec<u8>,
        /// `SCALE(Vec<(Hotkey, Score)>)`.
        scores: Vec<u8>,
    },
    /// The metagraph a run is scored against.
    Members {
        /// The run.
        run: u64,
        /// The members.
        members: Vec<Member>,
    },
    /// A step done (never moves backwards).
    Step {
        /// The run.
        run: u64,
        /// The step.
        step: Step,
    },
    /// The commitments that count for a run (the first snapshot stays).
    Snapshot {
        /// The run.
        run: u64,
        /// `(validator, commitment)`.
        commits: Vec<(Hotkey, Hash32)>,
    },
    /// An accepted peer report.
    PeerReport {
        /// The run.
        run: u64,
        /// The validator.
        validator: Hotkey,
        /// Wire bytes.
        wire: Vec<u8>,
    },
    /// Why a validator's report was left out.
    Rejected {
        /// The run.
        run: u64,
        /// The validator.
        validator: Hotkey,
        /// The reason's name.
        reason: &'static str,
    },
    /// An equivocation proof.
    Evidence {
        /// Proof bytes.
        bytes: Vec<u8>,
    },
    /// The divergence window.
    Divergence {
        /// Tracker bytes.
        bytes: Vec<u8>,
    },
    /// The hoster commits that count for a run (the first snapshot stays).
    HosterSnapshot {
        /// The run.
        run: u64,
        /// `(hoster, commit)`.
        commits: Vec<(Hotkey, Hash32)>,
    },
    /// This node's verdicts on the hosters of a run.
    Hosted {
        /// The run.
        run: u64,
        /// One per hoster judged.
        verdicts: Vec<HostedVerdict>,
    },
    /// This node published the run's challenge.
    ChallengeSent {
        /// The run.
        run: u64,
    },
    /// A run's outcome and weights; marks the run done.
    Finish {
        /// The outcome.
        outcome: Box<RunOutcome>,
    },
}

/// What the machine asks the outside world to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Read the parameters, the metagraph and the challenge seeds of the epoch of `at_block`
    /// and the one before; answer with [`Input::Snapshot`].
    ReadChain {
        /// Request id.
        req: u64,
        /// The head block the machine saw.
        at_block: u64,
    },
    /// A new view of the chain for the DHT predicate and the API (known hotkeys, timing).
    View(Box<ChainView>),
    /// The head moved: the chain-time snapshot for the DHT predicate and the API's `425` rule.
    Time(ChainTime),
    /// Score `miners` for `run` from its challenge `seed`; answer with [`Input::Scored`].
    Score {
        /// The run.
        run: u64,
        /// Its challenge seed.
        seed: Hash32,
        /// The miners, in the order to evaluate them.
        miners: Vec<Hotkey>,
        /// Unix milliseconds (by the chain's clock) after which the scorer starts no further
        /// miner and answers with what it has:
        /// [`tally_protocol::rules::scoring_deadline_block`].
        deadline_ms: u64,
    },
    /// Write to the store.
    Persist(Persist),
    /// Post `data` on chain as the node's commitment; answer with [`Input::Committed`].
    PostCommitment {
        /// The run.
        run: u64,
        /// `tally_protocol::rules::commitment_data(run, commitment)`.
        data: Vec<u8>,
    },
    /// Sign and publish a DHT record of `kind` for `run` (fire and forget).
    Publish {
        /// The kind.
        kind: Kind,
        /// The record's epoch.
        run: u64,
        /// The payload.
        payload: Vec<u8>,
    },
    /// Serve `wire` as the node's report for `run` from now on.
    Serve {
        /// The run.
        run: u64,
        /// Wire bytes.
        wire: Vec<u8>,
    },
    /// Serve the other validators' reports this node holds for `run` (one per validator, the
    /// first copy it got), so peers that were not shown a report still get it at the exchange:
    /// peers read the list of digests first and fetch only the reports they lack.
    ServeHeld {
        /// The run.
        run: u64,
        /// One per validator.
        reports: Vec<HeldReport>,
        /// The equivocation proofs it holds for `run` (at most
        /// [`crate::collect::MAX_PROOFS_PER_PEER`]).
        proofs: Vec<Vec<u8>>,
    },
    /// Fetch reports (and proofs) of `targets` for `run`; answer with [`Input::Reports`].
    FetchReports {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// Whom to ask, and what.
        targets: Vec<Target>,
        /// For the exchange: SHA-256 digests of every copy of a report this node holds for the
        /// run, sorted; a peer's held reports with these digests are not fetched.
        known: Vec<Hash32>,
    },
    /// Read every commitment on the subnet made in blocks `[from, to)`; answer with
    /// [`Input::Commitments`].
    ReadCommitments {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// First block.
        from: u64,
        /// End block (exclusive).
        to: u64,
    },
    /// Read the incumbent (the winner on chain); answer with [`Input::Incumbent`].
    ReadIncumbent {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The block to read it as of (`tally_protocol::rules::incumbent_block`).
        at_block: u64,
    },
    /// Ask the owner for its pick; answer with [`Input::OwnerPick`].
    FetchOwnerPick {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
    },
    /// Read each hoster's `hoster-commit` record for `run` from the DHT; answer with
    /// [`Input::HosterCommits`].
    ReadHosterCommits {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The hosters.
        hosters: Vec<Hotkey>,
    },
    /// Read `elected`'s `challenge` record and each hoster's `hoster-reveal` record for `run`;
    /// answer with [`Input::Hosted`].
    ReadHosted {
        /// Request id.
        req: u64,
        /// The run.
        run: u64,
        /// The validator elected to publish the challenge, if any.
        elected: Option<Hotkey>,
        /// The hosters.
        hosters: Vec<Hotkey>,
    },
    /// Score each hoster's revealed output against this node's reference output on `input`;
    /// answer with [`Input::HostedScored`].
    ScoreHosted {
        /// The run.
        run: u64,
        /// The epoch's input.
        input: Tensor,
        /// The outputs whose reveals counted.
        outputs: Vec<(Hotkey, Tensor)>,
    },
    /// Set `weights` (`(uid, u16 share)`) on chain; answer with [`Input::WeightsSet`].
    SetWeights {
        /// The run.
        run: u64,
        /// The weights.
        weights: Vec<(u16, u16)>,
    },
}

/// Anything that takes inputs and returns effects: the honest [`crate::Machine`], or (in the
/// simulator and the devnet only) an adversary that wraps one.
pub trait Actor: Send {
    /// Handles one input.
    fn handle(&mut self, input: Input) -> Vec<Effect>;
    /// Whether the report served for `run` is shown to `peer` (the simulator asks; an honest
    /// node shows it to everyone).
    fn serves_to(&self, _run: u64, _peer: &Hotkey) -> bool {
        true
    }
    /// A different report shown to `peer` for `run` instead of the one served (adversaries in
    /// the simulator only; an honest node shows everyone the same bytes).
    fn shown_to(&self, _run: u64, _peer: &Hotkey) -> Option<Vec<u8>> {
        None
    }
}
