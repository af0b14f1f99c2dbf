//! Tally's protocol rules, pure and without I/O.
//!
//! * [`clock`]: the epoch clock (block height, epoch length and offset to epoch and progress),
//!   the chain-time snapshot that turns wall-clock `now` into a chain position, and the phase
//!   windows of every record kind (configurable, DESIGN.md's defaults).
//! * [`kind`]: the record kinds with their domain tags, size caps and expiry caps.
//! * [`record`]: the signed record envelope and its DHT key derivation.
//! * [`payload`]: payload schemas (heartbeats, challenge tensors, commits, reveals), decoded with
//!   bounds and checked (shape, dtype, finite values).
//! * [`view`]: what the predicate reads: the metagraph snapshot, the challenge seeds and the
//!   stake-weighted election of the challenge publisher.
//! * [`predicate`]: the store/read predicate, `(record, now, view, existing) -> Verdict`,
//!   implementing DESIGN.md's six rules with a countable [`predicate::Reject`] reason.
//! * [`rules`]: rules several components apply, defined once: eligibility, which commitment
//!   counts for a run, the reveal-open and reveal-close blocks.
//! * [`commit_book`]: commit snapshots taken when a commit window closes; a reveal counts only if
//!   it hashes to a commit in the snapshot.
//! * [`hosted`]: miner-hosted mode: the epoch's input (the elected validator's challenge, or the
//!   seed's fallback) and how a hoster's reveal is judged.
//!
//! Everything takes time and state as arguments, so the same code runs in the node, in the
//! simulator and under fuzzers.
#![forbid(unsafe_code)]

pub mod clock;
pub mod commit_book;
pub mod hosted;
pub mod kind;
pub mod payload;
pub mod predicate;
pub mod record;
pub mod rules;
pub mod view;

pub use clock::{ChainTime, EpochClock, PhaseWindows, Window};
pub use commit_book::{CommitBook, RevealError};
pub use kind::Kind;
pub use payload::{DType, Heartbeat, Role, Tensor};
pub use predicate::{check, Mode, Reject, Verdict};
pub use record::{record_key, RecordBody, SignedRecord};
pub use view::{ChainView, Metagraph, Neuron};
