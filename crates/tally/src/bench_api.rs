//! `tally bench api` and `tally bench api-load`: authenticated
//! `GET /v1/consensus/scores/{run}` against one node on loopback. The node runs in a child
//! process (`tally bench api-server`, hidden) so its memory and descriptors can be read from
//! `/proc` apart from the load generator's.
//!
//! * `api`: throughput, p99 and memory growth; the load uses distinct nonces throughout, so the
//!   nonce cache sees every one of them, spread over [`KEYS`] client hotkeys (one key alone
//!   would be held to its per-key rate, as it should be).
//! * `api-load`: honest peers' fetches while the node holds thousands of idle (half-sent)
//!   connections and one key floods it with validly signed requests as fast as it can; the
//!   figure is the honest fetches' latency. Idle connections come from 127.0.0.10 and up
//!   (`--idle-sources` addresses), the flood from 127.0.0.3, honest peers from 127.0.0.2.

use crate::Failure;
use anyhow::{anyhow, Context};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_chain::http_server::Stats;
use tally_core::{FamilyId, Hotkey, Keypair, ReportBody, Score, ScoreReport};
use tally_node::api::{self, ApiState, Timing};
use tally_node::auth::sign_request;
use tally_node::store::NodeStore;
use tally_protocol::{ChainTime, EpochClock, PhaseWindows};

const RUN: u64 = 3;
/// Client hotkeys the bench node knows.
pub const KEYS: u32 = 1024;
/// The hotkey `api-load` floods with.
const FLOOD_KEY: u32 = KEYS - 1;
/// Hotkeys `api-load`'s honest peers sign with.
const HONEST_KEYS: u32 = 64;

fn client_key(i: u32) -> Keypair {
    let mut seed = [0xbe; 32];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    Keypair::from_seed(&seed)
}

fn node_key() -> Keypair {
    Keypair::from_seed(&[0xaa; 32])
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The child: serve one node's API and print its address; exit when stdin closes.
pub fn server() -> Result<u8, Failure> {
    let dir = std::env::temp_dir().join(format!("tally-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(NodeStore::open(&dir.join("node.redb"))?);
    let node = node_key();
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
    let wire = ScoreReport::sign(body, [1; 32], &node)?.to_bytes();
    store.put_own_report(RUN, &wire, b"")?;
    let now = tally_net::system_clock();
    let state = Arc::new(ApiState::new(store, node, 1_000_000, now.clone()));
    // what the validator's machine asks the API to serve once the run's reveal window opened
    state.serve(RUN, wire);
    state
        .known
        .write()
        .map_err(|_| anyhow!("lock"))?
        .extend((0..KEYS).map(|i| client_key(i).hotkey()));
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
    let stats = Arc::new(Stats::default());
    let st = stats.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        let server = tokio::spawn(api::serve_with(state, listener, api::limits(), st));
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
    // the server's counters, for the parent
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({"accepted": c(&stats.accepted), "refused_global": c(&stats.refused_global),
               "refused_per_ip": c(&stats.refused_per_ip), "accept_errors": c(&stats.accept_errors),
               "request_timeouts": c(&stats.request_timeouts), "evicted": c(&stats.evicted), "max_connections": api::limits().max_connections,
               "max_per_ip": api::limits().max_per_ip})
    );
    Ok(0)
}

/// The node in a child process: the child, its address and its pid.
fn spawn_server() -> Result<(Child, BufReader<std::process::ChildStdout>, String), Failure> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["bench", "api-server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no child stdout"))?,
    );
    let mut line = String::new();
    out.read_line(&mut line)?;
    Ok((child, out, line.trim().to_string()))
}

