//! The hoster of miner-hosted mode as a pure state machine.
//!
//! A hoster is a registered neuron without a validator permit that serves inference itself.
//! For every epoch `e` it
//!
//! 1. reads the epoch's input: the `challenge` record of the validator elected for `e`
//!    ([`HosterEffect::ReadChallenge`], asked on every head until one of the family's shape is
//!    found, while the challenge window is open), else, from the block at which the challenge
//!    window has closed for everyone (skew included, [`window_closed_block`]), the input every
//!    node derives from the epoch's seed ([`resolve_challenge`] with nothing found);
//! 2. runs its model on it ([`HosterEffect::Infer`]);
//! 3. draws a salt, fixes the records' expiry, and persists `(epoch, salt, output, expiries)`
//!    ([`HosterEffect::Persist`], written before the next effect runs), so a restart reveals
//!    exactly what was committed;
//! 4. publishes `hoster-commit` = [`hoster_commitment`]`(salt, output)` while the head is inside
//!    the hoster-commit window, and `hoster-reveal` `{salt, output}` while it is inside the
//!    hoster-reveal window, each once per process (after a restart the same bytes with the same
//!    expiry go out again: peers take them as replicas).
//!
//! Like the validator [`crate::Machine`], it reads the chain once per epoch
//! ([`HosterEffect::ReadChain`], answered with [`HosterInput::Snapshot`]), hands the DHT its
//! view ([`HosterEffect::View`], [`HosterEffect::Time`]) and ignores stale heads. It does no I/O:
//! no clock (time comes with each [`Head`]), no sockets, no files, no OS randomness (salts come
//! from a ChaCha20 RNG seeded at construction), so the same code runs under the tokio driver in
//! `tally-node`, in the simulator and in tests. [`HosterActor`] lets the simulator and the devnet
//! wrap the honest [`Hoster`] in an adversary (which may use [`HosterEffect::ReadReveals`] and
//! raw publishes; the honest hoster uses neither).

use crate::machine::view_of;
use crate::types::{ChainSnapshot, Head};
use parity_scale_codec::{Decode, Encode};
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::BTreeMap;
use tally_core::hash::Hash32;
use tally_core::{Hotkey, Keypair};
use tally_protocol::hosted::resolve_challenge;
use tally_protocol::payload::{hoster_commitment, Commit, DType, HosterReveal, Tensor};
use tally_protocol::rules::window_closed_block;
use tally_protocol::{ChainTime, ChainView, EpochClock, Kind, PhaseWindows, Window};

/// Attempts at inference per epoch (a model that fails on an input is not asked forever).
pub const MAX_INFER_ATTEMPTS: u32 = 3;

/// Settings of a hoster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HosterConfig {
    /// The subnet.
    pub netuid: u16,
    /// Phase windows of the network.
    pub windows: PhaseWindows,
    /// The shape of the epoch's input (default `[64]`, the inference family's).
    pub input_shape: Vec<u32>,
    /// The shape of the output (default `[16]`); an output of another shape is not committed.
    pub output_shape: Vec<u32>,
    /// How many epochs the hoster's records live (default 4).
    pub record_epochs: u64,
    /// How many epochs' entries are kept in memory (default 4, at least 2).
    pub keep_epochs: u64,
}

impl HosterConfig {
    /// The defaults for `netuid`.
    pub fn new(netuid: u16) -> Self {
        HosterConfig {
            netuid,
            windows: PhaseWindows::default(),
            input_shape: vec![64],
            output_shape: vec![16],
            record_epochs: 4,
            keep_epochs: 4,
        }
    }
}

/// What a hoster keeps for one epoch: enough to publish its commit and reveal again,
/// byte-identical, after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HosterEntry {
    /// The epoch.
    pub epoch: u64,
    /// The commitment's salt.
    pub salt: [u8; 32],
    /// The model's output on the epoch's input.
    pub output: Tensor,
    /// Unix ms at which the `hoster-commit` record expires.
    pub commit_expires_at_ms: u64,
    /// Unix ms at which the `hoster-reveal` record expires.
    pub reveal_expires_at_ms: u64,
}

