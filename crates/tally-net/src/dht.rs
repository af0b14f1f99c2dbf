//! The epoch-gated DHT: a libp2p Kademlia swarm whose every store and read passes the
//! protocol predicate.
//!
//! [`Dht::start`] builds a swarm (tcp + noise + yamux, kad in server mode with record filtering
//! on, identify to learn peers' listen addresses), spawns its event loop on tokio and returns a
//! cheap, cloneable handle:
//!
//! * [`Dht::publish`] signs a record with the node's hotkey, checks it against the predicate
//!   like any inbound store, keeps it and puts it to the closest peers;
//! * [`Dht::get`] returns the record of `(kind, epoch, publisher)` only if it passes the
//!   predicate in read mode (the local copy first, then the network; invalid values returned by
//!   peers are dropped and counted); [`Dht::get_many`] does so for many publishers at once;
//! * [`Dht::rejections`] streams every refusal by the predicate with its reason, and
//!   [`Dht::reject_counts`] counts them per reason for metrics; records the predicate accepts
//!   but the store's quotas refuse (see [`crate::store`]: per publisher and kind, per kind,
//!   in all) are counted by [`Dht::store_refusals`], and records evicted for newer ones by
//!   [`Dht::store_evictions`]; [`Dht::evidence`] keeps conflicting signed pairs (a second,
//!   different commit from one publisher for one slot);
//! * [`Dht::put_raw`] sends arbitrary bytes to connected peers without any local check: an
//!   adversary's tool, used by the tests to prove that the *receivers* refuse bad records.
//!
//! The predicate reads a [`ChainView`] snapshot the node refreshes with [`Dht::set_view`], and
//! `now` from the [`Clock`] given at start; it never calls the chain. Bounded: the command
//! queue, pending queries, the store (see [`crate::store`]), the evidence list, the rejection
//! channel and the hotkey-to-peer map all have caps.

use crate::store::{BoundedStore, Refusal, StoreCounters, StoreLimits};
use futures::StreamExt;
use libp2p::kad::{
    self, store::RecordStore, GetRecordOk, InboundRequest, PeerRecord, QueryId, QueryResult,
    Quorum, Record, RecordKey, StoreInserts,
};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tally_core::hash::Hash32;
use tally_core::{BoundedBytes, Hotkey, Keypair};
use tally_protocol::kind::MAX_RECORD_BYTES;
use tally_protocol::payload::Payload;
use tally_protocol::predicate::{check, Mode, Reject, Verdict};
use tally_protocol::{record_key, ChainView, Kind, RecordBody, SignedRecord};
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

/// Unix milliseconds now.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// Settings of a DHT node.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// Where to listen, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Multiaddr,
    /// Peers to dial at start (with `/p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Store caps and quotas (per publisher and kind, per kind, in all). The default,
    /// [`StoreLimits::default`], is sized for 256 registered hotkeys and 64 validators; size it
    /// to the subnet with [`StoreLimits::sized_for`].
    pub limits: StoreLimits,
    /// Timeout of one Kademlia query.
    pub query_timeout: Duration,
    /// Kademlia replication factor (k).
    pub replication_factor: usize,
    /// Most queries in flight.
    pub max_pending_queries: usize,
    /// Most evidence pairs kept (oldest dropped).
    pub evidence_cap: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            listen: "/ip4/127.0.0.1/tcp/0"
                .parse()
                .expect("a valid literal multiaddr"),
            bootstrap: Vec::new(),
            limits: StoreLimits::default(),
            query_timeout: Duration::from_secs(10),
            replication_factor: 8,
            max_pending_queries: 4_096,
            evidence_cap: 1_024,
        }
    }
}

/// A refused record, as the rejection stream reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: Reject,
    /// The kind, when the record decoded that far.
    pub kind: Option<Kind>,
    /// The claimed publisher, when the record decoded.
    pub publisher: Option<Hotkey>,
    /// The record's epoch, when the record decoded.
    pub epoch: Option<u64>,
    /// The peer that sent it (inbound puts) or returned it (reads).
    pub from: Option<PeerId>,
    /// Store or read.
    pub mode: Mode,
}

/// Two different records signed by one publisher for one write-once slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The record held first.
    pub held: SignedRecord,
    /// The conflicting one offered later.
    pub offered: SignedRecord,
}

