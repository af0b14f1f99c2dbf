//! `tally miner build` and `tally exec run`: build a submission, and evaluate one exactly as a
//! validator would.

use crate::Failure;
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use tally_exec::builder::{build, Variant};
use tally_exec::inference::Inference;
use tally_exec::runtime::{Limits, WasmRuntime};
use tally_exec::Family;

#[derive(Subcommand)]
pub enum MinerCommand {
    /// Emit a submission for the inference family (wasm).
    Build {
        /// faithful | quantized | noisy | lazy | slow
        #[arg(long)]
        variant: Variant,
        /// Where to write the .wasm file.
        #[arg(long)]
        out: PathBuf,
        /// The family seed the reference model's weights come from.
        #[arg(long, default_value_t = 7)]
        model_seed: u64,
    },
}

#[derive(Subcommand)]
pub enum ExecCommand {
    /// Evaluate one submission as a validator would: tasks from the seed, the validator's own
    /// reference, fuel-metered sandbox, score. A submission that fails still exits 0 with its
    /// error in the output; exit 2 is for unusable arguments or an unreadable file.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The submission (.wasm).
    #[arg(long)]
    archive: PathBuf,
    /// The task family.
    #[arg(long, default_value = "inference")]
    family: String,
    /// The challenge seed (tasks are derived from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tasks to run.
    #[arg(long, default_value_t = 4)]
    tasks: usize,
    /// The family seed the reference model's weights come from.
    #[arg(long, default_value_t = 7)]
    model_seed: u64,
    /// Print `{"score":…,"fuel":…,"wall_ms":…,"error":null|"…"}` as the last line.
    #[arg(long)]
    json: bool,
}

pub fn miner(c: MinerCommand) -> Result<u8, Failure> {
    let MinerCommand::Build {
        variant,
        out,
        model_seed,
    } = c;
    let bytes = build(&Inference::default_mlp(model_seed), variant);
    std::fs::write(&out, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))
        .map_err(Failure::input)?;
    eprintln!(
        "wrote {} ({} bytes, sha256 {})",
        out.display(),
        bytes.len(),
        hex::encode(tally_core::sha256(&bytes))
    );
    Ok(0)
}

pub fn exec(c: ExecCommand) -> Result<u8, Failure> {
    let ExecCommand::Run(a) = c;
    if a.family != "inference" {
        return Err(Failure::input(anyhow!(
            "unknown family {:?}: the built-in family is inference",
            a.family
        )));
    }
    if !(1..=1000).contains(&a.tasks) {
        return Err(Failure::input(anyhow!("--tasks must be 1..=1000")));
    }
    let meta = std::fs::metadata(&a.archive)
        .with_context(|| format!("cannot read {}", a.archive.display()))
        .map_err(Failure::input)?;
    if meta.len() > 64 * 1024 * 1024 {
        return Err(Failure::input(anyhow!(
            "{} is over the 64 MiB archive cap",
            a.archive.display()
        )));
    }
    let bytes = std::fs::read(&a.archive)
        .with_context(|| format!("cannot read {}", a.archive.display()))
        .map_err(Failure::input)?;
    let rt = WasmRuntime::new().map_err(|e| anyhow!("{e}"))?;
    let fam = Inference::new(Inference::default_mlp(a.model_seed), &rt, Limits::default())
        .map_err(|e| anyhow!("{e}"))?;
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&a.seed.to_le_bytes());
    let deployment = hex::encode(&tally_core::sha256(&bytes)[..8]);
    let (mut total, mut fuel, mut wall, mut error) = (0u64, 0u64, 0f64, None);
    match rt.load(&bytes, fam.imports()) {
        Err(e) => error = Some(e.to_string()),
        Ok(module) => {
            let tasks = fam.tasks(&seed, a.tasks);
            for t in &tasks {
                let r = rt.run(
                    &module,
                    &t.input,
                    fam.limits(),
                    &format!("task-eval={};deployment={deployment}", t.id),
                );
                let s = fam.score(t, &fam.reference(t), &r);
                fuel += r.fuel;
                wall += r.wall.as_secs_f64() * 1e3;
                total += s.score.units() as u64;
                if let (Some(e), None) = (&s.error, &error) {
                    error = Some(e.to_string());
                }
            }
            total /= tasks.len() as u64;
        }
    }
    let score = total as f64 / 1e9;
    eprintln!(
        "{}: score {score:.6} over {} tasks, fuel {fuel} (reference {} per task), wall {wall:.3} ms{}",
        a.archive.display(),
        a.tasks,
        fam.reference_fuel(),
        error.as_ref().map(|e| format!(", error: {e}")).unwrap_or_default()
    );
    if a.json {
        println!(
            "{}",
            json!({"score": score, "fuel": fuel, "wall_ms": (wall * 1000.0).round() / 1000.0, "error": error})
        );
    }
    Ok(0)
}
