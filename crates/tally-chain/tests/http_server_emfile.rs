//! The hardened HTTP server when the process runs out of file descriptors: `accept` fails with
//! `EMFILE`, the server backs off and keeps its loop, and answers as soon as descriptors are
//! free again. Its own test binary, since it exhausts the process's descriptors.

use axum::routing::get;
use axum::Router;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tally_chain::http_server::{serve_with_stats, Limits, Stats};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_backs_off_and_serves_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let app = Router::new().route("/ok", get(|| async { "ok" }));
    let server = tokio::spawn(serve_with_stats(
        listener,
        app,
        Limits::default(),
        stats.clone(),
    ));
    let st = stats.clone();
    let answer = tokio::task::spawn_blocking(move || {
        // take every descriptor but one, then connect with that one: the connection waits in
        // the listen backlog and the server's accept fails with EMFILE
        let mut hog = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => hog.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(24), "{e}");
                    break;
                }
            }
        }
        hog.pop();
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let t = std::time::Instant::now();
        while st.accept_errors.load(Ordering::Relaxed) == 0 {
            assert!(t.elapsed() < Duration::from_secs(5), "accept never failed");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        drop(hog);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    assert!(stats.accept_errors.load(Ordering::Relaxed) >= 1);
    assert!(!server.is_finished());
}
