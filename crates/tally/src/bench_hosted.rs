//! `tally bench hosted`: one epoch of miner-hosted mode over a real DHT on 127.0.0.1, in one
//! process: V validator nodes and H hoster nodes (each its own libp2p swarm on its own socket).
//! The elected validator publishes the challenge; every hoster reads it, runs the inference
//! family's reference model natively and publishes its commit, then (once the commit window has
//! closed and every validator has snapshotted the commits) its reveal. Each validator then reads
//! the challenge and the reveals, judges every reveal against its snapshot and scores the outputs
//! against its own reference, all validators at once, as they would at the reveal window's close.
//!
//! It reports the DHT records and bytes (whole signed records) each validator reads for the epoch
//! (the commits, the challenge and the reveals) and the time from the reveal window's close to
//! all hosters scored, per validator (median and max). The view's chain position is set by hand
//! to each window in turn, so the epoch takes seconds, not an epoch of blocks.

use crate::Failure;
use anyhow::anyhow;
use parity_scale_codec::Encode;
use serde_json::json;
use std::time::{Duration, Instant};
use tally_core::{Hash32, Hotkey, Keypair};
use tally_exec::inference::Inference;
use tally_net::{system_clock, Dht, DhtConfig};
use tally_node::hosted_scorer::{HostedScorer, MlpHostedScorer};
use tally_protocol::hosted::{fallback_input, judge_reveal, resolve_challenge};
use tally_protocol::payload::{hoster_commitment, Commit, HosterReveal, Payload, Tensor};
use tally_protocol::view::challenge_seed;
use tally_protocol::{CommitBook, Kind, Metagraph, Neuron};

use crate::bench_net::{percentile, view, NET};

/// Blocks per epoch of the bench's view (`bench_net::view`: windows fall on whole blocks).
const EPOCH: u64 = 100;
const EPOCH_NO: u64 = 3;

/// The seed `bench_net::view` holds for the bench's epoch.
fn seed() -> Hash32 {
    challenge_seed(&[EPOCH_NO as u8; 32], NET, EPOCH_NO)
}

