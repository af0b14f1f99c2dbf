//! `tally owner --config FILE`: the owner service. Accepts miner submissions, signs the roster
//! of each run once when the chain reaches it (kept in its database, never rebuilt), serves
//! rosters and archives, and serves its own weight pick (for `owner` and `shadow` modes), which
//! it computes once per run, off the request path, by running the submissions itself.

use crate::Failure;
use anyhow::{anyhow, Context};
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tally_chain::Chain;
use tally_core::{FamilyId, Hotkey, Keypair, Score};
use tally_exec::inference::Inference;
use tally_exec::runtime::{Limits, WasmRuntime};
use tally_exec::Family;
use tally_node::owner;
use tally_node::submissions::{self, Registry};

#[derive(Args)]
#[command(after_help = "\
CONFIG (JSON):
  {\"listen\": \"127.0.0.1:8800\", \"netuid\": 1, \"family\": \"inference\",
   \"owner_key\": \"/path/to/hotkey.json\" | \"owner_seed\": \"0x…\",
   \"miners\": [\"5…\", …],            (registered miners allowed to submit)
   \"chain\": \"http://127.0.0.1:9944\",  (the chain: rosters and picks are made when it reaches
                                     a run; its registered miners may also submit. Without it
                                     no roster is ever signed.)
   \"db\": \"owner.redb\",               (optional: the owner's database, default next to the
                                     config file)
   \"model_seed\": 7}
Routes: POST /v1/submissions, GET /v1/runs/{run}/roster, GET /v1/submissions/{id}/archive,
GET /v1/weights?run=R, GET /healthz.")]
pub struct OwnerArgs {
    /// The config file (JSON).
    #[arg(long)]
    config: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    listen: String,
    netuid: u16,
    #[serde(default = "default_family")]
    family: String,
    owner_key: Option<PathBuf>,
    owner_seed: Option<String>,
    #[serde(default)]
    miners: Vec<String>,
    chain: Option<String>,
    db: Option<PathBuf>,
    #[serde(default = "default_model_seed")]
    model_seed: u64,
    /// Devnets: pick the best of `miners` by the synthetic scorer's hidden qualities from this
    /// seed instead of running submissions.
    #[serde(default)]
    synthetic_seed: Option<u64>,
}

fn default_family() -> String {
    "inference".into()
}
fn default_model_seed() -> u64 {
    7
}

pub fn run(a: OwnerArgs) -> Result<u8, Failure> {
    let text = std::fs::read(&a.config)
        .with_context(|| format!("cannot read {}", a.config.display()))
        .map_err(Failure::input)?;
    let cfg: Config = serde_json::from_slice(&text)
        .map_err(|e| Failure::input(anyhow!("{}: {e}", a.config.display())))?;
    let key = match (&cfg.owner_key, &cfg.owner_seed) {
        (Some(p), None) => Keypair::from_keyfile_json(
            &std::fs::read(p)
                .with_context(|| format!("owner_key {}", p.display()))
                .map_err(Failure::input)?,
        )
        .map_err(Failure::input)?,
        (None, Some(s)) => Keypair::from_seed_hex(s).map_err(Failure::input)?,
        _ => {
            return Err(Failure::input(anyhow!(
                "give exactly one of owner_key and owner_seed"
            )))
        }
    };
    if cfg.family != "inference" && cfg.synthetic_seed.is_none() {
        return Err(Failure::input(anyhow!(
            "family {:?}: the built-in family is inference",
            cfg.family
        )));
    }
    let family_id = FamilyId::new(&cfg.family).map_err(Failure::input)?;
    let db = cfg.db.clone().unwrap_or_else(|| {
        a.config
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("owner.redb")
    });
    let reg = Arc::new(
        Registry::open(&db, key.clone(), cfg.netuid, family_id)
            .map_err(|e| Failure::input(anyhow!("{e}")))?,
    );
    for m in &cfg.miners {
        let hk: Hotkey = m
            .parse()
            .map_err(|e| Failure::input(anyhow!("miners: {m}: {e}")))?;
        reg.miners.write().map_err(|_| anyhow!("lock"))?.insert(hk);
    }
    let runtime = Arc::new(WasmRuntime::new().map_err(|e| anyhow!("{e}"))?);
    let family = Arc::new(
        Inference::new(
            Inference::default_mlp(cfg.model_seed),
            &runtime,
            Limits::default(),
        )
        .map_err(|e| anyhow!("{e}"))?,
    );
    let synthetic = match cfg.synthetic_seed {
        Some(seed) => {
            let miners: Vec<Hotkey> = cfg.miners.iter().filter_map(|m| m.parse().ok()).collect();
            let s = tally_node::scorer::SyntheticScorer::for_miners(seed, &miners, 0.02)
                .map_err(|e| Failure::input(anyhow!("miners: {e}")))?;
            Some(s.qualities())
        }
        None => None,
    };
    // the owner's pick: it runs every latest submission itself on tasks from the run number
    let pick: owner::Pick = if let Some(q) = synthetic {
        Arc::new(move |_run| {
            let best = q
                .iter()
                .fold(None::<&(Hotkey, Score)>, |b, x| {
                    if b.is_none_or(|b| x.1 > b.1) {
                        Some(x)
                    } else {
                        b
                    }
                })
                .map(|x| x.0)?;
            Some((best, q.clone()))
        })
    } else {
        let (reg, rt, fam) = (reg.clone(), runtime.clone(), family.clone());
        Arc::new(move |run| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&run.to_le_bytes());
            let tasks = fam.tasks(&seed, 3);
            let mut scores: Vec<(Hotkey, Score)> = reg
                .latest()
                .into_iter()
                .map(|(miner, _, archive)| {
                    let s = match rt.load(&archive, fam.imports()) {
                        Ok(m) => {
                            tally_exec::family::evaluate(
                                fam.as_ref(),
                                &rt,
                                &m,
                                &tasks,
                                fam.limits(),
                                "owner",
                            )
                            .score
                        }
                        Err(_) => Score::ZERO,
                    };
                    (miner, s)
                })
                .collect();
            scores.sort_by_key(|s| s.0);
            let best = scores
                .iter()
                .fold(None::<&(Hotkey, Score)>, |b, q| {
                    if b.is_none_or(|b| q.1 > b.1) {
                        Some(q)
                    } else {
                        b
                    }
                })
                .map(|q| q.0)?;
            Some((best, scores))
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let book = Arc::new(owner::PickBook::default());
    rt.block_on(async move {
        if let Some(url) = cfg.chain.clone() {
            let chain: Arc<dyn Chain> = crate::chain_cmd::connect(&url, Duration::from_secs(5))?;
            tokio::spawn(watch_chain(
                chain,
                cfg.netuid,
                reg.clone(),
                book.clone(),
                pick,
            ));
        }
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))
            .map_err(Failure::input)?;
        eprintln!(
            "owner {} serving netuid {} on http://{}; Ctrl-C to stop",
            key.hotkey(),
            cfg.netuid,
            listener.local_addr()?
        );
        if cfg.chain.is_none() {
            // a log line, not eprintln: whoever reads the first line may close stderr after it
            tracing::warn!("no chain in the config: no roster will be signed and no pick computed");
        }
        let app = owner::router(book).merge(submissions::router(reg));
        tokio::select! {
            r = tally_chain::http_server::serve(
                listener,
                app,
                tally_chain::http_server::Limits::default()
                    .with_max_body(tally_node::submissions::MAX_ARCHIVE + 64 * 1024),
            ) => r?,
            _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        }
        Ok::<u8, Failure>(0)
    })
}

