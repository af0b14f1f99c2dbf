//! Tally's services.
//!
//! * [`store`]: the node's one redb file.
//! * [`auth`]: signed HTTP requests (hotkey, timestamp, nonce, signature over method, path with
//!   query and body hash), a ±60 s window and a bounded nonce cache; pure, `now` is an argument.
//! * [`api`]: the validator's HTTP API (axum).
//! * [`scorer`]: the `Scorer` trait and the devnet's synthetic scorer.
//! * [`hosted_scorer`]: miner-hosted scoring against the family's reference model.
//! * [`validator`]: the tokio driver of the validator machine (`tally-validator`): feeds it
//!   inputs and executes its effects against the [`ports`].
//! * [`ports`]: the DHT and peer ports and their real adapters.
//! * [`owner`]: the owner's endpoint for its weight pick.
//! * [`hoster`]: the tokio driver of the hoster (miner-hosted mode, `tally_validator::Hoster`):
//!   reads the epoch's challenge, runs the model, commits and reveals over the DHT, with its
//!   salts and outputs in its own redb file ([`hoster_store`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod exec_scorer;
pub mod hosted_scorer;
pub mod hoster;
pub mod hoster_store;
pub mod http_runtime;
pub mod owner;
pub mod peer;
pub mod ports;
pub mod scorer;
pub mod store;
pub mod submissions;
pub mod validator;
