//! Deterministic simulation of Tally's validators and hosters, and the byzantine actors.
//!
//! * [`world`]: the seeded world (virtual clock, event queue, one RNG), the embedded chain on an
//!   in-memory backend driven by virtual time, an in-memory DHT under the real predicate,
//!   simulated HTTP links with latency, loss and partitions, crashes and restarts from
//!   persisted state. The validators are the production `tally_validator::Machine`, the
//!   hosters the production `tally_validator::hoster::Hoster` (`SimConfig::hosters`).
//! * [`byzantine`]: adversaries that wrap an honest machine and rewrite its effects (inflate,
//!   equivocate, copy, withhold, forge, commit late, split view, go silent). The devnet uses the
//!   same actors; no production service contains them.
//! * [`hoster`]: hoster strategies of miner-hosted mode (noisy, lazy, copycat, no-reveal,
//!   mismatch, late) wrapping the honest `tally_validator::hoster::Hoster`; the devnet uses them
//!   too.
//! * [`invariants`]: what every run must keep (identical honest weights, consensus within the
//!   honest range, no report without an in-window commitment, equivocations proven and
//!   excluded, quorum misses hold, split views converge, no copycat or late hoster record
//!   accepted and no cheat scored, every hoster scored alike by honest validators).
//! * [`toy_model`]: the stand-in reference model simulated hosters run and validators score.
//! * [`sweep`]: many seeds mixing strategies and faults, with one trace hash over all.
#![forbid(unsafe_code)]

pub mod byzantine;
pub mod hoster;
pub mod invariants;
pub mod sweep;
pub mod toy_model;
pub mod world;

pub use byzantine::{Byzantine, Strategy};
pub use hoster::{ByzantineHoster, HosterStrategy};
pub use sweep::{sweep, SweepConfig, SweepResult};
pub use world::{Faults, HosterSummary, SimConfig, SimResult, World};