/// Follows the chain: refreshes the registered miners, and when the chain reaches a new run
/// signs its roster (once; kept in the database) and then computes the owner's pick for it, both
/// on blocking threads, never on a request.
async fn watch_chain(
    chain: Arc<dyn Chain>,
    netuid: u16,
    reg: Arc<Registry>,
    book: Arc<owner::PickBook>,
    pick: owner::Pick,
) {
    let mut last_miners = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let c = chain.clone();
        let refresh = last_miners.elapsed() >= Duration::from_secs(10);
        let read = tokio::task::spawn_blocking(move || {
            let p = c.params(netuid)?;
            let head = c.head()?.number;
            let mg = if refresh {
                Some(c.metagraph(netuid)?)
            } else {
                None
            };
            Ok::<_, tally_chain::ChainError>((p, head, mg))
        })
        .await;
        let mut wait = Duration::from_secs(1);
        match read {
            Ok(Ok((p, head, mg))) => {
                wait = Duration::from_millis((p.block_ms / 2).clamp(50, 6_000));
                if let Some(mg) = mg {
                    last_miners = std::time::Instant::now();
                    if let Ok(mut m) = reg.miners.write() {
                        m.extend(
                            mg.neurons
                                .iter()
                                .filter(|n| !n.validator_permit)
                                .map(|n| n.hotkey),
                        );
                    }
                }
                let clock = tally_protocol::EpochClock {
                    length: p.epoch_length,
                    offset: p.epoch_offset,
                };
                // the genesis block starts no run: a chain that has not produced a block yet
                // (a devnet waiting for its miners' uploads) has reached nothing
                if let Some(run) = clock.epoch_of(head).filter(|_| head > 0) {
                    let (reg, book, pick) = (reg.clone(), book.clone(), pick.clone());
                    let done = tokio::task::spawn_blocking(move || {
                        if let Err(e) = reg.freeze(run, run) {
                            tracing::warn!(run, "roster: {e}");
                        }
                        if !book.has(run) {
                            if let Some((w, scores)) = pick(run) {
                                book.insert(run, w, scores);
                            }
                        }
                    })
                    .await;
                    if let Err(e) = done {
                        tracing::warn!("owner step: {e}");
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("cannot read the chain: {e}"),
            Err(e) => tracing::warn!("{e}"),
        }
        tokio::time::sleep(wait).await;
    }
}
