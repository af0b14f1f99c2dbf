//! Tally's services.
//!
//! * [`store`]: the node's one redb file.
//! * [`auth`]: signed HTTP requests (hotkey, timestamp, nonce, signature over method, path with
//!   query and body hash), a ±60 s window and a bounded nonce cache; pure, `now` is an argument.
//! * [`api`]: the validator's HTTP API (axum).
//! * [`scorer`]: the `Scorer` trait and the devnet's synthetic scorer.
//! * [`validator`]: the validator service: score, commit, reveal, collect, aggregate, set weights.
//! * [`owner`]: the owner's endpoint for its weight pick.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod devnet;
pub mod exec_scorer;
pub mod http_runtime;
pub mod owner;
pub mod peer;
pub mod scorer;
pub mod store;
pub mod submissions;
pub mod validator;
