//! Hardened HTTP/1.1 serving, shared by every Tally server (the chain server here, the
//! validator API and the owner's endpoint in `tally-node` and `tally`).
//!
//! `axum::serve` has no header-read timeout, no request timeout and no connection cap: a few
//! thousand half-sent requests hold as many file descriptors for ever, and the process fails
//! with "Too many open files". [`serve`] runs its own accept loop over hyper's HTTP/1.1
//! connection builder instead:
//!
//! * a **per-peer connection cap** ([`Limits::max_per_ip`]) keyed by the peer's IP address (an
//!   IPv6 peer by its /64): one host cannot take the global cap, and its excess connections are
//!   reset at accept; the registry holds only addresses with a live connection, so it is bounded
//!   by the global cap;
//! * a **global connection cap** ([`Limits::max_connections`], a semaphore) that is **fair
//!   between peers**: when it is full, a new connection from a peer holding fewer connections
//!   than the heaviest peer makes one of the heaviest peer's connections that has no request in
//!   flight close, and takes its slot; otherwise it is reset at accept (so the listen backlog
//!   keeps draining). Many addresses holding idle connections cannot lock out a peer that holds
//!   few;
//! * a **header-read timeout** ([`Limits::header_read_timeout`], hyper's `header_read_timeout`):
//!   a connection that has not sent a complete request head within it is closed, and so is an
//!   idle keep-alive connection that has not started its next request within it (hyper starts
//!   the timer whenever it waits for a head), which bounds idle keep-alive too;
//! * a **whole-request timeout** ([`Limits::request_timeout`]): reading the body and running
//!   the handler must finish within it, or the answer is `408` and the connection is closed;
//! * a **body size limit** ([`Limits::max_body`]): a declared `Content-Length` over it is
//!   refused with `413` before the handler runs, and a streamed body is cut at the limit
//!   (`http_body_util::Limited`; axum's extractors answer `413`);
//! * a **connection age bound** ([`Limits::max_connection_age`]): after it the connection is
//!   shut down gracefully (the request in flight completes), then dropped after a grace period,
//!   so a peer that never reads its response cannot hold a slot;
//! * **accept errors never stop the server**: `EMFILE`, `ENFILE`, `ENOBUFS` and the like are
//!   counted, logged at most every few seconds, and the loop backs off briefly and goes on.
//!
//! [`Stats`] counts what the loop did, for tests, benches and metrics.

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;
use tracing::{debug, warn};

/// The bounds a server enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, over all peers.
    pub max_connections: usize,
    /// Connections open at once from one IP address (IPv6: one /64).
    pub max_per_ip: usize,
    /// Time to receive a complete request head, on a new connection and between keep-alive
    /// requests.
    pub header_read_timeout: Duration,
    /// Time to read the body and produce the response of one request.
    pub request_timeout: Duration,
    /// Lifetime of one connection (then shut down gracefully).
    pub max_connection_age: Duration,
    /// Largest request body.
    pub max_body: usize,
    /// Most request headers.
    pub max_headers: usize,
}

impl Default for Limits {
    /// [`default_max_connections`] connections, 256 per IP, 10 s for a request head, 30 s per
    /// request, 5 min per connection, 64 KiB bodies, 64 headers.
    fn default() -> Self {
        Limits {
            max_connections: default_max_connections(),
            max_per_ip: 256,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(300),
            max_body: 64 * 1024,
            max_headers: 64,
        }
    }
}

/// The default global connection cap: half the process's file-descriptor limit (the rest is
/// for the node's database, outgoing calls and DHT), between 64 and 8,192; 4,096 where the
/// limit cannot be read.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .map(|v| v.parse::<usize>().unwrap_or(usize::MAX));
    match soft {
        Some(n) => (n / 2).clamp(64, 8_192),
        None => 4_096,
    }
}

impl Limits {
    /// These limits with `max_body` bytes of body.
    pub fn with_max_body(self, max_body: usize) -> Self {
        Limits { max_body, ..self }
    }
}

/// What the accept loop did (monotonic counters, plus `open`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed at accept because the global cap was reached.
    pub refused_global: AtomicU64,
    /// Connections closed at accept because their IP was at its cap.
    pub refused_per_ip: AtomicU64,
    /// Failed `accept` calls (e.g. `EMFILE`), each followed by a short back-off.
    pub accept_errors: AtomicU64,
    /// Requests answered `408` by the request timeout.
    pub request_timeouts: AtomicU64,
    /// Connections closed to make room for a peer holding fewer (global cap full).
    pub evicted: AtomicU64,
}

impl Stats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves `app` on `listener` under `limits`; returns only if the runtime shuts down.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits) -> io::Result<()> {
    serve_with_stats(listener, app, limits, Arc::new(Stats::default())).await
}