/// Errors of the DHT handle.
#[derive(Debug, Error)]
pub enum DhtError {
    /// Our own record failed the predicate.
    #[error("record refused by the predicate: {0}")]
    Refused(Reject),
    /// Too many queries in flight; try again shortly.
    #[error("too many DHT queries in flight")]
    Busy,
    /// The node has stopped.
    #[error("the DHT node has stopped")]
    Closed,
    /// Signing or encoding failed.
    #[error("cannot build the record: {0}")]
    Build(String),
    /// The swarm could not be built or could not listen.
    #[error("transport: {0}")]
    Transport(String),
    /// The local store failed to take the record.
    #[error("local store: {0}")]
    Store(String),
    /// The local store's quotas refused our own record.
    #[error("local store refused the record: {0}")]
    StoreRefused(Refusal),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    kad: kad::Behaviour<BoundedStore>,
    identify: identify::Behaviour,
}

enum Command {
    Publish {
        record: SignedRecord,
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
    PutRaw {
        key: Hash32,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
    Get {
        key: Hash32,
        reply: oneshot::Sender<Result<Option<Verdict>, DhtError>>,
    },
    Holds {
        key: Hash32,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), DhtError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Stored {
        reply: oneshot::Sender<(usize, usize)>,
    },
}

/// Most hotkey-to-peer bindings kept.
const MAX_BINDINGS: usize = 65_536;

struct Shared {
    view: RwLock<ChainView>,
    evidence: Mutex<VecDeque<Evidence>>,
    evidence_cap: usize,
    counts: [AtomicU64; Reject::ALL.len()],
    peers: Mutex<BTreeMap<Hotkey, PeerId>>,
    rejections: broadcast::Sender<Rejection>,
    store: Arc<StoreCounters>,
}

impl Shared {
    fn reject(&self, r: Rejection) {
        if let Some(i) = Reject::ALL.iter().position(|x| *x == r.reason) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        debug!(reason = %r.reason, kind = ?r.kind, from = ?r.from, mode = ?r.mode, "record refused");
        let _ = self.rejections.send(r);
    }

    fn keep_evidence(&self, e: Evidence) {
        if let Ok(mut ev) = self.evidence.lock() {
            if ev.iter().any(|x| x.offered == e.offered) {
                return;
            }
            ev.push_back(e);
            while ev.len() > self.evidence_cap {
                ev.pop_front();
            }
        }
    }

    fn bind(&self, verdict: &Verdict) {
        if let Payload::Heartbeat(h) = &verdict.payload {
            if let Ok(pid) = PeerId::from_bytes(&h.peer_id) {
                if let Ok(mut peers) = self.peers.lock() {
                    if peers.len() < MAX_BINDINGS
                        || peers.contains_key(&verdict.record.body().publisher)
                    {
                        peers.insert(verdict.record.body().publisher, pid);
                    }
                }
            }
        }
    }
}

/// A handle to a running DHT node.
#[derive(Clone)]
pub struct Dht {
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    peer_id: PeerId,
    hotkey: Arc<Keypair>,
    clock: Clock,
    /// The write-once records this node signed last (at most [`OWN_RECORDS`]), so publishing
    /// the same payload again re-sends the same bytes instead of a second, conflicting record.
    own: Arc<std::sync::Mutex<OwnRecords>>,
}

/// `(slot, the record signed for it)`, oldest first (the payload is the record's own).
type OwnRecords = VecDeque<(Hash32, SignedRecord)>;

/// Most of its own write-once records a node remembers for re-publishing.
pub const OWN_RECORDS: usize = 64;

impl Dht {
    /// Starts a node: libp2p identity `identity`, records signed by `hotkey`, predicate on
    /// `view`, time from `clock`.
    pub async fn start(
        config: DhtConfig,
        identity: identity::Keypair,
        hotkey: Keypair,
        view: ChainView,
        clock: Clock,
    ) -> Result<Dht, DhtError> {
        let peer_id = identity.public().to_peer_id();
        let mut kcfg = kad::Config::new(StreamProtocol::new("/tally/kad/1.0.0"));
        kcfg.set_record_filtering(StoreInserts::FilterBoth)
            .set_max_packet_size(MAX_RECORD_BYTES + 64 * 1024)
            .set_query_timeout(config.query_timeout)
            .set_caching(kad::Caching::Disabled)
            .set_record_ttl(None)
            .set_provider_record_ttl(None)
            .set_provider_publication_interval(None);
        if let Some(k) = std::num::NonZeroUsize::new(config.replication_factor) {
            kcfg.set_replication_factor(k);
        }
        let store = BoundedStore::new(peer_id, config.limits);
        let store_counters = store.counters();
        let mut kad = kad::Behaviour::with_config(peer_id, store, kcfg);
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(identify::Config::new(
            "/tally/id/1.0.0".into(),
            identity.public(),
        ));
        let behaviour = Behaviour { kad, identify };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| DhtError::Transport(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| DhtError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| DhtError::Transport(format!("cannot listen on {}: {e}", config.listen)))?;
        for addr in &config.bootstrap {
            add_bootstrap(&mut swarm, addr);
        }
        let (rej_tx, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            view: RwLock::new(view),
            evidence: Mutex::new(VecDeque::new()),
            evidence_cap: config.evidence_cap.max(1),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            peers: Mutex::new(BTreeMap::new()),
            rejections: rej_tx,
            store: store_counters,
        });
        let (tx, rx) = mpsc::channel(1024);
        let mut ev = EventLoop {
            swarm,
            rx,
            shared: shared.clone(),
            clock: clock.clone(),
            gets: HashMap::new(),
            puts: HashMap::new(),
            max_pending: config.max_pending_queries.max(1),
            listen: Vec::new(),
            listen_waiters: Vec::new(),
        };
        tokio::spawn(async move { ev.run().await });
        Ok(Dht {
            cmd: tx,
            shared,
            peer_id,
            hotkey: Arc::new(hotkey),
            clock,
            own: Default::default(),
        })
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The hotkey that signs this node's records.
    pub fn hotkey(&self) -> Hotkey {
        self.hotkey.hotkey()
    }

    /// Unix milliseconds by the node's clock.
    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// The addresses the node listens on (waits for the first one).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, DhtError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::ListenAddrs { reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)
    }

    /// Dials `addr` (with `/p2p/<id>`) and adds it to the routing table.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), DhtError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Dial { addr, reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)?
    }

