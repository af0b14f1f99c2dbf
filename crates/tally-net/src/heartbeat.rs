//! Heartbeats: liveness, role and addresses, refreshed on a timer.
//!
//! [`publish_heartbeat`] signs a heartbeat with the node's hotkey (binding its libp2p peer id to
//! the hotkey) and publishes it with a short expiry; [`spawn_heartbeats`] repeats that every
//! interval. [`live_peers`] lists the registered hotkeys whose heartbeat is found, valid and
//! unexpired, for one role; it asks the DHT in batches so a large metagraph does not flood it.

use crate::dht::{Dht, DhtError};
use parity_scale_codec::Encode;
use std::time::Duration;
use tally_core::hash::Hash32;
use tally_core::{BoundedBytes, BoundedVec, Hotkey};
use tally_protocol::payload::Payload;
use tally_protocol::{Heartbeat, Kind, Role};
use tokio::task::JoinHandle;
use tracing::warn;

/// Lookups in flight at once while listing live peers.
const BATCH: usize = 64;

/// A peer whose heartbeat is live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePeer {
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its libp2p peer id, bound by the heartbeat's signature.
    pub peer_id: Vec<u8>,
    /// Its listen addresses (multiaddr bytes).
    pub addrs: Vec<Vec<u8>>,
    /// Its HTTP endpoint.
    pub http: String,
    /// When the heartbeat was issued (unix ms).
    pub issued_at_ms: u64,
}

/// Publishes one heartbeat for `role` with `http`, expiring after `ttl`.
pub async fn publish_heartbeat(
    dht: &Dht,
    role: Role,
    http: &str,
    ttl: Duration,
) -> Result<Hash32, DhtError> {
    let addrs: Vec<BoundedBytes<128>> = dht
        .listen_addrs()
        .await?
        .into_iter()
        .filter_map(|a| BoundedBytes::new(a.to_vec()).ok())
        .take(8)
        .collect();
    let view = dht.view().ok_or(DhtError::Closed)?;
    let now = dht.now_ms();
    let epoch = view.clock.epoch_of(view.time.block_at(now)).unwrap_or(0);
    let hb = Heartbeat {
        role,
        peer_id: BoundedBytes::new(dht.peer_id().to_bytes())
            .map_err(|e| DhtError::Build(e.to_string()))?,
        addrs: BoundedVec::new(addrs).map_err(|e| DhtError::Build(e.to_string()))?,
        http: BoundedBytes::new(http.as_bytes().to_vec())
            .map_err(|e| DhtError::Build(format!("http endpoint: {e}")))?,
        issued_at_ms: now,
    };
    dht.publish(Kind::Heartbeat, epoch, hb.encode(), ttl).await
}

/// Publishes a heartbeat now and every `interval` after, each living `ttl`.
pub fn spawn_heartbeats(
    dht: Dht,
    role: Role,
    http: String,
    interval: Duration,
    ttl: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match publish_heartbeat(&dht, role, &http, ttl).await {
                Ok(_) => {}
                Err(DhtError::Closed) => break,
                Err(e) => warn!("heartbeat not published: {e}"),
            }
        }
    })
}

/// Registered hotkeys with a live heartbeat for `role`, in hotkey order.
pub async fn live_peers(dht: &Dht, role: Role) -> Result<Vec<LivePeer>, DhtError> {
    let view = dht.view().ok_or(DhtError::Closed)?;
    let hotkeys: Vec<Hotkey> = view.metagraph.iter().map(|(k, _)| *k).collect();
    let mut out = Vec::new();
    for chunk in hotkeys.chunks(BATCH) {
        for (hotkey, res) in dht.get_many(Kind::Heartbeat, 0, chunk).await {
            if let Ok(Some(v)) = res {
                if let Payload::Heartbeat(h) = v.payload {
                    if h.role == role {
                        out.push(LivePeer {
                            hotkey,
                            peer_id: h.peer_id.to_vec(),
                            addrs: h.addrs.iter().map(|a| a.to_vec()).collect(),
                            http: String::from_utf8_lossy(&h.http).into_owned(),
                            issued_at_ms: h.issued_at_ms,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}
