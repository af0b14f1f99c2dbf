//! `tally sim`: the deterministic simulator over many seeds, and `tally bench sim`.

use crate::Failure;
use anyhow::anyhow;
use clap::Args;
use std::time::Instant;
use tally_sim::sweep::{replay_command, seed_config};
use tally_sim::{sweep, Faults, HosterStrategy, Strategy, SweepConfig, World};

#[derive(Args)]
#[command(after_help = "\
Each seed builds a subnet (the embedded chain on virtual time, an in-memory DHT under the real
predicate, lossy HTTP links) of production validator state machines and runs it, then checks the
invariants: honest validators that reach quorum set identical weights; every consensus score lies
within the honest scores' range (byzantine stake is kept below one third); no report is accepted
without a commitment made before the first honest reveal; every equivocation is proven and
excluded by every honest validator; a quorum miss holds the incumbent; honest validators that
aggregated a run accepted the same reports and excluded the same validators.

By default every seed mixes byzantine strategies (inflate, equivocate, copy, withhold, forge,
commit-late, split-view, silent, lone-score, sway, split-reports) and faults (loss, partitions
that heal, crashes with restarts, validators abstaining on some miners).

--hosters N adds N hosters of miner-hosted mode to every subnet, their strategies cycling
through honest, noisy, lazy, copycat, no-reveal, mismatch and late (--hosters 7 runs each
strategy once); the validators then score the miners as before and judge the hosters on each
epoch's challenge (execution `both`), and honest hosters crash and restart from their store too
when crashes are on. The replay command of a seed with hosters ends in --hosters N. Two more invariants are checked: no hoster whose strategy must score 0 (lazy, copycat,
no-reveal, mismatch, late) scores above 0 in an honest report, and the copycat's late commit and
the late hoster's reveal never enter the DHT; each hoster scores the same in every honest report
of a run, and an honest hoster exactly 1.0. A table of the hosters' consensus scores by strategy
follows the summary.

The same seed always gives the same trace hash.

Exit status: 0 when no invariant was violated; 1 otherwise (the seed and the command replaying it
are printed); 2 for unusable arguments.")]
pub struct SimArgs {
    /// Seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Validators per subnet, byzantine ones included.
    #[arg(long, default_value_t = 7)]
    validators: usize,
    /// Miners per subnet.
    #[arg(long, default_value_t = 6)]
    miners: usize,
    /// Runs per subnet.
    #[arg(long, default_value_t = 4)]
    epochs: u64,
    /// Strategies for the last validators, comma-separated (default: a mix per seed); `none`
    /// for an honest subnet.
    #[arg(long)]
    byzantine: Option<String>,
    /// Faults, comma-separated: loss=PERMILLE, partitions, crashes, abstain (every validator
    /// skips about a third of the miners each run), or none (default: a mix per seed).
    #[arg(long)]
    faults: Option<String>,
    /// Hosters of miner-hosted mode per subnet (0..=256), strategies cycling through honest,
    /// noisy, lazy, copycat, no-reveal, mismatch, late; 0 (default) for validator-hosted mode
    /// only.
    #[arg(long, default_value_t = 0)]
    hosters: usize,
    /// Print `{"seeds":N,"violations":V,"trace":"<hex>"}` as the last line.
    #[arg(long)]
    json: bool,
}

fn parse_byzantine(s: &str) -> Result<Vec<Strategy>, Failure> {
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<Strategy>()
                .map_err(|e| Failure::input(anyhow!(e)))
        })
        .collect()
}

fn parse_faults(s: &str) -> Result<Faults, Failure> {
    Faults::parse(s).map_err(|e| Failure::input(anyhow!("--{e}")))
}