/// [`serve`], counting into `stats`.
pub async fn serve_with_stats(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<Stats>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry {
        max_per_ip: limits.max_per_ip.max(1),
        peers: Mutex::new(Peers::default()),
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers.max(1))
        // room for a request head of a few KiB; hyper's floor is 8 KiB
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut log = LogGate::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                if is_connection_error(&e) {
                    continue;
                }
                Stats::bump(&stats.accept_errors);
                if log.ready() {
                    warn!(
                        "accept failed ({e}); backing off {ACCEPT_BACKOFF:?} and serving on \
                         ({} accept errors so far)",
                        stats.accept_errors.load(Ordering::Relaxed)
                    );
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(entry) = Registry::enter(&registry, peer.ip()) else {
            Stats::bump(&stats.refused_per_ip);
            if log.ready() {
                debug!(%peer, "per-IP connection cap reached: resetting new connections");
            }
            close_now(stream);
            continue;
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            // full: make room if a heavier peer holds an idle connection, else refuse
            Err(_) if registry.evict_for(entry.key) => {
                Stats::bump(&stats.evicted);
                None
            }
            Err(_) => {
                Stats::bump(&stats.refused_global);
                if log.ready() {
                    warn!(
                        "connection cap of {} reached: resetting new connections ({} so far)",
                        limits.max_connections,
                        stats.refused_global.load(Ordering::Relaxed)
                    );
                }
                close_now(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, builder, stats, slots) =
            (app.clone(), builder.clone(), stats.clone(), slots.clone());
        tokio::spawn(async move {
            // an evicted connection hands its slot over as its task ends
            let slot = match slot {
                Some(s) => s,
                None => match tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned()).await {
                    Ok(Ok(s)) => s,
                    _ => return close_now(stream),
                },
            };
            Stats::bump(&stats.accepted);
            stats.open.fetch_add(1, Ordering::Relaxed);
            connection(stream, peer, app, &builder, limits, &stats, &entry.ctl).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop((slot, entry));
        });
    }
}

/// How long a connection waits for the slot of the connection it evicted.
const EVICTION_WAIT: Duration = Duration::from_secs(2);

/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a connection past its age gets to finish the request in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: &http1::Builder,
    limits: Limits,
    stats: &Arc<Stats>,
    ctl: &Arc<Ctl>,
) {
    let (svc_stats, svc_ctl) = (stats.clone(), ctl.clone());
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = InFlight::new(svc_ctl.clone());
        let r = handle(app.clone(), req, limits, svc_stats.clone());
        async move {
            // the connection counts as busy until the response body has been sent
            r.await.map(|resp| {
                resp.map(|b| {
                    Body::new(b.map_frame(move |f| {
                        let _ = &busy;
                        f
                    }))
                })
            })
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(%peer, "connection ended: {e}");
            }
        }
        _ = ctl.evict.notified() => {
            debug!(%peer, "connection closed to make room for a peer holding fewer");
        }
        _ = tokio::time::sleep(limits.max_connection_age) => {
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(SHUTDOWN_GRACE, conn).await.is_err() {
                debug!(%peer, "connection dropped after its age and grace period");
            }
        }
    }
}

async fn handle(
    app: Router,
    req: Request<Incoming>,
    limits: Limits,
    stats: Arc<Stats>,
) -> Result<Response<Body>, Infallible> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Ok(refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body over the server's limit",
        ));
    }
    let req = req.map(|b| Body::new(Limited::new(b, limits.max_body)));
    match tokio::time::timeout(limits.request_timeout, app.oneshot(req)).await {
        Ok(r) => r,
        Err(_) => {
            Stats::bump(&stats.request_timeouts);
            Ok(refusal(
                StatusCode::REQUEST_TIMEOUT,
                "request not completed within the server's timeout",
            ))
        }
    }
}

