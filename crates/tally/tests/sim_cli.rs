//! `tally sim`: the table, the machine-readable last line, replays, and unusable arguments.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tally");

fn sim(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(BIN).arg("sim").args(args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn seeds_print_a_table_and_a_json_line_that_replays() {
    let (code, out, err) = sim(&["--seeds", "3", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("violations"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("{\"seeds\":3,\"violations\":0,\"trace\":\""),
        "{last}"
    );
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["trace"].as_str().unwrap().len(), 64);
    // the same seeds give the same trace
    let (_, again, _) = sim(&["--seeds", "3", "--json"]);
    assert_eq!(again.lines().last().unwrap(), last);
    // fixed strategies and faults
    let (code, out, _) = sim(&[
        "--seeds",
        "2",
        "--byzantine",
        "equivocate,commit-late",
        "--faults",
        "loss=50,crashes",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("equivocate,commit-late"), "{out}");
}

#[test]
fn unusable_arguments_exit_2() {
    for args in [
        &["--byzantine", "bribe"][..],
        &["--faults", "earthquake"],
        &["--faults", "loss=900"],
        &["--validators", "1"],
        &["--validators", "3", "--byzantine", "inflate,copy,forge"],
    ] {
        let (code, _, err) = sim(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
}

#[test]
fn hosters_get_a_table_by_strategy_and_the_sweep_holds() {
    let (code, out, err) = sim(&[
        "--seeds",
        "3",
        "--hosters",
        "7",
        "--faults",
        "loss=50,partitions,crashes",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for s in [
        "honest",
        "noisy",
        "lazy",
        "copycat",
        "no-reveal",
        "mismatch",
        "late",
    ] {
        assert!(out.contains(s), "{s} missing from\n{out}");
    }
    let honest = out
        .lines()
        .find(|l| l.trim_start().starts_with("honest "))
        .unwrap();
    assert!(honest.contains("1.000"), "{honest}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["violations"], 0);
    let (code, _, err) = sim(&["--seeds", "1", "--hosters", "9999"]);
    assert_eq!(code, Some(2), "{err}");
}
