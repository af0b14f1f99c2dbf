//! `tally`: the command line of Tally, decentralized and auditable validation for AI incentive
//! networks.
//!
//! Subcommands: `key` (sr25519 hotkeys compatible with Bittensor), `consensus` (aggregate score
//! reports given as JSON) and `bench` (in-process benchmarks). Exit codes: 0 success, 1 a
//! negative answer or failure (for instance a signature that does not verify), 2 unusable input
//! or arguments.
#![forbid(unsafe_code)]

mod audit_cmd;
mod bench;
mod bench_api;
mod bench_hosted;
mod bench_net;
mod chain_cmd;
mod consensus_cmd;
mod devnet_cmd;
mod exec_cmd;
mod hoster_cmd;
mod key_cmd;
mod owner_cmd;
mod sim_cmd;
mod validator_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Decentralized, auditable validation for AI incentive networks (Bittensor- and
/// Hypertensor-style subnets): validators measure miners first-hand, commit before they reveal,
/// and set weights from a stake-weighted median that a dishonest minority cannot move.
#[derive(Parser)]
#[command(name = "tally", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole subnet on this machine: chain, owner and validators on 127.0.0.1.
    Devnet(devnet_cmd::DevnetArgs),
    /// Run one validator node: score, commit, reveal, aggregate and set weights.
    Validator(validator_cmd::ValidatorArgs),
    /// Run one hoster (miner-hosted mode): run the model on each epoch's challenge, commit to
    /// the output and reveal it over the DHT.
    Hoster(hoster_cmd::HosterArgs),
    /// A devnet's validator process, with an optional byzantine strategy (used by `tally devnet`).
    #[command(hide = true)]
    DevnetNode(validator_cmd::DevnetNodeArgs),
    /// A devnet's hoster process, with a hoster strategy (used by `tally devnet --hosters`).
    #[command(hide = true)]
    DevnetHoster(hoster_cmd::DevnetHosterArgs),
    /// Re-derive each run from signed evidence and the chain; exit 1 on any mismatch.
    Audit(audit_cmd::AuditArgs),
    /// Run the owner service: submissions in, signed rosters, archives and its pick out.
    Owner(owner_cmd::OwnerArgs),
    /// Build miner submissions.
    #[command(subcommand)]
    Miner(exec_cmd::MinerCommand),
    /// Evaluate submissions in the sandbox exactly as a validator would.
    #[command(subcommand)]
    Exec(exec_cmd::ExecCommand),
    /// The embedded local chain: serve it over HTTP.
    #[command(subcommand)]
    Chain(chain_cmd::ChainCommand),
    /// Create, show, sign with and verify sr25519 hotkeys (Bittensor-compatible).
    #[command(subcommand)]
    Key(key_cmd::KeyCommand),
    /// Aggregate validators' score reports (JSON) into consensus scores, a winner and weights.
    Consensus(consensus_cmd::ConsensusArgs),
    /// Simulate many seeded subnets of validator state machines under byzantine strategies
    /// and faults; exit 1 on any invariant violation.
    Sim(sim_cmd::SimArgs),
    /// Run in-process benchmarks; `--json` makes the last line machine-readable.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// An error that carries its exit code: 2 for unusable input, 1 otherwise.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    /// Unusable input or arguments (exit 2).
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // a closed stderr (a reader that stopped after the first line) must not kill a service:
        // the default reports a failed write with eprintln!, which panics
        .log_internal_errors(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devnet(a) => devnet_cmd::run_cmd(a),
        Command::Audit(a) => audit_cmd::run(a),
        Command::Chain(c) => chain_cmd::run(c),
        Command::Miner(c) => exec_cmd::miner(c),
        Command::Owner(a) => owner_cmd::run(a),
        Command::Exec(c) => exec_cmd::exec(c),
        Command::Key(c) => key_cmd::run(c),
        Command::Consensus(a) => consensus_cmd::run(a),
        Command::Sim(a) => sim_cmd::run(a),
        Command::Validator(a) => validator_cmd::run(a),
        Command::Hoster(a) => hoster_cmd::run(a),
        Command::DevnetNode(a) => validator_cmd::run_devnet_node(a),
        Command::DevnetHoster(a) => hoster_cmd::run_devnet_hoster(a),
        Command::Bench(b) => bench::run(b),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
