//! The hoster driver: runs a `tally_validator` [`HosterActor`] (the honest
//! [`tally_validator::Hoster`], or in the devnet an adversary wrapping one) under tokio, feeding
//! it inputs and executing its effects against the chain, the DHT, the hoster's store and its
//! model.
//!
//! Every tick it reads the chain head on the blocking pool and, when it moved, hands the actor
//! [`HosterInput::Head`] stamped with the node's own clock. Effects that expect an answer (chain
//! reads, challenge and reveal reads, inference) run as their own tasks and answer over a
//! bounded channel; inference runs on the blocking pool. [`HosterEffect::Persist`] is written
//! (one redb transaction) before the next effect of the list runs, so a commit never goes out
//! for an output the store does not hold; if the store already held another entry for the
//! epoch (kept for good), the effects of that epoch that follow are dropped and the actor is
//! given the stored entry instead. At start the actor gets the store's recent entries
//! ([`HosterInput::Restore`]), so a restarted hoster reveals what it committed.

use crate::hoster_store::HosterStore;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tally_chain::snapshot::read_snapshot;
use tally_chain::Chain;
use tally_core::{BoundedBytes, Keypair};
use tally_exec::inference::Mlp;
use tally_net::{Clock, Dht};
use tally_protocol::payload::{element_count, DType, Payload, Tensor};
use tally_protocol::{ChainView, Kind, RecordBody, SignedRecord};
use tally_validator::{Head, HosterActor, HosterEffect, HosterInput};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Epochs read back from the store at start.
pub const RESTORE_EPOCHS: usize = 8;

/// Publishers asked at once when reading reveals.
const READ_BATCH: usize = 64;

/// Most hosters whose reveals one read asks for.
const MAX_READ: usize = tally_protocol::view::MAX_NEURONS;

/// A model a hoster serves.
pub trait Model: Send + Sync {
    /// The output on `input`, or why there is none.
    fn infer(&self, input: &Tensor) -> Result<Tensor, String>;
}

/// The inference family's MLP: an f32 input of `mlp.input()` elements (any shape) to an f32
/// output of shape `[mlp.output()]`.
pub struct MlpModel(pub Mlp);

impl Model for MlpModel {
    fn infer(&self, input: &Tensor) -> Result<Tensor, String> {
        if input.dtype != DType::F32 {
            return Err(format!("input is {:?}, the model takes f32", input.dtype));
        }
        input.check()?;
        let n = element_count(&input.shape)?;
        if n != self.0.input() {
            return Err(format!(
                "input has {n} elements, the model takes {}",
                self.0.input()
            ));
        }
        let x: Vec<f32> = input
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let y = self.0.forward(&x);
        let len = u32::try_from(y.len()).map_err(|_| "output too large".to_string())?;
        Tensor::f32(&[len], &y).map_err(|e| format!("output: {e}"))
    }
}

/// Settings of the driver (the hoster has its own [`tally_validator::HosterConfig`]).
#[derive(Clone, Debug)]
pub struct HosterDriverConfig {
    /// The subnet.
    pub netuid: u16,
    /// How often the head is read.
    pub tick: Duration,
}

/// What the driver executes effects against.
#[derive(Clone)]
pub struct HosterPorts {
    /// The chain.
    pub chain: Arc<dyn Chain>,
    /// The DHT (its view is set from the actor's view and time effects).
    pub dht: Dht,
    /// The hoster's store.
    pub store: Arc<HosterStore>,
    /// The model served.
    pub model: Arc<dyn Model>,
    /// The hoster's key (signs raw records; the DHT signs the others with the same key).
    pub key: Keypair,
    /// Unix milliseconds by the node's clock (stamps heads).
    pub now_ms: Clock,
}

