//! `tally devnet`: a whole subnet on this machine, for K runs, with a table per run at the end.

use crate::Failure;
use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;
use tally::devnet::{run, DevnetConfig};
use tally::devnet::{Byzantine, HosterStrategy};
use tally_consensus::WeightMode;

#[derive(Args)]
#[command(after_help = "\
Runs an embedded chain (served over HTTP), an owner (registry of submissions, signed rosters,
archives, its weight pick) and N validators on 127.0.0.1, each validator with its own DHT node,
HTTP API, database and hotkey. By default miners upload wasm submissions (faithful, quantized,
noisy, slow, lazy) and every validator fetches the owner-signed roster, checks each archive's
SHA-256 and runs it in the fuel-metered sandbox on tasks from the run's challenge seed. With
--synthetic, miners instead have hidden qualities 0.1 apart that validators observe with noise
of at most 0.02.

--out DIR receives summary.json, chain.redb (the chain's file), evidence/ (every accepted signed
report and every equivocation proof, a file each) and nodes/ (each validator's database).
Check it afterwards with: tally audit --chain DIR/chain.redb --evidence DIR/evidence

On Subtensor (--chain ws://127.0.0.1:9944 --sudo-seed //Alice, a development chain: see the
README's \"A local Subtensor\"), the devnet creates and starts a new subnet with the sudo key as
every coldkey, sets its tempo to --epoch-length - 1 and the limits a test needs, registers and
stakes the validators and registers the miners, and runs from the next epoch on; validators
publish their API addresses on chain (127.0.0.2: Subtensor refuses 127.0.0.1). It then also
checks each honest validator's commitment and weights on chain, and writes them to
DIR/chain-checks.json for an independent read-back:
  python3 scripts/subtensor_readback.py DIR/chain-checks.json

Exit status: 0 when every honest validator decided the same and set exactly those weights on
chain (and, with --hostile-miners, aggregated every run on time); 1 otherwise; 2 for unusable
arguments.")]
pub struct DevnetArgs {
    /// Validators, byzantine ones included.
    #[arg(long, default_value_t = 5)]
    validators: usize,
    /// Miners: 1 to 64 (1 to 9 with --synthetic). They submit wasm builds cycling through
    /// faithful, quantized, noisy, slow and lazy.
    #[arg(long, default_value_t = 5)]
    miners: usize,
    /// Score with the synthetic scorer (hidden qualities 0.1 apart, noise up to 0.02) instead
    /// of executing the miners' submissions.
    #[arg(long)]
    synthetic: bool,
    /// Runs to complete; 0 keeps the subnet running until interrupted (Ctrl-C).
    #[arg(long, default_value_t = 4)]
    epochs: u64,
    /// Weight mode: owner, shadow or decentralized.
    #[arg(long, default_value = "decentralized")]
    mode: WeightMode,
    /// Seed for keys and miner qualities.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Milliseconds per block.
    #[arg(long, default_value_t = 100)]
    block_ms: u64,
    /// Blocks per epoch [default: 20; 40 on Subtensor, whose development chain takes a second
    /// or more per block and a block per transaction].
    #[arg(long)]
    epoch_length: Option<u64>,
    /// Output directory (must not hold a devnet yet); default: a new directory under the
    /// system's temporary directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Byzantine strategies for the last validators, in order, comma-separated:
    /// inflate, equivocate, copy, withhold, forge. Their stake stays below one half. (The
    /// simulator, `tally sim`, has more.)
    #[arg(long, value_delimiter = ',')]
    byzantine: Vec<Byzantine>,
    /// How many of the last miners submit hostile modules instead of a build, cycling through
    /// the most expensive module to compile within the compile budget, the most expensive to
    /// run, and one the budget refuses. Needs real execution. The devnet then also checks that
    /// every aggregation ended within half an epoch of the reveal window's close.
    #[arg(long, default_value_t = 0)]
    hostile_miners: usize,
    /// Run on this Subtensor development chain (`ws://HOST:PORT`) instead of the embedded
    /// chain; needs --sudo-seed. --block-ms is then the chain's.
    #[arg(long, requires = "sudo_seed")]
    chain: Option<String>,
    /// The Subtensor chain's sudo key: a development path (//Alice) or 64 hex digits of a seed.
    #[arg(long, requires = "chain")]
    sudo_seed: Option<String>,
    /// Kill validator I with SIGKILL once it has revealed the first run, restart it, and check
    /// that it serves the same signed report and finishes every run.
    #[arg(long, value_name = "I")]
    restart_validator: Option<usize>,
    /// Hosters (miner-hosted mode, 0 to 64): each runs the inference family's reference model
    /// on every epoch's challenge, commits to its output and reveals it; validators score
    /// them against their own reference (with --miners 0 only hosters are scored, otherwise
    /// both families side by side).
    #[arg(long, default_value_t = 0)]
    hosters: usize,
    /// The hosters' strategies, cycled over them, comma-separated [default: honest, noisy,
    /// lazy, copycat, no-reveal, mismatch, late].
    #[arg(long, value_delimiter = ',')]
    hoster_strategies: Vec<HosterStrategy>,
    /// Kill hoster I (an honest one) with SIGKILL between its commit and its reveal of the
    /// first run, restart it, and check that it still scores 1.0.
    #[arg(long, value_name = "I")]
    restart_hoster: Option<usize>,
}

fn short(ss58: &str) -> String {
    ss58.chars().take(8).collect()
}

pub fn run_cmd(a: DevnetArgs) -> Result<u8, Failure> {
    let epoch_length = a
        .epoch_length
        .unwrap_or(if a.chain.is_some() { 40 } else { 20 });
    if !(20..=60_000).contains(&a.block_ms) || !(5..=10_000).contains(&epoch_length) {
        return Err(Failure::input(anyhow!(
            "--block-ms must be 20..=60000 and --epoch-length 5..=10000"
        )));
    }
    let out = match a.out {
        Some(o) => o,
        None => {
            std::env::temp_dir().join(format!("tally-devnet-{}-{}", std::process::id(), a.seed))
        }
    };
    let subtensor = match (a.chain, a.sudo_seed) {
        (Some(url), Some(seed)) => {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(Failure::input(anyhow!(
                    "--chain {url:?}: give the ws:// URL of a Subtensor development chain"
                )));
            }
            let sudo = tally_core::Keypair::from_uri(&seed)
                .map_err(|e| Failure::input(anyhow!("--sudo-seed: {e}")))?;
            Some(tally::devnet::SubtensorTarget { url, sudo })
        }
        _ => None,
    };
    if let Some(i) = a.restart_validator {
        if i >= a.validators.saturating_sub(a.byzantine.len()) {
            return Err(Failure::input(anyhow!(
                "--restart-validator must name an honest validator: 0..{}",
                a.validators.saturating_sub(a.byzantine.len())
            )));
        }
    }
    let on_subtensor = subtensor.is_some();
    let cfg = DevnetConfig {
        binary: std::env::current_exe()?,
        validators: a.validators,
        miners: a.miners,
        epochs: a.epochs,
        mode: a.mode,
        seed: a.seed,
        block_ms: a.block_ms,
        epoch_length,
        byzantine: a.byzantine,
        offline: 0,
        offline_after: None,
        out: out.clone(),
        progress: true,
        restart: a.restart_validator.map(|i| (i, 0)),
        dense: false,
        synthetic: a.synthetic,
        hostile: a.hostile_miners,
        subtensor,
        hosters: a.hosters,
        hoster_strategies: a.hoster_strategies,
        restart_hoster: a.restart_hoster,
    };
    let blocks = match &cfg.subtensor {
        Some(t) => format!("{} blocks on {}", cfg.epoch_length, t.url),
        None => format!("{} blocks x {} ms", cfg.epoch_length, cfg.block_ms),
    };
    eprintln!(
        "devnet: {} validators ({} byzantine), {} miners, {} hosters, {} runs of {blocks}, mode {:?}, out {}",
        cfg.validators,
        cfg.byzantine.len(),
        cfg.miners,
        cfg.hosters,
        cfg.epochs,
        cfg.mode,
        out.display()
    );
    let keep_running = cfg.epochs == 0;
    let report = match run(cfg) {
        Err(e) if keep_running && e == "interrupted" => {
            eprintln!("devnet stopped; its files stay in {}", out.display());
            return Ok(0);
        }
        r => r,
    }
    .map_err(|e| {
        let unusable = e.contains("must be")
            || e.contains("too many")
            || e.contains("already holds")
            || e.contains("one half")
            || e.contains("at most")
            || e.contains("needs real execution")
            || e.contains("--hosters")
            || e.contains("--restart-hoster");
        Failure {
            code: if unusable { 2 } else { 1 },
            error: anyhow!(e),
        }
    })?;

    println!("\nvalidators:");
    for (k, s, b) in &report.validators {
        println!(
            "  {}  stake {:>6}  {}",
            k.to_ss58(),
            s,
            b.map(|b| b.name()).unwrap_or("honest")
        );
    }
    if !report.miners.is_empty() {
        println!(
            "miners (true quality: the owner's own measurement, or the hidden synthetic value):"
        );
    }
    for (k, q) in &report.miners {
        println!(
            "  {}  {:.3}{}",
            k.to_ss58(),
            q.to_f64(),
            if *k == report.best_miner {
                "  <- best"
            } else {
                ""
            }
        );
    }
    for r in &report.runs {
        println!(
            "\nrun {}: winner {}, quorum {}",
            r.run,
            r.winner
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "none".into()),
            if r.quorum_met {
                "met"
            } else {
                "MISSED (incumbent held)"
            }
        );
        let scores: Vec<String> = r
            .consensus
            .iter()
            .map(|(k, v)| format!("{} {:.3}", short(k), v))
            .collect();
        println!("  consensus: {}", scores.join(", "));
        if !report.hosters.is_empty() {
            println!(
                "  hosters (strategy, consensus score, the first honest validator's verdict):"
            );
            for (k, s) in &report.hosters {
                let ss58 = k.to_ss58();
                let consensus = r.consensus.get(&ss58).copied();
                let verdict = r.hosted.get(&ss58);
                println!(
                    "    {}  {:<9}  {}  {}",
                    short(&ss58),
                    s.name(),
                    consensus.map_or("  -  ".into(), |c| format!("{c:.3}")),
                    match verdict {
                        Some((_, Some(why))) => why.clone(),
                        Some((_, None)) => "scored".into(),
                        None => "abstained".into(),
                    }
                );
            }
        }
        if r.excluded.is_empty() {
            println!("  excluded: none");
        }
        for (v, why) in &r.excluded {
            println!("  excluded: {} ({why})", short(v));
        }
    }
    let slowest = report.aggregation_ms.iter().max().copied().unwrap_or(0);
    let mut restart_failed = false;
    if let Some((before, after)) = &report.restart_bytes {
        restart_failed = before.is_empty() || before != after;
        println!(
            "restart: validator {} served {} signed report after SIGKILL and restart",
            a.restart_validator.unwrap_or(0),
            if restart_failed {
                "a DIFFERENT (or no)"
            } else {
                "the byte-identical"
            }
        );
    }
    if on_subtensor {
        let (url, netuid) = &report.chain;
        println!(
            "\nwrote {}/summary.json, chain-checks.json and evidence/ (chain {url}, subnet {netuid})",
            out.display()
        );
        println!("aggregation: slowest {slowest} ms after the devnet saw the reveal window close");
        let mut w = report.weights_ms.clone();
        w.sort_unstable();
        if let (Some(min), Some(max)) = (w.first(), w.last()) {
            println!(
                "weights included: median {} ms after the reveal window closed (min {min}, max {max}, {} extrinsics)",
                w[w.len() / 2],
                w.len()
            );
        }
    } else {
        println!(
            "\nwrote {}/summary.json, chain.redb and evidence/",
            out.display()
        );
        println!(
            "aggregation: slowest {slowest} ms after the reveal window closed (on time within {} ms)",
            a.block_ms * epoch_length / 2
        );
    }
    for l in &report.late {
        eprintln!("LATE: {l}");
    }
    let late_fails = a.hostile_miners > 0 && !report.late.is_empty();
    if a.restart_hoster.is_some() {
        println!(
            "restart: hoster {} {}",
            a.restart_hoster.unwrap_or(0),
            if report.hoster_restarted {
                "was killed (SIGKILL) between its commit and its reveal and restarted"
            } else {
                "was NOT restarted"
            }
        );
        restart_failed |= !report.hoster_restarted;
    }
    if report.mismatches.is_empty() && !late_fails && !restart_failed {
        println!("every honest validator set the weights the consensus decided");
        Ok(0)
    } else {
        for m in &report.mismatches {
            eprintln!("MISMATCH: {m}");
        }
        Ok(1)
    }
}
