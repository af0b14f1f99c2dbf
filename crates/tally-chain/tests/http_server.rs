//! The hardened HTTP server on 127.0.0.x: idle and half-sent connections are closed after the
//! header-read timeout, one address cannot take more than its share of connections, the global
//! cap holds, slow requests get `408`, oversized bodies `413`, and an honest peer is answered
//! throughout.

use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_chain::http_server::{serve_with_stats, Limits, Stats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/echo", post(|b: axum::body::Bytes| async move { b }))
}

fn limits() -> Limits {
    Limits {
        max_connections: 1_000,
        max_per_ip: 1_000,
        header_read_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_millis(400),
        max_connection_age: Duration::from_secs(60),
        max_body: 1024,
        max_headers: 32,
    }
}

async fn start(limits: Limits) -> (SocketAddr, Arc<Stats>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    tokio::spawn(serve_with_stats(listener, app(), limits, stats.clone()));
    (addr, stats)
}

/// A connection from the loopback address `from` (127.0.0.x).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    try_connect_from(from, to).await.unwrap()
}

/// A connection from `from`, or the error (a connection the server refused at accept may be
/// reset before `connect` returns).
async fn try_connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{from}:0").parse().unwrap())?;
    s.connect(to).await
}

/// Sends one request on `c` and reads the status line's code and the body.
async fn request(c: &mut TcpStream, raw: &str) -> Option<(u16, String)> {
    c.write_all(raw.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let code = text.get(9..12)?.parse().ok()?;
                return Some((code, text[end + 4..end + 4 + len].to_string()));
            }
        }
        let n = c.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

const GET_OK: &str = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";

/// Whether the server closed `c` (EOF or reset) within `within`.
async fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(within, c.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_after_the_header_timeout() {
    let (addr, stats) = start(limits()).await;
    // nothing sent at all
    let mut silent = connect_from("127.0.0.1", addr).await;
    // half a request head
    let mut half = connect_from("127.0.0.1", addr).await;
    half.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // a keep-alive connection after one complete request
    let mut kept = connect_from("127.0.0.1", addr).await;
    assert_eq!(request(&mut kept, GET_OK).await, Some((200, "ok".into())));
    let t = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
    assert!(closed_within(&mut half, Duration::from_secs(3)).await);
    assert!(closed_within(&mut kept, Duration::from_secs(3)).await);
    // closed by the 400 ms header timeout, not by anything slower
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.open.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_flooding_half_sent_requests_does_not_starve_another() {
    let (addr, stats) = start(Limits {
        max_per_ip: 50,
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let mut flood = Vec::new();
    let mut reset = 0;
    for _ in 0..400 {
        match try_connect_from("127.0.0.1", addr).await {
            Ok(mut c) => {
                let _ = c
                    .write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                    .await;
                flood.push(c);
            }
            Err(_) => reset += 1,
        }
    }
    // the honest peer from another address is answered at once, on every try
    for _ in 0..20 {
        let t = Instant::now();
        let mut c = connect_from("127.0.0.2", addr).await;
        assert_eq!(request(&mut c, GET_OK).await, Some((200, "ok".into())));
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    // the flood holds at most its share; the rest were closed at accept
    assert!(stats.open.load(Ordering::Relaxed) <= 51);
    assert!(stats.refused_per_ip.load(Ordering::Relaxed) >= 349);
    let mut closed = reset;
    for c in flood.iter_mut() {
        if closed_within(c, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(closed >= 349, "{closed} closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_holds_and_a_lighter_peer_still_gets_in() {
    let (addr, stats) = start(Limits {
        max_connections: 40,
        max_per_ip: 10,
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    // four addresses fill the cap with idle connections that will not time out in this test
    let mut idle = Vec::new();
    for i in 0..4 {
        for _ in 0..10 {
            idle.push(connect_from(&format!("127.0.0.{}", 10 + i), addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.open.load(Ordering::Relaxed), 40);
    // a peer from another address is served at once, on every try: each new connection
    // closes an idle one of the heaviest peer (each is kept open, so each needs its own slot)
    let mut honest = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut c = connect_from("127.0.0.2", addr).await;
        assert_eq!(request(&mut c, GET_OK).await, Some((200, "ok".into())));
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t.elapsed()
        );
        honest.push(c);
    }
    assert!(stats.evicted.load(Ordering::Relaxed) >= 5);
    // a peer already holding as many as the heaviest gets no more: the cap holds
    let refused_before = stats.refused_global.load(Ordering::Relaxed);
    for _ in 0..5 {
        if let Ok(mut c) = try_connect_from("127.0.0.10", addr).await {
            assert!(closed_within(&mut c, Duration::from_millis(500)).await);
        }
    }
    assert!(
        stats.refused_global.load(Ordering::Relaxed) + stats.refused_per_ip.load(Ordering::Relaxed)
            >= refused_before + 5
    );
    assert!(stats.open.load(Ordering::Relaxed) <= 40);
    // and what was evicted was closed, not left hanging
    let mut closed = 0;
    for c in idle.iter_mut() {
        if closed_within(c, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(closed >= 5, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_and_large_bodies_are_refused() {
    let (addr, stats) = start(limits()).await;
    // a handler slower than the request timeout
    let mut c = connect_from("127.0.0.1", addr).await;
    let t = Instant::now();
    let r = request(&mut c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(r.map(|r| r.0), Some(408));
    assert!(t.elapsed() < Duration::from_secs(2));
    // a body trickled slower than the request timeout
    let mut c = connect_from("127.0.0.1", addr).await;
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let r = request(&mut c, "def").await;
    assert_eq!(r.map(|r| r.0), Some(408));
    assert_eq!(stats.request_timeouts.load(Ordering::Relaxed), 2);
    // a declared length over the limit is refused before the handler runs
    let mut c = connect_from("127.0.0.1", addr).await;
    let r = request(
        &mut c,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
    )
    .await;
    assert_eq!(r.map(|r| r.0), Some(413));
    // a chunked body over the limit is cut
    let mut c = connect_from("127.0.0.1", addr).await;
    let chunk = "x".repeat(2000);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    assert_eq!(request(&mut c, &raw).await.map(|r| r.0), Some(413));
    // within the limit it is served
    let mut c = connect_from("127.0.0.1", addr).await;
    let r = request(
        &mut c,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(r, Some((200, "hello".into())));
}