impl HosterEntry {
    /// The commitment of `hoster` to the output.
    pub fn commitment(&self, hoster: &Hotkey) -> Hash32 {
        hoster_commitment(hoster, self.epoch, &self.salt, &self.output)
    }
    /// The `hoster-commit` payload of `hoster`.
    pub fn commit_payload(&self, hoster: &Hotkey) -> Vec<u8> {
        Commit(self.commitment(hoster)).encode()
    }
    /// The `hoster-reveal` payload.
    pub fn reveal_payload(&self) -> Vec<u8> {
        HosterReveal {
            salt: self.salt,
            output: self.output.clone(),
        }
        .encode()
    }
}

/// What the outside world tells the hoster.
#[derive(Clone, Debug)]
pub enum HosterInput {
    /// The entries read back from the store after a (re)start; the first input.
    Restore(Vec<HosterEntry>),
    /// A new head block.
    Head(Head),
    /// The answer to [`HosterEffect::ReadChain`].
    Snapshot {
        /// Request id.
        req: u64,
        /// The snapshot, or why it could not be read.
        result: Result<ChainSnapshot, String>,
    },
    /// The answer to [`HosterEffect::ReadChallenge`]: the challenge tensor of the elected
    /// validator's record, if one passed the predicate.
    Challenge {
        /// The epoch.
        epoch: u64,
        /// The tensor found.
        found: Option<Tensor>,
    },
    /// The answer to [`HosterEffect::Infer`].
    Inferred {
        /// The epoch.
        epoch: u64,
        /// The output, or why the model failed.
        result: Result<Tensor, String>,
    },
    /// The answer to [`HosterEffect::ReadReveals`] (adversaries only; the honest hoster
    /// ignores it).
    Reveals {
        /// The epoch.
        epoch: u64,
        /// The reveals found, by hoster.
        reveals: Vec<(Hotkey, HosterReveal)>,
    },
}

/// What the hoster asks the outside world to do.
#[derive(Clone, Debug, PartialEq)]
pub enum HosterEffect {
    /// Read the parameters, the metagraph and the seeds of the epoch of `at_block`; answer with
    /// [`HosterInput::Snapshot`].
    ReadChain {
        /// Request id.
        req: u64,
        /// The head block the hoster saw.
        at_block: u64,
    },
    /// A new view of the chain for the DHT predicate.
    View(Box<ChainView>),
    /// The head moved: the chain-time snapshot for the DHT predicate.
    Time(ChainTime),
    /// Read `elected`'s `challenge` record for `epoch`; answer with
    /// [`HosterInput::Challenge`].
    ReadChallenge {
        /// The epoch.
        epoch: u64,
        /// The validator elected to publish it.
        elected: Hotkey,
    },
    /// Run the model on `input`; answer with [`HosterInput::Inferred`].
    Infer {
        /// The epoch.
        epoch: u64,
        /// The epoch's input.
        input: Tensor,
    },
    /// Store the entry (one transaction); the driver finishes the write before it runs the
    /// next effect of the list. The store keeps the first entry of an epoch for good.
    Persist(HosterEntry),
    /// Sign and publish a record (fire and forget).
    Publish {
        /// The kind.
        kind: Kind,
        /// The record's epoch.
        epoch: u64,
        /// The payload.
        payload: Vec<u8>,
        /// The record's fixed expiry (unix ms).
        expires_at_ms: u64,
        /// Sign and send to peers without the local predicate (adversaries only, e.g. a late
        /// reveal); the honest hoster always sets `false`.
        raw: bool,
    },
    /// Read the `hoster-reveal` records of `hosters` for `epoch`; answer with
    /// [`HosterInput::Reveals`] (adversaries only).
    ReadReveals {
        /// The epoch.
        epoch: u64,
        /// Whose reveals.
        hosters: Vec<Hotkey>,
    },
}

