//! `tally bench api`: authenticated `GET /v1/consensus/scores/{run}` against one node on
//! loopback. The node runs in a child process (`tally bench api-server`, hidden) so its memory
//! can be read from `/proc` apart from the load generator's; the load uses distinct nonces
//! throughout, so the nonce cache sees every one of them.

use crate::Failure;
use anyhow::{anyhow, Context};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_core::{FamilyId, Hotkey, Keypair, ReportBody, Score, ScoreReport};
use tally_node::api::{ApiState, Timing};
use tally_node::auth::sign_request;
use tally_node::store::NodeStore;
use tally_protocol::{ChainTime, EpochClock, PhaseWindows};

const RUN: u64 = 3;

fn client_key() -> Keypair {
    Keypair::from_seed(&[0xbe; 32])
}

/// The child: serve one node's API and print its address; exit when stdin closes.
pub fn server() -> Result<u8, Failure> {
    let dir = std::env::temp_dir().join(format!("tally-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(NodeStore::open(&dir.join("node.redb"))?);
    let node = Keypair::from_seed(&[0xaa; 32]);
    let scores: Vec<(Hotkey, Score)> = (0..256u32)
        .map(|i| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            (
                Hotkey(k),
                Score::from_units(i * 1000).unwrap_or(Score::ZERO),
            )
        })
        .collect();
    let body = ReportBody::new(1, RUN, FamilyId::new("synthetic")?, node.hotkey(), scores)?;
    store.put_own_report(
        RUN,
        &ScoreReport::sign(body, [1; 32], &node)?.to_bytes(),
        b"",
    )?;
    let now = tally_net::system_clock();
    let state = Arc::new(ApiState::new(store, node, 1_000_000, now.clone()));
    state
        .known
        .write()
        .map_err(|_| anyhow!("lock"))?
        .insert(client_key().hotkey());
    *state.timing.write().map_err(|_| anyhow!("lock"))? = Some(Timing {
        clock: EpochClock {
            length: 10,
            offset: 0,
        },
        windows: PhaseWindows::default(),
        time: ChainTime {
            block: 1_000,
            at_ms: now(),
            block_ms: 12_000,
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        let server = tokio::spawn(tally_node::api::serve(state, listener));
        // exit when the parent closes our stdin
        tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 1];
            while std::io::stdin()
                .read(&mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await
        .ok();
        server.abort();
        Ok::<(), anyhow::Error>(())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(0)
}

fn rss_kb(pid: u32) -> Result<u64, Failure> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the server's /proc status")?;
    s.lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status").into())
}

/// The parent: load the child with `requests` signed requests from `threads` client threads.
pub fn bench(requests: u64, threads: usize, json_out: bool) -> Result<u8, Failure> {
    if !(1_000..=10_000_000).contains(&requests) || !(1..=64).contains(&threads) {
        return Err(Failure::input(anyhow!(
            "--requests 1000..=10000000, --threads 1..=64"
        )));
    }
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["bench", "api-server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no child stdout"))?,
    )
    .read_line(&mut line)?;
    let addr = line.trim().to_string();
    let path = format!("/v1/consensus/scores/{RUN}");
    let key = client_key();
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let load = |count: u64| -> Result<(Vec<f64>, Duration), Failure> {
        let target = next.load(Ordering::Relaxed) + count;
        let t0 = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (addr, path, key, next, failures) = (
                    addr.clone(),
                    path.clone(),
                    key.clone(),
                    next.clone(),
                    failures.clone(),
                );
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .into();
                    let url = format!("http://{addr}{path}");
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= target {
                            break;
                        }
                        let mut nonce = [0u8; 16];
                        nonce[..8].copy_from_slice(&i.to_le_bytes());
                        nonce[8..].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
                        let ts = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis() as u64)
                            .unwrap_or(0);
                        let s = Instant::now();
                        let mut req = agent.get(&url);
                        for (k, v) in sign_request(&key, "GET", &path, b"", ts, nonce) {
                            req = req.header(k, v);
                        }
                        let ok = match req.call() {
                            Ok(mut r) => {
                                r.status().as_u16() == 200 && r.body_mut().read_to_vec().is_ok()
                            }
                            Err(_) => false,
                        };
                        if !ok {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        lat.push(s.elapsed().as_secs_f64() * 1e3);
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow!("a client thread panicked"))?);
        }
        Ok((all, t0.elapsed()))
    };
    eprintln!("warming up the node at {addr} (pid {pid})…");
    load(20_000)?;
    let before = rss_kb(pid)?;
    let mut lat = Vec::new();
    let mut elapsed = Duration::ZERO;
    let step = (requests / 10).max(1);
    let mut done = 0;
    while done < requests {
        let n = step.min(requests - done);
        let (l, e) = load(n)?;
        lat.extend(l);
        elapsed += e;
        done += n;
        eprintln!(
            "  {done}/{requests} requests, {:.0}/s, node RSS {} MB",
            done as f64 / elapsed.as_secs_f64(),
            rss_kb(pid)? / 1024
        );
    }
    let after = rss_kb(pid)?;
    drop(child.stdin.take());
    let _ = child.wait();
    let failed = failures.load(Ordering::Relaxed);
    lat.sort_by(|a, b| a.total_cmp(b));
    let p99 = lat
        .get(((lat.len() as f64 - 1.0) * 0.99) as usize)
        .copied()
        .unwrap_or(0.0);
    let rps = requests as f64 / elapsed.as_secs_f64();
    let growth = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!("{requests} authenticated score fetches ({failed} failed) from {threads} threads: {rps:.0}/s, p99 {p99:.2} ms; node RSS {:.1} -> {:.1} MB (+{growth:.1} MB) across {requests} distinct nonces", before as f64 / 1024.0, after as f64 / 1024.0);
    if failed > 0 {
        return Err(anyhow!("{failed} requests failed").into());
    }
    if json_out {
        println!(
            "{}",
            json!({"requests_per_s": rps.round(), "p99_ms": (p99 * 100.0).round() / 100.0, "rss_growth_mb": (growth * 10.0).round() / 10.0})
        );
    }
    Ok(0)
}
