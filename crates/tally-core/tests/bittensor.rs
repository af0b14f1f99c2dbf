//! Compatibility with Bittensor's own tooling (`bittensor-wallet`).
//!
//! The fixtures under `fixtures/bittensor/` were written by `tools/bittensor_crosscheck.py
//! fixtures` with bittensor-wallet 4.1.1: a plain hotkey file, an encrypted (NaCl) keyfile and
//! signatures. The opposite direction (our signatures verified by bittensor-wallet) runs the
//! same script in `verify` mode when Python has the package; `.ci/run` installs it, and under
//! `CI=true` the test insists on it.

use std::io::Write;
use std::process::{Command, Stdio};
use tally_core::{Hotkey, Keypair, Signature};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bittensor");

fn cases() -> Vec<serde_json::Value> {
    let s = std::fs::read_to_string(format!("{FIX}/signatures.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

#[test]
fn bittensor_signatures_verify_here() {
    let cases = cases();
    assert!(cases.len() >= 9);
    for c in &cases {
        let hk: Hotkey = c["ss58"].as_str().unwrap().parse().unwrap();
        assert_eq!(hex::encode(hk.0), c["public_hex"].as_str().unwrap());
        let msg = hex::decode(c["message_hex"].as_str().unwrap()).unwrap();
        let sig = Signature::from_hex(c["signature_hex"].as_str().unwrap()).unwrap();
        assert!(hk.verify(&msg, &sig), "bittensor signature refused: {c}");
        let mut tampered = msg.clone();
        tampered.push(0);
        assert!(!hk.verify(&tampered, &sig));
        if let Some(seed) = c["seed_hex"].as_str() {
            // the same seed gives the same key as bittensor-wallet's create_from_seed
            assert_eq!(Keypair::from_seed_hex(seed).unwrap().hotkey(), hk);
        }
    }
}

#[test]
fn bittensor_hotkey_file_loads() {
    let bytes = std::fs::read(format!("{FIX}/hotkey.json")).unwrap();
    let kp = Keypair::from_keyfile_json(&bytes).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(kp.hotkey().to_ss58(), v["ss58Address"].as_str().unwrap());
    // the keyfile we write has bittensor's privateKey format for the same seed
    let ours: serde_json::Value = serde_json::from_str(&kp.to_keyfile_json().unwrap()).unwrap();
    assert_eq!(ours["privateKey"], v["privateKey"]);
    assert_eq!(ours["secretSeed"], v["secretSeed"]);
    // a signature by the file's key verifies against the fixture made by bittensor for it
    let c = cases()
        .into_iter()
        .find(|c| c["seed_hex"].is_null())
        .unwrap();
    let sig = Signature::from_hex(c["signature_hex"].as_str().unwrap()).unwrap();
    assert!(kp.hotkey().verify(b"tally keyfile", &sig));
}

#[test]
fn encrypted_keyfile_is_refused_clearly() {
    let bytes = std::fs::read(format!("{FIX}/coldkey_encrypted")).unwrap();
    let e = Keypair::from_keyfile_json(&bytes).unwrap_err().to_string();
    assert!(e.contains("encrypted") && e.contains("NaCl"), "{e}");
}

fn python_has_bittensor() -> bool {
    Command::new("python3")
        .args(["-c", "import bittensor_wallet"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn our_signatures_verify_in_bittensor_wallet() {
    if !python_has_bittensor() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install bittensor-wallet (pip install bittensor-wallet==4.1.1)"
        );
        eprintln!("skipped: python3 lacks bittensor_wallet (pip install bittensor-wallet==4.1.1)");
        return;
    }
    let mut cases = Vec::new();
    for i in 0..8u8 {
        let kp = Keypair::from_seed(&[i.wrapping_mul(37).wrapping_add(5); 32]);
        let msg: Vec<u8> = (0..(i as usize * 97))
            .map(|j| (j * 31 + i as usize) as u8)
            .collect();
        let sig = kp.sign(&msg);
        cases.push(serde_json::json!({
            "ss58": kp.hotkey().to_ss58(),
            "public_hex": hex::encode(kp.hotkey().0),
            "message_hex": hex::encode(&msg),
            "signature_hex": sig.to_hex(),
        }));
    }
    // one deliberately bad case must be caught by the script, proving it really checks
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/bittensor_crosscheck.py"
    );
    let run = |cases: &Vec<serde_json::Value>| {
        let mut child = Command::new("python3")
            .args([script, "verify"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(cases).unwrap().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&cases);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut bad = cases.clone();
    bad[3]["message_hex"] = serde_json::json!("ff");
    let out = run(&bad);
    assert!(!out.status.success());
}