/// Anything that takes hoster inputs and returns effects: the honest [`Hoster`], or (in the
/// simulator and the devnet only) an adversary that wraps one.
pub trait HosterActor: Send {
    /// Handles one input.
    fn handle(&mut self, input: HosterInput) -> Vec<HosterEffect>;
    /// The last problem the actor met and did not report yet (a failed chain read, a model
    /// error, an output of the wrong shape), for the driver to log.
    fn take_error(&mut self) -> Option<String> {
        None
    }
}

/// One epoch's progress.
#[derive(Default)]
struct EpochState {
    /// A challenge read is out.
    reading: bool,
    /// The last challenge read, at or after the challenge window's close, was asked: what it
    /// finds is final (a challenge published in the window's last block is not missed).
    final_read: bool,
    /// The hoster was told it is not registered for this epoch.
    unregistered: bool,
    /// An inference is out.
    inferring: bool,
    /// Inference attempts so far.
    attempts: u32,
    /// The entry, once the output is known (or restored).
    entry: Option<HosterEntry>,
    /// The commit was published by this process.
    committed: bool,
    /// The reveal was published by this process.
    revealed: bool,
    /// The entry may be revealed: it was committed by this process, or restored (its commit
    /// went out before the restart, or never: then the reveal counts for nothing).
    may_reveal: bool,
}

/// The honest hoster. See the module documentation.
pub struct Hoster {
    cfg: HosterConfig,
    key: Keypair,
    rng: ChaCha20Rng,
    head: Option<Head>,
    snap: Option<ChainSnapshot>,
    snap_req: Option<u64>,
    next_req: u64,
    epochs: BTreeMap<u64, EpochState>,
    error: Option<String>,
}

