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
