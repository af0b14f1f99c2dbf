//! Subtensor (Bittensor's chain) as a [`Chain`], over JSON-RPC with `subxt` (feature
//! `subtensor`).
//!
//! Reads come from storage at a block (`Keys`, `ValidatorPermit`, `TotalHotkeyAlpha`, `Axons`,
//! `BlockAtRegistration`, `Weights`, `LastUpdate`, `Commitments.CommitmentOf`, `Tempo`, ...),
//! so a metagraph or an incumbent "as of block b" is the chain's own state at b. Writes are
//! signed by the node's sr25519 hotkey (the same key Tally loads from a Bittensor keyfile):
//! `Commitments.set_commitment` for score commitments, `SubtensorModule.set_weights` (weights
//! max-upscaled to u16 as the Python SDK does) or, on a subnet with commit-reveal of weights on,
//! hash-based `commit_weights` then `reveal_weights` in the chain's reveal window (a subnet that
//! demands timelocked commits gets an error naming `CommitRevealWeightsVersion`), `serve_axon`. Each write is mortal (64 blocks),
//! carries the account's next nonce, and waits until it is in a block; a dispatch error comes
//! back by name (`SubtensorModule::SettingWeightsTooFast`). A dropped connection is re-opened on
//! the next call; every call is bounded by the adapter's timeout.
//!
//! Epochs: Subtensor runs a subnet's epoch in block `b` when `(b + netuid + 1) % (tempo + 1) ==
//! tempo` ([`subtensor_runs_epoch`], as `blocks_until_next_epoch` in the pallet); a Tally run is
//! the `tempo + 1` blocks that start right after one ([`epoch_clock`]), so the weights a run
//! sets land before the chain's next epoch uses them.
//!
//! Subtensor keeps one commitment per hotkey and subnet (a later one replaces it) and no weight
//! history. The commitment that counts for a run is therefore read from the state at the last
//! block before the run's reveal window opens: the one in place then, if it was made inside the
//! commit window. A commitment made once reports are served is never in that state, which is
//! what the first-commitment rule of the embedded chain protects; a replacement made before
//! reveal-open cannot copy anything (no report is served yet).

use crate::extrinsic::Call;
use crate::WeightsSet;
use crate::{BlockInfo, Chain, ChainError, Commitment, Metagraph, NeuronInfo, SubnetParams};
use parity_scale_codec::Decode;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use subxt::config::{DefaultExtrinsicParamsBuilder, RpcConfigFor};
use subxt::ext::frame_decode::storage::{IntoDecodableValues, IntoEncodableValues};
use subxt::rpcs::{LegacyRpcMethods, RpcClient};
use subxt::tx::{Signer, TransactionStatus};
use subxt::utils::{AccountId32, MultiSignature};
use subxt::{OnlineClient, PolkadotConfig};
use tally_core::{Hotkey, Keypair};

type Api = OnlineClient<PolkadotConfig>;
type Legacy = LegacyRpcMethods<RpcConfigFor<PolkadotConfig>>;

pub use crate::network_url;
/// Runtime call arguments, for [`SubtensorChain::submit_dynamic`] and [`runtime_call`].
pub use subxt::dynamic::Value;

/// `pallet.call(args)` as a `RuntimeCall` value, to nest in `Sudo.sudo` or `Utility.batch_all`.
pub fn runtime_call(pallet: &str, call: &str, args: Vec<Value>) -> Value {
    Value::unnamed_variant(pallet, [Value::unnamed_variant(call, args)])
}

/// Whether Subtensor runs `netuid`'s epoch in block `block` (the pallet's
/// `blocks_until_next_epoch(netuid, tempo, block) == 0`; never with tempo 0).
pub fn subtensor_runs_epoch(netuid: u16, tempo: u16, block: u64) -> bool {
    if tempo == 0 {
        return false;
    }
    let adjusted = block.wrapping_add(netuid as u64 + 1);
    adjusted % (tempo as u64 + 1) == tempo as u64
}

/// Tally's epoch clock for `netuid` at `tempo`: `(length, offset)` such that each Tally epoch
/// starts in the block right after one in which Subtensor runs the subnet's epoch.
pub fn epoch_clock(netuid: u16, tempo: u16) -> (u64, u64) {
    let length = tempo as u64 + 1;
    let offset = (length - (netuid as u64 + 1) % length) % length;
    (length, offset)
}

/// Tally's epoch clock on runtimes with the stateful epoch scheduler (spec 423 on, "dynamic
/// tempo"): the chain runs the subnet's epoch in the first block at least `tempo` blocks after
/// the last one (`LastEpochBlock`), so epochs come every `tempo` blocks and each Tally run is the
/// `tempo` blocks that start right after one. An owner's `trigger_epoch`, a tempo change or an
/// epoch deferred by the per-block cap moves `LastEpochBlock` off that progression; the clock
/// follows it from the next read of the parameters.
pub fn epoch_clock_stateful(tempo: u16, last_epoch_block: u64) -> (u64, u64) {
    let length = (tempo as u64).max(1);
    (length, last_epoch_block.wrapping_add(1) % length)
}

/// Weights as the chain takes them: the largest is 65535, the others scaled by it and rounded
/// half to even (the Python SDK's `convert_weights_and_uids_for_emit`), zeros dropped.
pub fn weights_for_chain(weights: &[(u16, u16)]) -> (Vec<u16>, Vec<u16>) {
    let max = weights.iter().map(|w| w.1).max().unwrap_or(0);
    if max == 0 {
        return (Vec::new(), Vec::new());
    }
    weights
        .iter()
        .filter_map(|(uid, w)| {
            let v = (*w as f64 / max as f64 * 65535.0).round_ties_even() as u16;
            (v != 0).then_some((*uid, v))
        })
        .unzip()
}

/// The hash `commit_weights` posts and `reveal_weights` must match: BLAKE2b-256 of the SCALE
/// encoding of `(account, netuid, uids, values, salt, version_key)`, as the pallet's
/// `get_commit_hash` and the Python SDK's `generate_weight_hash` compute it.
pub fn weights_commit_hash(
    account: &[u8; 32],
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    use blake2::digest::{consts::U32, Digest};
    let bytes = parity_scale_codec::Encode::encode(&(
        account,
        netuid,
        uids.to_vec(),
        values.to_vec(),
        salt.to_vec(),
        version_key,
    ));
    blake2::Blake2b::<U32>::digest(bytes).into()
}

