//! The embedded local chain: durable in one redb file, blocks on a timer.
//!
//! Created from a [`Genesis`] (subnets and their initial neurons with stake and permits) or
//! reopened from its file, where every block, neuron, commitment, weight setting and nonce is
//! kept. Each extrinsic is checked and applied in one write transaction, so a crash never leaves
//! half of one; it is stamped with the head block at the time it is applied, and becomes durable
//! with the next block (as a real chain's transactions become final with their block).
//!
//! Limits mirrored from the real chain: a commitment's size and the bytes a hotkey may commit per
//! epoch, the weights rate limit, registration up to `max_uids`, validator-only weights, and
//! per-hotkey nonces against replay.

use crate::extrinsic::{self, Call};
use crate::types::*;
use crate::Chain;
use parity_scale_codec::{Decode, Encode};
use redb::{Database, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally_core::hash::tagged_sha256;
use tally_core::Hotkey;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const PARAMS: TableDefinition<u16, &[u8]> = TableDefinition::new("params");
const NEURONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("neurons");
const COMMITS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("commitments");
const WEIGHTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("weights");
const NONCES: TableDefinition<&[u8], u64> = TableDefinition::new("nonces");

/// Most history entries a query returns.
const HISTORY: usize = 256;

/// The chain's initial state (also read from JSON by `tally chain serve --genesis`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize, serde::Deserialize)]
pub struct Genesis {
    /// Unix milliseconds of block 0.
    pub timestamp_ms: u64,
    /// Subnets.
    pub subnets: Vec<SubnetParams>,
    /// Initial neurons per subnet (uids are assigned in order).
    pub neurons: Vec<(u16, NeuronInfo)>,
}

impl Genesis {
    /// A genesis neuron of `netuid` (its uid is assigned in order when the chain is created).
    pub fn neuron(
        netuid: u16,
        hotkey: tally_core::Hotkey,
        stake: u64,
        validator_permit: bool,
        axon: String,
    ) -> (u16, NeuronInfo) {
        (
            netuid,
            NeuronInfo {
                uid: 0,
                hotkey,
                stake,
                validator_permit,
                axon,
                peer: String::new(),
                registered_at: 0,
            },
        )
    }
}

/// The embedded chain.
pub struct LocalChain {
    db: Database,
}

fn storage<E: std::fmt::Display>(e: E) -> ChainError {
    ChainError::Storage(e.to_string())
}

fn decode<T: Decode>(bytes: &[u8]) -> Result<T, ChainError> {
    T::decode(&mut &bytes[..]).map_err(|e| ChainError::Storage(format!("corrupt record: {e}")))
}

/// The head block from the meta table.
fn read_head(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<BlockInfo, ChainError> {
    decode(
        meta.get("head")
            .map_err(storage)?
            .ok_or_else(|| storage("no head"))?
            .value(),
    )
}

fn neuron_key(netuid: u16, uid: u16) -> [u8; 4] {
    let mut k = [0u8; 4];
    k[..2].copy_from_slice(&netuid.to_be_bytes());
    k[2..].copy_from_slice(&uid.to_be_bytes());
    k
}

fn history_key(netuid: u16, hotkey: &Hotkey, block: u64) -> [u8; 42] {
    let mut k = [0u8; 42];
    k[..2].copy_from_slice(&netuid.to_be_bytes());
    k[2..34].copy_from_slice(&hotkey.0);
    k[34..].copy_from_slice(&block.to_be_bytes());
    k
}

fn block_hash(parent: &[u8; 32], number: u64, ts: u64) -> [u8; 32] {
    tagged_sha256(
        b"tally/local-block/v1",
        &[parent, &number.to_le_bytes(), &ts.to_le_bytes()],
    )
}

impl LocalChain {
    /// Opens the chain in `path`, creating it from `genesis` when the file is new. Reopening an
    /// existing chain ignores `genesis`.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<LocalChain, ChainError> {
        let db = Database::create(path).map_err(|e| {
            ChainError::Storage(format!(
                "cannot open chain file {}: {e} (if it is corrupt, move it away to start a new chain)",
                path.display()
            ))
        })?;
        LocalChain::init(db, genesis)
    }

    /// A chain held in memory only (the simulator's: driven by virtual time, gone on drop).
    pub fn in_memory(genesis: &Genesis) -> Result<LocalChain, ChainError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(storage)?;
        LocalChain::init(db, genesis)
    }

    fn init(db: Database, genesis: &Genesis) -> Result<LocalChain, ChainError> {
        let chain = LocalChain { db };
        let tx = chain.db.begin_write().map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            let fresh = meta.get("head").map_err(storage)?.is_none();
            let mut blocks = tx.open_table(BLOCKS).map_err(storage)?;
            let mut params = tx.open_table(PARAMS).map_err(storage)?;
            let mut neurons = tx.open_table(NEURONS).map_err(storage)?;
            tx.open_table(COMMITS).map_err(storage)?;
            tx.open_table(WEIGHTS).map_err(storage)?;
            tx.open_table(NONCES).map_err(storage)?;
            if fresh {
                let b0 = BlockInfo {
                    number: 0,
                    hash: block_hash(&[0; 32], 0, genesis.timestamp_ms),
                    timestamp_ms: genesis.timestamp_ms,
                };
                meta.insert("head", b0.encode().as_slice())
                    .map_err(storage)?;
                meta.insert("genesis", genesis.encode().as_slice())
                    .map_err(storage)?;
                blocks.insert(0, b0.encode().as_slice()).map_err(storage)?;
                for p in &genesis.subnets {
                    params
                        .insert(p.netuid, p.encode().as_slice())
                        .map_err(storage)?;
                }
                let mut next: BTreeMap<u16, u16> = BTreeMap::new();
                for (netuid, n) in &genesis.neurons {
                    let uid = next.entry(*netuid).or_insert(0);
                    let n = NeuronInfo {
                        uid: *uid,
                        registered_at: 0,
                        ..n.clone()
                    };
                    neurons
                        .insert(&neuron_key(*netuid, *uid)[..], n.encode().as_slice())
                        .map_err(storage)?;
                    *uid += 1;
                }
            }
        }
        tx.commit().map_err(storage)?;
        Ok(chain)
    }

    /// Produces the next block at `timestamp_ms`.
    pub fn produce_block(&self, timestamp_ms: u64) -> Result<BlockInfo, ChainError> {
        let tx = self.db.begin_write().map_err(storage)?;
        let b = {
            let mut meta = tx.open_table(META).map_err(storage)?;
            let head: BlockInfo = read_head(&meta)?;
            let number = head.number + 1;
            let ts = timestamp_ms.max(head.timestamp_ms);
            let b = BlockInfo {
                number,
                hash: block_hash(&head.hash, number, ts),
                timestamp_ms: ts,
            };
            meta.insert("head", b.encode().as_slice())
                .map_err(storage)?;
            tx.open_table(BLOCKS)
                .map_err(storage)?
                .insert(number, b.encode().as_slice())
                .map_err(storage)?;
            b
        };
        tx.commit().map_err(storage)?;
        Ok(b)
    }

    /// Produces a block every `block_ms` on a background thread until the handle is dropped.
    pub fn spawn_producer(self: &Arc<Self>, block_ms: u64) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let (chain, flag) = (self.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(block_ms.max(1)));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                if let Err(e) = chain.produce_block(now) {
                    tracing::error!("block production failed: {e}");
                }
            }
        });
        Producer {
            stop,
            thread: Some(thread),
        }
    }

    fn params_in(
        &self,
        tx: &redb::ReadTransaction,
        netuid: u16,
    ) -> Result<SubnetParams, ChainError> {
        let t = tx.open_table(PARAMS).map_err(storage)?;
        let v = t
            .get(netuid)
            .map_err(storage)?
            .ok_or(ChainError::UnknownSubnet(netuid))?;
        decode(v.value())
    }

    fn neurons_of(
        table: &impl ReadableTable<&'static [u8], &'static [u8]>,
        netuid: u16,
    ) -> Result<Vec<NeuronInfo>, ChainError> {
        let lo = neuron_key(netuid, 0);
        let hi = neuron_key(netuid, u16::MAX);
        let mut out = Vec::new();
        for e in table.range(&lo[..]..=&hi[..]).map_err(storage)? {
            let (_, v) = e.map_err(storage)?;
            out.push(decode::<NeuronInfo>(v.value())?);
        }
        Ok(out)
    }

    fn history<T>(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        netuid: u16,
        hotkey: &Hotkey,
        f: impl Fn(u64, &[u8]) -> Result<T, ChainError>,
    ) -> Result<Vec<T>, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(table).map_err(storage)?;
        let lo = history_key(netuid, hotkey, 0);
        let hi = history_key(netuid, hotkey, u64::MAX);
        let mut out = Vec::new();
        for e in t
            .range(&lo[..]..=&hi[..])
            .map_err(storage)?
            .rev()
            .take(HISTORY)
        {
            let (k, v) = e.map_err(storage)?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&k.value()[34..42]);
            out.push(f(u64::from_be_bytes(b), v.value())?);
        }
        out.reverse();
        Ok(out)
    }

    fn apply(&self, ext: extrinsic::ExtrinsicBody) -> Result<u64, ChainError> {
        let mut tx = self.db.begin_write().map_err(storage)?;
        // like a transaction in a block being built: applied at once, made durable by the next
        // block's commit (block production commits with immediate durability)
        tx.set_durability(redb::Durability::Eventual);
        let block = {
            let meta = tx.open_table(META).map_err(storage)?;
            let head: BlockInfo = read_head(&meta)?;
            let params: SubnetParams = {
                let t = tx.open_table(PARAMS).map_err(storage)?;
                let v = t
                    .get(ext.netuid)
                    .map_err(storage)?
                    .ok_or(ChainError::UnknownSubnet(ext.netuid))?;
                decode(v.value())?
            };
            let mut nonces = tx.open_table(NONCES).map_err(storage)?;
            let expected = nonces
                .get(&ext.signer.0[..])
                .map_err(storage)?
                .map(|v| v.value())
                .unwrap_or(0);
            if ext.nonce != expected {
                return Err(ChainError::BadNonce {
                    expected,
                    got: ext.nonce,
                });
            }
            let mut neurons = tx.open_table(NEURONS).map_err(storage)?;
            let all = Self::neurons_of(&neurons, ext.netuid)?;
            let me = all.iter().find(|n| n.hotkey == ext.signer).cloned();
            let who = ext.signer.to_ss58();
            match ext.call {
                Call::Register { axon, peer } => {
                    if me.is_some() {
                        return Err(ChainError::AlreadyRegistered(who));
                    }
                    if all.len() >= params.max_uids as usize {
                        return Err(ChainError::SubnetFull(params.max_uids));
                    }
                    let uid = all.iter().map(|n| n.uid + 1).max().unwrap_or(0);
                    let n = NeuronInfo {
                        uid,
                        hotkey: ext.signer,
                        stake: 0,
                        validator_permit: false,
                        axon: String::from_utf8_lossy(&axon).into_owned(),
                        peer: String::from_utf8_lossy(&peer).into_owned(),
                        registered_at: head.number,
                    };
                    neurons
                        .insert(&neuron_key(ext.netuid, uid)[..], n.encode().as_slice())
                        .map_err(storage)?;
                }
                Call::Serve { axon, peer } => {
                    let mut n = me.ok_or(ChainError::NotRegistered(who))?;
                    n.axon = String::from_utf8_lossy(&axon).into_owned();
                    n.peer = String::from_utf8_lossy(&peer).into_owned();
                    neurons
                        .insert(&neuron_key(ext.netuid, n.uid)[..], n.encode().as_slice())
                        .map_err(storage)?;
                }
                Call::Commit { data } => {
                    me.ok_or(ChainError::NotRegistered(who))?;
                    if data.len() > params.commitment_max_bytes as usize {
                        return Err(ChainError::CommitmentTooLarge {
                            len: data.len(),
                            max: params.commitment_max_bytes,
                        });
                    }
                    let len = params.epoch_length.max(1);
                    let epoch_start = head.number.saturating_sub(params.epoch_offset) / len * len
                        + params.epoch_offset;
                    let mut commits = tx.open_table(COMMITS).map_err(storage)?;
                    let lo = history_key(ext.netuid, &ext.signer, epoch_start);
                    let hi = history_key(ext.netuid, &ext.signer, u64::MAX);
                    let mut used = 0u32;
                    for e in commits.range(&lo[..]..=&hi[..]).map_err(storage)? {
                        used += e.map_err(storage)?.1.value().len() as u32;
                    }
                    if used + data.len() as u32 > params.commitment_bytes_per_epoch {
                        return Err(ChainError::CommitmentSpace {
                            used,
                            max: params.commitment_bytes_per_epoch,
                        });
                    }
                    commits
                        .insert(
                            &history_key(ext.netuid, &ext.signer, head.number)[..],
                            &data[..],
                        )
                        .map_err(storage)?;
                }
                Call::SetWeights { weights } => {
                    let n = me.ok_or(ChainError::NotRegistered(who.clone()))?;
                    if !n.validator_permit {
                        return Err(ChainError::NotValidator(who));
                    }
                    // a set of the uids, not a scan per weight: a call may carry 4,096 weights
                    let uids: std::collections::BTreeSet<u16> = all.iter().map(|n| n.uid).collect();
                    if let Some((uid, _)) = weights.iter().find(|(u, _)| !uids.contains(u)) {
                        return Err(ChainError::UnknownUid(*uid));
                    }
                    let mut wt = tx.open_table(WEIGHTS).map_err(storage)?;
                    let lo = history_key(ext.netuid, &ext.signer, 0);
                    let hi = history_key(ext.netuid, &ext.signer, u64::MAX);
                    let last = match wt.range(&lo[..]..=&hi[..]).map_err(storage)?.next_back() {
                        Some(e) => {
                            let (k, _) = e.map_err(storage)?;
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&k.value()[34..42]);
                            Some(u64::from_be_bytes(b))
                        }
                        None => None,
                    };
                    if let Some(last) = last {
                        let next = last + params.weights_rate_limit;
                        if head.number < next {
                            return Err(ChainError::RateLimited { next });
                        }
                    }
                    let v: Vec<(u16, u16)> = weights.to_vec();
                    wt.insert(
                        &history_key(ext.netuid, &ext.signer, head.number)[..],
                        v.encode().as_slice(),
                    )
                    .map_err(storage)?;
                }
            }
            nonces
                .insert(&ext.signer.0[..], expected + 1)
                .map_err(storage)?;
            head.number
        };
        tx.commit().map_err(storage)?;
        Ok(block)
    }
}

