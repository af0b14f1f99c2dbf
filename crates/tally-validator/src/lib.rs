//! The validator as a pure state machine.
//!
//! A [`Machine`] holds one validator's state and is driven by [`Machine::handle`]`(Input) ->
//! Vec<Effect>`: inputs are what the outside world tells it (a new head block, a chain snapshot,
//! a scoring result, reports fetched over HTTP and from the DHT, the commitments of a run, the
//! incumbent, the owner's pick, the outcome of a chain call, the stored state after a restart);
//! effects are what it asks the outside world to do (read the chain, score, persist, post a
//! commitment, publish a DHT record, serve a report, fetch reports, set weights). It does no I/O:
//! no clock, no sockets, no files, no OS randomness (salts come from a seeded RNG given at
//! construction), so the same code runs under the tokio driver in `tally-node`, under the
//! seeded simulator in `tally-sim` and in tests.
//!
//! The step schedule is read from the configured [`tally_protocol::PhaseWindows`], by the head
//! block (never a wall-clock estimate):
//!
//! | step | module | when, for run `e` |
//! | --- | --- | --- |
//! | score | [`score`] | epoch `e`, once its chain snapshot and challenge seed are known |
//! | hosted | [`hosted`] | miner-hosted mode, epoch `e`: publish the challenge (the elected validator), snapshot hoster commits when their window closes, judge and score reveals when theirs closes |
//! | commit | [`commit`] | from the first block of the validator-commit window until the reveal window opens |
//! | reveal | [`reveal`] | inside the validator-reveal window (epoch `e+1`) |
//! | collect | [`collect`] | from the configured share of the reveal window until it closes |
//! | aggregate | [`aggregate`] | from the reveal-close block: commitments, final fetch, incumbent, owner pick, then decide and set weights |
//!
//! Protocol rules live in the lowest crate that can hold them: eligibility, which commitment
//! counts and the reveal blocks in `tally_protocol::rules`; report verification in [`verify`];
//! weights to uid weights and the typed run outcome in [`outcome`].
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod collect;
pub mod commit;
pub mod config;
pub mod hosted;
pub mod hoster;
pub mod machine;
pub mod outcome;
pub mod reveal;
pub mod score;
pub mod types;
pub mod verify;

pub use config::{Config, Execution};
pub use hoster::{Hoster, HosterActor, HosterConfig, HosterEffect, HosterEntry, HosterInput};
pub use machine::{view_of, Machine};
pub use outcome::{uid_weights, Excluded, HosterResult, RunOutcome, WeightsDecision};
pub use types::{
    Actor, ChainSnapshot, Effect, Fetched, Head, HeldReport, HostedVerdict, Input, Member,
    NetParams, OwnerPick, Persist, Step, Stored, StoredRun, Target,
};
pub use verify::{check_report, judge, verify_report, Exclusion};
