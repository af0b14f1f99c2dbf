//! `tally audit`: re-derive each run from signed evidence and the chain, and hold it against
//! the weights on chain.

use crate::Failure;
use anyhow::{anyhow, Context};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tally_chain::{Chain, Genesis, LocalChain};
use tally_core::Keypair;
use tally_node::audit::{audit, Evidence};
use tally_node::peer::{PeerClient, PeerPath};

#[derive(Args)]
#[command(after_help = "\
Examples:
  tally audit --chain /tmp/dn/chain.redb --evidence /tmp/dn/evidence
  tally audit --chain http://127.0.0.1:9944 --peer 127.0.0.1:8101 --peer 127.0.0.1:8102 --seed 0x…

Evidence files: report-*.bin (a signed score report's wire bytes) and equivocation-*.bin
(a proof). Exit status: 0 when every run re-derives to the weights on chain, 1 on any mismatch
or any evidence that fails its signature, 2 for unusable arguments.")]
pub struct AuditArgs {
    /// The chain: a local chain file (chain.redb) or the URL of `tally chain serve`.
    #[arg(long)]
    chain: String,
    /// A directory of evidence files.
    #[arg(long, conflicts_with = "peer")]
    evidence: Option<PathBuf>,
    /// Validator API addresses (IP:port, as the metagraph lists them) to fetch reports and
    /// proofs from; repeatable.
    #[arg(long)]
    peer: Vec<String>,
    /// Key file to sign requests to peers with (must be a hotkey the peers know).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Seed (hex) to sign requests to peers with.
    #[arg(long)]
    seed: Option<String>,
    /// Audit only this run.
    #[arg(long)]
    run: Option<u64>,
    /// The subnet.
    #[arg(long, default_value_t = 1)]
    netuid: u16,
}

fn open_chain(spec: &str) -> Result<Arc<dyn Chain>, Failure> {
    if crate::chain_cmd::resolve(spec).is_ok() {
        return crate::chain_cmd::connect(spec, Duration::from_secs(20)).map_err(Failure::input);
    }
    let p = PathBuf::from(spec);
    if !p.is_file() {
        return Err(Failure::input(anyhow!(
            "--chain {spec}: no such chain file (give a chain.redb or an http:// URL)"
        )));
    }
    let empty = Genesis {
        timestamp_ms: 0,
        subnets: vec![],
        neurons: vec![],
    };
    let c = LocalChain::open(&p, &empty).map_err(|e| {
        Failure::input(anyhow!("--chain {spec}: {e} (is a devnet still using it?)"))
    })?;
    Ok(Arc::new(c))
}

fn load_dir(dir: &PathBuf) -> Result<Evidence, Failure> {
    let mut ev = Evidence::default();
    let rd = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))
        .map_err(Failure::input)?;
    for e in rd {
        let e = e.map_err(|e| Failure::input(anyhow!(e)))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.metadata().map(|m| m.len()).unwrap_or(0) > 8 * 1024 * 1024 {
            eprintln!("skipping {name}: over 8 MiB");
            continue;
        }
        let bytes = std::fs::read(e.path())
            .with_context(|| format!("cannot read {name}"))
            .map_err(Failure::input)?;
        if name.starts_with("report-") {
            ev.reports.push((name, bytes));
        } else if name.starts_with("equivocation-") {
            ev.proofs.push((name, bytes));
        } else {
            eprintln!("skipping {name}: not a report-* or equivocation-* file");
        }
    }
    ev.reports.sort();
    ev.proofs.sort();
    Ok(ev)
}

fn fetch_peers(a: &AuditArgs, chain: &dyn Chain) -> Result<Evidence, Failure> {
    let key = if let Some(k) = &a.key {
        Keypair::from_keyfile_json(
            &std::fs::read(k).map_err(|e| Failure::input(anyhow!("--key: {e}")))?,
        )
        .map_err(Failure::input)?
    } else if let Some(s) = &a.seed {
        Keypair::from_seed_hex(s).map_err(Failure::input)?
    } else {
        return Err(Failure::input(anyhow!(
            "--peer needs --key or --seed: peers answer signed requests only"
        )));
    };
    let now: Arc<dyn Fn() -> u64 + Send + Sync> = tally_net::system_clock();
    let client = PeerClient::new(key, Duration::from_secs(5), now);
    let params = chain.params(a.netuid)?;
    let head = chain.head()?;
    let current = head.number.saturating_sub(params.epoch_offset) / params.epoch_length.max(1);
    let runs: Vec<u64> = match a.run {
        Some(r) => vec![r],
        None => (0..current).collect(),
    };
    let mut ev = Evidence::default();
    // requests are signed for the peer's hotkey: the one the metagraph lists at that axon
    let mg = chain.metagraph(a.netuid)?;
    for p in &a.peer {
        let addr = p.trim_start_matches("http://").trim_end_matches('/');
        let Some(to) = mg.neurons.iter().find(|n| n.axon == addr).map(|n| n.hotkey) else {
            return Err(Failure::input(anyhow!(
                "--peer {addr}: no neuron of subnet {} serves this axon",
                a.netuid
            )));
        };
        for r in &runs {
            match client.get(&to, addr, &PeerPath::scores(*r)) {
                Ok((200, body)) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).map_err(|e| anyhow!("{addr}: {e}"))?;
                    if let Some(w) = v["wire"].as_str().and_then(|h| hex::decode(h).ok()) {
                        ev.reports.push((format!("{addr}/run{r}"), w));
                    }
                }
                Ok((status, _)) => eprintln!("{addr}: run {r}: HTTP {status}"),
                Err(e) => eprintln!("{e}"),
            }
        }
        if let Ok((200, body)) = client.get(&to, addr, &PeerPath::evidence()) {
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| anyhow!("{addr}: {e}"))?;
            for (i, item) in v["evidence"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(b) = item["proof_hex"].as_str().and_then(|h| hex::decode(h).ok()) {
                    ev.proofs.push((format!("{addr}/evidence{i}"), b));
                }
            }
        }
    }
    Ok(ev)
}

pub fn run(a: AuditArgs) -> Result<u8, Failure> {
    if a.evidence.is_none() && a.peer.is_empty() {
        return Err(Failure::input(anyhow!(
            "give --evidence DIR or at least one --peer"
        )));
    }
    let chain = open_chain(&a.chain)?;
    let ev = match &a.evidence {
        Some(d) => load_dir(d)?,
        None => fetch_peers(&a, chain.as_ref())?,
    };
    eprintln!(
        "auditing {} reports and {} proofs against the chain",
        ev.reports.len(),
        ev.proofs.len()
    );
    let verdicts = audit(chain.as_ref(), a.netuid, &ev, a.run)?;
    if verdicts.is_empty() {
        println!("no runs to audit");
        return Ok(1);
    }
    let mut bad = 0;
    for v in &verdicts {
        let winner = v
            .winner
            .map(|w| w.to_ss58())
            .unwrap_or_else(|| "none".into());
        println!(
            "run {}: {} — winner {winner}, quorum {}, {} reports counted, {} left out, weights of {} validators checked",
            v.run,
            if v.ok { "OK" } else { "MISMATCH" },
            if v.quorum_met { "met" } else { "missed" },
            v.accepted,
            v.excluded.len(),
            v.weights_checked
        );
        for (k, why) in &v.excluded {
            println!("  left out {k}: {why}");
        }
        for p in &v.problems {
            println!("  problem: {p}");
        }
        if !v.ok {
            bad += 1;
        }
    }
    Ok(if bad == 0 { 0 } else { 1 })
}