/// Stops block production when dropped.
pub struct Producer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Chain for LocalChain {
    fn head(&self) -> Result<BlockInfo, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(META).map_err(storage)?;
        read_head(&t)
    }

    fn block(&self, number: u64) -> Result<Option<BlockInfo>, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(BLOCKS).map_err(storage)?;
        t.get(number)
            .map_err(storage)?
            .map(|v| decode(v.value()))
            .transpose()
    }

    fn params(&self, netuid: u16) -> Result<SubnetParams, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        self.params_in(&tx, netuid)
    }

    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        self.params_in(&tx, netuid)?;
        let head: BlockInfo = {
            let t = tx.open_table(META).map_err(storage)?;
            read_head(&t)?
        };
        let t = tx.open_table(NEURONS).map_err(storage)?;
        Ok(Metagraph {
            netuid,
            block: head.number,
            neurons: Self::neurons_of(&t, netuid)?,
        })
    }

    fn nonce(&self, hotkey: &Hotkey) -> Result<u64, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(NONCES).map_err(storage)?;
        Ok(t.get(&hotkey.0[..])
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    fn submit(&self, bytes: &[u8]) -> Result<u64, ChainError> {
        let ext = extrinsic::open(bytes)?;
        self.apply(ext)
    }

    fn commitments(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<Commitment>, ChainError> {
        self.history(COMMITS, netuid, hotkey, |block, v| {
            Ok(Commitment {
                block,
                data: v.to_vec(),
            })
        })
    }

    fn commitments_in(
        &self,
        netuid: u16,
        from: u64,
        to: u64,
    ) -> Result<Vec<(Hotkey, Commitment)>, ChainError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let t = tx.open_table(COMMITS).map_err(storage)?;
        let lo = history_key(netuid, &Hotkey([0; 32]), 0);
        let hi = history_key(netuid, &Hotkey([0xff; 32]), u64::MAX);
        let mut out = Vec::new();
        for e in t.range(&lo[..]..=&hi[..]).map_err(storage)? {
            let (k, v) = e.map_err(storage)?;
            let k = k.value();
            let mut b = [0u8; 8];
            b.copy_from_slice(&k[34..42]);
            let block = u64::from_be_bytes(b);
            if block >= from && block < to {
                let mut h = [0u8; 32];
                h.copy_from_slice(&k[2..34]);
                out.push((
                    Hotkey(h),
                    Commitment {
                        block,
                        data: v.value().to_vec(),
                    },
                ));
                if out.len() >= 65_536 {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn weights(&self, netuid: u16) -> Result<Vec<WeightsSet>, ChainError> {
        let mg = self.metagraph(netuid)?;
        let mut out = Vec::new();
        // only permit holders can set weights
        for n in mg.neurons.iter().filter(|n| n.validator_permit) {
            if let Some(w) = self.weights_history(netuid, &n.hotkey)?.pop() {
                out.push(w);
            }
        }
        Ok(out)
    }

    fn weights_history(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<WeightsSet>, ChainError> {
        self.history(WEIGHTS, netuid, hotkey, |block, v| {
            Ok(WeightsSet {
                block,
                validator: *hotkey,
                weights: decode(v)?,
            })
        })
    }

    fn winner(&self, netuid: u16) -> Result<Option<u16>, ChainError> {
        let mg = self.metagraph(netuid)?;
        winner_of(&mg, &self.weights(netuid)?)
    }

    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError> {
        // stakes and permits are fixed at genesis here; only registrations change the set
        let mut mg = self.metagraph(netuid)?;
        if block > mg.block {
            return Err(ChainError::Malformed(format!(
                "block {block} is past the head {}",
                mg.block
            )));
        }
        mg.neurons.retain(|n| n.registered_at <= block);
        mg.block = block;
        Ok(mg)
    }

    fn winner_at(&self, netuid: u16, block: u64) -> Result<Option<u16>, ChainError> {
        let mg = self.metagraph_at(netuid, block)?;
        let mut latest = Vec::new();
        for n in mg.neurons.iter().filter(|n| n.validator_permit) {
            let history = self.weights_history(netuid, &n.hotkey)?;
            if let Some(w) = history.into_iter().rev().find(|w| w.block < block) {
                latest.push(w);
            }
        }
        winner_of(&mg, &latest)
    }
}

/// The stake-weighted top uid of the latest weights (ties to the smaller uid).
pub fn winner_of(mg: &Metagraph, weights: &[WeightsSet]) -> Result<Option<u16>, ChainError> {
    let mut score: BTreeMap<u16, u128> = BTreeMap::new();
    for w in weights {
        let Some(v) = mg.by_hotkey(&w.validator) else {
            continue;
        };
        if !v.validator_permit {
            continue;
        }
        for (uid, x) in &w.weights {
            *score.entry(*uid).or_default() += v.stake as u128 * *x as u128;
        }
    }
    let mut best: Option<(u16, u128)> = None;
    for (uid, s) in score {
        if s > 0 && best.is_none_or(|b| s > b.1) {
            best = Some((uid, s));
        }
    }
    Ok(best.map(|b| b.0))
}
