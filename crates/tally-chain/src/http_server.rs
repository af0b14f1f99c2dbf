//! Hardened HTTP/1.1 serving, shared by every Tally server (the chain server here, the
//! validator API and the owner's endpoint in `tally-node` and `tally`).
//!
//! `axum::serve` has no header-read timeout, no request timeout and no connection cap: a few
//! thousand half-sent requests hold as many file descriptors for ever, and the process fails
//! with "Too many open files". [`serve`] runs its own accept loop over hyper's HTTP/1.1
//! connection builder instead:
//!
//! * a **global connection cap** ([`Limits::max_connections`], a semaphore): when it is full a
//!   new connection is accepted and closed at once, so the listen backlog keeps draining and a
//!   slot freed by a timed-out connection goes to a connection that is live now;
//! * a **per-peer connection cap** ([`Limits::max_per_ip`]) keyed by the peer's IP address (an
//!   IPv6 peer by its /64): one host cannot take the global cap, and its excess connections are
//!   closed at accept; the map holds only addresses with a live connection, so it is bounded by
//!   the global cap;
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
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
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
    /// 4,096 connections, 256 per IP, 10 s for a request head, 30 s per request, 5 min per
    /// connection, 64 KiB bodies, 64 headers.
    fn default() -> Self {
        Limits {
            max_connections: 4_096,
            max_per_ip: 256,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connection_age: Duration::from_secs(300),
            max_body: 64 * 1024,
            max_headers: 64,
        }
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
    let per_ip = Arc::new(PerIp {
        max: limits.max_per_ip.max(1),
        open: Mutex::new(HashMap::new()),
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Stats::bump(&stats.refused_global);
            if log.ready() {
                warn!(
                    "connection cap of {} reached: closing new connections ({} so far)",
                    limits.max_connections,
                    stats.refused_global.load(Ordering::Relaxed)
                );
            }
            close_now(stream);
            continue;
        };
        let Some(ip_slot) = PerIp::enter(&per_ip, peer.ip()) else {
            Stats::bump(&stats.refused_per_ip);
            if log.ready() {
                debug!(%peer, "per-IP connection cap reached: closing");
            }
            close_now(stream);
            continue;
        };
        Stats::bump(&stats.accepted);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (app, builder, stats) = (app.clone(), builder.clone(), stats.clone());
        tokio::spawn(async move {
            let held = (slot, ip_slot);
            connection(stream, peer, app, &builder, limits, &stats).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(held);
        });
    }
}

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
) {
    let svc_stats = stats.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(app.clone(), req, limits, svc_stats.clone())
    });
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(%peer, "connection ended: {e}");
            }
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

/// Open connections per peer key; an entry lives only while its peer has a connection.
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn enter(this: &Arc<PerIp>, ip: IpAddr) -> Option<IpSlot> {
        let key = peer_key(ip);
        let mut open = this.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= this.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: this.clone(),
            key,
        })
    }
}

/// One connection's place in its peer's count; released on drop.
struct IpSlot {
    per_ip: Arc<PerIp>,
    key: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
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

    #[test]
    fn per_ip_slots_are_counted_and_released() {
        let p = Arc::new(PerIp {
            max: 2,
            open: Mutex::new(HashMap::new()),
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let a = PerIp::enter(&p, ip).unwrap();
        let _b = PerIp::enter(&p, ip).unwrap();
        assert!(PerIp::enter(&p, ip).is_none());
        // another address is not affected
        let _c = PerIp::enter(&p, other).unwrap();
        drop(a);
        assert!(PerIp::enter(&p, ip).is_some());
        drop(_c);
        // entries go away with their last connection: the map is bounded by open connections
        assert!(!p.open.lock().unwrap().contains_key(&other));
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
