//! `tally validator`: settings from a TOML file, overridden by `TALLY_…` variables and then by
//! flags, validated before anything starts, with errors that name the field.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tally");

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hotkey.json");
    let k = tally_core::Keypair::from_seed(&[3; 32]);
    std::fs::write(&key, k.to_keyfile_json().unwrap()).unwrap();
    let cfg = dir.path().join("validator.toml");
    std::fs::write(
        &cfg,
        format!(
            "chain = \"http://127.0.0.1:9\"\nhotkey = {:?}\nnetuid = 1\napi_listen = \"127.0.0.1:0\"\n\
             data_dir = {:?}\nscorer = \"synthetic:1\"\n",
            key.display().to_string(),
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn validator(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut c = Command::new(BIN);
    c.arg("validator").args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TALLY_")) {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn missing_and_malformed_fields_are_named() {
    let (code, err) = validator(&[], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("config: chain: missing"), "{err}");

    let (_d, cfg) = setup();
    let c = cfg.to_str().unwrap();
    let (code, err) = validator(&["--config", c, "--chain", "ftp://x"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: chain"), "{err}");
    // a Subtensor endpoint that does not answer is a clear error, not a crash
    let (code, err) = validator(&["--config", c, "--chain", "ws://127.0.0.1:1"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("ws://127.0.0.1:1"), "{err}");
    let (code, err) = validator(&["--config", c], &[("TALLY_MODE", "bogus")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: mode"), "{err}");
    // a flag wins over the environment: owner mode without an owner endpoint
    let (code, err) = validator(
        &["--config", c, "--mode", "owner"],
        &[("TALLY_MODE", "decentralized")],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("config: owner_url"), "{err}");
    let (code, err) = validator(&["--config", c, "--api-listen", "nowhere"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: api_listen"), "{err}");
    let (code, err) = validator(&["--config", c, "--scorer", "exec"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: owner_url"), "{err}");
    // the owner's endpoint is an IP and a port, and comes with the owner's pinned hotkey
    for bad in [
        "owner.example:8090",
        "127.0.0.1:8090/v1",
        "user@127.0.0.1:8090",
    ] {
        let (code, err) = validator(&["--config", c, "--owner-url", bad], &[]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("config: owner_url"), "{bad}: {err}");
    }
    let (code, err) = validator(&["--config", c, "--owner-url", "127.0.0.1:8090"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: owner_hotkey"), "{err}");
    let (code, err) = validator(&["--config", c], &[("TALLY_HOTKEY", "/nonexistent/key")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("config: hotkey"), "{err}");
    // the published address is an IP and a port; chain reads have a sane bound
    for bad in ["validator.example:8091", "127.0.0.1", "127.0.0.1:8091/x"] {
        let (code, err) = validator(&["--config", c, "--axon", bad], &[]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("config: axon"), "{bad}: {err}");
    }
    for bad in ["0", "99", "300001"] {
        let (code, err) = validator(&["--config", c], &[("TALLY_CHAIN_TIMEOUT_MS", bad)]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("config: chain_timeout_ms"), "{bad}: {err}");
    }
}

#[test]
fn unknown_keys_in_the_file_are_refused() {
    let (_d, cfg) = setup();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("netuidd = 3\n");
    std::fs::write(&cfg, text).unwrap();
    let (code, err) = validator(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("netuidd"), "{err}");
}

#[test]
fn an_unreachable_chain_is_a_clear_error() {
    let (_d, cfg) = setup();
    let (code, err) = validator(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot read subnet 1 from http://127.0.0.1:9"),
        "{err}"
    );
}
