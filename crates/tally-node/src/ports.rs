//! The ports the validator driver executes effects against, and their real adapters.
//!
//! | port | trait | adapter |
//! | --- | --- | --- |
//! | chain | `tally_chain::Chain` | the embedded chain over HTTP (`HttpChain`), `LocalChain` |
//! | DHT | [`DhtPort`] | `tally_net::Dht` (libp2p Kademlia under the predicate) |
//! | peers | [`PeerPort`] | [`crate::peer::PeerClient`] (signed HTTP requests) |
//! | store | [`StorePort`] | [`crate::store::NodeStore`] (redb) |
//! | scorer | [`crate::scorer::Scorer`] | `ExecScorer` (wasmtime), `SyntheticScorer` |
//! | hosted scorer | [`crate::hosted_scorer::HostedScorer`] | `MlpHostedScorer` (native reference model) |
//!
//! Blocking ports (chain, peers, scorer, store) are called from `spawn_blocking`.

use crate::peer::PeerPath;
use futures::future::BoxFuture;
use std::time::Duration;
use tally_core::hash::Hash32;
use tally_core::Hotkey;
use tally_net::Dht;
use tally_protocol::payload::{HosterReveal, Payload, Tensor};
use tally_protocol::{ChainView, Kind};

/// A run's challenge (if one passed the predicate) and the hosters' reveals found.
pub type HostedRead = (Option<Tensor>, Vec<(Hotkey, HosterReveal)>);

/// The DHT as the driver uses it.
pub trait DhtPort: Send + Sync {
    /// Replaces the view the predicate reads.
    fn set_view(&self, view: ChainView);
    /// Signs and publishes a record.
    fn publish(
        &self,
        kind: Kind,
        epoch: u64,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), String>>;
    /// The report in `publisher`'s `validator-reveal` record for `run`, if one passes the
    /// predicate.
    fn reveal(&self, run: u64, publisher: Hotkey) -> BoxFuture<'_, Option<Vec<u8>>>;
    /// Each of `hosters`' `hoster-commit` for `run` that passes the predicate.
    fn hoster_commits(
        &self,
        run: u64,
        hosters: Vec<Hotkey>,
    ) -> BoxFuture<'_, Vec<(Hotkey, Hash32)>>;
    /// `elected`'s `challenge` for `run` and each of `hosters`' `hoster-reveal`, those that pass
    /// the predicate.
    fn hosted(
        &self,
        run: u64,
        elected: Option<Hotkey>,
        hosters: Vec<Hotkey>,
    ) -> BoxFuture<'_, HostedRead>;
    /// The stream of records this node refused (for late hoster reveals), if it has one.
    fn rejections(&self) -> Option<tokio::sync::broadcast::Receiver<tally_net::dht::Rejection>> {
        None
    }
}

impl DhtPort for Dht {
    fn set_view(&self, view: ChainView) {
        Dht::set_view(self, view)
    }
    fn publish(
        &self,
        kind: Kind,
        epoch: u64,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            Dht::publish(self, kind, epoch, payload, ttl)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
    fn reveal(&self, run: u64, publisher: Hotkey) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            match self.get(Kind::ValidatorReveal, run, &publisher).await {
                Ok(Some(v)) => match v.payload {
                    Payload::ValidatorReveal(r) => Some(r.to_bytes()),
                    _ => None,
                },
                _ => None,
            }
        })
    }
    fn hoster_commits(
        &self,
        run: u64,
        hosters: Vec<Hotkey>,
    ) -> BoxFuture<'_, Vec<(Hotkey, Hash32)>> {
        Box::pin(async move {
            self.get_many(Kind::HosterCommit, run, &hosters)
                .await
                .into_iter()
                .filter_map(|(h, r)| match r {
                    Ok(Some(v)) => match v.payload {
                        Payload::Commit(c) => Some((h, c)),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
    }
    fn hosted(
        &self,
        run: u64,
        elected: Option<Hotkey>,
        hosters: Vec<Hotkey>,
    ) -> BoxFuture<'_, HostedRead> {
        Box::pin(async move {
            let challenge = match elected {
                Some(e) => match self.get(Kind::Challenge, run, &e).await {
                    Ok(Some(v)) => match v.payload {
                        Payload::Challenge(t) => Some(t),
                        _ => None,
                    },
                    _ => None,
                },
                None => None,
            };
            let reveals = self
                .get_many(Kind::HosterReveal, run, &hosters)
                .await
                .into_iter()
                .filter_map(|(h, r)| match r {
                    Ok(Some(v)) => match v.payload {
                        Payload::HosterReveal(x) => Some((h, x)),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            (challenge, reveals)
        })
    }
    fn rejections(&self) -> Option<tokio::sync::broadcast::Receiver<tally_net::dht::Rejection>> {
        Some(Dht::rejections(self))
    }
}

/// Signed HTTP calls to peers (blocking).
pub trait PeerPort: Send + Sync {
    /// `GET` `path` at `addr` (IP:port, parsed strictly), signed for the node `to`; the status
    /// and body.
    fn get(&self, to: &Hotkey, addr: &str, path: &PeerPath) -> Result<(u16, Vec<u8>), String>;
}

impl PeerPort for crate::peer::PeerClient {
    fn get(&self, to: &Hotkey, addr: &str, path: &PeerPath) -> Result<(u16, Vec<u8>), String> {
        crate::peer::PeerClient::get(self, to, addr, path).map_err(|e| e.to_string())
    }
}

/// The node's store as the driver uses it: read back at start, one write per `Persist` effect.
pub trait StorePort: Send + Sync {
    /// The recent runs and the divergence window.
    fn load(&self, recent: usize) -> Result<tally_validator::Stored, String>;
    /// One write, as one transaction (`now_ms` stamps a finished run's outcome).
    fn apply(&self, p: &tally_validator::Persist, now_ms: u64) -> Result<(), String>;
}

impl StorePort for crate::store::NodeStore {
    fn load(&self, recent: usize) -> Result<tally_validator::Stored, String> {
        crate::store::NodeStore::load(self, recent).map_err(|e| e.to_string())
    }
    fn apply(&self, p: &tally_validator::Persist, now_ms: u64) -> Result<(), String> {
        crate::store::NodeStore::apply(self, p, now_ms).map_err(|e| e.to_string())
    }
}