/// The driver.
pub struct HosterDriver {
    actor: Box<dyn HosterActor>,
    cfg: HosterDriverConfig,
    ports: HosterPorts,
    view: Option<ChainView>,
    last_error: Option<String>,
    tx: mpsc::Sender<HosterInput>,
    rx: mpsc::Receiver<HosterInput>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl HosterDriver {
    /// A driver for `actor`.
    pub fn new(
        actor: Box<dyn HosterActor>,
        cfg: HosterDriverConfig,
        ports: HosterPorts,
    ) -> HosterDriver {
        // every effect answers with at most one input; a head asks for a handful
        let (tx, rx) = mpsc::channel(1024);
        HosterDriver {
            actor,
            cfg,
            ports,
            view: None,
            last_error: None,
            tx,
            rx,
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let me = self.ports.key.hotkey();
        let store = self.ports.store.clone();
        match blocking(move || store.load(RESTORE_EPOCHS)).await {
            Some(Ok(entries)) => {
                let n = entries.len();
                self.feed(HosterInput::Restore(entries)).await;
                if n > 0 {
                    info!(hoster = %me, epochs = n, "resumed from the store");
                }
            }
            Some(Err(e)) => {
                warn!(hoster = %me, "store not read back: {e}");
                self.feed(HosterInput::Restore(Vec::new())).await;
            }
            None => self.feed(HosterInput::Restore(Vec::new())).await,
        }
        let mut interval = tokio::time::interval(self.cfg.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = None;
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    let chain = self.ports.chain.clone();
                    match blocking(move || chain.head()).await {
                        Some(Ok(h)) if last != Some(h.number) => {
                            last = Some(h.number);
                            let seen = (self.ports.now_ms)();
                            self.feed(HosterInput::Head(Head { number: h.number, timestamp_ms: seen })).await;
                        }
                        Some(Err(e)) => warn!(hoster = %me, "head not read: {e}"),
                        _ => {}
                    }
                }
                Some(i) = self.rx.recv() => self.feed(i).await,
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        debug!(hoster = %me, "hoster stopped");
    }

    /// Hands `input` to the actor and executes its effects in order (and those of any input
    /// that executing them produced).
    async fn feed(&mut self, input: HosterInput) {
        let mut queue = VecDeque::from([input]);
        while let Some(i) = queue.pop_front() {
            let effects = self.actor.handle(i);
            if let Some(e) = self.actor.take_error() {
                // the same problem on every head is said once
                if self.last_error.as_ref() != Some(&e) {
                    warn!(hoster = %self.ports.key.hotkey(), "{e}");
                    self.last_error = Some(e);
                }
            }
            let mut withheld = BTreeSet::new();
            for e in effects {
                if let Some(next) = self.execute(e, &mut withheld).await {
                    queue.push_back(next);
                }
            }
        }
    }

    fn answer(&self, f: impl std::future::Future<Output = HosterInput> + Send + 'static) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let input = f.await;
            let _ = tx.send(input).await;
        });
    }

    /// Executes one effect; `withheld` holds the epochs whose further effects in this list are
    /// dropped (the store kept another entry). Returns an input to hand the actor next.
    async fn execute(
        &mut self,
        e: HosterEffect,
        withheld: &mut BTreeSet<u64>,
    ) -> Option<HosterInput> {
        let p = self.ports.clone();
        let me = p.key.hotkey();
        let netuid = self.cfg.netuid;
        match e {
            HosterEffect::ReadChain { req, at_block } => {
                let chain = p.chain.clone();
                self.answer(async move {
                    let result = blocking(move || read_snapshot(chain.as_ref(), netuid, at_block))
                        .await
                        .unwrap_or_else(|| Err("chain call aborted".into()));
                    HosterInput::Snapshot { req, result }
                });
            }
            HosterEffect::View(v) => {
                p.dht.set_view((*v).clone());
                self.view = Some(*v);
            }
            HosterEffect::Time(t) => {
                if let Some(v) = self.view.as_mut() {
                    v.time = t;
                    p.dht.set_view(v.clone());
                }
            }
            HosterEffect::ReadChallenge { epoch, elected } => self.answer(async move {
                let found = match p.dht.get(Kind::Challenge, epoch, &elected).await {
                    Ok(Some(v)) => match v.payload {
                        Payload::Challenge(t) => Some(t),
                        _ => None,
                    },
                    Ok(None) => None,
                    Err(e) => {
                        debug!(hoster = %me, epoch, "challenge not read: {e}");
                        None
                    }
                };
                if found.is_some() {
                    debug!(hoster = %me, epoch, elected = %elected, "challenge found");
                }
                HosterInput::Challenge { epoch, found }
            }),
            HosterEffect::Infer { epoch, input } => self.answer(async move {
                let model = p.model.clone();
                let result = blocking(move || model.infer(&input))
                    .await
                    .unwrap_or_else(|| Err("the model panicked".into()));
                HosterInput::Inferred { epoch, result }
            }),
            HosterEffect::Persist(entry) => {
                let store = p.store.clone();
                let e2 = entry.clone();
                match blocking(move || store.put(&e2)).await {
                    Some(Ok(kept)) if kept == entry => {}
                    Some(Ok(kept)) => {
                        warn!(hoster = %me, epoch = entry.epoch,
                            "the store holds another entry for this epoch (kept for good): \
                             publishing that one");
                        withheld.insert(entry.epoch);
                        return Some(HosterInput::Restore(vec![kept]));
                    }
                    // the output is still revealed from memory; only a restart before the
                    // reveal window would lose it
                    Some(Err(e)) => {
                        warn!(hoster = %me, epoch = entry.epoch, "entry not persisted: {e}")
                    }
                    None => {
                        warn!(hoster = %me, epoch = entry.epoch, "entry not persisted: aborted")
                    }
                }
            }
            HosterEffect::Publish {
                kind,
                epoch,
                payload,
                expires_at_ms,
                raw,
            } => {
                if withheld.contains(&epoch) {
                    return None;
                }
                if raw {
                    self.publish_raw(kind, epoch, payload, expires_at_ms);
                } else {
                    tokio::spawn(async move {
                        match p
                            .dht
                            .publish_until(kind, epoch, payload, expires_at_ms)
                            .await
                        {
                            Ok(_) => info!(hoster = %me, epoch, "{} published", kind.name()),
                            Err(e) => {
                                warn!(hoster = %me, epoch, "{} not published: {e}", kind.name())
                            }
                        }
                    });
                }
            }
            HosterEffect::ReadReveals { epoch, hosters } => self.answer(async move {
                let mut reveals = Vec::new();
                let hosters = &hosters[..hosters.len().min(MAX_READ)];
                for chunk in hosters.chunks(READ_BATCH) {
                    for (h, r) in p.dht.get_many(Kind::HosterReveal, epoch, chunk).await {
                        if let Ok(Some(v)) = r {
                            if let Payload::HosterReveal(r) = v.payload {
                                reveals.push((h, r));
                            }
                        }
                    }
                }
                HosterInput::Reveals { epoch, reveals }
            }),
        }
        None
    }

