//! Tally's services.
//!
//! * [`store`]: the node's one redb file.
//! * [`auth`]: signed HTTP requests (hotkey, timestamp, nonce, signature over method, path with
//!   query and body hash), a ±60 s window and a bounded nonce cache; pure, `now` is an argument.
//! * [`api`]: the validator's HTTP API (axum).
//! * [`scorer`]: the `Scorer` trait and the devnet's synthetic scorer.
//! * [`validator`]: the tokio driver of the validator machine (`tally-validator`): feeds it
//!   inputs and executes its effects against the [`ports`].
//! * [`ports`]: the DHT and peer ports and their real adapters.
//! * [`owner`]: the owner's endpoint for its weight pick.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod exec_scorer;
pub mod http_runtime;
pub mod owner;
pub mod peer;
pub mod ports;
pub mod scorer;
pub mod store;
pub mod submissions;
pub mod validator;
