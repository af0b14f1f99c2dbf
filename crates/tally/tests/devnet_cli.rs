//! `tally devnet` end to end, then `tally audit` on what it wrote: clean evidence passes, a
//! tampered evidence file fails.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tally");

#[test]
fn devnet_then_audit_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dn");
    let o = Command::new(BIN)
        .args([
            "devnet",
            "--validators",
            "4",
            "--miners",
            "4",
            "--epochs",
            "2",
            "--block-ms",
            "80",
            "--byzantine",
            "equivocate",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("run 1: winner"), "{stdout}");
    assert!(stdout.contains("(equivocation)"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 2);
    assert_eq!(summary["validators"].as_array().unwrap().len(), 4);
    assert_eq!(summary["validators"][3]["byzantine"], "equivocate");
    assert!(summary["miners"][0]["true_quality"].is_number());
    assert!(summary["chain"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    // devnet.json names every node: chain, owner and four validators with keys and configs
    let dn: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("devnet.json")).unwrap()).unwrap();
    let nodes = dn["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 6);
    let validators: Vec<_> = nodes.iter().filter(|x| x["role"] == "validator").collect();
    assert_eq!(validators.len(), 4);
    for v in &validators {
        assert!(v["pid"].as_u64().unwrap() > 0);
        assert!(v["dht"].as_str().unwrap().contains("/p2p/"));
        let key = std::fs::read(v["key_file"].as_str().unwrap()).unwrap();
        let k = tally_core::Keypair::from_keyfile_json(&key).unwrap();
        assert_eq!(k.hotkey().to_ss58(), v["hotkey"].as_str().unwrap());
        assert!(std::path::Path::new(v["config"].as_str().unwrap()).exists());
    }
    assert_eq!(validators[3]["byzantine"], "equivocate");

    let audit = |ev: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "--chain"])
            .arg(out.join("chain.redb"))
            .arg("--evidence")
            .arg(ev)
            .output()
            .unwrap()
    };
    let a = audit(&out.join("evidence"));
    let text = String::from_utf8_lossy(&a.stdout);
    assert_eq!(a.status.code(), Some(0), "{text}");
    assert!(
        text.contains("run 0: OK") && text.contains("run 1: OK"),
        "{text}"
    );

    // flip one byte of one report's score: its signature no longer verifies
    let ev = out.join("evidence");
    let victim = std::fs::read_dir(&ev)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("report-run1")
        })
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 32 - 64 - 1] ^= 0x01; // last byte of the body: a score
    std::fs::write(&victim, bytes).unwrap();
    let a = audit(&ev);
    let text = String::from_utf8_lossy(&a.stdout);
    assert_eq!(a.status.code(), Some(1), "{text}");
    assert!(text.contains("signature does not verify"), "{text}");

    // unusable arguments
    let a = Command::new(BIN)
        .args(["audit", "--chain", "/nonexistent/chain.redb", "--evidence"])
        .arg(&ev)
        .output()
        .unwrap();
    assert_eq!(a.status.code(), Some(2));
}

#[test]
fn epochs_zero_keeps_running_until_interrupted_and_stops_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dn");
    let mut child = Command::new(BIN)
        .args([
            "devnet",
            "--validators",
            "3",
            "--miners",
            "3",
            "--synthetic",
        ])
        .args(["--epochs", "0", "--block-ms", "80"])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // devnet.json appears once the nodes are up
    let t = std::time::Instant::now();
    while !out.join("devnet.json").exists() {
        assert!(t.elapsed().as_secs() < 60, "no devnet.json");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dn: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("devnet.json")).unwrap()).unwrap();
    let pids: Vec<u64> = dn["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 5, "{dn}");
    // still running two seconds later
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // every node process is gone
    for pid in pids {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "process {pid} still runs");
    }
}

#[test]
fn devnet_on_subtensor_refuses_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("devnet")
            .args(args)
            .arg("--out")
            .arg(dir.path().join("dn"))
            .output()
            .unwrap()
    };
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    // the embedded chain's URL is not a Subtensor endpoint
    let o = run(&["--chain", "http://127.0.0.1:9", "--sudo-seed", "//Alice"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("ws://"), "{}", err(&o));
    // the chain and its sudo key come together
    let o = run(&["--chain", "ws://127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("--sudo-seed"), "{}", err(&o));
    let o = run(&["--chain", "ws://127.0.0.1:9", "--sudo-seed", "//a/b"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("--sudo-seed"), "{}", err(&o));
    // only an honest validator can be restarted
    let o = run(&["--restart-validator", "4", "--byzantine", "inflate"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    // nothing listens there: a clear error naming the endpoint, and no process left behind
    let o = run(&["--chain", "ws://127.0.0.1:9", "--sudo-seed", "//Alice"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("ws://127.0.0.1:9"), "{}", err(&o));
}