    /// Signs a record with the hoster's key and sends it to peers with no local check (an
    /// adversary's late or malformed record; the honest hoster never asks for this).
    fn publish_raw(&self, kind: Kind, epoch: u64, payload: Vec<u8>, expires_at_ms: u64) {
        let (dht, key, netuid) = (
            self.ports.dht.clone(),
            self.ports.key.clone(),
            self.cfg.netuid,
        );
        tokio::spawn(async move {
            let me = key.hotkey();
            let record = BoundedBytes::new(payload)
                .map_err(|e| e.to_string())
                .and_then(|payload| {
                    let body = RecordBody {
                        kind,
                        netuid,
                        epoch,
                        publisher: me,
                        payload,
                        expires_at_ms,
                    };
                    SignedRecord::sign(body, &key).map_err(|e| e.to_string())
                });
            match record {
                Ok(r) => match dht.put_raw(r.key(), r.to_bytes()).await {
                    Ok(()) => info!(hoster = %me, epoch, "{} sent raw", kind.name()),
                    Err(e) => warn!(hoster = %me, epoch, "raw {} not sent: {e}", kind.name()),
                },
                Err(e) => warn!(hoster = %me, epoch, "raw {} not built: {e}", kind.name()),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_exec::inference::Inference;

    fn now() -> u64 {
        (tally_net::system_clock())()
    }

    /// The view a node of subnet 1 has now.
    fn view_now(chain: &dyn Chain) -> ChainView {
        let h = chain.head().unwrap();
        let snap = read_snapshot(chain, 1, h.number).unwrap();
        tally_validator::view_of(
            1,
            tally_protocol::PhaseWindows::default(),
            &snap,
            Head {
                number: h.number,
                timestamp_ms: now(),
            },
        )
    }

    async fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The whole hoster over real sockets and a producing chain: epochs of 20 blocks of 200 ms
    /// (commit window blocks [3, 10), reveal window [10, 12) of each epoch). Epoch 0 has no
    /// challenge (the seed's input); in epoch 1 the elected validator publishes one and the
    /// hoster commits and reveals its model's output on it, which the validator reads back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hoster_commits_and_reveals_its_models_output_over_the_dht() {
        use tally_chain::{Genesis, LocalChain, SubnetParams};
        use tally_net::DhtConfig;
        use tally_protocol::hosted::fallback_input;
        use tally_protocol::payload::hoster_commitment;

        let (vkey, hkey) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let params = SubnetParams {
            netuid: 1,
            epoch_length: 20,
            epoch_offset: 0,
            block_ms: 200,
            weights_rate_limit: 0,
            commitment_max_bytes: 128,
            commitment_bytes_per_epoch: 1024,
            max_uids: 16,
            min_validator_stake: 1_000,
            burn_uid: 0,
        };
        let chain = Arc::new(
            LocalChain::in_memory(&Genesis {
                timestamp_ms: now(),
                subnets: vec![params],
                neurons: vec![
                    Genesis::neuron(
                        1,
                        Keypair::from_seed(&[9; 32]).hotkey(),
                        0,
                        false,
                        "".into(),
                    ),
                    Genesis::neuron(1, vkey.hotkey(), 10_000, true, "".into()),
                    Genesis::neuron(1, hkey.hotkey(), 0, false, "".into()),
                ],
            })
            .unwrap(),
        );
        let producer = chain.spawn_producer(200);
        let dyn_chain: Arc<dyn Chain> = chain.clone();
        let vdht = Dht::start(
            DhtConfig::default(),
            libp2p::identity::Keypair::generate_ed25519(),
            vkey.clone(),
            view_now(chain.as_ref()),
            tally_net::system_clock(),
        )
        .await
        .unwrap();
        let boot = vdht.listen_addrs().await.unwrap()[0].clone();
        let hdht = Dht::start(
            DhtConfig {
                bootstrap: vec![boot],
                ..DhtConfig::default()
            },
            libp2p::identity::Keypair::generate_ed25519(),
            hkey.clone(),
            view_now(chain.as_ref()),
            tally_net::system_clock(),
        )
        .await
        .unwrap();
        // the validator node follows the chain
        let follow = tokio::spawn({
            let (vdht, chain) = (vdht.clone(), dyn_chain.clone());
            async move {
                loop {
                    vdht.set_view(view_now(chain.as_ref()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(HosterStore::open(&dir.path().join("hoster.redb")).unwrap());
        let mlp = tally_exec::inference::Inference::default_mlp(7);
        let model = MlpModel(mlp.clone());
        let actor = tally_validator::Hoster::new(
            tally_validator::HosterConfig::new(1),
            hkey.clone(),
            [5; 32],
        );
        let driver = HosterDriver::new(
            Box::new(actor),
            HosterDriverConfig {
                netuid: 1,
                tick: Duration::from_millis(20),
            },
            HosterPorts {
                chain: dyn_chain.clone(),
                dht: hdht.clone(),
                store: store.clone(),
                model: Arc::new(MlpModel(mlp)),
                key: hkey.clone(),
                now_ms: tally_net::system_clock(),
            },
        );
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(driver.run(rx));

        // epoch 1 opens: the elected (only) validator publishes its challenge
        let head = || dyn_chain.head().unwrap().number;
        wait_for(|| head() >= 20, "epoch 1").await;
        let challenge = Tensor::f32(&[64], &[0.375; 64]).unwrap();
        vdht.set_view(view_now(chain.as_ref()));
        vdht.publish(
            Kind::Challenge,
            1,
            parity_scale_codec::Encode::encode(&challenge),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        // the seed's input for epoch 0, the challenge's output for epoch 1
        let seed0 = *view_now(chain.as_ref()).seed(0).unwrap();
        let e0 = store.get(0).unwrap().expect("an entry for epoch 0");
        assert_eq!(
            e0.output,
            model
                .infer(&fallback_input(&seed0, &[64]).unwrap())
                .unwrap()
        );
        wait_for(|| head() >= 33, "epoch 1's reveal window to close").await;
        let e1 = store.get(1).unwrap().expect("an entry for epoch 1");
        let want = model.infer(&challenge).unwrap();
        assert_eq!(e1.output, want);
        let c = vdht
            .get(Kind::HosterCommit, 1, &hkey.hotkey())
            .await
            .unwrap()
            .expect("the commit is found");
        let r = vdht
            .get(Kind::HosterReveal, 1, &hkey.hotkey())
            .await
            .unwrap()
            .expect("the reveal is found");
        let (Payload::Commit(c), Payload::HosterReveal(r)) = (c.payload, r.payload) else {
            panic!("wrong payloads")
        };
        assert_eq!(r.output, want);
        assert_eq!(hoster_commitment(&hkey.hotkey(), 1, &r.salt, &r.output), c);
        assert_eq!(r.salt, e1.salt);
        stop.send(true).unwrap();
        task.await.unwrap();
        follow.abort();
        drop(producer);
    }

    #[test]
    fn the_mlp_model_checks_its_input_and_gives_its_output_shape() {
        let mlp = Inference::default_mlp(7);
        let m = MlpModel(mlp.clone());
        let x = vec![0.25f32; 64];
        let input = Tensor::f32(&[64], &x).unwrap();
        let y = m.infer(&input).unwrap();
        assert_eq!(&y.shape[..], &[16]);
        assert_eq!(y, Tensor::f32(&[16], &mlp.forward(&x)).unwrap());
        // any shape with the right element count
        assert_eq!(m.infer(&Tensor::f32(&[8, 8], &x).unwrap()).unwrap(), y);
        assert!(m
            .infer(&Tensor::f32(&[63], &[0.25; 63]).unwrap())
            .unwrap_err()
            .contains("63 elements"));
        let mut ints = input.clone();
        ints.dtype = DType::I32;
        assert!(m.infer(&ints).is_err());
        let mut short = input;
        short.data = BoundedBytes::new(vec![0; 12]).unwrap();
        assert!(m.infer(&short).is_err());
    }
}