impl Hoster {
    /// A hoster for `key`; salts come from an RNG seeded with `seed` (the driver passes OS
    /// randomness, the simulator its own RNG).
    pub fn new(cfg: HosterConfig, key: Keypair, seed: [u8; 32]) -> Hoster {
        Hoster {
            cfg,
            key,
            rng: ChaCha20Rng::from_seed(seed),
            head: None,
            snap: None,
            snap_req: None,
            next_req: 1,
            epochs: BTreeMap::new(),
            error: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &HosterConfig {
        &self.cfg
    }

    /// The hoster's hotkey.
    pub fn hotkey(&self) -> Hotkey {
        self.key.hotkey()
    }

    /// The entry of `epoch`, if known.
    pub fn entry(&self, epoch: u64) -> Option<&HosterEntry> {
        self.epochs.get(&epoch).and_then(|s| s.entry.as_ref())
    }

    /// The chain view of the current snapshot at the last head.
    pub fn view(&self) -> Option<ChainView> {
        let s = self.snap.as_ref()?;
        let h = self.head?;
        Some(view_of(self.cfg.netuid, self.cfg.windows, s, h))
    }

    /// The other hosters of the current snapshot: members without a validator permit, except
    /// the burn uid and this hoster.
    pub fn hosters(&self) -> Vec<Hotkey> {
        let me = self.hotkey();
        self.snap
            .as_ref()
            .map(|s| {
                s.members
                    .iter()
                    .filter(|m| !m.validator_permit && m.uid != s.params.burn_uid && m.hotkey != me)
                    .map(|m| m.hotkey)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last problem met, once (see [`HosterActor::take_error`]).
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    /// Handles one input.
    pub fn handle(&mut self, input: HosterInput) -> Vec<HosterEffect> {
        let mut out = Vec::new();
        match input {
            HosterInput::Restore(entries) => self.on_restore(entries),
            HosterInput::Head(h) => self.on_head(h, &mut out),
            HosterInput::Snapshot { req, result } => {
                if self.snap_req == Some(req) {
                    self.snap_req = None;
                    match result {
                        Ok(s) => {
                            self.snap = Some(s);
                            if let Some(v) = self.view() {
                                out.push(HosterEffect::View(Box::new(v)));
                            }
                            if let Some(h) = self.head {
                                self.schedule(h, &mut out);
                            }
                        }
                        Err(e) => self.error = Some(format!("chain not read: {e}")),
                    }
                }
            }
            HosterInput::Challenge { epoch, found } => self.on_challenge(epoch, found, &mut out),
            HosterInput::Inferred { epoch, result } => self.on_inferred(epoch, result, &mut out),
            HosterInput::Reveals { .. } => {}
        }
        out
    }

    fn on_restore(&mut self, entries: Vec<HosterEntry>) {
        for e in entries {
            let st = self.epochs.entry(e.epoch).or_default();
            st.entry = Some(e);
            st.committed = false;
            st.revealed = false;
            st.may_reveal = true;
        }
        let keep = self.keep();
        while self.epochs.len() as u64 > keep {
            self.epochs.pop_first();
        }
    }

    fn on_head(&mut self, h: Head, out: &mut Vec<HosterEffect>) {
        if self.head.is_some_and(|old| old.number > h.number) {
            return; // a stale head: ignore
        }
        self.head = Some(h);
        if let Some(s) = &self.snap {
            out.push(HosterEffect::Time(ChainTime {
                block: h.number,
                at_ms: h.timestamp_ms,
                block_ms: s.params.block_ms,
            }));
        }
        let fresh = self.snap.as_ref().is_some_and(|s| s.covers(h.number));
        if !fresh {
            if self.snap_req.is_none() {
                let req = self.next_req;
                self.next_req += 1;
                self.snap_req = Some(req);
                out.push(HosterEffect::ReadChain {
                    req,
                    at_block: h.number,
                });
            }
            return;
        }
        self.schedule(h, out);
    }

    fn keep(&self) -> u64 {
        self.cfg.keep_epochs.max(2)
    }

    fn clock(&self) -> Option<EpochClock> {
        self.snap.as_ref().map(ChainSnapshot::clock)
    }

    fn seed(&self, epoch: u64) -> Option<Hash32> {
        self.snap.as_ref()?.seed(epoch)
    }

    /// Whatever is due at head `h` (the snapshot is the head's epoch's).
    fn schedule(&mut self, h: Head, out: &mut Vec<HosterEffect>) {
        let Some(clock) = self.clock() else { return };
        let Some(epoch) = clock.epoch_of(h.number) else {
            return;
        };
        if self.snap.as_ref().is_none_or(|s| s.epoch != epoch) {
            return;
        }
        self.step_input(epoch, h, &clock, out);
        let epochs: Vec<u64> = self.epochs.keys().copied().collect();
        for e in epochs {
            self.step_publish(e, h.number, &clock, out);
        }
        self.prune(epoch);
    }

    /// Reads the challenge while its window is open, then falls back to the seed's input;
    /// starts the inference once the input is known.
    fn step_input(&mut self, epoch: u64, h: Head, clock: &EpochClock, out: &mut Vec<HosterEffect>) {
        let w = self.cfg.windows;
        // too late to commit: nothing to compute for this epoch
        if h.number >= w.hoster_commit.end_block(clock, epoch) {
            return;
        }
        let me = self.hotkey();
        let registered = self
            .snap
            .as_ref()
            .is_some_and(|s| s.members.iter().any(|m| m.hotkey == me));
        let st = self.epochs.entry(epoch).or_default();
        if st.entry.is_some() || st.inferring || st.attempts >= MAX_INFER_ATTEMPTS {
            return;
        }
        if !registered {
            if !st.unregistered {
                // once per epoch
                st.unregistered = true;
                self.error = Some(format!(
                    "hotkey {me} is not registered on subnet {} as of epoch {epoch}'s first \
                     block: nothing is published for this epoch",
                    self.cfg.netuid
                ));
            }
            return;
        }
        let Some(seed) = self.seed(epoch) else {
            return;
        };
        let closed = window_closed_block(&w.challenge, clock, w.skew_mb, epoch);
        if h.number < closed {
            if self.epochs.get(&epoch).is_some_and(|s| s.reading) {
                return;
            }
            let elected = self.view().and_then(|v| v.elected(epoch));
            if let Some(elected) = elected {
                if let Some(st) = self.epochs.get_mut(&epoch) {
                    st.reading = true;
                }
                out.push(HosterEffect::ReadChallenge { epoch, elected });
            }
            return;
        }
        // closed: one last read, then the seed's input
        let elected = self.view().and_then(|v| v.elected(epoch));
        if let (Some(elected), Some(st)) = (elected, self.epochs.get_mut(&epoch)) {
            if st.reading {
                return;
            }
            if !st.final_read {
                st.final_read = true;
                st.reading = true;
                out.push(HosterEffect::ReadChallenge { epoch, elected });
                return;
            }
        }
        self.fall_back(epoch, &seed, out);
    }

    fn fall_back(&mut self, epoch: u64, seed: &Hash32, out: &mut Vec<HosterEffect>) {
        match resolve_challenge(seed, None, &self.cfg.input_shape) {
            Ok(input) => self.infer(epoch, input, out),
            Err(e) => self.error = Some(format!("epoch {epoch}: no input: {e}")),
        }
    }

    fn infer(&mut self, epoch: u64, input: Tensor, out: &mut Vec<HosterEffect>) {
        let st = self.epochs.entry(epoch).or_default();
        st.inferring = true;
        st.attempts += 1;
        out.push(HosterEffect::Infer { epoch, input });
    }

    fn on_challenge(&mut self, epoch: u64, found: Option<Tensor>, out: &mut Vec<HosterEffect>) {
        let Some(st) = self.epochs.get_mut(&epoch) else {
            return;
        };
        st.reading = false;
        if st.entry.is_some() || st.inferring || st.attempts >= MAX_INFER_ATTEMPTS {
            return;
        }
        let final_read = st.final_read;
        let Some(seed) = self.seed(epoch) else { return };
        let Some(t) = found else {
            if final_read {
                self.fall_back(epoch, &seed, out);
            }
            return; // asked again on a later head, until the window closes
        };
        // the one rule for a valid challenge: resolve_challenge keeps it as it is
        match resolve_challenge(&seed, Some(&t), &self.cfg.input_shape) {
            Ok(input) if input == t => self.infer(epoch, input, out),
            // of another shape or dtype: counts as absent (the seed's input after the close)
            _ => {
                self.error = Some(format!(
                    "epoch {epoch}: the elected validator's challenge is not an f32 tensor of \
                     shape {:?}; falling back to the seed's input when the window closes",
                    self.cfg.input_shape
                ));
                if final_read {
                    self.fall_back(epoch, &seed, out);
                }
            }
        }
    }

    fn on_inferred(
        &mut self,
        epoch: u64,
        result: Result<Tensor, String>,
        out: &mut Vec<HosterEffect>,
    ) {
        let Some(st) = self.epochs.get_mut(&epoch) else {
            return;
        };
        st.inferring = false;
        if st.entry.is_some() {
            return;
        }
        let output = match result {
            Ok(t)
                if t.dtype == DType::F32
                    && t.shape[..] == self.cfg.output_shape[..]
                    && t.check().is_ok() =>
            {
                t
            }
            Ok(t) => {
                self.error = Some(format!(
                    "epoch {epoch}: the model's output ({:?} {:?}) is not an f32 tensor of shape \
                     {:?} with finite values: nothing is committed",
                    t.dtype,
                    &t.shape[..],
                    self.cfg.output_shape
                ));
                return;
            }
            Err(e) => {
                self.error = Some(format!("epoch {epoch}: inference failed: {e}"));
                return;
            }
        };
        let mut salt = [0u8; 32];
        self.rng.fill_bytes(&mut salt);
        let expires = self.expiry();
        let entry = HosterEntry {
            epoch,
            salt,
            output,
            commit_expires_at_ms: expires,
            reveal_expires_at_ms: expires,
        };
        out.push(HosterEffect::Persist(entry.clone()));
        if let Some(st) = self.epochs.get_mut(&epoch) {
            st.entry = Some(entry);
        }
        if let (Some(h), Some(clock)) = (self.head, self.clock()) {
            self.step_publish(epoch, h.number, &clock, out);
        }
    }

    /// The records' expiry: `record_epochs` epochs after the last head was seen, within the
    /// kinds' expiry cap.
    fn expiry(&self) -> u64 {
        let now = self.head.map_or(0, |h| h.timestamp_ms);
        let ttl = self.snap.as_ref().map_or(0, |s| {
            self.cfg
                .record_epochs
                .max(1)
                .saturating_mul(s.params.epoch_length)
                .saturating_mul(s.params.block_ms)
        });
        let cap = Kind::HosterCommit
            .max_ttl_ms()
            .min(Kind::HosterReveal.max_ttl_ms());
        now.saturating_add(ttl.clamp(1, cap))
    }

    /// Publishes the commit inside the commit window and the reveal inside the reveal window,
    /// each once per process.
    fn step_publish(
        &mut self,
        epoch: u64,
        block: u64,
        clock: &EpochClock,
        out: &mut Vec<HosterEffect>,
    ) {
        let w = self.cfg.windows;
        let me = self.key.hotkey();
        let Some(st) = self.epochs.get_mut(&epoch) else {
            return;
        };
        let Some(entry) = &st.entry else { return };
        if !st.committed && inside(&w.hoster_commit, clock, epoch, block) {
            st.committed = true;
            st.may_reveal = true;
            out.push(HosterEffect::Publish {
                kind: Kind::HosterCommit,
                epoch,
                payload: entry.commit_payload(&me),
                expires_at_ms: entry.commit_expires_at_ms,
                raw: false,
            });
        }
        // the reveal goes out only once the commit window has closed for everyone (its end plus
        // the skew): a reveal seen while a store still takes commits could be copied into one
        let commits_closed =
            block >= window_closed_block(&w.hoster_commit, clock, w.skew_mb, epoch);
        // through the window's end block: stores take reveals until its end plus the skew, so
        // a hoster that missed the head at the window's first block still gets one in
        if !st.revealed
            && st.may_reveal
            && commits_closed
            && block >= w.hoster_reveal.first_block(clock, epoch)
            && block <= w.hoster_reveal.end_block(clock, epoch)
        {
            st.revealed = true;
            out.push(HosterEffect::Publish {
                kind: Kind::HosterReveal,
                epoch,
                payload: entry.reveal_payload(),
                expires_at_ms: entry.reveal_expires_at_ms,
                raw: false,
            });
        }
    }

    fn prune(&mut self, current: u64) {
        let keep = self.keep();
        let oldest = current.saturating_add(1).saturating_sub(keep);
        while let Some((&e, _)) = self.epochs.first_key_value() {
            if e >= oldest {
                break;
            }
            self.epochs.pop_first();
        }
    }
}

/// Whether `block` lies in `[first_block, end_block)` of `window` for `epoch`.
fn inside(window: &Window, clock: &EpochClock, epoch: u64, block: u64) -> bool {
    block >= window.first_block(clock, epoch) && block < window.end_block(clock, epoch)
}

impl HosterActor for Hoster {
    fn handle(&mut self, input: HosterInput) -> Vec<HosterEffect> {
        Hoster::handle(self, input)
    }
    fn take_error(&mut self) -> Option<String> {
        Hoster::take_error(self)
    }
}
