//! A bounded Kademlia record store with per-publisher and per-kind quotas.
//!
//! Wraps libp2p's `MemoryStore`. Besides the global caps (at most `max_records` records, each
//! value at most `max_value_bytes`, all values together at most `max_total_bytes`), every
//! record is attributed to its publisher hotkey and its [`Kind`], and each has a budget
//! ([`KindLimits`]):
//!
//! * **per publisher and kind**: a publisher holds at most `per_publisher_records` records
//!   (and `per_publisher_bytes` bytes) of one kind. Since a record's key binds
//!   `(netuid, kind, epoch, publisher)`, that is "the publisher's last few epochs";
//! * **per kind**: all publishers together hold at most `max_records` / `max_bytes` of one
//!   kind, so hoster records (any registered hotkey may write them) can never take the room
//!   reserved for validator commits and reveals (permit and stake needed).
//!
//! A put that would break a budget first drops expired records, then may evict *older* records
//! of the same kind, never newer ones and never another kind's: for a publisher over its quota
//! its own oldest-epoch records (so a flooder only rotates its own records: newest epochs win,
//! and an honest publisher that chose a long expiry is never locked out of the current run);
//! for a kind (or the store) over its budget, the kind's oldest-epoch records. The predicate
//! only admits records of the current epoch (the previous one for validator reveals), so a
//! flood of old, long-lived records always yields to the current runs. A put that still does
//! not fit is refused with a [`Refusal`] naming the budget, counted in [`StoreCounters`].
//!
//! [`StoreLimits::sized_for`] derives the budgets from the subnet's size (registered hotkeys,
//! validators) and how many epochs each kind is kept ([`epochs_kept`]); the totals are the sums
//! of the kinds' budgets, so a full kind never blocks another kind. The default is sized for a
//! Bittensor subnet's defaults (256 uids, 64 validator permits): about 321 MiB and 2,176
//! records at worst, see [`StoreLimits::default`].
//!
//! Attribution reads only the record's header: byte 0 the kind, then netuid (u16), epoch (u64)
//! and publisher (32 bytes), SCALE, as [`tally_protocol::RecordBody`] encodes them; the payload
//! is never decoded. The key must equal the key derived from that header
//! ([`tally_protocol::record_key`]), so replacing the record under a key never moves it to
//! another publisher or kind. The signature is not checked here: the DHT stores a record only
//! after the predicate accepted it (kad's own inbound storing is off), so the header is the
//! signer's. Anything else is refused as [`Refusal::Unattributable`].
//!
//! Bounded: the maps keyed by peer data (per key, per publisher and kind) hold an entry only
//! while it counts at least one held record, so each has at most as many entries as the store
//! has records (`max_records`). Provider records are not used by Tally and are refused.
//!
//! Evicting another publisher's old commit drops this node's copy of it, so a different commit
//! for that slot would then be refused for its epoch (its window has closed) rather than kept
//! as conflict evidence; the current runs' commits are never evicted for older ones.

use libp2p::kad::store::{Error, MemoryStore, MemoryStoreConfig, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::PeerId;
use parity_scale_codec::Decode;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tally_core::hash::Hash32;
use tally_core::Hotkey;
use tally_protocol::kind::MAX_RECORD_BYTES;
use tally_protocol::{record_key, Kind};
use thiserror::Error as ThisError;

/// Registered hotkeys the default budgets are sized for (a Bittensor subnet's default
/// `max_allowed_uids`).
pub const DEFAULT_NEURONS: usize = 256;
/// Validators the default budgets are sized for (Bittensor's default `max_allowed_validators`).
pub const DEFAULT_VALIDATORS: usize = 64;

/// Bytes of a record's header: kind (1), netuid (2), epoch (8), publisher (32).
const HEADER_BYTES: usize = 1 + 2 + 8 + 32;
/// A record ends with its 64-byte signature.
const MIN_RECORD_BYTES: usize = HEADER_BYTES + 64;

/// How many epochs of `kind` each publisher keeps in the store: its quota in records.
///
/// * heartbeat: 1, its only slot (refreshed in place);
/// * challenge, hoster commit, hoster reveal: 2. Consumers read them within the epoch they
///   name (hoster commits are snapshotted when their window closes, reveals read right after,
///   the challenge at the start), so the current epoch plus one for the edge is enough;
/// * validator commit, validator reveal: 6. The node publishes them for four epochs; a record
///   lives into the fifth epoch after the one it names, plus one for skew and purge lag. The
///   commit of run e is read until its aggregation in e+1, the reveal during e+1.
pub fn epochs_kept(kind: Kind) -> usize {
    match kind {
        Kind::Heartbeat => 1,
        Kind::Challenge | Kind::HosterCommit | Kind::HosterReveal => 2,
        Kind::ValidatorCommit | Kind::ValidatorReveal => 6,
    }
}

/// The budget of one record kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindLimits {
    /// Most records of the kind, all publishers together.
    pub max_records: usize,
    /// Most bytes of the kind, all publishers together.
    pub max_bytes: usize,
    /// Most records of the kind from one publisher.
    pub per_publisher_records: usize,
    /// Most bytes of the kind from one publisher.
    pub per_publisher_bytes: usize,
}

