//! Tally's network adapters.
//!
//! * [`dht`]: the epoch-gated Kademlia DHT on a libp2p swarm (tcp, noise, yamux, kad,
//!   identify). Record filtering is on: every inbound put passes
//!   [`tally_protocol::predicate::check`] before it is stored, and every value read back is
//!   checked again, because a put reply does not tell the writer about a rejection. The node
//!   talks to it through [`dht::Dht`], a small async handle.
//! * [`store`]: the bounded record store (records, value size and total bytes capped; quotas
//!   per publisher and kind and per kind, so one publisher or one kind cannot crowd out the
//!   others; records expire at their envelope's expiry; no provider records).
//! * [`heartbeat`]: the heartbeat loop and the list of live peers by role.
#![forbid(unsafe_code)]

pub mod dht;
pub mod heartbeat;
pub mod reveals;
pub mod store;

pub use dht::{system_clock, Clock, Dht, DhtConfig, DhtError, Evidence, Rejection};
pub use store::{KindLimits, Refusal, StoreLimits};