    /// Replaces the chain snapshot the predicate reads.
    pub fn set_view(&self, view: ChainView) {
        if let Ok(mut v) = self.shared.view.write() {
            *v = view;
        }
    }

    /// A copy of the current chain snapshot.
    pub fn view(&self) -> Option<ChainView> {
        self.shared.view.read().ok().map(|v| v.clone())
    }

    /// Signs and publishes a record of `kind` for `epoch` with `payload`, expiring `ttl` from
    /// now. Returns its key. Our own record passes the same predicate as any inbound store.
    pub async fn publish(
        &self,
        kind: Kind,
        epoch: u64,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> Result<Hash32, DhtError> {
        let until = self.now_ms().saturating_add(ttl.as_millis() as u64);
        self.publish_until(kind, epoch, payload, until).await
    }

    /// [`Dht::publish`] with a fixed expiry (unix ms). A node that persisted the expiry with
    /// the payload publishes byte-identical record bodies after a restart: peers take the second
    /// copy as a replica, not as a conflicting record of a write-once slot.
    pub async fn publish_until(
        &self,
        kind: Kind,
        epoch: u64,
        payload: Vec<u8>,
        expires_at_ms: u64,
    ) -> Result<Hash32, DhtError> {
        let netuid = self.view().map(|v| v.netuid).ok_or(DhtError::Closed)?;
        // a write-once slot holds one record: a retry with the same payload re-sends it (a
        // record signed again would differ in its expiry and be refused as a conflict, and
        // kept by every peer as evidence against this node)
        let slot = tally_protocol::record::record_key(netuid, kind, epoch, &self.hotkey.hotkey());
        let again = kind.write_once().then(|| {
            self.own.lock().ok().and_then(|own| {
                own.iter()
                    .find(|(k, r)| *k == slot && r.body().payload.as_bytes() == payload)
                    .map(|(_, r)| r.clone())
            })
        });
        if let Some(record) = again.flatten() {
            let (reply, rx) = oneshot::channel();
            self.send(Command::Publish { record, reply }).await?;
            rx.await.map_err(|_| DhtError::Closed)??;
            return Ok(slot);
        }
        let body = RecordBody {
            kind,
            netuid,
            epoch,
            publisher: self.hotkey.hotkey(),
            payload: BoundedBytes::new(payload).map_err(|e| DhtError::Build(e.to_string()))?,
            expires_at_ms,
        };
        let record =
            SignedRecord::sign(body, &self.hotkey).map_err(|e| DhtError::Build(e.to_string()))?;
        let key = record.key();
        if kind.write_once() {
            if let Ok(mut own) = self.own.lock() {
                own.push_back((key, record.clone()));
                while own.len() > OWN_RECORDS {
                    own.pop_front();
                }
            }
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Publish { record, reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)??;
        Ok(key)
    }

    /// Sends `bytes` under `key` to every connected peer, with no local check and without
    /// keeping it: an adversary's tool, for tests that the receivers refuse bad records.
    pub async fn put_raw(&self, key: Hash32, bytes: Vec<u8>) -> Result<(), DhtError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::PutRaw { key, bytes, reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)?
    }

    /// The record of `(kind, epoch, publisher)`, if one passes the predicate in read mode.
    pub async fn get(
        &self,
        kind: Kind,
        epoch: u64,
        publisher: &Hotkey,
    ) -> Result<Option<Verdict>, DhtError> {
        let netuid = self.view().map(|v| v.netuid).ok_or(DhtError::Closed)?;
        let key = record_key(netuid, kind, epoch, publisher);
        let (reply, rx) = oneshot::channel();
        self.send(Command::Get { key, reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)?
    }

    /// [`Dht::get`] for many publishers concurrently, in the order given.
    pub async fn get_many(
        &self,
        kind: Kind,
        epoch: u64,
        publishers: &[Hotkey],
    ) -> Vec<(Hotkey, Result<Option<Verdict>, DhtError>)> {
        let futs = publishers
            .iter()
            .map(|p| async move { (*p, self.get(kind, epoch, p).await) });
        futures::future::join_all(futs).await
    }

    /// The raw bytes this node's store holds under `key`, if any.
    pub async fn held(&self, key: Hash32) -> Result<Option<Vec<u8>>, DhtError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Holds { key, reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)
    }

    /// `(records, bytes)` in this node's store.
    pub async fn stored(&self) -> Result<(usize, usize), DhtError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Stored { reply }).await?;
        rx.await.map_err(|_| DhtError::Closed)
    }

    /// A stream of refusals (lagging receivers lose the oldest).
    pub fn rejections(&self) -> broadcast::Receiver<Rejection> {
        self.shared.rejections.subscribe()
    }

    /// Refusals so far, per reason.
    pub fn reject_counts(&self) -> BTreeMap<Reject, u64> {
        Reject::ALL
            .iter()
            .zip(&self.shared.counts)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Records the predicate accepted but the store refused, per reason (publisher or kind
    /// over its quota, store full, ...).
    pub fn store_refusals(&self) -> BTreeMap<Refusal, u64> {
        self.shared.store.refusals()
    }

    /// Records the store evicted to make room for newer ones of their kind.
    pub fn store_evictions(&self) -> u64 {
        self.shared.store.evictions()
    }

    /// Conflicting signed pairs kept as evidence.
    pub fn evidence(&self) -> Vec<Evidence> {
        self.shared
            .evidence
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The libp2p peer a hotkey's heartbeat bound it to.
    pub fn peer_of(&self, hotkey: &Hotkey) -> Option<PeerId> {
        self.shared
            .peers
            .lock()
            .ok()
            .and_then(|p| p.get(hotkey).copied())
    }

    async fn send(&self, c: Command) -> Result<(), DhtError> {
        self.cmd.send(c).await.map_err(|_| DhtError::Closed)
    }
}

fn add_bootstrap(swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
    if let Some(libp2p::multiaddr::Protocol::P2p(pid)) = addr.iter().last() {
        swarm.behaviour_mut().kad.add_address(&pid, addr.clone());
    }
    if let Err(e) = swarm.dial(addr.clone()) {
        warn!(%addr, "cannot dial: {e}");
    }
}

struct PendingGet {
    key: Hash32,
    reply: Option<oneshot::Sender<Result<Option<Verdict>, DhtError>>>,
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    clock: Clock,
    gets: HashMap<QueryId, PendingGet>,
    puts: HashMap<QueryId, oneshot::Sender<Result<(), DhtError>>>,
    max_pending: usize,
    listen: Vec<Multiaddr>,
    listen_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
}

fn expiry_instant(expires_at_ms: u64, now_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(expires_at_ms.saturating_sub(now_ms))
}

impl EventLoop {
    async fn run(&mut self) {
        let mut purge = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                ev = self.swarm.select_next_some() => self.event(ev),
                _ = purge.tick() => {
                    let n = self.swarm.behaviour_mut().kad.store_mut().purge_expired(Instant::now());
                    if n > 0 {
                        debug!(n, "expired records purged");
                    }
                }
            }
        }
        info!("DHT node stopped");
    }

    fn local(&mut self, key: &Hash32) -> Option<SignedRecord> {
        let k = RecordKey::new(key);
        let held = self.swarm.behaviour_mut().kad.store_mut().get(&k)?;
        SignedRecord::from_bytes(&held.value).ok()
    }

    fn checked(
        &mut self,
        key: &[u8],
        bytes: &[u8],
        mode: Mode,
        from: Option<PeerId>,
    ) -> Result<Verdict, Reject> {
        let mut k = [0u8; 32];
        let existing = if key.len() == 32 {
            k.copy_from_slice(key);
            self.local(&k)
        } else {
            None
        };
        let now = (self.clock)();
        let res = match self.shared.view.read() {
            Ok(view) => check(key, bytes, now, &view, existing.as_ref(), mode),
            Err(_) => Err(Reject::Malformed),
        };
        match &res {
            Ok(v) => self.shared.bind(v),
            Err(reason) => {
                let parsed = SignedRecord::from_bytes(bytes).ok();
                if *reason == Reject::Conflict {
                    if let (Some(held), Some(offered)) = (existing, parsed.clone()) {
                        warn!(publisher = %offered.body().publisher, kind = offered.body().kind.name(),
                              "conflicting record for a write-once slot: kept as evidence");
                        self.shared.keep_evidence(Evidence { held, offered });
                    }
                }
                self.shared.reject(Rejection {
                    reason: *reason,
                    kind: parsed.as_ref().map(|p| p.body().kind),
                    publisher: parsed.as_ref().map(|p| p.body().publisher),
                    epoch: parsed.as_ref().map(|p| p.body().epoch),
                    from,
                    mode,
                });
            }
        }
        res
    }

    fn store(&mut self, v: &Verdict, now: u64) -> Result<(), Refusal> {
        if v.replica {
            return Ok(());
        }
        let mut rec = Record::new(RecordKey::new(&v.record.key()), v.record.to_bytes());
        rec.expires = Some(expiry_instant(v.record.body().expires_at_ms, now));
        self.swarm.behaviour_mut().kad.store_mut().try_put(rec)
    }

    fn pending(&self) -> usize {
        self.gets.len() + self.puts.len()
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Publish { record, reply } => {
                let key = record.key();
                let bytes = record.to_bytes();
                let v = match self.checked(&key, &bytes, Mode::Store, None) {
                    Ok(v) => v,
                    Err(r) => {
                        let _ = reply.send(Err(DhtError::Refused(r)));
                        return;
                    }
                };
                if self.pending() >= self.max_pending {
                    let _ = reply.send(Err(DhtError::Busy));
                    return;
                }
                let now = (self.clock)();
                let mut rec = Record::new(RecordKey::new(&key), bytes);
                rec.expires = Some(expiry_instant(v.record.body().expires_at_ms, now));
                // the store first, for a typed refusal; kad's put below replaces the copy
                let kad = &mut self.swarm.behaviour_mut().kad;
                if let Err(r) = kad.store_mut().try_put(rec.clone()) {
                    let _ = reply.send(Err(DhtError::StoreRefused(r)));
                    return;
                }
                match kad.put_record(rec, Quorum::One) {
                    Ok(id) => {
                        self.puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(DhtError::Store(e.to_string())));
                    }
                }
            }
            Command::PutRaw { key, bytes, reply } => {
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().take(64).collect();
                let mut rec = Record::new(RecordKey::new(&key), bytes);
                rec.expires = Some(Instant::now() + Duration::from_secs(600));
                if peers.is_empty() {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let id = self.swarm.behaviour_mut().kad.put_record_to(
                    rec,
                    peers.into_iter(),
                    Quorum::One,
                );
                self.puts.insert(id, reply);
            }
            Command::Get { key, reply } => {
                // the local copy first: it passed the store check when it arrived, but time has
                // moved on, so it is checked again in read mode
                if let Some(held) = self.local(&key) {
                    if let Ok(v) = self.checked(&key, &held.to_bytes(), Mode::Read, None) {
                        let _ = reply.send(Ok(Some(v)));
                        return;
                    }
                }
                if self.pending() >= self.max_pending {
                    let _ = reply.send(Err(DhtError::Busy));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(RecordKey::new(&key));
                self.gets.insert(
                    id,
                    PendingGet {
                        key,
                        reply: Some(reply),
                    },
                );
            }
            Command::Holds { key, reply } => {
                let held = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .get(&RecordKey::new(&key))
                    .map(|r| r.value.clone());
                let _ = reply.send(held);
            }
            Command::Dial { addr, reply } => {
                if let Some(libp2p::multiaddr::Protocol::P2p(pid)) = addr.iter().last() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&pid, addr.clone());
                }
                let r = self
                    .swarm
                    .dial(addr)
                    .map_err(|e| DhtError::Transport(e.to_string()));
                let _ = reply.send(r);
            }
            Command::ListenAddrs { reply } => {
                if self.listen.is_empty() {
                    if self.listen_waiters.len() < 64 {
                        self.listen_waiters.push(reply);
                    }
                } else {
                    let _ = reply.send(self.listen.clone());
                }
            }
            Command::Stored { reply } => {
                let s = self.swarm.behaviour_mut().kad.store_mut();
                let _ = reply.send((s.len(), s.total_bytes()));
            }
        }
    }

    fn event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(libp2p::multiaddr::Protocol::P2p(
                    *self.swarm.local_peer_id(),
                ));
                if self.listen.len() < 16 {
                    self.listen.push(full);
                }
                for w in self.listen_waiters.drain(..) {
                    let _ = w.send(self.listen.clone());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs.into_iter().take(8) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.kad_event(e),
            _ => {}
        }
    }

    fn kad_event(&mut self, e: kad::Event) {
        match e {
            kad::Event::InboundRequest {
                request:
                    InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => {
                let now = (self.clock)();
                if let Ok(v) = self.checked(
                    record.key.as_ref(),
                    &record.value,
                    Mode::Store,
                    Some(source),
                ) {
                    if let Err(e) = self.store(&v, now) {
                        // counted by the store; debug only, a flood must not flood the log
                        let b = v.record.body();
                        debug!(reason = e.name(), kind = b.kind.name(), publisher = %b.publisher,
                               from = %source, "accepted record not stored");
                    }
                }
            }
            kad::Event::OutboundQueryProgressed { id, result, .. } => match result {
                QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(PeerRecord {
                    peer,
                    record,
                }))) => {
                    let Some(key) = self.gets.get(&id).map(|g| g.key) else {
                        return;
                    };
                    if record.key.as_ref() != key {
                        return;
                    }
                    if let Ok(v) = self.checked(&key, &record.value, Mode::Read, peer) {
                        if let Some(g) = self.gets.remove(&id) {
                            if let Some(r) = g.reply {
                                let _ = r.send(Ok(Some(v)));
                            }
                        }
                        if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            q.finish();
                        }
                    }
                }
                QueryResult::GetRecord(_) => {
                    // finished (no further record) or failed: nothing valid was found
                    if let Some(g) = self.gets.remove(&id) {
                        if let Some(r) = g.reply {
                            let _ = r.send(Ok(None));
                        }
                    }
                }
                QueryResult::PutRecord(res) => {
                    if let Some(reply) = self.puts.remove(&id) {
                        // the record is held locally (or was never meant to be); a put reply
                        // says nothing about whether remotes kept it, so a quorum failure is
                        // not an error for the publisher
                        if let Err(e) = &res {
                            debug!("put query ended: {e}");
                        }
                        let _ = reply.send(Ok(()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}
