//! `tally bench …`: in-process benchmarks. Each prints a human summary and, with `--json`, a
//! last line that scripts and `BENCHMARKS.md` read. Timings are medians of repeated runs after a
//! warm-up, on data from a fixed seed.

use crate::Failure;
use anyhow::anyhow;
use clap::Subcommand;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::time::{Duration, Instant};
use tally_consensus::{consensus_scores, MissingPolicy, ValidatorScores};
use tally_core::signed::decode_verify_many;
use tally_core::{FamilyId, Fraction, Hotkey, Keypair, ReportBody, Score, Signed};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Aggregation: per-validator sorted score lists to the consensus vector.
    Consensus {
        /// Validators (reports).
        #[arg(long, default_value_t = 256)]
        validators: usize,
        /// Miners.
        #[arg(long, default_value_t = 4096)]
        miners: usize,
        /// Threads for the median (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Print `{"validators":V,"miners":M,"median_ns":N}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// The deterministic simulator: one subnet of production validator machines, timed.
    Sim {
        /// Validators.
        #[arg(long, default_value_t = 64)]
        validators: usize,
        /// Miners.
        #[arg(long, default_value_t = 256)]
        miners: usize,
        /// Epochs (runs).
        #[arg(long, default_value_t = 20)]
        epochs: u64,
        /// Print `{"validators":V,"miners":M,"epochs":E,"seconds":S}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// The DHT predicate deciding one record, without and with the signature check.
    Predicate {
        /// Print `{"median_ns":N,"median_ns_with_signature":M}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// A DHT of N nodes on 127.0.0.1: put and get throughput, get latency.
    Dht {
        /// Nodes.
        #[arg(long, default_value_t = 32)]
        nodes: usize,
        /// Rounds: each node puts one record and reads 8 it does not hold, per round.
        #[arg(long, default_value_t = 4)]
        rounds: usize,
        /// Print `{"nodes":N,"puts_per_s":…,"gets_per_s":…,"get_p50_ms":…,"get_p99_ms":…}` last.
        #[arg(long)]
        json: bool,
    },
    /// The devnet on a Subtensor development chain (real execution): from each run's
    /// reveal-window close to each honest validator's weights extrinsic in a block, and the
    /// validators' peak memory.
    Subtensor {
        /// The chain (`ws://127.0.0.1:9944`, from ../shared/subtensor-local/start.sh).
        #[arg(long)]
        chain: String,
        /// Its sudo key (a development path such as //Alice, or a hex seed).
        #[arg(long, default_value = "//Alice")]
        sudo_seed: String,
        /// Validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Miners.
        #[arg(long, default_value_t = 3)]
        miners: usize,
        /// Runs.
        #[arg(long, default_value_t = 3)]
        epochs: u64,
        /// Print `{"runs":R,"weights_p50_ms":…,"weights_max_ms":…,"aggregation_p50_ms":…,
        /// "rss_p50_mib":…,"rss_max_mib":…}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Miner-hosted mode, one epoch over a real DHT on 127.0.0.1 (V validator and H hoster
    /// nodes in this process): the records and bytes each validator reads, and the time from
    /// the reveal window's close to all hosters scored.
    Hosted {
        /// Validators.
        #[arg(long, default_value_t = 16)]
        validators: usize,
        /// Hosters.
        #[arg(long, default_value_t = 64)]
        hosters: usize,
        /// Print `{"validators":V,"hosters":H,"records_per_validator":…,"bytes_per_validator":…,
        /// "scored_p50_ms":…,"scored_max_ms":…}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// A devnet's aggregation latency: from each run's reveal-window close to the end of every
    /// honest validator's aggregation.
    Aggregation {
        /// Validators.
        #[arg(long, default_value_t = 32)]
        validators: usize,
        /// Miners (qualities evenly spaced).
        #[arg(long, default_value_t = 256)]
        miners: usize,
        /// Runs.
        #[arg(long, default_value_t = 3)]
        epochs: u64,
        /// Print `{"validators":V,"miners":M,"p50_ms":…,"max_ms":…}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Authenticated score fetches against one node on loopback: throughput, p99 latency and
    /// the node's memory growth across distinct nonces.
    Api {
        /// Requests, each with a distinct nonce.
        #[arg(long, default_value_t = 1_000_000)]
        requests: u64,
        /// Client threads.
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Print `{"requests_per_s":…,"p99_ms":…,"rss_growth_mb":…}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Honest peers' signed score fetches against one node on loopback while it holds
    /// thousands of idle (half-sent) connections and one known key floods it with validly signed
    /// requests: the honest fetches' latency, and what the node refused.
    ApiLoad {
        /// Idle connections, each sending half a request head and reopened a second after the
        /// node closes it.
        #[arg(long, default_value_t = 5_000)]
        idle: usize,
        /// Source addresses the idle connections come from (127.0.0.10 and up); 1 puts them
        /// all behind the node's per-IP cap.
        #[arg(long, default_value_t = 20)]
        idle_sources: u8,
        /// Honest requests measured (from 127.0.0.2, 64 hotkeys, 200/s per connection).
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Honest connections (threads).
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Threads flooding with the one key (from 127.0.0.3), back to back.
        #[arg(long, default_value_t = 2)]
        flood_threads: usize,
        /// Print `{"p50_ms":…,"p99_ms":…,"max_ms":…,"flood_429":…,…}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// Sandbox evaluation overhead and the wasm MLP against native Rust.
    Exec {
        /// Print `{"overhead_ms":…,"wasm_ms":…,"native_ms":…,"ratio":…}` as the last line.
        #[arg(long)]
        json: bool,
    },
    /// The node side of `bench api` (started by it).
    #[command(hide = true)]
    ApiServer,
    /// Decoding and verifying signed score reports from their wire bytes.
    Verify {
        /// Reports.
        #[arg(long, default_value_t = 256)]
        reports: usize,
        /// Scores per report.
        #[arg(long, default_value_t = 4096)]
        miners: usize,
        /// Threads (default: the machine's cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Print `{"reports":R,"miners":M,"median_ns":N}` as the last line.
        #[arg(long)]
        json: bool,
    },
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Runs `f` after a warm-up until `min_iters` runs and `min_time` have passed (capped at
/// `max_iters`), returning the median duration.
fn median_of(
    mut f: impl FnMut(),
    min_iters: usize,
    max_iters: usize,
    min_time: Duration,
) -> Duration {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < max_iters && (samples.len() < min_iters || start.elapsed() < min_time) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Prints a single- vs multi-thread result, and with `json` a last line of `fields` plus the
/// medians.
fn report(
    what: &str,
    single: Duration,
    multi: Duration,
    threads: usize,
    json: bool,
    mut fields: serde_json::Value,
) {
    eprintln!(
        "{what}: median {:.3} ms on {threads} threads, {:.3} ms on 1 thread",
        multi.as_secs_f64() * 1e3,
        single.as_secs_f64() * 1e3
    );
    if json {
        if let Some(o) = fields.as_object_mut() {
            o.insert("median_ns".into(), json!(multi.as_nanos() as u64));
            o.insert(
                "single_thread_median_ns".into(),
                json!(single.as_nanos() as u64),
            );
            o.insert("threads".into(), json!(threads));
        }
        println!("{fields}");
    }
}

fn check_sizes(a: usize, b: usize) -> Result<(), Failure> {
    if a == 0 || b == 0 || a > 100_000 || b > 100_000 || a * b > 50_000_000 {
        return Err(Failure::input(anyhow!(
            "sizes must be 1..=100000 each with a product of at most 50,000,000"
        )));
    }
    Ok(())
}

pub fn run(cmd: BenchCommand) -> Result<u8, Failure> {
    match cmd {
        BenchCommand::Predicate { json } => crate::bench_net::predicate(json),
        BenchCommand::Sim {
            validators,
            miners,
            epochs,
            json,
        } => crate::sim_cmd::bench(validators, miners, epochs, json),
        BenchCommand::Api {
            requests,
            threads,
            json,
        } => crate::bench_api::bench(requests, threads, json),
        BenchCommand::ApiLoad {
            idle,
            idle_sources,
            requests,
            threads,
            flood_threads,
            json,
        } => crate::bench_api::load(idle, idle_sources, requests, threads, flood_threads, json),
        BenchCommand::ApiServer => crate::bench_api::server(),
        BenchCommand::Exec { json } => crate::bench_net::exec(json),
        BenchCommand::Hosted {
            validators,
            hosters,
            json,
        } => crate::bench_hosted::hosted(validators, hosters, json),
        BenchCommand::Aggregation {
            validators,
            miners,
            epochs,
            json,
        } => crate::bench_net::aggregation(validators, miners, epochs, json),
        BenchCommand::Subtensor {
            chain,
            sudo_seed,
            validators,
            miners,
            epochs,
            json,
        } => crate::bench_net::subtensor(&chain, &sudo_seed, validators, miners, epochs, json),
        BenchCommand::Dht {
            nodes,
            rounds,
            json,
        } => crate::bench_net::dht(nodes, rounds, json),
        BenchCommand::Consensus {
            validators,
            miners,
            threads,
            json,
        } => {
            check_sizes(validators, miners)?;
            let threads = threads.unwrap_or_else(cores).max(1);
            let mut rng = ChaCha8Rng::seed_from_u64(42);
            // every validator scores ~98% of miners, scores near a per-miner quality
            let quality: Vec<u32> = (0..miners)
                .map(|_| rng.gen_range(0..=1_000_000_000))
                .collect();
            let lists: Vec<Vec<(u32, Score)>> = (0..validators)
                .map(|_| {
                    let mut l = Vec::with_capacity(miners);
                    for m in 0..miners as u32 {
                        if rng.gen_bool(0.98) {
                            let q = quality[m as usize] as i64
                                + rng.gen_range(-20_000_000..=20_000_000);
                            let s = Score::from_units(q.clamp(0, 1_000_000_000) as u32);
                            l.push((m, s.unwrap_or(Score::ZERO)));
                        }
                    }
                    l
                })
                .collect();
            let stakes: Vec<u64> = (0..validators)
                .map(|_| rng.gen_range(1..1_000_000_000_000))
                .collect();
            let reports: Vec<ValidatorScores> = lists
                .iter()
                .zip(&stakes)
                .map(|(l, s)| ValidatorScores {
                    stake: *s,
                    scores: l,
                })
                .collect();
            let kappa = Fraction::from_units(500_000_000)?;
            let mut scored = 0;
            let mut measure = |t: usize| {
                median_of(
                    || {
                        let out =
                            consensus_scores(&reports, miners, kappa, MissingPolicy::Abstain, 0, t)
                                .unwrap_or_default();
                        scored = out.iter().filter(|s| s.is_some()).count();
                        std::hint::black_box(out);
                    },
                    21,
                    100_000,
                    Duration::from_secs(2),
                )
            };
            let single = measure(1);
            let multi = measure(threads);
            let what =
                format!("consensus {validators} validators x {miners} miners ({scored} scored)");
            report(
                &what,
                single,
                multi,
                threads,
                json,
                json!({"validators": validators, "miners": miners}),
            );
            Ok(0)
        }
        BenchCommand::Verify {
            reports,
            miners,
            threads,
            json,
        } => {
            check_sizes(reports, miners)?;
            if miners > tally_core::MAX_REPORT_SCORES {
                return Err(Failure::input(anyhow!(
                    "--miners is over the report cap of {}",
                    tally_core::MAX_REPORT_SCORES
                )));
            }
            let threads = threads.unwrap_or_else(cores).max(1);
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let family = FamilyId::new("inference")?;
            let miner_keys: Vec<Hotkey> = (0..miners).map(|_| Hotkey(rng.gen())).collect();
            eprintln!("signing {reports} reports of {miners} scores…");
            let wire: Vec<Vec<u8>> = (0..reports)
                .map(|_| {
                    let kp = Keypair::from_seed(&rng.gen());
                    let scores = miner_keys
                        .iter()
                        .map(|k| {
                            (
                                *k,
                                Score::from_units(rng.gen_range(0..=1_000_000_000))
                                    .unwrap_or(Score::ZERO),
                            )
                        })
                        .collect();
                    let body = ReportBody::new(1, 9, family.clone(), kp.hotkey(), scores)?;
                    Ok(Signed::sign(body, &kp)?.to_bytes())
                })
                .collect::<Result<_, tally_core::CoreError>>()?;
            let refs: Vec<&[u8]> = wire.iter().map(|w| w.as_slice()).collect();
            let mut ok = 0;
            let mut measure = |t: usize| {
                median_of(
                    || {
                        // time the curve operations, not the verified-signature memo
                        tally_core::keys::forget_verified();
                        let r = decode_verify_many::<ReportBody>(&refs, t);
                        ok = r.iter().filter(|x| x.is_ok()).count();
                        std::hint::black_box(r);
                    },
                    11,
                    10_000,
                    Duration::from_secs(3),
                )
            };
            let single = measure(1);
            let multi = measure(threads);
            if ok != reports {
                return Err(anyhow!("only {ok} of {reports} reports verified").into());
            }
            let mb = wire.iter().map(|w| w.len()).sum::<usize>() as f64 / 1e6;
            let what = format!("decode+verify {reports} reports x {miners} scores ({mb:.1} MB)");
            report(
                &what,
                single,
                multi,
                threads,
                json,
                json!({"reports": reports, "miners": miners}),
            );
            Ok(0)
        }
    }
}