/// The runtime calls Tally submits, one per [`Call`] it maps, as dynamic payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubtensorCall {
    /// `Commitments.set_commitment(netuid, { fields: [RawN(data)] })`.
    SetCommitment {
        /// The subnet.
        netuid: u16,
        /// At most 128 bytes.
        data: Vec<u8>,
    },
    /// `SubtensorModule.set_weights(netuid, dests, weights, version_key)`.
    SetWeights {
        /// The subnet.
        netuid: u16,
        /// Uids.
        dests: Vec<u16>,
        /// Weights, max-upscaled ([`weights_for_chain`]).
        weights: Vec<u16>,
        /// The subnet's weights version key (at least `WeightsVersionKey`).
        version_key: u64,
    },
    /// `SubtensorModule.commit_weights(netuid, commit_hash)` (subnets with commit-reveal on).
    CommitWeights {
        /// The subnet.
        netuid: u16,
        /// [`weights_commit_hash`].
        hash: [u8; 32],
    },
    /// `SubtensorModule.reveal_weights(netuid, uids, values, salt, version_key)`.
    RevealWeights {
        /// The subnet.
        netuid: u16,
        /// Uids.
        uids: Vec<u16>,
        /// Weights.
        values: Vec<u16>,
        /// The salt committed to.
        salt: Vec<u16>,
        /// The version key committed to.
        version_key: u64,
    },
    /// `SubtensorModule.serve_axon(netuid, version, ip, port, ip_type, protocol, 0, 0)`.
    ServeAxon {
        /// The subnet.
        netuid: u16,
        /// The IP, as the chain stores it.
        ip: u128,
        /// The port.
        port: u16,
        /// 4 or 6.
        ip_type: u8,
    },
}

/// Largest commitment Tally posts (`Data::Raw128`).
pub const MAX_COMMITMENT: usize = 128;

impl SubtensorCall {
    /// The dynamic payload.
    pub fn payload(&self) -> Result<subxt::tx::DynamicPayload<Vec<Value>>, ChainError> {
        Ok(match self {
            SubtensorCall::SetCommitment { netuid, data } => {
                if data.is_empty() || data.len() > MAX_COMMITMENT {
                    return Err(ChainError::CommitmentTooLarge {
                        len: data.len(),
                        max: MAX_COMMITMENT as u32,
                    });
                }
                let field =
                    Value::unnamed_variant(format!("Raw{}", data.len()), [Value::from_bytes(data)]);
                let info = Value::named_composite([("fields", Value::unnamed_composite([field]))]);
                subxt::dynamic::tx(
                    "Commitments",
                    "set_commitment",
                    vec![Value::u128(*netuid as u128), info],
                )
            }
            SubtensorCall::SetWeights {
                netuid,
                dests,
                weights,
                version_key,
            } => subxt::dynamic::tx(
                "SubtensorModule",
                "set_weights",
                vec![
                    Value::u128(*netuid as u128),
                    Value::unnamed_composite(dests.iter().map(|d| Value::u128(*d as u128))),
                    Value::unnamed_composite(weights.iter().map(|w| Value::u128(*w as u128))),
                    Value::u128(*version_key as u128),
                ],
            ),
            SubtensorCall::CommitWeights { netuid, hash } => subxt::dynamic::tx(
                "SubtensorModule",
                "commit_weights",
                vec![Value::u128(*netuid as u128), Value::from_bytes(hash)],
            ),
            SubtensorCall::RevealWeights {
                netuid,
                uids,
                values,
                salt,
                version_key,
            } => {
                let seq =
                    |v: &[u16]| Value::unnamed_composite(v.iter().map(|x| Value::u128(*x as u128)));
                subxt::dynamic::tx(
                    "SubtensorModule",
                    "reveal_weights",
                    vec![
                        Value::u128(*netuid as u128),
                        seq(uids),
                        seq(values),
                        seq(salt),
                        Value::u128(*version_key as u128),
                    ],
                )
            }
            SubtensorCall::ServeAxon {
                netuid,
                ip,
                port,
                ip_type,
            } => subxt::dynamic::tx(
                "SubtensorModule",
                "serve_axon",
                vec![
                    Value::u128(*netuid as u128),
                    Value::u128(0), // version
                    Value::u128(*ip),
                    Value::u128(*port as u128),
                    Value::u128(*ip_type as u128),
                    Value::u128(4), // protocol, as the SDK sends
                    Value::u128(0),
                    Value::u128(0),
                ],
            ),
        })
    }

    /// The Subtensor call for a Tally [`Call`] on `netuid`.
    pub fn from_call(netuid: u16, call: &Call, version_key: u64) -> Result<Self, ChainError> {
        match call {
            Call::Commit { data } => Ok(SubtensorCall::SetCommitment {
                netuid,
                data: data.as_bytes().to_vec(),
            }),
            Call::SetWeights { weights } => {
                let (dests, weights) = weights_for_chain(&weights[..]);
                Ok(SubtensorCall::SetWeights {
                    netuid,
                    dests,
                    weights,
                    version_key,
                })
            }
            Call::Serve { axon, .. } => {
                let a = std::str::from_utf8(axon.as_bytes())
                    .map_err(|_| ChainError::Malformed("axon is not UTF-8".into()))?;
                let addr = crate::extrinsic::parse_axon(a)
                    .map_err(|e| ChainError::Malformed(e.to_string()))?;
                let (ip, ip_type) = match addr.ip() {
                    std::net::IpAddr::V4(v4) => (u32::from(v4) as u128, 4),
                    std::net::IpAddr::V6(v6) => (u128::from(v6), 6),
                };
                Ok(SubtensorCall::ServeAxon {
                    netuid,
                    ip,
                    port: addr.port(),
                    ip_type,
                })
            }
            Call::Register { .. } => Err(ChainError::Malformed(
                "registration on Subtensor is `burned_register`, signed by the coldkey: use btcli \
                 subnet register"
                    .into(),
            )),
        }
    }
}