/// Caps of a [`BoundedStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most records.
    pub max_records: usize,
    /// Largest value.
    pub max_value_bytes: usize,
    /// Most bytes of all values together.
    pub max_total_bytes: usize,
    /// The budget of each kind, in [`Kind::ALL`] order (see [`StoreLimits::kind`]).
    pub kinds: [KindLimits; Kind::ALL.len()],
}

impl StoreLimits {
    /// Budgets for a subnet of `neurons` registered hotkeys, `validators` of them validators:
    /// each publisher keeps [`epochs_kept`] records of a kind at the kind's size cap; a kind
    /// holds that for every possible publisher (validators for validator-only kinds, every
    /// registered hotkey otherwise); the totals are the sums over the kinds.
    pub fn sized_for(neurons: usize, validators: usize) -> StoreLimits {
        let kinds = Kind::ALL.map(|k| {
            let publishers = if k.validator_only() {
                validators
            } else {
                neurons
            };
            let per = epochs_kept(k);
            KindLimits {
                max_records: publishers.saturating_mul(per),
                max_bytes: publishers.saturating_mul(per).saturating_mul(k.max_bytes()),
                per_publisher_records: per,
                per_publisher_bytes: per.saturating_mul(k.max_bytes()),
            }
        });
        StoreLimits {
            max_records: kinds
                .iter()
                .fold(0usize, |a, k| a.saturating_add(k.max_records)),
            max_value_bytes: MAX_RECORD_BYTES,
            max_total_bytes: kinds
                .iter()
                .fold(0usize, |a, k| a.saturating_add(k.max_bytes)),
            kinds,
        }
    }

    /// The budget of `kind`.
    pub fn kind(&self, kind: Kind) -> &KindLimits {
        &self.kinds[kind_index(kind)]
    }

    /// The budget of `kind`, to change it.
    pub fn kind_mut(&mut self, kind: Kind) -> &mut KindLimits {
        &mut self.kinds[kind_index(kind)]
    }
}

impl Default for StoreLimits {
    /// [`StoreLimits::sized_for`] `(DEFAULT_NEURONS, DEFAULT_VALIDATORS)`: per kind, in records
    /// and worst-case bytes: heartbeat 256 (1 MiB), challenge 128 (16 MiB), hoster commit 512
    /// (256 KiB), hoster reveal 512 (64 MiB), validator commit 384 (192 KiB), validator reveal
    /// 384 (240 MiB); in all 2,176 records, about 321 MiB.
    fn default() -> Self {
        StoreLimits::sized_for(DEFAULT_NEURONS, DEFAULT_VALIDATORS)
    }
}

fn kind_index(kind: Kind) -> usize {
    // `Kind::ALL` lists the kinds in declaration order (a unit test checks it)
    kind as usize
}

/// Why the store refused a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ThisError)]
pub enum Refusal {
    /// Over the store's value cap or the kind's size cap.
    #[error("value larger than the store or the kind allows")]
    ValueTooLarge,
    /// Not a Tally record stored under the key derived from its header.
    #[error("not a Tally record under its derived key")]
    Unattributable,
    /// The publisher holds its quota of this kind, none of it older than the record.
    #[error("the publisher is at its quota for this kind")]
    PublisherQuota,
    /// The kind is at its budget, none of it older than the record.
    #[error("the kind is at its share of the store")]
    KindQuota,
    /// The store is at its total caps, none of the kind's records older than the record.
    #[error("the store is full")]
    Full,
}

impl Refusal {
    /// Every reason, for metrics.
    pub const ALL: [Refusal; 5] = [
        Refusal::ValueTooLarge,
        Refusal::Unattributable,
        Refusal::PublisherQuota,
        Refusal::KindQuota,
        Refusal::Full,
    ];

    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::ValueTooLarge => "value_too_large",
            Refusal::Unattributable => "unattributable",
            Refusal::PublisherQuota => "publisher_quota",
            Refusal::KindQuota => "kind_quota",
            Refusal::Full => "store_full",
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        match r {
            Refusal::ValueTooLarge => Error::ValueTooLarge,
            _ => Error::MaxRecords,
        }
    }
}

/// Refusals and evictions of a store, shared with whoever reports metrics.
#[derive(Debug, Default)]
pub struct StoreCounters {
    refused: [AtomicU64; Refusal::ALL.len()],
    evicted: AtomicU64,
}