pub fn run(a: SimArgs) -> Result<u8, Failure> {
    if a.seeds == 0
        || a.validators < 2
        || a.validators > 256
        || a.epochs == 0
        || a.epochs > 1000
        || a.hosters > 256
    {
        return Err(Failure::input(anyhow!(
            "--seeds must be at least 1, --validators 2..=256, --epochs 1..=1000 and --hosters 0..=256"
        )));
    }
    let byzantine = a.byzantine.as_deref().map(parse_byzantine).transpose()?;
    if byzantine.as_ref().is_some_and(|b| b.len() >= a.validators) {
        return Err(Failure::input(anyhow!(
            "--byzantine names more strategies than there are validators"
        )));
    }
    let faults = a.faults.as_deref().map(parse_faults).transpose()?;
    let c = SweepConfig {
        seeds: a.seeds,
        first_seed: a.first_seed,
        validators: a.validators,
        miners: a.miners,
        epochs: a.epochs,
        byzantine,
        faults,
        hosters: a.hosters,
    };
    // fail on unusable settings before the first seed
    World::new(seed_config(&c, c.first_seed)).map_err(|e| Failure::input(anyhow!(e)))?;
    let verbose = a.seeds <= 50;
    if verbose {
        println!(
            "{:>6}  {:<34}  {:<24}  {:>6}  {:>10}  trace",
            "seed", "byzantine", "faults", "quorum", "violations"
        );
    }
    let started = Instant::now();
    let mut done = 0u64;
    let r = sweep(&c, |s, r| {
        done += 1;
        if verbose {
            let byz: Vec<&str> = s.byzantine.iter().map(|b| b.name()).collect();
            let f = s.faults.describe();
            println!(
                "{:>6}  {:<34}  {:<24}  {:>3}/{:<2}  {:>10}  {}",
                s.seed,
                if byz.is_empty() {
                    "-".into()
                } else {
                    byz.join(",")
                },
                if f == "none" { "-" } else { &f },
                r.quorum_runs,
                s.epochs,
                r.violations.len(),
                hex::encode(&r.trace[..6])
            );
        } else if done.is_multiple_of(100) {
            eprintln!(
                "{done}/{} seeds ({:.0} s)",
                a.seeds,
                started.elapsed().as_secs_f64()
            );
        }
    })
    .map_err(|e| Failure::input(anyhow!(e)))?;

    // a summary by strategy
    let mut by: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for (s, x) in &r.runs {
        let names: std::collections::BTreeSet<&str> =
            s.byzantine.iter().map(|b| b.name()).collect();
        for n in names.into_iter().chain(std::iter::once("(all seeds)")) {
            let e = by.entry(n).or_default();
            e.0 += 1;
            e.1 += x.violations.len() as u64;
        }
    }
    println!("\n{:<14}  {:>6}  {:>10}", "strategy", "seeds", "violations");
    for (n, (seeds, v)) in &by {
        println!("{n:<14}  {seeds:>6}  {v:>10}");
    }
    if a.hosters > 0 {
        print_hosters(&r);
    }
    let violations = r.violations();
    for (s, x) in r.runs.iter().filter(|(_, x)| !x.violations.is_empty()) {
        eprintln!("\nVIOLATION (seed {}):", s.seed);
        for v in &x.violations {
            eprintln!("  {v}");
        }
        eprintln!("  replay: {}", replay_command(s));
    }
    println!(
        "\n{} seeds in {:.1} s, {} violations, trace {}",
        a.seeds,
        started.elapsed().as_secs_f64(),
        violations,
        hex::encode(r.trace)
    );
    if a.json {
        // keys in the documented order
        println!(
            "{{\"seeds\":{},\"violations\":{violations},\"trace\":\"{}\"}}",
            a.seeds,
            hex::encode(r.trace)
        );
    }
    Ok(if violations == 0 { 0 } else { 1 })
}

/// The hosters' consensus scores over every seed, by strategy: how many hosters, in how many
/// honest outcomes they were scored, and the lowest, mean and highest consensus score.
fn print_hosters(r: &tally_sim::SweepResult) {
    // strategy -> (hosters, scores)
    let mut by: std::collections::BTreeMap<HosterStrategy, (u64, Vec<f64>)> = Default::default();
    for (_, x) in &r.runs {
        for h in &x.hosters {
            let e = by.entry(h.strategy).or_default();
            e.0 += 1;
            e.1.extend(&h.consensus);
        }
    }
    println!(
        "\n{:<14}  {:>7}  {:>7}  {:>6}  {:>6}  {:>6}",
        "hoster", "hosters", "scored", "min", "mean", "max"
    );
    for (s, (n, scores)) in &by {
        let (min, mean, max) = if scores.is_empty() {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            (
                scores.iter().copied().fold(f64::INFINITY, f64::min),
                scores.iter().sum::<f64>() / scores.len() as f64,
                scores.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        println!(
            "{:<14}  {n:>7}  {:>7}  {min:>6.3}  {mean:>6.3}  {max:>6.3}",
            s.name(),
            scores.len()
        );
    }
}

/// `tally bench sim`: one subnet of `validators` x `miners` for `epochs`, timed.
pub fn bench(validators: usize, miners: usize, epochs: u64, json: bool) -> Result<u8, Failure> {
    let mut c = tally_sim::SimConfig::new(1);
    c.validators = validators;
    c.miners = miners;
    c.epochs = epochs;
    let w = World::new(c).map_err(|e| Failure::input(anyhow!(e)))?;
    let t = Instant::now();
    let r = w.run();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{validators} validators x {miners} miners x {epochs} epochs: {secs:.2} s, {} effects, {} outcomes, {} violations",
        r.effects,
        r.outcomes,
        r.violations.len()
    );
    if !r.violations.is_empty() {
        return Err(anyhow!("invariants violated: {:?}", r.violations).into());
    }
    if json {
        // keys in the documented order
        println!(
            "{{\"validators\":{validators},\"miners\":{miners},\"epochs\":{epochs},\"seconds\":{:.3}}}",
            secs
        );
    }
    Ok(0)
}
