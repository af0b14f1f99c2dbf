//! The `tally` binary's library half: the devnet harness (a whole subnet on this machine), kept
//! out of the production crates. It assembles the chain, the owner and the validators, and
//! gives the last validators the byzantine actors of `tally-sim`; on Subtensor it first sets up
//! the subnet ([`subtensor_setup`]).
#![forbid(unsafe_code)]

pub mod devnet;
pub mod subtensor_setup;
