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
    /// Sign a submission with the miner's hotkey and upload it to the owner.
    Submit(SubmitArgs),
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The owner's address (host:port).
    #[arg(long)]
    owner: String,
    /// The submission (.wasm).
    #[arg(long)]
    archive: PathBuf,
    /// The miner's hotkey seed (hex); or use --key.
    #[arg(long)]
    seed: Option<String>,
    /// The miner's hotkey file.
    #[arg(long)]
    key: Option<PathBuf>,
    /// The subnet.
    #[arg(long, default_value_t = 1)]
    netuid: u16,
    /// The family.
    #[arg(long, default_value = "inference")]
    family: String,
}

#[derive(Subcommand)]
pub enum ExecCommand {
    /// Evaluate one submission as a validator would: the compile budget, tasks from the seed,
    /// the validator's own reference, fuel-metered sandbox, score. A submission that fails still
    /// exits 0 with its error in the output; one refused as over the compile budget (or over
    /// the archive cap, or not compiled by the compile deadline) exits 1 with the reason; exit 2
    /// is for unusable arguments or an unreadable file.
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
    /// Load the reference model from a safetensors file instead (tensors layers.{i}.weight and
    /// layers.{i}.bias, F32).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print `{"score":…,"fuel":…,"wall_ms":…,"error":null|"…"}` as the last line.
    #[arg(long)]
    json: bool,
}

fn submit(a: SubmitArgs) -> Result<u8, Failure> {
    let key = match (&a.key, &a.seed) {
        (Some(p), None) => tally_core::Keypair::from_keyfile_json(
            &std::fs::read(p)
                .with_context(|| format!("--key {}", p.display()))
                .map_err(Failure::input)?,
        )
        .map_err(Failure::input)?,
        (None, Some(s)) => tally_core::Keypair::from_seed_hex(s).map_err(Failure::input)?,
        _ => {
            return Err(Failure::input(anyhow!(
                "give exactly one of --key and --seed"
            )))
        }
    };
    let archive = std::fs::read(&a.archive)
        .with_context(|| format!("cannot read {}", a.archive.display()))
        .map_err(Failure::input)?;
    let family = tally_core::FamilyId::new(&a.family).map_err(Failure::input)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let body = tally_node::submissions::upload(&key, a.netuid, &family, &archive, now)
        .map_err(Failure::input)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let url = format!(
        "http://{}/v1/submissions",
        a.owner.trim_start_matches("http://")
    );
    let mut r = agent
        .post(&url)
        .header("content-type", "application/octet-stream")
        .send(&body[..])
        .map_err(|e| anyhow!("{url}: {e}"))?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    if status == 201 {
        println!("{text}");
        Ok(0)
    } else {
        Err(anyhow!("the owner refused the submission (HTTP {status}): {text}").into())
    }
}

pub fn miner(c: MinerCommand) -> Result<u8, Failure> {
    let (variant, out, model_seed) = match c {
        MinerCommand::Build {
            variant,
            out,
            model_seed,
        } => (variant, out, model_seed),
        MinerCommand::Submit(a) => return submit(a),
    };
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
    let report = |error: &str| {
        if a.json {
            println!(
                "{}",
                json!({"score": 0.0, "fuel": 0, "wall_ms": 0.0, "error": error})
            );
        }
    };
    let cap = tally_exec::budget::MAX_ARCHIVE;
    if meta.len() > cap as u64 {
        // not even read: a validator's archive cache refuses it before hashing a byte
        let e = format!(
            "refused: over budget: archive of {} bytes is over the {cap}-byte archive cap",
            meta.len()
        );
        report(&e);
        return Err(anyhow!("{}: {e}", a.archive.display()).into());
    }
    let bytes = std::fs::read(&a.archive)
        .with_context(|| format!("cannot read {}", a.archive.display()))
        .map_err(Failure::input)?;
    let rt = WasmRuntime::new().map_err(|e| anyhow!("{e}"))?;
    let mlp = match &a.model {
        Some(p) => {
            let b = std::fs::read(p)
                .with_context(|| format!("cannot read {}", p.display()))
                .map_err(Failure::input)?;
            tally_exec::safetensors::load_mlp(&b)
                .map_err(|e| Failure::input(anyhow!("{}: {e}", p.display())))?
        }
        None => Inference::default_mlp(a.model_seed),
    };
    let fam = Inference::new(mlp, &rt, Limits::default()).map_err(|e| anyhow!("{e}"))?;
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&a.seed.to_le_bytes());
    let deployment = hex::encode(&tally_core::sha256(&bytes)[..8]);
    let (score, fuel, wall, error) = match rt.load(&bytes, fam.imports()) {
        Err(e @ (tally_exec::Failure::Budget(_) | tally_exec::Failure::Busy(_))) => {
            // over the compile budget: refused before (or instead of) compiling
            let e = e.to_string();
            report(&e);
            return Err(anyhow!("{}: {e}", a.archive.display()).into());
        }
        Err(e) => (0.0, 0, 0.0, Some(e.to_string())),
        Ok(module) => {
            // exactly the validator's evaluation (the run's wall limit spans all tasks)
            let tasks = fam.tasks(&seed, a.tasks);
            let ev =
                tally_exec::family::evaluate(&fam, &rt, &module, &tasks, fam.limits(), &deployment);
            (
                ev.score.units() as f64 / 1e9,
                ev.fuel,
                ev.wall.as_secs_f64() * 1e3,
                ev.error.map(|e| e.to_string()),
            )
        }
    };
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