/// A JSON error that also closes the connection.
fn refusal(status: StatusCode, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": reason }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

/// Closes a connection refused at accept with a reset, so it leaves no `TIME_WAIT` state here.
fn close_now(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// The key a peer's connections are counted under: an IPv4 address (also when mapped into
/// IPv6), or an IPv6 address's /64 (one host usually holds a whole /64).
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What the accept loop sees of, and can ask of, one connection.
#[derive(Default)]
struct Ctl {
    /// Requests whose response has not been sent completely.
    in_flight: AtomicU32,
    /// Set once the connection was asked to close.
    evicted: AtomicBool,
    /// Wakes the connection's task to close it.
    evict: Notify,
}

/// Marks a connection busy while it lives.
struct InFlight(Arc<Ctl>);

impl InFlight {
    fn new(ctl: Arc<Ctl>) -> Self {
        ctl.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(ctl)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Live connections by peer key, for the per-IP cap and for eviction. A peer's entry lives only
/// while it has a connection, so the registry is bounded by the global cap (plus connections
/// waiting for the slot of one they evicted).
struct Registry {
    max_per_ip: usize,
    peers: Mutex<Peers>,
}

#[derive(Default)]
struct Peers {
    by_key: HashMap<IpAddr, HashMap<u64, Arc<Ctl>>>,
    /// `(connections, peer key)`, to find the heaviest peers.
    by_count: BTreeSet<(usize, IpAddr)>,
    next_id: u64,
}

/// Peers looked at, heaviest first, for a connection to evict.
const EVICTION_CANDIDATES: usize = 8;

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection from `ip`, unless its peer is at the per-IP cap.
    fn enter(this: &Arc<Registry>, ip: IpAddr) -> Option<Entry> {
        let key = peer_key(ip);
        let mut p = this.lock();
        let n = p.by_key.get(&key).map_or(0, |c| c.len());
        if n >= this.max_per_ip {
            return None;
        }
        let id = p.next_id;
        p.next_id += 1;
        let ctl = Arc::new(Ctl::default());
        p.by_count.remove(&(n, key));
        p.by_count.insert((n + 1, key));
        p.by_key.entry(key).or_default().insert(id, ctl.clone());
        Some(Entry {
            registry: this.clone(),
            key,
            id,
            ctl,
        })
    }

    /// Asks one connection with no request in flight, of a peer holding more connections than
    /// `key` does (counting the one it just opened), to close; true if one was asked.
    fn evict_for(&self, key: IpAddr) -> bool {
        let p = self.lock();
        let mine = p.by_key.get(&key).map_or(0, |c| c.len());
        for (count, heavy) in p.by_count.iter().rev().take(EVICTION_CANDIDATES) {
            if *count <= mine {
                break;
            }
            let idle = p.by_key.get(heavy).and_then(|conns| {
                conns.values().find(|c| {
                    c.in_flight.load(Ordering::Acquire) == 0
                        && !c.evicted.swap(true, Ordering::AcqRel)
                })
            });
            if let Some(c) = idle {
                c.evict.notify_one();
                return true;
            }
        }
        false
    }
}

/// One connection's place in the registry; removed on drop.
struct Entry {
    registry: Arc<Registry>,
    key: IpAddr,
    id: u64,
    ctl: Arc<Ctl>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut p = self.registry.lock();
        let Some(conns) = p.by_key.get_mut(&self.key) else {
            return;
        };
        let n = conns.len();
        conns.remove(&self.id);
        let left = conns.len();
        if left == 0 {
            p.by_key.remove(&self.key);
        }
        p.by_count.remove(&(n, self.key));
        if left > 0 {
            p.by_count.insert((left, self.key));
        }
    }
}

/// Lets a repeated warning through at most once every few seconds.
#[derive(Default)]
struct LogGate {
    last: Option<Instant>,
}

impl LogGate {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(5))
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_keys() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(peer_key(v4), v4);
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(peer_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));
    }

    fn registry(max_per_ip: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max_per_ip,
            peers: Mutex::new(Peers::default()),
        })
    }

    #[test]
    fn per_ip_slots_are_counted_and_released() {
        let r = registry(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let a = Registry::enter(&r, ip).unwrap();
        let _b = Registry::enter(&r, ip).unwrap();
        assert!(Registry::enter(&r, ip).is_none());
        // another address is not affected
        let c = Registry::enter(&r, other).unwrap();
        drop(a);
        assert!(Registry::enter(&r, ip).is_some());
        drop(c);
        // entries go away with their last connection: the registry is bounded by open
        // connections
        let p = r.lock();
        assert!(!p.by_key.contains_key(&other));
        assert_eq!(p.by_count.len(), 1);
    }

    #[test]
    fn eviction_takes_an_idle_connection_of_a_heavier_peer_only() {
        let r = registry(10);
        let heavy: IpAddr = "10.0.0.1".parse().unwrap();
        let light: IpAddr = "10.0.0.2".parse().unwrap();
        let hs: Vec<_> = (0..3)
            .map(|_| Registry::enter(&r, heavy).unwrap())
            .collect();
        // two of the heavy peer's connections are busy
        let _busy = [
            InFlight::new(hs[0].ctl.clone()),
            InFlight::new(hs[1].ctl.clone()),
        ];
        let l1 = Registry::enter(&r, light).unwrap();
        assert!(r.evict_for(l1.key));
        assert!(hs[2].ctl.evicted.load(Ordering::Relaxed));
        assert!(!hs[0].ctl.evicted.load(Ordering::Relaxed));
        // nothing idle is left to evict, and the heavy peer never evicts from a lighter one
        assert!(!r.evict_for(l1.key));
        assert!(!r.evict_for(peer_key(heavy)));
        assert!(!l1.ctl.evicted.load(Ordering::Relaxed));
        // a peer as heavy as the heaviest does not evict either
        let _more: Vec<_> = (0..2)
            .map(|_| Registry::enter(&r, light).unwrap())
            .collect();
        drop(hs);
        assert!(!r.evict_for(l1.key));
    }

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_rest_of_the_process() {
        let cap = default_max_connections();
        assert!((64..=8_192).contains(&cap));
        if let Ok(t) = std::fs::read_to_string("/proc/self/limits") {
            let soft: usize = t
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            assert!(cap <= soft.max(128) / 2 || cap == 64);
        }
    }

    #[test]
    fn accept_errors_that_are_not_fatal() {
        assert!(is_connection_error(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        // EMFILE is not a per-connection error: it gets the back-off, never a return
        assert!(!is_connection_error(&io::Error::from_raw_os_error(24)));
    }
}