fn key(role: u8, i: u32) -> Keypair {
    let mut s = [role; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    Keypair::from_seed(&s)
}

/// Sets every node's view to `block` of the epoch.
fn at_block(nodes: &[Dht], mg: &Metagraph, block: u64) {
    let now = (system_clock())();
    for d in nodes {
        d.set_view(view(mg, EPOCH * EPOCH_NO + block, now));
    }
}

pub fn hosted(validators: usize, hosters: usize, json_out: bool) -> Result<u8, Failure> {
    if !(2..=64).contains(&validators) || !(1..=256).contains(&hosters) {
        return Err(Failure::input(anyhow!(
            "--validators must be 2..=64 and --hosters 1..=256"
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let vkeys: Vec<Keypair> = (0..validators as u32).map(|i| key(1, i)).collect();
        let hkeys: Vec<Keypair> = (0..hosters as u32).map(|i| key(2, i)).collect();
        let hks: Vec<Hotkey> = hkeys.iter().map(|k| k.hotkey()).collect();
        let neurons = vkeys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (k.hotkey(), Neuron { uid: i as u16 + 1, stake: 10_000 + i as u64, validator_permit: true })
            })
            .chain(hkeys.iter().enumerate().map(|(i, k)| {
                (k.hotkey(), Neuron { uid: (validators + i) as u16 + 1, stake: 0, validator_permit: false })
            }));
        let mg = Metagraph::new(neurons).map_err(|e| anyhow!(e))?;
        let v0 = view(&mg, EPOCH * EPOCH_NO, (system_clock())());
        let elected = v0.elected(EPOCH_NO).ok_or_else(|| anyhow!("no elected validator"))?;
        eprintln!("starting {validators} validator and {hosters} hoster DHT nodes on 127.0.0.1…");
        let mut nodes: Vec<Dht> = Vec::new();
        for k in vkeys.iter().chain(&hkeys) {
            nodes.push(
                Dht::start(
                    DhtConfig::default(),
                    libp2p::identity::Keypair::generate_ed25519(),
                    k.clone(),
                    v0.clone(),
                    system_clock(),
                )
                .await?,
            );
        }
        let mut addrs = Vec::new();
        for d in &nodes {
            addrs.push(d.listen_addrs().await?.first().cloned().ok_or_else(|| anyhow!("no listen address"))?);
        }
        // every hoster dials every validator (its bootstrap list); validators dial each other
        let n = nodes.len();
        for (i, d) in nodes.iter().enumerate() {
            let targets: Vec<usize> = if i < validators {
                (0..validators).filter(|j| *j != i).collect()
            } else {
                (0..validators).collect()
            };
            for j in targets {
                d.dial(addrs[j].clone()).await.ok();
            }
            d.dial(addrs[(i + 7) % n].clone()).await.ok();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (vnodes, hnodes) = nodes.split_at(validators);
        let mlp = Inference::default_mlp(7);
        let shape = [64u32];

        // the challenge window: the elected validator publishes; hosters read and infer
        at_block(&nodes, &mg, 1);
        let ei = vkeys.iter().position(|k| k.hotkey() == elected).ok_or_else(|| anyhow!("elected is not a validator"))?;
        let challenge = fallback_input(&[42; 32], &shape).map_err(|e| anyhow!(e))?;
        vnodes[ei]
            .publish(Kind::Challenge, EPOCH_NO, challenge.encode(), Duration::from_secs(3600))
            .await?;
        eprintln!("challenge published by the elected validator; {hosters} hosters infer and commit");
        at_block(&nodes, &mg, 20);
        let entries = futures::future::join_all(hnodes.iter().enumerate().map(|(i, d)| {
            let mlp = &mlp;
            async move {
                let found = match d.get(Kind::Challenge, EPOCH_NO, &elected).await {
                    Ok(Some(v)) => match v.payload {
                        Payload::Challenge(t) => Some(t),
                        _ => None,
                    },
                    _ => None,
                };
                let input = resolve_challenge(&seed(), found.as_ref(), &shape)?;
                let x = input.f32_values().ok_or("not f32")?;
                let y = mlp.forward(&x);
                let out = Tensor::f32(&[y.len() as u32], &y)?;
                let mut salt = [0u8; 32];
                salt[..4].copy_from_slice(&(i as u32).to_le_bytes());
                let c = hoster_commitment(&d.hotkey(), EPOCH_NO, &salt, &out);
                d.publish(Kind::HosterCommit, EPOCH_NO, Commit(c).encode(), Duration::from_secs(3600))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((salt, out))
            }
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| anyhow!(e))?;

        // the commit window has closed: every validator snapshots the commits
        at_block(&nodes, &mg, 51);
        let mut records = vec![0usize; validators];
        let mut bytes = vec![0usize; validators];
        let mut books = Vec::new();
        let snaps = futures::future::join_all(vnodes.iter().map(|d| {
            let hks = &hks;
            async move { d.get_many(Kind::HosterCommit, EPOCH_NO, hks).await }
        }))
        .await;
        for (vi, res) in snaps.into_iter().enumerate() {
            let mut commits = Vec::new();
            for (h, r) in res {
                if let Ok(Some(v)) = r {
                    records[vi] += 1;
                    bytes[vi] += v.record.to_bytes().len();
                    if let Payload::Commit(c) = v.payload {
                        commits.push((h, c));
                    }
                }
            }
            let mut book = CommitBook::new(4);
            book.snapshot(Kind::HosterCommit, EPOCH_NO, commits);
            books.push(book);
        }
        eprintln!("commits snapshotted; hosters reveal");
        at_block(&nodes, &mg, 55);
        for (d, (salt, out)) in hnodes.iter().zip(&entries) {
            let r = HosterReveal { salt: *salt, output: out.clone() };
            d.publish(Kind::HosterReveal, EPOCH_NO, r.encode(), Duration::from_secs(3600)).await?;
        }
        // the reveal window has closed: every validator reads, judges and scores, at once
        at_block(&nodes, &mg, 61);
        let scorers: Vec<MlpHostedScorer> = (0..validators).map(|_| MlpHostedScorer::new(Inference::default_mlp(7))).collect();
        let started = Instant::now();
        let results = futures::future::join_all(vnodes.iter().enumerate().map(|(vi, d)| {
            let (hks, books, scorers) = (&hks, &books, &scorers);
            async move {
                let mut rec = 0usize;
                let mut by = 0usize;
                let challenge = match d.get(Kind::Challenge, EPOCH_NO, &elected).await {
                    Ok(Some(v)) => {
                        rec += 1;
                        by += v.record.to_bytes().len();
                        match v.payload {
                            Payload::Challenge(t) => Some(t),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                let mut reveals = Vec::new();
                for (h, r) in d.get_many(Kind::HosterReveal, EPOCH_NO, hks).await {
                    if let Ok(Some(v)) = r {
                        rec += 1;
                        by += v.record.to_bytes().len();
                        if let Payload::HosterReveal(x) = v.payload {
                            reveals.push((h, x));
                        }
                    }
                }
                let input = resolve_challenge(&seed(), challenge.as_ref(), &shape)?;
                let mut outputs = Vec::new();
                let mut misses = 0usize;
                for h in hks {
                    let r = reveals.iter().find(|x| x.0 == *h).map(|x| &x.1);
                    match judge_reveal(&books[vi], EPOCH_NO, h, r, &[16]) {
                        Ok(()) => outputs.push((*h, r.map(|r| r.output.clone()).unwrap_or_else(|| input.clone()))),
                        Err(_) => misses += 1,
                    }
                }
                let scores = scorers[vi].score(EPOCH_NO, &input, &outputs)?;
                let full = scores.iter().filter(|s| s.1 == tally_core::Score::ONE).count();
                Ok::<_, String>((rec, by, started.elapsed(), full, misses))
            }
        }))
        .await;
        let mut ms = Vec::new();
        for (vi, r) in results.into_iter().enumerate() {
            let (rec, by, t, full, misses) = r.map_err(|e| anyhow!(e))?;
            if full != hosters || misses != 0 {
                return Err(anyhow!(
                    "validator {vi}: {full} of {hosters} hosters scored 1.0, {misses} misses (the DHT lost records)"
                )
                .into());
            }
            records[vi] += rec;
            bytes[vi] += by;
            ms.push(t.as_secs_f64() * 1e3);
        }
        let rec_med = percentile(&mut records.iter().map(|x| *x as f64).collect::<Vec<_>>(), 0.5);
        let bytes_med = percentile(&mut bytes.iter().map(|x| *x as f64).collect::<Vec<_>>(), 0.5);
        let max_ms = ms.iter().copied().fold(0.0, f64::max);
        let p50 = percentile(&mut ms, 0.5);
        eprintln!(
            "{validators} validators, {hosters} hosters, one epoch: each validator read {rec_med:.0} DHT records \
             ({bytes_med:.0} bytes, median); reveal close to all hosters scored: median {p50:.1} ms, max {max_ms:.1} ms"
        );
        if json_out {
            println!(
                "{}",
                json!({"validators": validators, "hosters": hosters, "records_per_validator": rec_med,
                    "bytes_per_validator": bytes_med, "scored_p50_ms": (p50 * 10.0).round() / 10.0,
                    "scored_max_ms": (max_ms * 10.0).round() / 10.0})
            );
        }
        Ok::<u8, Failure>(0)
    })
}