/// Stops the child and reads the server counters it prints last.
fn stop_server(
    mut child: Child,
    mut out: BufReader<std::process::ChildStdout>,
) -> serde_json::Value {
    drop(child.stdin.take());
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let _ = child.wait();
    serde_json::from_str(line.trim()).unwrap_or(serde_json::Value::Null)
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
    let (child, out, addr) = spawn_server()?;
    let pid = child.id();
    let path = format!("/v1/consensus/scores/{RUN}");
    let keys: Arc<Vec<Keypair>> = Arc::new((0..KEYS).map(client_key).collect());
    let node = node_key().hotkey();
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let load = |count: u64| -> Result<(Vec<f64>, Duration), Failure> {
        let target = next.load(Ordering::Relaxed) + count;
        let t0 = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (addr, path, keys, next, failures) = (
                    addr.clone(),
                    path.clone(),
                    keys.clone(),
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
                        let ts = now_ms();
                        let key = &keys[(i % KEYS as u64) as usize];
                        let s = Instant::now();
                        let mut req = agent.get(&url);
                        for (k, v) in sign_request(key, &node, "GET", &path, b"", ts, nonce) {
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
    stop_server(child, out);
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

/// Connects from the loopback address `from` (127.0.0.x) to `to`, blocking.
fn connect_from(
    rt: &tokio::runtime::Runtime,
    from: IpAddr,
    to: SocketAddr,
) -> std::io::Result<TcpStream> {
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(from, 0))?;
        sock.connect(to).await
    })?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// One keep-alive HTTP/1.1 connection from a fixed source address, reconnecting as needed.
struct RawConn {
    rt: tokio::runtime::Runtime,
    from: IpAddr,
    to: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl RawConn {
    fn new(from: IpAddr, to: SocketAddr) -> Result<Self, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        Ok(RawConn {
            rt,
            from,
            to,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `req` and reads the response; its status.
    fn request(&mut self, req: &[u8]) -> std::io::Result<u16> {
        let r = self.exchange(req);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(&mut self, req: &[u8]) -> std::io::Result<u16> {
        if self.stream.is_none() {
            self.stream = Some(connect_from(&self.rt, self.from, self.to)?);
        }
        let s = self
            .stream
            .as_mut()
            .ok_or(std::io::ErrorKind::NotConnected)?;
        s.write_all(req)?;
        self.buf.clear();
        let mut chunk = [0u8; 8192];
        let eof = || std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(eof());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status: u16 = head
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while self.buf.len() < head_end + len {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(eof());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if head.contains("\r\nconnection: close") {
            self.stream = None;
        }
        Ok(status)
    }
}

/// A signed `GET path` for the bench node, as raw HTTP/1.1.
fn signed_get(key: &Keypair, target: &Hotkey, path: &str, nonce: [u8; 16]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: node\r\n");
    for (k, v) in sign_request(key, target, "GET", path, b"", now_ms(), nonce) {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// `tally bench api-load`: see the module docs.
pub fn load(
    idle: usize,
    idle_sources: u8,
    requests: u64,
    threads: usize,
    flood_threads: usize,
    json_out: bool,
) -> Result<u8, Failure> {
    if idle > 20_000
        || !(1..=200).contains(&idle_sources)
        || !(100..=1_000_000).contains(&requests)
        || !(1..=16).contains(&threads)
        || flood_threads > 16
    {
        return Err(Failure::input(anyhow!(
            "--idle 0..=20000, --idle-sources 1..=200, --requests 100..=1000000, --threads 1..=16, --flood-threads 0..=16"
        )));
    }
    let (child, out, addr) = spawn_server()?;
    let pid = child.id();
    let to: SocketAddr = addr
        .parse()
        .map_err(|e| anyhow!("server address {addr}: {e}"))?;
    let target = node_key().hotkey();
    let path = format!("/v1/consensus/scores/{RUN}");
    let stop = Arc::new(AtomicBool::new(false));

    // idle connections: each sends half a request head and waits; when the node closes it, it
    // is opened again a second later, for as long as the bench runs
    let connected = Arc::new(AtomicI64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let idle_thread = {
        let (stop, connected, attempts, closed) = (
            stop.clone(),
            connected.clone(),
            attempts.clone(),
            closed.clone(),
        );
        std::thread::spawn(move || -> Result<(), std::io::Error> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut tasks = Vec::with_capacity(idle);
                for i in 0..idle {
                    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + (i % idle_sources as usize) as u8));
                    let (stop, connected, attempts, closed) =
                        (stop.clone(), connected.clone(), attempts.clone(), closed.clone());
                    // open them one after another, as fast as the node accepts
                    let first = async {
                        let s = tokio::net::TcpSocket::new_v4().ok()?;
                        s.bind(SocketAddr::new(from, 0)).ok()?;
                        s.connect(to).await.ok()
                    }
                    .await;
                    attempts.fetch_add(1, Ordering::Relaxed);
                    tasks.push(tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut conn = first;
                        while !stop.load(Ordering::Relaxed) {
                            if let Some(mut c) = conn.take() {
                                connected.fetch_add(1, Ordering::Relaxed);
                                let _ = c.write_all(b"GET /v1/consensus/scores/3 HTTP/1.1\r\nHost: node\r\nX-Slow: ").await;
                                let mut b = [0u8; 64];
                                loop {
                                    tokio::select! {
                                        r = c.read(&mut b) => if !matches!(r, Ok(n) if n > 0) { break },
                                        _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                            if stop.load(Ordering::Relaxed) { break }
                                        }
                                    }
                                }
                                connected.fetch_sub(1, Ordering::Relaxed);
                                if !stop.load(Ordering::Relaxed) {
                                    closed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let s = match tokio::net::TcpSocket::new_v4() {
                                Ok(s) => s,
                                Err(_) => continue,
                            };
                            if s.bind(SocketAddr::new(from, 0)).is_ok() {
                                conn = s.connect(to).await.ok();
                            }
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
            Ok(())
        })
    };
    let t0 = Instant::now();
    while attempts.load(Ordering::Relaxed) < idle as u64 {
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(anyhow!("idle connections not opened within 60 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    eprintln!(
        "{} idle connection attempts from {idle_sources} address(es) in {:.1} s; {} open, node holds {} descriptors",
        idle,
        t0.elapsed().as_secs_f64(),
        connected.load(Ordering::Relaxed),
        fds(pid)
    );

    // the flood: one known key, validly signed requests with fresh nonces, back to back
    let flood_sent = Arc::new(AtomicU64::new(0));
    let flood_429 = Arc::new(AtomicU64::new(0));
    let flood_ok = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..flood_threads)
        .map(|t| {
            let (stop, sent, r429, ok, path) = (
                stop.clone(),
                flood_sent.clone(),
                flood_429.clone(),
                flood_ok.clone(),
                path.clone(),
            );
            std::thread::spawn(move || -> Result<(), Failure> {
                let key = client_key(FLOOD_KEY);
                let mut c = RawConn::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), to)?;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let mut nonce = [0xf0u8; 16];
                    nonce[..8].copy_from_slice(&i.to_le_bytes());
                    nonce[8] = t as u8;
                    let req = signed_get(&key, &target, &path, nonce);
                    sent.fetch_add(1, Ordering::Relaxed);
                    match c.request(&req) {
                        Ok(429) => r429.fetch_add(1, Ordering::Relaxed),
                        Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    // honest peers: HONEST_KEYS hotkeys, `threads` keep-alive connections, each paced to one
    // request per 5 ms (200/s per connection, well under each key's rate)
    let measure = |count: u64| -> Result<(Vec<f64>, u64, u64), Failure> {
        let next = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let max_fds = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (next, failed, max_fds, path) =
                    (next.clone(), failed.clone(), max_fds.clone(), path.clone());
                std::thread::spawn(move || -> Result<Vec<f64>, Failure> {
                    let keys: Vec<Keypair> = (0..HONEST_KEYS).map(client_key).collect();
                    let mut c = RawConn::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), to)?;
                    let mut lat = Vec::new();
                    let mut tick = Instant::now();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        let key = &keys[(i % HONEST_KEYS as u64) as usize];
                        let mut nonce = [0x11u8; 16];
                        nonce[..8].copy_from_slice(&i.to_le_bytes());
                        nonce[8..12].copy_from_slice(&(now_ms() as u32).to_le_bytes());
                        let req = signed_get(key, &target, &path, nonce);
                        let s = Instant::now();
                        let r = c.request(&req);
                        lat.push(s.elapsed().as_secs_f64() * 1e3);
                        if !matches!(r, Ok(200)) && failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first failed honest request: {r:?}");
                        }
                        if t == 0 && i % 500 == 0 {
                            max_fds.fetch_max(fds(pid) as u64, Ordering::Relaxed);
                        }
                        tick += Duration::from_millis(5);
                        if let Some(d) = tick.checked_duration_since(Instant::now()) {
                            std::thread::sleep(d);
                        } else {
                            tick = Instant::now();
                        }
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            all.extend(
                h.join()
                    .map_err(|_| anyhow!("a client thread panicked"))??,
            );
        }
        Ok((
            all,
            failed.load(Ordering::Relaxed),
            max_fds.load(Ordering::Relaxed),
        ))
    };
    eprintln!("warming up…");
    measure(200)?;
    let sent0 = flood_sent.load(Ordering::Relaxed);
    let t1 = Instant::now();
    let (mut lat, failed, max_fds) = measure(requests)?;
    let secs = t1.elapsed().as_secs_f64();
    let flood_rate = (flood_sent.load(Ordering::Relaxed) - sent0) as f64 / secs;
    let open_idle = connected.load(Ordering::Relaxed);
    let node_fds = fds(pid);
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.join().map_err(|_| anyhow!("a flood thread panicked"))??;
    }
    let _ = idle_thread.join();
    let server = stop_server(child, out);
    lat.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
    );
    let (f_sent, f_429, f_ok) = (
        flood_sent.load(Ordering::Relaxed),
        flood_429.load(Ordering::Relaxed),
        flood_ok.load(Ordering::Relaxed),
    );
    eprintln!(
        "{requests} honest fetches in {secs:.1} s ({failed} failed): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms\n\
         under {idle} idle connections from {idle_sources} address(es) ({open_idle} open at the end, {} closed by the node and reopened; \
         node descriptors up to {max_fds}, {node_fds} at the end)\n\
         and one key flooding: {f_sent} signed requests ({flood_rate:.0}/s while measured), {f_429} answered 429, {f_ok} served\n\
         node counters: {server}",
        closed.load(Ordering::Relaxed)
    );
    if json_out {
        println!(
            "{}",
            json!({"idle": idle, "idle_sources": idle_sources, "requests": requests, "failed": failed,
                   "p50_ms": (p50 * 100.0).round() / 100.0, "p99_ms": (p99 * 100.0).round() / 100.0,
                   "max_ms": (max * 10.0).round() / 10.0, "idle_open_at_end": open_idle,
                   "node_fds_max": max_fds, "flood_requests": f_sent, "flood_per_s": flood_rate.round(),
                   "flood_429": f_429, "flood_served": f_ok, "node": server})
        );
    }
    if failed > 0 {
        return Err(anyhow!("{failed} honest requests failed").into());
    }
    Ok(0)
}