/// Signs with a Tally hotkey (sr25519, context `substrate`, as Substrate verifies).
struct HotkeySigner<'a>(&'a Keypair);

impl Signer<PolkadotConfig> for HotkeySigner<'_> {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.0.hotkey().0)
    }
    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(self.0.sign(payload).0)
    }
}

#[derive(Clone)]
struct Conn {
    api: Api,
    legacy: Legacy,
    rpc: RpcClient,
    opened: std::time::Instant,
}

/// How long a connection is used before it is re-opened. A connection assumes the runtime it
/// found at the head when it opened for every later block (so reads at a block need no runtime
/// call to learn its version); re-opening picks up a runtime upgrade.
const CONN_MAX_AGE: Duration = Duration::from_secs(600);

/// `Timestamp.Now`'s storage key (`twox128("Timestamp") ++ twox128("Now")`).
const TIMESTAMP_NOW: [u8; 32] = [
    0xf0, 0xc3, 0x65, 0xc3, 0xcf, 0x59, 0xd6, 0x71, 0xeb, 0x72, 0xda, 0x0e, 0x7a, 0x41, 0x13, 0xc4,
    0x9f, 0x1f, 0x05, 0x15, 0xf4, 0x62, 0xcd, 0xcf, 0x84, 0xe0, 0xf1, 0xd6, 0x04, 0x5d, 0xfc, 0xbb,
];

/// A pending weights commitment: `(hash, commit block, first reveal block, last reveal block)`.
pub type WeightCommit = ([u8; 32], u64, u64, u64);

/// A transaction in a block: the block, and its events as `(pallet, event, field bytes)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Included {
    /// The block it is in.
    pub block: u64,
    /// Its events.
    pub events: Vec<(String, String, Vec<u8>)>,
}

impl Included {
    /// The field bytes of its first `pallet.event` event.
    pub fn event(&self, pallet: &str, event: &str) -> Option<&[u8]> {
        self.events
            .iter()
            .find(|e| e.0 == pallet && e.1 == event)
            .map(|e| e.2.as_slice())
    }
}

/// A connection to a Subtensor node.
pub struct SubtensorChain {
    url: String,
    /// Always `Some` until dropped (taken out to shut it down without blocking).
    rt: Option<tokio::runtime::Runtime>,
    conn: Mutex<Option<Conn>>,
    timeout: Duration,
    version_key: u64,
}