impl StoreCounters {
    /// Refusals so far, per reason.
    pub fn refusals(&self) -> BTreeMap<Refusal, u64> {
        Refusal::ALL
            .iter()
            .zip(&self.refused)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Records evicted to make room for newer ones.
    pub fn evictions(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn refuse(&self, r: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|x| *x == r) {
            self.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the store knows about a held record, from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    kind: Kind,
    epoch: u64,
    publisher: Hotkey,
    bytes: usize,
}

/// Reads the header of a record's wire form and checks `key` is the key derived from it.
/// Decodes 43 bytes at most; never panics.
fn attribute(key: &[u8], value: &[u8]) -> Option<Meta> {
    if value.len() < MIN_RECORD_BYTES {
        return None;
    }
    let mut header = &value[..HEADER_BYTES];
    let (kind, netuid, epoch, publisher) = <(Kind, u16, u64, Hotkey)>::decode(&mut header).ok()?;
    if key != record_key(netuid, kind, epoch, &publisher) {
        return None;
    }
    Some(Meta {
        kind,
        epoch,
        publisher,
        bytes: value.len(),
    })
}

/// Records and bytes of one publisher's kind, or of one kind; the held keys by epoch.
#[derive(Debug, Default)]
struct Usage {
    bytes: usize,
    keys: BTreeSet<(u64, Hash32)>,
}

impl Usage {
    fn records(&self) -> usize {
        self.keys.len()
    }

    /// Keys of records older than `epoch`, oldest first, except `skip` (the slot being
    /// replaced).
    fn older<'a>(&'a self, epoch: u64, skip: &'a Hash32) -> impl Iterator<Item = Hash32> + 'a {
        let older = self.keys.iter().take_while(move |(e, _)| *e < epoch);
        older.map(|(_, k)| *k).filter(move |k| k != skip)
    }
}

/// The record store.
pub struct BoundedStore {
    inner: MemoryStore,
    limits: StoreLimits,
    total_bytes: usize,
    /// One entry per held record.
    meta: HashMap<Hash32, Meta>,
    /// One entry per (publisher, kind) holding at least one record.
    by_publisher: BTreeMap<(Hotkey, Kind), Usage>,
    by_kind: [Usage; Kind::ALL.len()],
    counters: Arc<StoreCounters>,
}

/// `(records, bytes)` a put would leave, while it is planned.
struct Projected {
    publisher: (usize, usize),
    kind: (usize, usize),
    total: (usize, usize),
}

impl BoundedStore {
    /// An empty store for `local`.
    pub fn new(local: PeerId, limits: StoreLimits) -> Self {
        let cfg = MemoryStoreConfig {
            max_records: limits.max_records,
            // MemoryStore refuses values of `max_value_bytes` or more; ours is inclusive
            max_value_bytes: limits.max_value_bytes.saturating_add(1),
            max_providers_per_key: 0,
            max_provided_keys: 0,
        };
        BoundedStore {
            inner: MemoryStore::with_config(local, cfg),
            limits,
            total_bytes: 0,
            meta: HashMap::new(),
            by_publisher: BTreeMap::new(),
            by_kind: Default::default(),
            counters: Arc::new(StoreCounters::default()),
        }
    }

    /// The store's refusal and eviction counters (shared; they keep counting).
    pub fn counters(&self) -> Arc<StoreCounters> {
        self.counters.clone()
    }

    /// The caps.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Removes every expired record; returns how many went.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let expired: Vec<RecordKey> = self
            .inner
            .records()
            .filter(|r| r.is_expired(now))
            .map(|r| r.key.clone())
            .collect();
        for k in &expired {
            self.remove(k);
        }
        expired.len()
    }

    /// Bytes of all values held.
    pub fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// `(records, bytes)` of `kind` held from `publisher`.
    pub fn publisher_usage(&self, publisher: &Hotkey, kind: Kind) -> (usize, usize) {
        self.by_publisher
            .get(&(*publisher, kind))
            .map_or((0, 0), |u| (u.records(), u.bytes))
    }

    /// `(records, bytes)` of `kind` held from all publishers.
    pub fn kind_usage(&self, kind: Kind) -> (usize, usize) {
        let u = &self.by_kind[kind_index(kind)];
        (u.records(), u.bytes)
    }

    /// Stores `r` if it fits its publisher's and its kind's budgets and the totals, evicting
    /// older records of its kind if needed (see the module docs); otherwise refuses it and
    /// leaves the store as it was.
    pub fn try_put(&mut self, r: Record) -> std::result::Result<(), Refusal> {
        let res = self.put_inner(r);
        if let Err(e) = res {
            self.counters.refuse(e);
        }
        res
    }

    fn put_inner(&mut self, r: Record) -> std::result::Result<(), Refusal> {
        if r.value.len() > self.limits.max_value_bytes {
            return Err(Refusal::ValueTooLarge);
        }
        let m = attribute(r.key.as_ref(), &r.value).ok_or(Refusal::Unattributable)?;
        if m.bytes > m.kind.max_bytes() {
            return Err(Refusal::ValueTooLarge);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(r.key.as_ref()); // a derived key: 32 bytes
        let evict = match self.plan(&key, &m) {
            Ok(e) if e.is_empty() => e,
            _ => {
                // something must go: expired records first
                self.purge_expired(Instant::now());
                self.plan(&key, &m)?
            }
        };
        for k in &evict {
            self.remove(&RecordKey::new(k));
        }
        self.counters
            .evicted
            .fetch_add(evict.len() as u64, Ordering::Relaxed);
        self.remove(&r.key); // a replacement: its old bytes leave the counts
        match self.inner.put(r) {
            Ok(()) => {
                self.account(key, m);
                Ok(())
            }
            // unreachable in practice: the plan kept the inner store's caps
            Err(Error::ValueTooLarge) => Err(Refusal::ValueTooLarge),
            Err(_) => Err(Refusal::Full),
        }
    }

    /// Which records must go for `m` under `key` to fit, or why it cannot.
    fn plan(&self, key: &Hash32, m: &Meta) -> std::result::Result<Vec<Hash32>, Refusal> {
        let lim = self.limits.kind(m.kind);
        let old = self.meta.get(key);
        let (old_n, old_b) = old.map_or((0, 0), |o| (1, o.bytes));
        let after = |(n, b): (usize, usize)| {
            (
                n.saturating_sub(old_n).saturating_add(1),
                b.saturating_sub(old_b).saturating_add(m.bytes),
            )
        };
        let own = self.by_publisher.get(&(m.publisher, m.kind));
        let kind = &self.by_kind[kind_index(m.kind)];
        let mut t = Projected {
            publisher: after(own.map_or((0, 0), |u| (u.records(), u.bytes))),
            kind: after((kind.records(), kind.bytes)),
            total: after((self.meta.len(), self.total_bytes)),
        };
        let over = |(n, b): (usize, usize), max_n: usize, max_b: usize| n > max_n || b > max_b;
        let publisher_over = |t: &Projected| {
            over(
                t.publisher,
                lim.per_publisher_records,
                lim.per_publisher_bytes,
            )
        };
        let kind_over = |t: &Projected| over(t.kind, lim.max_records, lim.max_bytes);
        let total_over = |t: &Projected| {
            over(
                t.total,
                self.limits.max_records,
                self.limits.max_total_bytes,
            )
        };
        let mut evict: Vec<Hash32> = Vec::new();
        let take = |t: &mut Projected, k: &Hash32, evict: &mut Vec<Hash32>| {
            let b = self.meta.get(k).map_or(0, |x| x.bytes);
            let same_publisher = self.meta.get(k).map(|x| x.publisher) == Some(m.publisher);
            let dec = |(n, s): (usize, usize)| (n.saturating_sub(1), s.saturating_sub(b));
            if same_publisher {
                t.publisher = dec(t.publisher);
            }
            t.kind = dec(t.kind);
            t.total = dec(t.total);
            evict.push(*k);
        };
        if publisher_over(&t) {
            for k in own.into_iter().flat_map(|u| u.older(m.epoch, key)) {
                if !publisher_over(&t) {
                    break;
                }
                take(&mut t, &k, &mut evict);
            }
            if publisher_over(&t) {
                return Err(Refusal::PublisherQuota);
            }
        }
        if kind_over(&t) || total_over(&t) {
            for k in kind.older(m.epoch, key) {
                if !(kind_over(&t) || total_over(&t)) {
                    break;
                }
                if !evict.contains(&k) {
                    take(&mut t, &k, &mut evict);
                }
            }
            if kind_over(&t) {
                return Err(Refusal::KindQuota);
            }
            if total_over(&t) {
                return Err(Refusal::Full);
            }
        }
        Ok(evict)
    }

    fn account(&mut self, key: Hash32, m: Meta) {
        self.total_bytes = self.total_bytes.saturating_add(m.bytes);
        let p = self.by_publisher.entry((m.publisher, m.kind)).or_default();
        p.bytes = p.bytes.saturating_add(m.bytes);
        p.keys.insert((m.epoch, key));
        let k = &mut self.by_kind[kind_index(m.kind)];
        k.bytes = k.bytes.saturating_add(m.bytes);
        k.keys.insert((m.epoch, key));
        self.meta.insert(key, m);
    }

    fn unaccount(&mut self, key: &[u8]) {
        let Ok(key) = <Hash32>::try_from(key) else {
            return;
        };
        let Some(m) = self.meta.remove(&key) else {
            return;
        };
        self.total_bytes = self.total_bytes.saturating_sub(m.bytes);
        if let Some(p) = self.by_publisher.get_mut(&(m.publisher, m.kind)) {
            p.bytes = p.bytes.saturating_sub(m.bytes);
            p.keys.remove(&(m.epoch, key));
            if p.keys.is_empty() {
                self.by_publisher.remove(&(m.publisher, m.kind));
            }
        }
        let k = &mut self.by_kind[kind_index(m.kind)];
        k.bytes = k.bytes.saturating_sub(m.bytes);
        k.keys.remove(&(m.epoch, key));
    }
}

impl RecordStore for BoundedStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.inner.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        self.try_put(r).map_err(Error::from)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.unaccount(k.as_ref());
        self.inner.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }

    fn add_provider(&mut self, _record: ProviderRecord) -> Result<()> {
        Err(Error::MaxProvidedKeys)
    }

    fn providers(&self, _key: &RecordKey) -> Vec<ProviderRecord> {
        Vec::new()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.inner.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.inner.remove_provider(k, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parity_scale_codec::Encode;
    use std::time::Duration;

    const NET: u16 = 7;

    fn hk(i: u8) -> Hotkey {
        Hotkey([i; 32])
    }

    /// A record of `kind` for `epoch` by `publisher`, `n` bytes long (header, filler,
    /// signature), under its derived key. The store reads only the header.
    fn rec(kind: Kind, epoch: u64, publisher: Hotkey, n: usize) -> Record {
        let mut v = (kind, NET, epoch, publisher).encode();
        v.resize(n.max(MIN_RECORD_BYTES), 0xab);
        Record::new(RecordKey::new(&record_key(NET, kind, epoch, &publisher)), v)
    }

    fn key_of(kind: Kind, epoch: u64, publisher: Hotkey) -> RecordKey {
        RecordKey::new(&record_key(NET, kind, epoch, &publisher))
    }

    /// Recounts everything from the records held and checks it against the counters, the
    /// caps, and the bound on the maps.
    fn assert_consistent(s: &BoundedStore) {
        let mut total = 0;
        let mut n = 0;
        let mut per_pub: BTreeMap<(Hotkey, Kind), (usize, usize)> = BTreeMap::new();
        let mut per_kind: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
        for r in s.inner.records() {
            let m = attribute(r.key.as_ref(), &r.value).expect("held records attribute");
            let key: Hash32 = r.key.as_ref().try_into().unwrap();
            assert_eq!(s.meta.get(&key), Some(&m));
            n += 1;
            total += m.bytes;
            let p = per_pub.entry((m.publisher, m.kind)).or_default();
            p.0 += 1;
            p.1 += m.bytes;
            let k = per_kind.entry(m.kind).or_default();
            k.0 += 1;
            k.1 += m.bytes;
        }
        assert_eq!(s.len(), n);
        assert_eq!(s.meta.len(), n);
        assert_eq!(s.total_bytes(), total);
        assert!(n <= s.limits.max_records && total <= s.limits.max_total_bytes);
        // no empty entries: the per-publisher map is bounded by the records it counts
        assert_eq!(s.by_publisher.len(), per_pub.len());
        assert!(s.by_publisher.len() <= n);
        for ((p, k), (cn, cb)) in &per_pub {
            assert_eq!(s.publisher_usage(p, *k), (*cn, *cb));
            let lim = s.limits.kind(*k);
            assert!(*cn <= lim.per_publisher_records && *cb <= lim.per_publisher_bytes);
        }
        for k in Kind::ALL {
            let (cn, cb) = per_kind.get(&k).copied().unwrap_or_default();
            assert_eq!(s.kind_usage(k), (cn, cb));
            let lim = s.limits.kind(k);
            assert!(cn <= lim.max_records && cb <= lim.max_bytes);
        }
    }

    /// Small budgets: 2 records a publisher for hoster kinds, 4 hoster reveals in all, 3
    /// validator reveals from each validator.
    fn small() -> StoreLimits {
        StoreLimits::sized_for(2, 2)
    }

    #[test]
    fn kind_indexes_follow_all() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(kind_index(*k), i);
        }
    }

    #[test]
    fn caps_records_bytes_and_values() {
        let hot = hk(1);
        let mut limits = StoreLimits::sized_for(100, 100);
        limits.max_records = 3;
        limits.max_value_bytes = 400;
        limits.max_total_bytes = 600;
        let mut s = BoundedStore::new(PeerId::random(), limits);
        let r = |e: u64, n: usize| rec(Kind::ValidatorReveal, e, hot, n);
        assert_eq!(s.try_put(r(1, 401)), Err(Refusal::ValueTooLarge));
        s.try_put(r(1, 400)).unwrap();
        // 400 + 250 > 600, and nothing of the kind is older than epoch 1
        let mut early = r(0, 250);
        assert_eq!(s.try_put(early.clone()), Err(Refusal::Full));
        early.value.truncate(200);
        s.try_put(early).unwrap();
        assert_eq!(s.total_bytes(), 600);
        s.try_put(r(1, 150)).unwrap(); // replacing frees bytes
        assert_eq!(s.total_bytes(), 350);
        s.try_put(r(2, 150)).unwrap();
        // the record cap: a record older than all held is refused ...
        let mut s2 = BoundedStore::new(PeerId::random(), limits);
        for e in [5, 6, 7] {
            s2.try_put(r(e, 150)).unwrap();
        }
        assert_eq!(s2.try_put(r(4, 150)), Err(Refusal::Full));
        // ... a newer one evicts the oldest of its kind
        s2.try_put(r(8, 150)).unwrap();
        assert!(s2.get(&key_of(Kind::ValidatorReveal, 5, hot)).is_none());
        assert_eq!(s2.counters().evictions(), 1);
        s.remove(&key_of(Kind::ValidatorReveal, 0, hot));
        assert_eq!(s.total_bytes(), 300);
        // expired records are purged
        let mut old = r(9, 100);
        old.expires = Some(Instant::now());
        s.try_put(old).unwrap();
        assert_eq!(
            s.purge_expired(Instant::now() + Duration::from_millis(1)),
            1
        );
        assert_eq!(s.total_bytes(), 300);
        assert_consistent(&s);
        assert_consistent(&s2);
        assert_eq!(s.counters().refusals()[&Refusal::ValueTooLarge], 1);
        assert_eq!(s.counters().refusals()[&Refusal::Full], 1);
    }

    #[test]
    fn only_attributable_records_are_stored() {
        let mut s = BoundedStore::new(PeerId::random(), StoreLimits::default());
        // not a record, too short for a header, an unknown kind
        for v in [vec![], vec![0; 10], {
            let mut v = vec![9u8];
            v.resize(200, 0);
            v
        }] {
            let r = Record::new(RecordKey::new(&[1u8; 32]), v);
            assert_eq!(s.try_put(r), Err(Refusal::Unattributable));
        }
        // a well-formed header under another key, and under a key of the wrong length
        let good = rec(Kind::HosterCommit, 3, hk(1), 200);
        let moved = Record::new(key_of(Kind::HosterCommit, 3, hk(2)), good.value.clone());
        assert_eq!(s.try_put(moved), Err(Refusal::Unattributable));
        let short = Record::new(RecordKey::new(&[1u8; 3]), good.value.clone());
        assert_eq!(s.try_put(short), Err(Refusal::Unattributable));
        // over the kind's size cap (512), though far under the store's value cap
        assert_eq!(
            s.try_put(rec(Kind::HosterCommit, 3, hk(1), 513)),
            Err(Refusal::ValueTooLarge)
        );
        s.try_put(good).unwrap();
        assert_eq!(s.publisher_usage(&hk(1), Kind::HosterCommit), (1, 200));
        assert_eq!(s.counters().refusals()[&Refusal::Unattributable], 5);
        assert_eq!(s.counters().refusals()[&Refusal::ValueTooLarge], 1);
        assert_consistent(&s);
    }

    #[test]
    fn attributes_real_signed_records() {
        use tally_core::{BoundedBytes, Keypair};
        use tally_protocol::{RecordBody, SignedRecord};
        let key = Keypair::from_seed(&[3; 32]);
        let body = RecordBody {
            kind: Kind::ValidatorReveal,
            netuid: 9,
            epoch: 1234,
            publisher: key.hotkey(),
            payload: BoundedBytes::new(vec![1, 2, 3]).unwrap(),
            expires_at_ms: 99,
        };
        let signed = SignedRecord::sign(body, &key).unwrap();
        let bytes = signed.to_bytes();
        let m = attribute(&signed.key(), &bytes).unwrap();
        assert_eq!(
            m,
            Meta {
                kind: Kind::ValidatorReveal,
                epoch: 1234,
                publisher: key.hotkey(),
                bytes: bytes.len()
            }
        );
        // every truncation and every one-byte corruption of the header: no panic, and never
        // attributed to anything but the signer's slot
        for n in 0..MIN_RECORD_BYTES {
            assert_eq!(attribute(&signed.key(), &bytes[..n.min(bytes.len())]), None);
        }
        for i in 0..HEADER_BYTES {
            let mut b = bytes.clone();
            b[i] ^= 0x55;
            assert_eq!(attribute(&signed.key(), &b), None, "byte {i}");
        }
    }

    /// The review finding: one registered hotkey filled the store with long-lived hoster
    /// records and everything else, validator reveals included, was refused. Fails without
    /// the quotas (the flooder takes every record and byte of the store).
    #[test]
    fn a_hoster_flood_cannot_crowd_out_other_publishers() {
        let mut limits = small();
        // a store no bigger than the flood, as the old store's global caps were
        limits.max_records = 8;
        let mut s = BoundedStore::new(PeerId::random(), limits);
        let flooder = hk(1);
        // long-lived hoster reveals, one per epoch (one slot per epoch), many epochs
        for e in 0..40 {
            let _ = s.try_put(rec(Kind::HosterReveal, e, flooder, 4_000));
            let _ = s.try_put(rec(Kind::HosterCommit, e, flooder, 200));
        }
        // another hoster and a validator store theirs
        s.try_put(rec(Kind::HosterReveal, 39, hk(2), 4_000))
            .expect("another hoster's reveal");
        s.try_put(rec(Kind::ValidatorCommit, 39, hk(3), 200))
            .expect("a validator's commit");
        s.try_put(rec(Kind::ValidatorReveal, 38, hk(3), 50_000))
            .expect("a validator's reveal");
        assert_eq!(s.kind_usage(Kind::ValidatorReveal), (1, 50_000));
        // the flooder keeps its quota: the two newest epochs of each kind
        assert_eq!(s.publisher_usage(&flooder, Kind::HosterReveal), (2, 8_000));
        assert_eq!(s.publisher_usage(&flooder, Kind::HosterCommit), (2, 400));
        assert!(s.get(&key_of(Kind::HosterReveal, 39, flooder)).is_some());
        assert!(s.get(&key_of(Kind::HosterReveal, 37, flooder)).is_none());
        // a late copy of an old record does not displace its newer ones
        assert_eq!(
            s.try_put(rec(Kind::HosterReveal, 3, flooder, 4_000)),
            Err(Refusal::PublisherQuota)
        );
        assert_eq!(s.counters().evictions(), 76);
        assert_consistent(&s);
    }

    /// Many publishers fill the hoster kinds and the store's record cap: a validator within
    /// its quota still stores its reveal, a further hoster in the same epoch is refused, and
    /// a hoster record of a newer epoch displaces the oldest.
    #[test]
    fn a_full_store_still_takes_a_validators_reveal() {
        let mut limits = small(); // hoster reveals: 4 in all
        limits.max_records = limits.kind(Kind::HosterReveal).max_records + 1;
        let mut s = BoundedStore::new(PeerId::random(), limits);
        for p in 1..=5 {
            let _ = s.try_put(rec(Kind::HosterReveal, 10, hk(p), 1_000));
        }
        assert_eq!(s.kind_usage(Kind::HosterReveal).0, 4);
        // the fifth hoster, same epoch: nothing older to give way
        assert_eq!(s.counters().refusals()[&Refusal::KindQuota], 1);
        // a validator's reveal has its own budget
        s.try_put(rec(Kind::ValidatorReveal, 10, hk(9), 100_000))
            .expect("a validator's reveal in a store full of hoster records");
        assert_eq!(s.len(), 5);
        // the store is at its record cap: another validator kind refused only as `Full` ...
        assert_eq!(
            s.try_put(rec(Kind::ValidatorCommit, 11, hk(9), 200)),
            Err(Refusal::Full)
        );
        // ... and a newer validator reveal replaces the older one of its kind
        s.try_put(rec(Kind::ValidatorReveal, 11, hk(8), 100_000))
            .unwrap();
        assert!(s.get(&key_of(Kind::ValidatorReveal, 10, hk(9))).is_none());
        // a newer epoch's hoster record displaces an epoch-10 one
        s.try_put(rec(Kind::HosterReveal, 12, hk(5), 1_000))
            .unwrap();
        assert_eq!(s.kind_usage(Kind::HosterReveal).0, 4);
        assert!(s.get(&key_of(Kind::HosterReveal, 12, hk(5))).is_some());
        let refused = s.counters().refusals();
        assert_eq!(refused[&Refusal::KindQuota], 1);
        assert_eq!(refused[&Refusal::Full], 1);
        assert_consistent(&s);
    }

    #[test]
    fn replacement_keeps_counts_and_never_evicts_itself() {
        let mut s = BoundedStore::new(PeerId::random(), small());
        let p = hk(4);
        s.try_put(rec(Kind::HosterReveal, 5, p, 1_000)).unwrap();
        s.try_put(rec(Kind::HosterReveal, 6, p, 1_000)).unwrap();
        // at its quota, replacing a held slot with a larger value fits
        s.try_put(rec(Kind::HosterReveal, 5, p, 3_000)).unwrap();
        assert_eq!(s.publisher_usage(&p, Kind::HosterReveal), (2, 4_000));
        assert_eq!(s.counters().evictions(), 0);
        // a larger replacement over the byte quota evicts the older slot, never itself
        s.limits.kind_mut(Kind::HosterReveal).per_publisher_bytes = 5_000;
        s.try_put(rec(Kind::HosterReveal, 6, p, 4_500)).unwrap();
        assert_eq!(s.publisher_usage(&p, Kind::HosterReveal), (1, 4_500));
        // and the slot itself cannot grow past the quota
        assert_eq!(
            s.try_put(rec(Kind::HosterReveal, 6, p, 5_001)),
            Err(Refusal::PublisherQuota)
        );
        assert_eq!(s.publisher_usage(&p, Kind::HosterReveal), (1, 4_500));
        s.remove(&key_of(Kind::HosterReveal, 6, p));
        assert_eq!(s.publisher_usage(&p, Kind::HosterReveal), (0, 0));
        assert!(s.by_publisher.is_empty());
        assert_consistent(&s);
    }

    #[test]
    fn defaults_fit_every_publisher_of_every_kind() {
        let l = StoreLimits::default();
        let kinds: Vec<&KindLimits> = Kind::ALL.iter().map(|k| l.kind(*k)).collect();
        assert_eq!(
            l.max_records,
            kinds.iter().map(|k| k.max_records).sum::<usize>()
        );
        assert_eq!(
            l.max_total_bytes,
            kinds.iter().map(|k| k.max_bytes).sum::<usize>()
        );
        assert_eq!(l.max_records, 2_176);
        assert!(l.max_total_bytes < 322 * 1024 * 1024);
        for k in Kind::ALL {
            let kl = l.kind(k);
            let publishers = if k.validator_only() {
                DEFAULT_VALIDATORS
            } else {
                DEFAULT_NEURONS
            };
            assert_eq!(kl.max_records, publishers * kl.per_publisher_records);
            assert!(kl.per_publisher_bytes >= kl.per_publisher_records * k.max_bytes());
        }
        assert!(l.kind(Kind::HosterReveal).per_publisher_records <= 2);
    }

    /// Random put/remove/expire sequences: after every step the counters equal a recount, the
    /// budgets hold, a refused put changes nothing and an accepted one is held.
    #[test]
    fn counters_match_a_recount_under_random_operations() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut seen: BTreeMap<Refusal, u64> = BTreeMap::new();
        let mut evicted = 0;
        for round in 0..60 {
            let mut limits = StoreLimits::sized_for(3, 2);
            if round % 2 == 0 {
                limits.max_records = 2 + next(8) as usize;
                limits.max_total_bytes = 2_000 + next(20_000) as usize;
            }
            let mut s = BoundedStore::new(PeerId::random(), limits);
            for _ in 0..300 {
                let kind = Kind::ALL[next(6) as usize];
                let (publisher, epoch) = (hk(1 + next(4) as u8), next(8));
                match next(10) {
                    0..=6 => {
                        // a few commits over their kind's cap, to be refused
                        let span = kind.max_bytes().min(6_000) - MIN_RECORD_BYTES + 20;
                        let size = MIN_RECORD_BYTES + next(span as u64) as usize;
                        let mut r = rec(kind, epoch, publisher, size);
                        if next(5) == 0 {
                            r.expires = Some(Instant::now());
                        }
                        let before: BTreeMap<Hash32, Meta> =
                            s.meta.iter().map(|(k, m)| (*k, *m)).collect();
                        let key: Hash32 = r.key.as_ref().try_into().unwrap();
                        let value = r.value.clone();
                        match s.try_put(r) {
                            Ok(()) => {
                                assert_eq!(s.get(&RecordKey::new(&key)).unwrap().value, value)
                            }
                            Err(e) => {
                                // only expired records may have gone
                                let after: BTreeMap<Hash32, Meta> =
                                    s.meta.iter().map(|(k, m)| (*k, *m)).collect();
                                assert!(after.iter().all(|(k, m)| before.get(k) == Some(m)), "{e}");
                            }
                        }
                    }
                    7 | 8 => s.remove(&key_of(kind, epoch, publisher)),
                    _ => {
                        s.purge_expired(Instant::now() + Duration::from_millis(1));
                    }
                }
                assert_consistent(&s);
            }
            for (r, n) in s.counters().refusals() {
                *seen.entry(r).or_default() += n;
            }
            evicted += s.counters().evictions();
        }
        // the sequences reach every budget and every way out of it
        assert!(evicted > 0);
        for r in Refusal::ALL {
            if r != Refusal::Unattributable {
                assert!(seen[&r] > 0, "never refused as {r:?}");
            }
        }
    }
}
