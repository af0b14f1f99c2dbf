//! `tally bench predicate` and `tally bench dht`: the DHT predicate in-process, and a DHT of N
//! nodes on 127.0.0.1.

use crate::Failure;
use anyhow::anyhow;
use parity_scale_codec::Encode;
use serde_json::json;
use std::time::{Duration, Instant};
use tally_core::{BoundedBytes, Hotkey, Keypair};
use tally_net::{system_clock, Dht, DhtConfig};
use tally_protocol::payload::Commit;
use tally_protocol::predicate::{check, check_without_signature, Mode};
use tally_protocol::view::challenge_seed;
use tally_protocol::{
    ChainTime, ChainView, EpochClock, Kind, Metagraph, Neuron, PhaseWindows, RecordBody,
    SignedRecord,
};

pub(crate) const NET: u16 = 1;

fn metagraph(keys: &[Hotkey]) -> Metagraph {
    let ns = keys.iter().enumerate().map(|(i, k)| {
        (
            *k,
            Neuron {
                uid: i as u16,
                stake: 10_000 + i as u64,
                validator_permit: true,
            },
        )
    });
    Metagraph::new(ns).unwrap_or_default()
}

/// A view whose chain position at `now_ms` is `block` (epochs of 100 one-second blocks), with
/// the seed of epoch `e` (< 64) `challenge_seed([e; 32], NET, e)`.
pub(crate) fn view(mg: &Metagraph, block: u64, now_ms: u64) -> ChainView {
    let mut v = ChainView::new(
        NET,
        EpochClock {
            length: 100,
            offset: 0,
        },
        PhaseWindows::default(),
        ChainTime {
            block,
            at_ms: now_ms,
            block_ms: 1000,
        },
        mg.clone(),
        1_000,
    );
    for e in 0..64 {
        v.set_seed(e, challenge_seed(&[e as u8; 32], NET, e));
    }
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub fn predicate(json_out: bool) -> Result<u8, Failure> {
    let keys: Vec<Keypair> = (0..256u32)
        .map(|i| {
            let mut s = [0u8; 32];
            s[..4].copy_from_slice(&i.to_le_bytes());
            Keypair::from_seed(&s)
        })
        .collect();
    let hks: Vec<Hotkey> = keys.iter().map(|k| k.hotkey()).collect();
    let mg = metagraph(&hks);
    let now = 270_000u64; // block 270: epoch 2, p = 0.7, validator commits open
    let v = view(&mg, 0, 0);
    let body = RecordBody {
        kind: Kind::ValidatorCommit,
        netuid: NET,
        epoch: 2,
        publisher: keys[77].hotkey(),
        payload: BoundedBytes::new(Commit([5; 32]).encode()).map_err(|e| anyhow!(e))?,
        expires_at_ms: now + 3_600_000,
    };
    let rec = SignedRecord::sign(body, &keys[77])?;
    let (key, bytes) = (rec.key(), rec.to_bytes());
    // both must accept, or the timing means nothing
    check(&key, &bytes, now, &v, None, Mode::Store)
        .map_err(|r| anyhow!("bench record refused: {r}"))?;
    let time_batch = |with_sig: bool, n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            let r = if with_sig {
                // time the curve operation, not the verified-signature memo
                tally_core::keys::forget_verified();
                check(&key, &bytes, now, &v, None, Mode::Store)
            } else {
                check_without_signature(&key, &bytes, now, &v, None, Mode::Store)
            };
            std::hint::black_box(r).ok();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    for _ in 0..3 {
        time_batch(false, 1000);
        time_batch(true, 20);
    }
    let plain = median((0..31).map(|_| time_batch(false, 2000)).collect());
    let signed = median((0..31).map(|_| time_batch(true, 50)).collect());
    eprintln!(
        "predicate on a validator commit (256-neuron metagraph): median {:.0} ns without the \
         signature check, {:.0} ns with it",
        plain, signed
    );
    if json_out {
        println!(
            "{}",
            json!({"median_ns": plain.round() as u64, "median_ns_with_signature": signed.round() as u64})
        );
    }
    Ok(0)
}

pub fn dht(nodes: usize, rounds: usize, json_out: bool) -> Result<u8, Failure> {
    if !(2..=128).contains(&nodes) || !(1..=16).contains(&rounds) {
        return Err(Failure::input(anyhow!(
            "--nodes must be 2..=128 and --rounds 1..=16"
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let keys: Vec<Keypair> = (0..nodes as u32).map(|i| {
            let mut s = [9u8; 32];
            s[..4].copy_from_slice(&i.to_le_bytes());
            Keypair::from_seed(&s)
        }).collect();
        let hks: Vec<Hotkey> = keys.iter().map(|k| k.hotkey()).collect();
        let mg = metagraph(&hks);
        let t0 = (system_clock())();
        eprintln!("starting {nodes} nodes on 127.0.0.1…");
        let mut dhts: Vec<Dht> = Vec::with_capacity(nodes);
        for k in &keys {
            let d = Dht::start(DhtConfig::default(), libp2p::identity::Keypair::generate_ed25519(), k.clone(), view(&mg, 70, t0), system_clock()).await?;
            dhts.push(d);
        }
        let mut addrs = Vec::new();
        for d in &dhts {
            addrs.push(d.listen_addrs().await?.first().cloned().ok_or_else(|| anyhow!("no listen address"))?);
        }
        // each node dials a handful of others; kad and identify fill the routing tables
        for (i, d) in dhts.iter().enumerate() {
            for j in 1..=6usize.min(nodes - 1) {
                d.dial(addrs[(i + j * 5) % nodes].clone()).await.ok();
                d.dial(addrs[(i + j) % nodes].clone()).await.ok();
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut put_ms, mut get_ms) = (Vec::new(), Vec::new());
        let (mut puts, mut gets) = (0usize, 0usize);
        let (mut put_time, mut get_time) = (Duration::ZERO, Duration::ZERO);
        let mut missing = 0usize;
        for round in 0..rounds as u64 {
            let epoch = round;
            let now = (system_clock())();
            for d in &dhts {
                d.set_view(view(&mg, epoch * 100 + 70, now));
            }
            eprintln!("round {}/{rounds}: {nodes} puts, then {nodes} x 8 gets", round + 1);
            let t = Instant::now();
            let res = futures::future::join_all(dhts.iter().enumerate().map(|(i, d)| async move {
                let s = Instant::now();
                let r = d.publish(Kind::ValidatorCommit, epoch, Commit([i as u8; 32]).encode(), Duration::from_secs(600)).await;
                (r, s.elapsed())
            })).await;
            put_time += t.elapsed();
            for (r, e) in res {
                r?;
                puts += 1;
                put_ms.push(e.as_secs_f64() * 1e3);
            }
            // every node reads 8 records it does not hold itself
            let t = Instant::now();
            let res = futures::future::join_all(dhts.iter().enumerate().map(|(i, d)| {
                let hks = &hks;
                async move {
                    let mut out = Vec::new();
                    let mut j = 1;
                    while out.len() < 8 && j < hks.len() {
                        let target = hks[(i + j * 3) % hks.len()];
                        j += 1;
                        let key = tally_protocol::record_key(NET, Kind::ValidatorCommit, epoch, &target);
                        if d.held(key).await.ok().flatten().is_some() {
                            continue;
                        }
                        let s = Instant::now();
                        let r = d.get(Kind::ValidatorCommit, epoch, &target).await;
                        out.push((r.map(|v| v.is_some()).unwrap_or(false), s.elapsed()));
                    }
                    out
                }
            })).await;
            get_time += t.elapsed();
            for (found, e) in res.into_iter().flatten() {
                gets += 1;
                if !found {
                    missing += 1;
                }
                get_ms.push(e.as_secs_f64() * 1e3);
            }
        }
        let puts_per_s = puts as f64 / put_time.as_secs_f64().max(1e-9);
        let gets_per_s = gets as f64 / get_time.as_secs_f64().max(1e-9);
        let p50 = percentile(&mut get_ms, 0.5);
        let p99 = percentile(&mut get_ms, 0.99);
        let put_p50 = percentile(&mut put_ms, 0.5);
        eprintln!(
            "{nodes} nodes: {puts} puts at {puts_per_s:.0}/s (p50 {put_p50:.1} ms), {gets} network gets at {gets_per_s:.0}/s, \
             get p50 {p50:.2} ms, p99 {p99:.2} ms, {missing} not found"
        );
        if missing > 0 {
            return Err(anyhow!("{missing} of {gets} gets found nothing").into());
        }
        if json_out {
            println!("{}", json!({"nodes": nodes, "puts_per_s": (puts_per_s * 10.0).round() / 10.0,
                "gets_per_s": (gets_per_s * 10.0).round() / 10.0, "get_p50_ms": (p50 * 100.0).round() / 100.0,
                "get_p99_ms": (p99 * 100.0).round() / 100.0}));
        }
        Ok::<u8, Failure>(0)
    })
}

/// A devnet for a benchmark: honest, decentralized, real execution, progress on stderr, in a
/// fresh directory under the system's temporary directory named after `name`.
fn bench_devnet(
    name: &str,
    validators: usize,
    miners: usize,
    epochs: u64,
) -> Result<tally::devnet::DevnetConfig, Failure> {
    let out = std::env::temp_dir().join(format!("tally-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    Ok(tally::devnet::DevnetConfig {
        binary: std::env::current_exe()?,
        validators,
        miners,
        epochs,
        mode: tally_consensus::WeightMode::Decentralized,
        seed: 5,
        block_ms: 250,
        epoch_length: 20,
        byzantine: vec![],
        offline: 0,
        offline_after: None,
        out,
        progress: true,
        restart: None,
        dense: false,
        synthetic: false,
        hostile: 0,
        subtensor: None,
        hosters: 0,
        hoster_strategies: Vec::new(),
        restart_hoster: None,
    })
}

pub fn subtensor(
    chain: &str,
    sudo_seed: &str,
    validators: usize,
    miners: usize,
    epochs: u64,
    json_out: bool,
) -> Result<u8, Failure> {
    if !(2..=16).contains(&validators) || !(1..=9).contains(&miners) || !(1..=10).contains(&epochs)
    {
        return Err(Failure::input(anyhow!(
            "--validators 2..=16, --miners 1..=9, --epochs 1..=10"
        )));
    }
    let sudo = tally_core::Keypair::from_uri(sudo_seed)
        .map_err(|e| Failure::input(anyhow!("--sudo-seed: {e}")))?;
    let cfg = tally::devnet::DevnetConfig {
        block_ms: 1_000,
        epoch_length: 40,
        subtensor: Some(tally::devnet::SubtensorTarget {
            url: chain.to_string(),
            sudo,
        }),
        ..bench_devnet("subtensor", validators, miners, epochs)?
    };
    let dir = cfg.out.clone();
    let report = tally::devnet::run(cfg).map_err(|e| anyhow!(e))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !report.mismatches.is_empty() {
        return Err(anyhow!("the chain holds something else: {:?}", report.mismatches).into());
    }
    let as_f = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (mut w, mut a) = (as_f(&report.weights_ms), as_f(&report.aggregation_ms));
    let mut rss: Vec<f64> = report
        .peak_rss_kib
        .iter()
        .map(|&k| k as f64 / 1024.0)
        .collect();
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (w50, a50, r50) = (
        percentile(&mut w, 0.5),
        percentile(&mut a, 0.5),
        percentile(&mut rss, 0.5),
    );
    eprintln!(
        "{} weights extrinsics: included p50 {w50:.0} ms (max {:.0}) after the reveal window closed; \
         aggregation (weights included) p50 {a50:.0} ms; validator peak RSS p50 {r50:.1} MiB (max {:.1}) over {} nodes",
        w.len(),
        max(&w),
        max(&rss),
        rss.len()
    );
    if json_out {
        println!(
            "{}",
            json!({"runs": epochs, "weights_p50_ms": w50.round(), "weights_max_ms": max(&w).round(),
                "aggregation_p50_ms": a50.round(), "rss_p50_mib": (r50 * 10.0).round() / 10.0,
                "rss_max_mib": (max(&rss) * 10.0).round() / 10.0})
        );
    }
    Ok(0)
}

pub fn aggregation(
    validators: usize,
    miners: usize,
    epochs: u64,
    json_out: bool,
) -> Result<u8, Failure> {
    if !(2..=64).contains(&validators)
        || !(1..=4096).contains(&miners)
        || !(1..=20).contains(&epochs)
    {
        return Err(Failure::input(anyhow!(
            "--validators 2..=64, --miners 1..=4096, --epochs 1..=20"
        )));
    }
    let cfg = tally::devnet::DevnetConfig {
        block_ms: 250,
        epoch_length: 20,
        dense: true,
        synthetic: true,
        ..bench_devnet("agg", validators, miners, epochs)?
    };
    let dir = cfg.out.clone();
    eprintln!(
        "devnet: {validators} validators, {miners} miners, {epochs} runs of 20 blocks x 250 ms"
    );
    let report = tally::devnet::run(cfg).map_err(|e| anyhow!(e))?;
    let _ = std::fs::remove_dir_all(&dir);
    if !report.mismatches.is_empty() {
        return Err(anyhow!("honest validators disagreed: {:?}", report.mismatches).into());
    }
    let mut ms: Vec<f64> = report.aggregation_ms.iter().map(|&x| x as f64).collect();
    let p50 = percentile(&mut ms, 0.5);
    let max = ms.iter().cloned().fold(0.0, f64::max);
    eprintln!("aggregation after the reveal window closed, over {} (validator, run) pairs: p50 {p50:.0} ms, max {max:.0} ms", ms.len());
    if json_out {
        println!(
            "{}",
            json!({"validators": validators, "miners": miners, "p50_ms": p50, "max_ms": max})
        );
    }
    Ok(0)
}

/// `tally bench exec`: evaluation overhead per submission (instantiate + one task, compile
/// excluded, module cached) and the faithful wasm MLP against the same MLP in native Rust.
pub fn exec(json_out: bool) -> Result<u8, Failure> {
    use tally_exec::builder::{build, build_repeated, Variant};
    use tally_exec::inference::{Inference, Mlp};
    use tally_exec::runtime::{Limits, WasmRuntime};
    use tally_exec::Family;
    let rt = WasmRuntime::new().map_err(|e| anyhow!("{e}"))?;
    let fam = Inference::new(Inference::default_mlp(7), &rt, Limits::default())
        .map_err(|e| anyhow!("{e}"))?;
    let bytes = build(fam.mlp(), Variant::Faithful);
    let _ = rt.load(&bytes, fam.imports()).map_err(|e| anyhow!("{e}"))?; // compile once
    let task = fam.tasks(&[1; 32], 1).remove(0);
    let overhead = |n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            // the cached module, a fresh instance, one task
            if let Ok(m) = rt.load(&bytes, fam.imports()) {
                std::hint::black_box(rt.run(
                    &m,
                    &task.input,
                    fam.limits(),
                    "task-eval=0;deployment=bench",
                ));
            }
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    overhead(50);
    let over = median((0..21).map(|_| overhead(100)).collect());

    // a larger model for the compute comparison: 256 -> 256 -> 64
    let big = Mlp::from_seed(11, &[256, 256, 64]);
    // compute only: one call that runs the forward pass REPS times, minus one that runs it once
    const REPS: u32 = 21;
    let module = rt
        .load(&build(&big, Variant::Faithful), &[])
        .map_err(|e| anyhow!("{e}"))?;
    let module_rep = rt
        .load(&build_repeated(&big, Variant::Faithful, REPS), &[])
        .map_err(|e| anyhow!("{e}"))?;
    let x: Vec<f32> = (0..256)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let limits = Limits {
        fuel: 1_000_000_000,
        ..Limits::default()
    };
    let time_of = |m: &tally_exec::runtime::WasmModule, n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rt.run(m, &input, &limits, "bench"));
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    let wasm_time = |n: usize| (time_of(&module_rep, n) - time_of(&module, n)) / (REPS - 1) as f64;
    let native_time = |n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(big.forward(std::hint::black_box(&x)));
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    // the same output, bit for bit
    let r = rt.run(&module, &input, &limits, "bench");
    let want: Vec<u8> = big
        .forward(&x)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    if r.output.as_deref() != Ok(&want[..]) {
        return Err(anyhow!("the wasm MLP does not reproduce the native output").into());
    }
    wasm_time(20);
    native_time(20);
    let w = median((0..21).map(|_| wasm_time(50)).collect());
    let n = median((0..21).map(|_| native_time(50)).collect());
    eprintln!(
        "evaluation overhead (cached module, instantiate + one 64-64-16 task): median {:.3} ms; \
         256-256-64 MLP forward pass: wasm {:.3} ms vs native {:.3} ms (ratio {:.2})",
        over / 1e6,
        w / 1e6,
        n / 1e6,
        w / n
    );
    if json_out {
        println!(
            "{}",
            json!({"overhead_ms": (over / 1e3).round() / 1e3, "wasm_ms": (w / 1e3).round() / 1e3, "native_ms": (n / 1e3).round() / 1e3, "ratio": ((w / n) * 100.0).round() / 100.0})
        );
    }
    Ok(0)
}