impl Drop for SubtensorChain {
    /// Shuts the adapter's runtime down without waiting, so the adapter may be dropped from
    /// async code (a runtime dropped there would panic).
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Most attempts of one read when the connection drops (each re-opens it).
const READ_ATTEMPTS: u32 = 2;

/// How a write the node refused (before any block) is reported.
const REFUSED: &str = "refused by the node";

/// The least time a write may wait to be included in a block (five 12-second blocks).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

fn transport(e: impl std::fmt::Display) -> ChainError {
    ChainError::Transport(e.to_string())
}

/// `AxonInfo` as the pallet stores it.
#[derive(Decode)]
struct AxonInfo {
    _block: u64,
    _version: u32,
    ip: u128,
    port: u16,
    ip_type: u8,
    _protocol: u8,
    _p1: u8,
    _p2: u8,
}

/// `pallet_commitments::Registration`.
#[derive(Decode)]
struct Registration {
    _deposit: u64,
    block: u32,
    fields: Vec<Data>,
}

/// `pallet_commitments::Data`: the raw variants carry bytes, the hash variants 32 bytes.
struct Data(Vec<u8>);

impl Decode for Data {
    fn decode<I: parity_scale_codec::Input>(i: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let tag = i.read_byte()?;
        let len = match tag {
            0 => 0,
            1..=129 => tag as usize - 1,
            130..=133 => 32,
            _ => return Err("a commitment field Tally does not post".into()),
        };
        let mut b = vec![0u8; len];
        i.read(&mut b)?;
        Ok(Data(b))
    }
}

fn axon_string(a: &AxonInfo) -> String {
    if a.port == 0 || a.ip == 0 {
        return String::new();
    }
    match a.ip_type {
        4 => format!("{}:{}", std::net::Ipv4Addr::from(a.ip as u32), a.port),
        6 => format!("[{}]:{}", std::net::Ipv6Addr::from(a.ip), a.port),
        _ => String::new(),
    }
}

impl SubtensorChain {
    /// An adapter for the node at `url` (`ws://` or `wss://`); every read waits at most
    /// `timeout`, every write until it is in a block but at most a minute (or `timeout`, if
    /// longer). Connects on first use.
    pub fn new(url: &str, timeout: Duration, version_key: u64) -> Result<Self, ChainError> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(ChainError::Malformed(format!(
                "{url:?}: a Subtensor endpoint is ws:// or wss://"
            )));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("subtensor")
            .enable_all()
            .build()
            .map_err(transport)?;
        Ok(SubtensorChain {
            url: url.to_string(),
            rt: Some(rt),
            conn: Mutex::new(None),
            timeout,
            version_key,
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` on the adapter's runtime with a connection (opened if needed), at most the
    /// timeout; a transport failure drops the connection so the next call re-opens it.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, ChainError>
    where
        T: Send + 'static,
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, ChainError>> + Send + 'static,
    {
        let mut last = ChainError::Transport("not tried".into());
        for _ in 0..READ_ATTEMPTS {
            let conn = match self.connection() {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match self.run(f(conn)) {
                Err(e @ ChainError::Transport(_)) => {
                    if let Ok(mut c) = self.conn.lock() {
                        *c = None;
                    }
                    last = e;
                }
                r => return r,
            }
        }
        Err(last)
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, ChainError>> + Send + 'static,
    ) -> Result<T, ChainError> {
        self.run_for(fut, self.timeout)
    }

    fn run_for<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, ChainError>> + Send + 'static,
        timeout: Duration,
    ) -> Result<T, ChainError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| ChainError::Transport("the adapter is shutting down".into()))?;
        rt.spawn(async move {
            let r = match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(ChainError::Transport(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                ))),
            };
            let _ = tx.send(r);
        });
        rx.recv()
            .map_err(|_| ChainError::Transport("the adapter's runtime stopped".into()))?
    }

    fn connection(&self) -> Result<Conn, ChainError> {
        let stale = match self.conn.lock().map_err(transport)?.clone() {
            Some(c) if c.opened.elapsed() < CONN_MAX_AGE => return Ok(c),
            other => other,
        };
        let url = self.url.clone();
        let opened = self.run(async move {
            let rpc = if subxt::rpcs::utils::url_is_secure(&url).unwrap_or(false) {
                RpcClient::from_url(&url).await
            } else {
                RpcClient::from_insecure_url(&url).await
            }
            .map_err(|e| ChainError::Transport(format!("cannot connect to {url}: {e}")))?;
            // the runtime at the head, assumed for every later block: without it each read at
            // a block first asks the node to execute `Core_version` for that block
            let legacy = Legacy::new(rpc.clone());
            let version = legacy
                .state_get_runtime_version(None)
                .await
                .map_err(|e| ChainError::Transport(format!("{url}: {e}")))?;
            let head = legacy
                .chain_get_header(None)
                .await
                .map_err(|e| ChainError::Transport(format!("{url}: {e}")))?
                .map_or(0, |h| h.number);
            let cfg = PolkadotConfig::builder()
                .use_historic_types(false)
                .set_spec_version_for_block_ranges([
                    subxt::config::substrate::SpecVersionForRange {
                        block_range: head..u64::MAX,
                        spec_version: version.spec_version,
                        transaction_version: version.transaction_version,
                    },
                ])
                .build();
            let api = Api::from_rpc_client_with_config(cfg, rpc.clone())
                .await
                .map_err(|e| ChainError::Transport(format!("{url}: {e}")))?;
            Ok(Conn {
                api,
                legacy,
                rpc,
                opened: std::time::Instant::now(),
            })
        });
        let c = match (opened, stale) {
            (Ok(c), _) => c,
            (Err(e), None) => return Err(e),
            // an aged connection that still works beats none: keep it, try again in a minute
            (Err(e), Some(mut old)) => {
                tracing::warn!(url = %self.url, "re-opening the connection failed ({e}); keeping the old one");
                old.opened = std::time::Instant::now()
                    .checked_sub(CONN_MAX_AGE.saturating_sub(Duration::from_secs(60)))
                    .unwrap_or_else(std::time::Instant::now);
                old
            }
        };
        if let Ok(mut slot) = self.conn.lock() {
            *slot = Some(c.clone());
        }
        Ok(c)
    }

    /// The runtime's spec version and name at the head.
    pub fn runtime_version(&self) -> Result<(String, u32), ChainError> {
        self.call(|c| async move {
            let v = c
                .legacy
                .state_get_runtime_version(None)
                .await
                .map_err(transport)?;
            let name = v
                .other
                .get("specName")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            Ok((name, v.spec_version))
        })
    }

    /// Submits `call` signed by `key` and waits until it is in a block; returns the block.
    pub fn submit_subtensor(&self, key: &Keypair, call: &SubtensorCall) -> Result<u64, ChainError> {
        Ok(self.submit_payload(key, call.payload()?)?.block)
    }

    /// Submits `pallet.call(args)` (positional arguments) signed by `key` and waits until it is
    /// in a block: subnet set-up for devnets and tests (`register_network`, `burned_register`,
    /// `add_stake`, ...).
    pub fn submit_dynamic(
        &self,
        key: &Keypair,
        pallet: &str,
        call: &str,
        args: Vec<Value>,
    ) -> Result<Included, ChainError> {
        self.submit_payload(
            key,
            subxt::dynamic::tx(pallet.to_string(), call.to_string(), args),
        )
    }

    /// `Sudo.sudo(pallet.call(args))` signed by the sudo key; the inner call failing (the
    /// extrinsic itself succeeds, with `Sudo.Sudid(Err(..))`) is an error.
    pub fn sudo(
        &self,
        sudo: &Keypair,
        pallet: &str,
        call: &str,
        args: Vec<Value>,
    ) -> Result<Included, ChainError> {
        self.sudo_call(
            sudo,
            runtime_call(pallet, call, args),
            &format!("{pallet}.{call}"),
        )
    }

    /// `Sudo.sudo(Utility.batch_all(calls))`: every call with root, all or none.
    pub fn sudo_batch(&self, sudo: &Keypair, calls: Vec<Value>) -> Result<Included, ChainError> {
        let n = calls.len();
        let batch = runtime_call(
            "Utility",
            "batch_all",
            vec![Value::unnamed_composite(calls)],
        );
        self.sudo_call(sudo, batch, &format!("a batch of {n} calls"))
    }

    /// `Utility.batch_all(calls)` signed by `key`: all or none, in one block.
    pub fn batch(&self, key: &Keypair, calls: Vec<Value>) -> Result<Included, ChainError> {
        self.submit_dynamic(
            key,
            "Utility",
            "batch_all",
            vec![Value::unnamed_composite(calls)],
        )
    }

    fn sudo_call(&self, sudo: &Keypair, inner: Value, what: &str) -> Result<Included, ChainError> {
        let inc = self.submit_dynamic(sudo, "Sudo", "sudo", vec![inner])?;
        match inc.event("Sudo", "Sudid") {
            Some(f) if f.first() == Some(&0) => Ok(inc),
            Some(f) => Err(ChainError::Malformed(format!(
                "sudo {what} failed: 0x{}",
                hex::encode(f)
            ))),
            None => Err(ChainError::Malformed(format!(
                "sudo {what}: no Sudid event (is the key the sudo key?)"
            ))),
        }
    }

    /// The block subnet `netuid` was registered in (`NetworkRegisteredAt`; 0 when unknown).
    pub fn registered_at(&self, netuid: u16) -> Result<u64, ChainError> {
        let head = self.head_number()?;
        self.value(head, "SubtensorModule", "NetworkRegisteredAt", (netuid,))
    }

    /// Asks a development node (chopsticks) for `count` blocks now (`dev_newBlock`), three at
    /// a time (a loaded chopsticks takes seconds per block, and each request must answer
    /// within the RPC client's timeout).
    pub fn dev_new_blocks(&self, count: u32) -> Result<(), ChainError> {
        let mut left = count;
        while left > 0 {
            let n = left.min(3);
            self.call(move |c| async move {
                let _: serde_json::Value = c
                    .rpc
                    .request(
                        "dev_newBlock",
                        subxt::rpcs::rpc_params![serde_json::json!({ "count": n })],
                    )
                    .await
                    .map_err(transport)?;
                Ok(())
            })?;
            left -= n;
        }
        Ok(())
    }

    fn submit_payload(
        &self,
        key: &Keypair,
        payload: subxt::tx::DynamicPayload<Vec<Value>>,
    ) -> Result<Included, ChainError> {
        // a write is not retried on a new connection: it may have reached the pool already
        let conn = self.connection()?;
        let r = self.run_for(submit_on(conn, key.clone(), payload), self.write_timeout());
        if let Err(ChainError::Malformed(m)) = &r {
            if m.starts_with(REFUSED) {
                // the next call re-opens it, with the runtime at the head (an upgrade changes
                // the versions a transaction must carry)
                if let Ok(mut c) = self.conn.lock() {
                    *c = None;
                }
            }
        }
        r
    }

    /// How long a write may wait to be included: a few blocks of a 12 s chain at least.
    fn write_timeout(&self) -> Duration {
        self.timeout.max(WRITE_TIMEOUT)
    }

    /// On a subnet with (hash-based) commit-reveal of weights: posts the commitment now and
    /// reveals it from a thread of the adapter once the chain's reveal window opens (polled each
    /// second until its last block). Returns the commitment's block. A pending reveal lives in
    /// memory: a node stopped before it loses those weights for that epoch (the next run sets
    /// new ones).
    fn commit_then_reveal(
        &self,
        key: &Keypair,
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<u64, ChainError> {
        let mut raw = [0u8; 16];
        getrandom::getrandom(&mut raw).map_err(|e| ChainError::Malformed(e.to_string()))?;
        let salt: Vec<u16> = raw
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let hash = weights_commit_hash(&key.hotkey().0, netuid, uids, values, &salt, version_key);
        let block = self.submit_subtensor(key, &SubtensorCall::CommitWeights { netuid, hash })?;
        // the chain's reveal window for this commitment
        let commits = self.storage(
            block,
            "SubtensorModule",
            "WeightCommits",
            (netuid, AccountId32(key.hotkey().0)),
        )?;
        let window = commits
            .and_then(|b| Vec::<WeightCommit>::decode(&mut &b[..]).ok())
            .and_then(|v| v.into_iter().find(|c| c.0 == hash))
            .map(|c| (c.2, c.3))
            .ok_or_else(|| {
                ChainError::Malformed("the weights commitment is not on chain".into())
            })?;
        let reveal = SubtensorCall::RevealWeights {
            netuid,
            uids: uids.to_vec(),
            values: values.to_vec(),
            salt,
            version_key,
        };
        tracing::info!(
            netuid,
            block,
            first = window.0,
            last = window.1,
            "weights committed; reveal pending"
        );
        let payload = reveal.payload()?;
        let (conn, key) = (self.connection()?, key.clone());
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| ChainError::Transport("the adapter is shutting down".into()))?;
        // a task on the adapter's own runtime: it ends with the window, or with the adapter
        rt.spawn(async move {
            loop {
                match best_number(&conn).await {
                    Ok(h) if h >= window.1 => {
                        tracing::warn!(netuid, "weights reveal window passed unrevealed");
                        return;
                    }
                    Ok(h) if h >= window.0 => {
                        match submit_on(conn.clone(), key.clone(), payload.clone()).await {
                            Ok(inc) => {
                                tracing::info!(netuid, block = inc.block, "weights revealed");
                                return;
                            }
                            Err(e) => tracing::warn!(netuid, "weights reveal failed: {e}"),
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(block)
    }

    /// `hotkey`'s pending weight commitments on `netuid`: `(hash, commit block, first reveal
    /// block, last reveal block)`.
    pub fn weight_commits(
        &self,
        netuid: u16,
        hotkey: &Hotkey,
    ) -> Result<Vec<WeightCommit>, ChainError> {
        let head = self.head_number()?;
        self.value(
            head,
            "SubtensorModule",
            "WeightCommits",
            (netuid, AccountId32(hotkey.0)),
        )
    }

    /// Whether `netuid` has commit-reveal of weights on (`CommitRevealWeightsEnabled`).
    pub fn commit_reveal_enabled(&self, netuid: u16) -> Result<bool, ChainError> {
        let head = self.head_number()?;
        self.value(
            head,
            "SubtensorModule",
            "CommitRevealWeightsEnabled",
            (netuid,),
        )
    }

    /// Raw storage bytes of `pallet.entry(keys)` at `block`, if set.
    fn storage<K>(
        &self,
        block: u64,
        pallet: &'static str,
        entry: &'static str,
        keys: K,
    ) -> Result<Option<Vec<u8>>, ChainError>
    where
        K: IntoEncodableValues + IntoDecodableValues + Clone + Send + Sync + 'static,
    {
        self.call(move |c| {
            let keys = keys.clone();
            async move {
                let at = c.api.at_block(block).await.map_err(transport)?;
                let addr = subxt::dynamic::storage::<K, Value>(pallet, entry);
                let v = at
                    .storage()
                    .try_fetch(addr, keys)
                    .await
                    .map_err(storage_error)?;
                Ok(v.map(|v| v.into_bytes()))
            }
        })
    }

    /// Every `(key parts, raw value)` under `pallet.entry(prefix..)` at `block`, at most
    /// `limit`.
    fn storage_iter<K, P>(
        &self,
        block: u64,
        pallet: &'static str,
        entry: &'static str,
        prefix: P,
        limit: usize,
    ) -> Result<Vec<(K, Vec<u8>)>, ChainError>
    where
        K: IntoEncodableValues + IntoDecodableValues + Send + Sync + 'static,
        P: subxt::storage::PrefixOf<K> + Clone + Send + Sync + 'static,
    {
        self.call(move |c| {
            let prefix = prefix.clone();
            async move {
                let at = c.api.at_block(block).await.map_err(transport)?;
                let addr = subxt::dynamic::storage::<K, Value>(pallet, entry);
                let mut it = at
                    .storage()
                    .iter(addr, prefix)
                    .await
                    .map_err(storage_error)?;
                let mut out = Vec::new();
                while let Some(kv) = it.next().await {
                    let kv = kv.map_err(storage_error)?;
                    let k = kv
                        .key()
                        .map_err(|e| ChainError::Malformed(e.to_string()))?
                        .decode()
                        .map_err(|e| ChainError::Malformed(e.to_string()))?;
                    out.push((k, kv.value().bytes().to_vec()));
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            }
        })
    }

    fn decode<T: Decode>(bytes: &[u8], what: &str) -> Result<T, ChainError> {
        T::decode(&mut &bytes[..]).map_err(|e| ChainError::Malformed(format!("{what}: {e}")))
    }

    /// `pallet.entry(keys)` at `block`, decoded; its default when unset.
    fn value<T: Decode + Default, K>(
        &self,
        block: u64,
        pallet: &'static str,
        entry: &'static str,
        keys: K,
    ) -> Result<T, ChainError>
    where
        K: IntoEncodableValues + IntoDecodableValues + Clone + Send + Sync + 'static,
    {
        match self.storage(block, pallet, entry, keys)? {
            Some(b) => Self::decode(&b, entry),
            None => Ok(T::default()),
        }
    }

    /// Whether the runtime at `block` declares storage `pallet.entry`.
    fn has_storage(
        &self,
        block: u64,
        pallet: &'static str,
        entry: &'static str,
    ) -> Result<bool, ChainError> {
        self.call(move |c| async move {
            let at = c.api.at_block(block).await.map_err(transport)?;
            let md = at.metadata();
            Ok(md
                .pallet_by_name(pallet)
                .and_then(|p| p.storage())
                .and_then(|s| s.entry_by_name(entry))
                .is_some())
        })
    }

    fn head_number(&self) -> Result<u64, ChainError> {
        self.call(|c| async move { best_number(&c).await })
    }

    fn uid_hotkeys(&self, netuid: u16, block: u64) -> Result<Vec<(u16, Hotkey)>, ChainError> {
        let keys: Vec<((u16, u16), Vec<u8>)> =
            self.storage_iter(block, "SubtensorModule", "Keys", (netuid,), 65_536)?;
        let mut out: Vec<(u16, Hotkey)> = keys
            .into_iter()
            .filter_map(|((_, uid), b)| Some((uid, Hotkey(<[u8; 32]>::decode(&mut &b[..]).ok()?))))
            .collect();
        out.sort_by_key(|x| x.0);
        Ok(out)
    }
}

/// Signs `payload` with `key` at its next nonce, submits it on `conn` and waits until it is in a
/// block.
async fn submit_on(
    conn: Conn,
    key: Keypair,
    payload: subxt::tx::DynamicPayload<Vec<Value>>,
) -> Result<Included, ChainError> {
    let account = AccountId32(key.hotkey().0);
    let nonce = conn
        .legacy
        .system_account_next_index(&account)
        .await
        .map_err(transport)?;
    let at = conn.api.at_current_block().await.map_err(transport)?;
    let params = DefaultExtrinsicParamsBuilder::<PolkadotConfig>::new()
        .mortal(64)
        .nonce(nonce)
        .build();
    let mut progress = at
        .tx()
        .sign_and_submit_then_watch(&payload, &HotkeySigner(&key), params)
        .await
        .map_err(|e| ChainError::Malformed(format!("{REFUSED}: {e}")))?;
    while let Some(status) = progress.next().await {
        match status.map_err(transport)? {
            TransactionStatus::InBestBlock(b) | TransactionStatus::InFinalizedBlock(b) => {
                let hash = b.block_hash();
                let events = b.wait_for_success().await.map_err(|e| dispatch_error(&e))?;
                let events = events
                    .iter()
                    .filter_map(|e| e.ok())
                    .map(|e| {
                        (
                            e.pallet_name().to_string(),
                            e.event_name().to_string(),
                            e.field_bytes().to_vec(),
                        )
                    })
                    .collect();
                let block = conn
                    .api
                    .at_block(hash)
                    .await
                    .map_err(transport)?
                    .block_number();
                return Ok(Included { block, events });
            }
            TransactionStatus::Error { message }
            | TransactionStatus::Invalid { message }
            | TransactionStatus::Dropped { message } => {
                return Err(ChainError::Malformed(format!(
                    "transaction not included: {message}"
                )))
            }
            _ => {}
        }
    }
    Err(ChainError::Transport(
        "the node stopped reporting the transaction".into(),
    ))
}

/// The best block's number on `conn`.
async fn best_number(conn: &Conn) -> Result<u64, ChainError> {
    Ok(conn
        .legacy
        .chain_get_header(None)
        .await
        .map_err(transport)?
        .ok_or_else(|| ChainError::Transport("the node has no best block".into()))?
        .number)
}

/// Most storage reads one metagraph keeps in flight on the connection.
const READS_IN_FLIGHT: usize = 32;

type At = subxt::client::ClientAtBlock<
    PolkadotConfig,
    subxt::client::OnlineClientAtBlockImpl<PolkadotConfig>,
>;

/// A `SubtensorModule` `u64` at `at` (0 when unset).
async fn fetch_u64<K>(at: &At, entry: &'static str, keys: K) -> Result<u64, ChainError>
where
    K: IntoEncodableValues + IntoDecodableValues,
{
    let addr = subxt::dynamic::storage::<K, Value>("SubtensorModule", entry);
    match at
        .storage()
        .try_fetch(addr, keys)
        .await
        .map_err(storage_error)?
    {
        Some(v) => {
            u64::decode(&mut v.bytes()).map_err(|e| ChainError::Malformed(format!("{entry}: {e}")))
        }
        None => Ok(0),
    }
}

fn storage_error(e: impl std::fmt::Display) -> ChainError {
    let s = e.to_string();
    if s.contains("not found") || s.contains("cannot find") {
        ChainError::Malformed(format!(
            "this runtime lacks a storage item Tally reads: {s}"
        ))
    } else {
        ChainError::Transport(s)
    }
}

/// A dispatch error by name (`Pallet::Variant`), for logs and metrics.
fn dispatch_error(e: &subxt::error::TransactionEventsError) -> ChainError {
    use subxt::error::{DispatchError, TransactionEventsError};
    match e {
        TransactionEventsError::ExtrinsicFailed(DispatchError::Module(m)) => match m.details() {
            Ok(d) => {
                let name = format!("{}::{}", d.pallet.name(), d.variant.name);
                match d.variant.name.as_str() {
                    "SettingWeightsTooFast" => ChainError::RateLimited { next: 0 },
                    "NeuronNoValidatorPermit" => ChainError::NotValidator(name),
                    "HotKeyNotRegisteredInSubNet" | "HotKeyNotRegisteredInNetwork" => {
                        ChainError::NotRegistered(name)
                    }
                    _ => ChainError::Malformed(format!("dispatch error {name}")),
                }
            }
            Err(_) => ChainError::Malformed(format!("dispatch error {m}")),
        },
        other => ChainError::Malformed(format!("dispatch error: {other}")),
    }
}

impl Chain for SubtensorChain {
    fn head(&self) -> Result<BlockInfo, ChainError> {
        let n = self.head_number()?;
        self.block(n)?
            .ok_or_else(|| ChainError::Transport(format!("block {n} vanished")))
    }

    fn block(&self, number: u64) -> Result<Option<BlockInfo>, ChainError> {
        // two plain RPCs: the hash, then the timestamp's storage at it
        self.call(move |c| async move {
            let Some(hash) = c
                .legacy
                .chain_get_block_hash(Some(number.into()))
                .await
                .map_err(transport)?
            else {
                return Ok(None);
            };
            let ts = c
                .legacy
                .state_get_storage(&TIMESTAMP_NOW, Some(hash))
                .await
                .map_err(transport)?
                .map(|b| u64::decode(&mut &b[..]))
                .transpose()
                .map_err(|e| ChainError::Malformed(format!("Timestamp.Now: {e}")))?
                .unwrap_or(0);
            Ok(Some(BlockInfo {
                number,
                hash: hash.0,
                timestamp_ms: ts,
            }))
        })
    }

    fn params(&self, netuid: u16) -> Result<SubnetParams, ChainError> {
        let head = self.head_number()?;
        let added: Option<Vec<u8>> =
            self.storage(head, "SubtensorModule", "NetworksAdded", (netuid,))?;
        if added.is_none_or(|b| b.first() != Some(&1)) {
            return Err(ChainError::UnknownSubnet(netuid));
        }
        let tempo: u16 = self.value(head, "SubtensorModule", "Tempo", (netuid,))?;
        if tempo == 0 {
            return Err(ChainError::Malformed(format!(
                "subnet {netuid} has tempo 0: it runs no epochs"
            )));
        }
        // runtimes from spec 423 schedule epochs from state (`LastEpochBlock`); older ones
        // by the block number alone
        let stateful = self.has_storage(head, "SubtensorModule", "LastEpochBlock")?;
        let (epoch_length, epoch_offset) = if stateful {
            let last: u64 = self.value(head, "SubtensorModule", "LastEpochBlock", (netuid,))?;
            epoch_clock_stateful(tempo, last)
        } else {
            epoch_clock(netuid, tempo)
        };
        let rate: u64 = self.value(head, "SubtensorModule", "WeightsSetRateLimit", (netuid,))?;
        let max_uids: u16 = self.value(head, "SubtensorModule", "MaxAllowedUids", (netuid,))?;
        let threshold: u64 = self.value(head, "SubtensorModule", "StakeThreshold", ())?;
        let slot = self.call(|c| async move {
            let b = c
                .legacy
                .state_call("AuraApi_slot_duration", None, None)
                .await
                .map_err(transport)?;
            u64::decode(&mut &b[..]).map_err(|e| ChainError::Malformed(e.to_string()))
        });
        Ok(SubnetParams {
            netuid,
            epoch_length,
            epoch_offset,
            block_ms: slot.unwrap_or(12_000).max(1),
            weights_rate_limit: rate,
            commitment_max_bytes: MAX_COMMITMENT as u32,
            commitment_bytes_per_epoch: 3 * MAX_COMMITMENT as u32,
            max_uids,
            min_validator_stake: threshold,
            burn_uid: 0,
        })
    }

    fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        let head = self.head_number()?;
        self.metagraph_at(netuid, head)
    }

    fn nonce(&self, hotkey: &Hotkey) -> Result<u64, ChainError> {
        let account = AccountId32(hotkey.0);
        self.call(move |c| {
            let account = account;
            async move {
                c.legacy
                    .system_account_next_index(&account)
                    .await
                    .map_err(transport)
            }
        })
    }

    fn submit(&self, _extrinsic: &[u8]) -> Result<u64, ChainError> {
        Err(ChainError::Malformed(
            "Subtensor takes runtime calls, not Tally's own extrinsics: use Chain::execute".into(),
        ))
    }

    fn execute(&self, key: &Keypair, netuid: u16, call: Call) -> Result<u64, ChainError> {
        let c = SubtensorCall::from_call(netuid, &call, self.version_key)?;
        if let SubtensorCall::SetWeights {
            dests,
            weights,
            version_key,
            ..
        } = &c
        {
            let head = self.head_number()?;
            if self.commit_reveal_enabled(netuid)? {
                // timelocked commits (drand) are a later scheme with its own calls
                let version: Option<u16> = self
                    .storage(head, "SubtensorModule", "CommitRevealWeightsVersion", ())
                    .ok()
                    .flatten()
                    .and_then(|b| u16::decode(&mut &b[..]).ok());
                if let Some(v) = version.filter(|v| *v >= 3) {
                    return Err(ChainError::Malformed(format!(
                        "subnet {netuid} demands timelocked commit-reveal of weights \
                         (CommitRevealWeightsVersion = {v}), which Tally does not submit; Tally \
                         commits to its scores before revealing them already: ask the subnet \
                         owner to turn CommitRevealWeightsEnabled off for subnet {netuid}"
                    )));
                }
                if self.has_storage(head, "SubtensorModule", "LastEpochBlock")? {
                    // spec 423 on counts reveal windows in epochs of the stateful scheduler and
                    // keeps no reveal blocks with a commitment: not revealed by Tally yet
                    return Err(ChainError::Malformed(format!(
                        "subnet {netuid} has hash-based commit-reveal of weights on a runtime \
                         with the stateful epoch scheduler, whose reveal windows Tally does not \
                         track yet; Tally commits to its scores before revealing them already: \
                         ask the subnet owner to turn CommitRevealWeightsEnabled off for subnet \
                         {netuid}"
                    )));
                }
                return self.commit_then_reveal(key, netuid, dests, weights, *version_key);
            }
        }
        self.submit_subtensor(key, &c)
    }

    fn commitments(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<Commitment>, ChainError> {
        let head = self.head_number()?;
        let b = self.storage(
            head,
            "Commitments",
            "CommitmentOf",
            (netuid, AccountId32(hotkey.0)),
        )?;
        Ok(b.map(|b| Self::decode::<Registration>(&b, "CommitmentOf"))
            .transpose()?
            .and_then(|r| {
                Some(Commitment {
                    block: r.block as u64,
                    data: r.fields.into_iter().next()?.0,
                })
            })
            .into_iter()
            .collect())
    }

    fn commitments_in(
        &self,
        netuid: u16,
        from: u64,
        to: u64,
    ) -> Result<Vec<(Hotkey, Commitment)>, ChainError> {
        // the state at the last block before `to`: what was in place then
        let at = to.saturating_sub(1).min(self.head_number()?);
        let all: Vec<((u16, AccountId32), Vec<u8>)> =
            self.storage_iter(at, "Commitments", "CommitmentOf", (netuid,), 65_536)?;
        let mut out = Vec::new();
        for ((_, who), b) in all {
            let Ok(r) = Self::decode::<Registration>(&b, "CommitmentOf") else {
                continue;
            };
            let block = r.block as u64;
            if block < from || block >= to {
                continue;
            }
            if let Some(d) = r.fields.into_iter().next() {
                out.push((Hotkey(who.0), Commitment { block, data: d.0 }));
            }
        }
        Ok(out)
    }

    fn weights(&self, netuid: u16) -> Result<Vec<WeightsSet>, ChainError> {
        let head = self.head_number()?;
        self.weights_at(netuid, head)
    }

    fn weights_history(&self, netuid: u16, hotkey: &Hotkey) -> Result<Vec<WeightsSet>, ChainError> {
        // the chain keeps the latest weights only
        Ok(self
            .weights(netuid)?
            .into_iter()
            .filter(|w| w.validator == *hotkey)
            .collect())
    }

    fn winner(&self, netuid: u16) -> Result<Option<u16>, ChainError> {
        let head = self.head_number()?;
        self.winner_at(netuid, head + 1)
    }

    fn metagraph_at(&self, netuid: u16, block: u64) -> Result<Metagraph, ChainError> {
        let uids = self.uid_hotkeys(netuid, block)?;
        let permits: Vec<bool> =
            self.value(block, "SubtensorModule", "ValidatorPermit", (netuid,))?;
        let axons: Vec<((u16, AccountId32), Vec<u8>)> =
            self.storage_iter(block, "SubtensorModule", "Axons", (netuid,), 65_536)?;
        let axon_of: std::collections::HashMap<[u8; 32], String> = axons
            .into_iter()
            .filter_map(|((_, a), b)| {
                Some((a.0, axon_string(&AxonInfo::decode(&mut &b[..]).ok()?)))
            })
            .collect();
        // stake and registration block per neuron: one block handle, a bounded number of reads
        // in flight (one round trip each, not two sequential calls per neuron)
        let keys: Vec<(u16, Hotkey)> = uids.clone();
        let per: Vec<(u64, u64)> = self.call(move |c| {
            let keys = keys.clone();
            async move {
                use subxt::ext::futures::{stream, StreamExt, TryStreamExt};
                let at = c.api.at_block(block).await.map_err(transport)?;
                let at = &at;
                stream::iter(keys.into_iter().map(|(uid, hk)| async move {
                    let stake =
                        fetch_u64(at, "TotalHotkeyAlpha", (AccountId32(hk.0), netuid)).await?;
                    let reg = fetch_u64(at, "BlockAtRegistration", (netuid, uid)).await?;
                    Ok::<_, ChainError>((stake, reg))
                }))
                .buffered(READS_IN_FLIGHT)
                .try_collect()
                .await
            }
        })?;
        let neurons = uids
            .into_iter()
            .zip(per)
            .map(|((uid, hotkey), (stake, registered_at))| NeuronInfo {
                uid,
                hotkey,
                stake,
                validator_permit: permits.get(uid as usize).copied().unwrap_or(false),
                axon: axon_of.get(&hotkey.0).cloned().unwrap_or_default(),
                peer: String::new(),
                registered_at,
            })
            .collect();
        Ok(Metagraph {
            netuid,
            block,
            neurons,
        })
    }

    fn winner_at(&self, netuid: u16, block: u64) -> Result<Option<u16>, ChainError> {
        // weights included before `block`: the state at block - 1
        let at = block.saturating_sub(1).min(self.head_number()?);
        let mg = self.metagraph_at(netuid, at)?;
        crate::local::winner_of(&mg, &self.weights_at(netuid, at)?)
    }
}

impl SubtensorChain {
    /// The weights row of every validator that has one, as stored at `block` (max-upscaled
    /// u16 values), each with the block of its last update.
    pub fn weights_at(&self, netuid: u16, block: u64) -> Result<Vec<WeightsSet>, ChainError> {
        let uids = self.uid_hotkeys(netuid, block)?;
        let last: Vec<u64> = self.value(block, "SubtensorModule", "LastUpdate", (netuid,))?;
        let rows: Vec<((u16, u16), Vec<u8>)> =
            self.storage_iter(block, "SubtensorModule", "Weights", (netuid,), 65_536)?;
        let mut out = Vec::new();
        for ((_, uid), b) in rows {
            let weights: Vec<(u16, u16)> = Self::decode(&b, "Weights")?;
            let Some((_, hotkey)) = uids.iter().find(|(u, _)| *u == uid) else {
                continue;
            };
            if weights.is_empty() {
                continue;
            }
            out.push(WeightsSet {
                block: last.get(uid as usize).copied().unwrap_or(0),
                validator: *hotkey,
                weights,
            });
        }
        Ok(out)
    }
}
