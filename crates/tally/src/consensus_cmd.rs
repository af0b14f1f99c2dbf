//! `tally consensus --input FILE`: aggregates validators' scores given as JSON.
//!
//! Input: `{"stakes": {"<validator>": stake >= 0}, "scores": {"<validator>": {"<miner>": score
//! in [0,1]}}, "kappa": 0.5, "missing": "abstain"|"zero", "quorum": "2/3"|0.6667, "margin": 0.05,
//! "incumbent": "<miner>", "policy": "wta"|"proportional", "burn": "<target>"}`. Only `stakes` and
//! `scores` are required. A validator listed in `scores` has reported; every such validator must
//! appear in `stakes`, whose total is the eligible stake.
//!
//! Stakes are made integer before aggregating: integer stakes are used as they are; if any stake
//! has a fraction, all are multiplied by 1e9 (TAO to rao) and rounded. Scores are rounded to the
//! nearest 1e-9. Every decision is then exact fixed-point arithmetic.

use crate::Failure;
use anyhow::{anyhow, Context};
use clap::Args;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::PathBuf;
use tally_consensus::{
    decide_run, MissingPolicy, Params, RunInput, RunOutcome, WeightPolicy, Weights,
};
use tally_core::{Fraction, Ratio, Score};

/// Cap on the input size.
const MAX_INPUT: u64 = 256 * 1024 * 1024;

#[derive(Args)]
#[command(after_help = "\
INPUT (JSON):
  {\"stakes\": {\"<validator>\": stake >= 0, ...},
   \"scores\": {\"<validator>\": {\"<miner>\": score in [0,1], ...}, ...},
   \"kappa\": 0.5, \"missing\": \"abstain\"|\"zero\", \"quorum\": \"2/3\"|0.6667, \"margin\": 0.05,
   \"incumbent\": \"<miner>\", \"policy\": \"wta\"|\"proportional\", \"burn\": \"<target>\"}
  Optional fields take DESIGN.md's defaults (kappa 0.5, abstain, quorum 2/3, margin 0.05, wta).
  A validator listed in \"scores\" has reported and must appear in \"stakes\".

OUTPUT (JSON):
  {\"quorum_met\": bool, \"participating_stake\": fraction of eligible stake,
   \"consensus\": {\"<miner>\": score}, \"winner\": \"<miner>\"|null, \"weights\": {\"<target>\": weight}}
  Unscored miners are left out. On a quorum miss the incumbent is held (weight 1 when given);
  with no winner all weight goes to \"burn\" when given, else weights are empty.

EXIT: 0 ok, 2 malformed input (the message names the field).")]
pub struct ConsensusArgs {
    /// The input file, or `-` for standard input.
    #[arg(long)]
    input: String,
}

fn bad(field: &str, why: impl std::fmt::Display) -> Failure {
    Failure::input(anyhow!("field {field}: {why}"))
}

fn unit_interval(v: &Value, field: &str, allow_zero: bool) -> Result<f64, Failure> {
    let x = v.as_f64().ok_or_else(|| bad(field, "must be a number"))?;
    if !x.is_finite() || !(0.0..=1.0).contains(&x) || (!allow_zero && x == 0.0) {
        let range = if allow_zero { "[0, 1]" } else { "(0, 1]" };
        return Err(bad(field, format!("{x} is outside {range}")));
    }
    Ok(x)
}

/// Parsed input.
pub struct Input {
    pub run: RunInput<String>,
    pub params: Params,
    pub burn: Option<String>,
}

/// Parses and validates the JSON input.
pub fn parse(text: &str) -> Result<Input, Failure> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        let at = offset_of(text, e.line(), e.column());
        let hint = if ["NaN", "Infinity", "-Infinity"]
            .iter()
            .any(|t| text[at..].starts_with(t))
        {
            ": NaN and infinities are not numbers (scores are in [0, 1], stakes finite)"
        } else {
            ""
        };
        match json_path_at(text, at) {
            Some(path) => bad(&path, format!("not valid JSON ({e}){hint}")),
            None => Failure::input(anyhow!("input is not valid JSON: {e}{hint}")),
        }
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("(top level)", "must be a JSON object"))?;
    const KNOWN: [&str; 9] = [
        "stakes",
        "scores",
        "kappa",
        "missing",
        "quorum",
        "margin",
        "incumbent",
        "policy",
        "burn",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            k,
            format!("unknown field (known: {})", KNOWN.join(", ")),
        ));
    }
    let stakes = obj
        .get("stakes")
        .ok_or_else(|| bad("stakes", "missing"))?
        .as_object()
        .ok_or_else(|| bad("stakes", "must be an object of validator -> stake"))?;
    let scores = obj
        .get("scores")
        .ok_or_else(|| bad("scores", "missing"))?
        .as_object()
        .ok_or_else(|| bad("scores", "must be an object of validator -> {miner: score}"))?;

    // stakes to integers
    let mut fractional = false;
    for (k, s) in stakes {
        let f = format!("stakes.{k}");
        let x = s.as_f64().ok_or_else(|| bad(&f, "must be a number"))?;
        if !x.is_finite() || x < 0.0 {
            return Err(bad(&f, format!("{x} must be finite and >= 0")));
        }
        if s.as_u64().is_none() {
            fractional = true;
        }
    }
    let mut stake_of = std::collections::BTreeMap::new();
    for (k, s) in stakes {
        let units = if fractional {
            let x = s.as_f64().unwrap_or(0.0) * 1e9;
            if x >= u64::MAX as f64 {
                return Err(bad(&format!("stakes.{k}"), "too large"));
            }
            x.round() as u64
        } else {
            s.as_u64().unwrap_or(0)
        };
        stake_of.insert(k.clone(), units);
    }
    let eligible: u128 = stake_of.values().map(|&s| s as u128).sum();

    let mut reports = Vec::with_capacity(scores.len());
    for (val, list) in scores {
        let stake = *stake_of
            .get(val)
            .ok_or_else(|| bad(&format!("scores.{val}"), "validator is missing from stakes"))?;
        let list = list.as_object().ok_or_else(|| {
            bad(
                &format!("scores.{val}"),
                "must be an object of miner -> score",
            )
        })?;
        let mut l = Vec::with_capacity(list.len());
        for (miner, s) in list {
            let f = format!("scores.{val}.{miner}");
            let x = unit_interval(s, &f, true)?;
            l.push((miner.clone(), Score::from_f64(x).map_err(|e| bad(&f, e))?));
        }
        reports.push((stake, l));
    }

    let mut params = Params::default();
    if let Some(k) = obj.get("kappa") {
        params.kappa =
            Fraction::from_f64(unit_interval(k, "kappa", false)?).map_err(|e| bad("kappa", e))?;
        if params.kappa == Fraction::ZERO {
            return Err(bad("kappa", "rounds to 0"));
        }
    }
    if let Some(q) = obj.get("quorum") {
        params.quorum = match q.as_str() {
            Some(text) => Ratio::parse(text).map_err(|e| bad("quorum", e))?,
            None => Ratio::parse(&unit_interval(q, "quorum", false)?.to_string())
                .map_err(|e| bad("quorum", e))?,
        };
    }
    if let Some(m) = obj.get("margin") {
        params.margin =
            Score::from_f64(unit_interval(m, "margin", true)?).map_err(|e| bad("margin", e))?;
    }
    params.missing = match obj.get("missing").map(|m| m.as_str()) {
        None => MissingPolicy::Abstain,
        Some(Some("abstain")) => MissingPolicy::Abstain,
        Some(Some("zero")) => MissingPolicy::Zero,
        Some(_) => return Err(bad("missing", "must be \"abstain\" or \"zero\"")),
    };
    params.policy = match obj.get("policy").map(|m| m.as_str()) {
        None | Some(Some("wta")) => WeightPolicy::WinnerTakeAll,
        Some(Some("proportional")) => WeightPolicy::Proportional,
        Some(_) => return Err(bad("policy", "must be \"wta\" or \"proportional\"")),
    };
    let opt_str = |field: &str| -> Result<Option<String>, Failure> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(field, "must be a string or null")),
        }
    };
    let incumbent = opt_str("incumbent")?;
    let burn = opt_str("burn")?;
    Ok(Input {
        run: RunInput {
            eligible_stake: eligible,
            reports,
            incumbent,
        },
        params,
        burn,
    })
}

/// The byte offset of a 1-based (line, column) position, clamped to the text and to a char
/// boundary.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            off += column.saturating_sub(1).min(l.len());
            break;
        }
        off += l.len();
    }
    let mut off = off.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    off
}

/// The dotted path of object keys (for instance `scores.val-a.miner-b`) enclosing byte `at` of
/// a JSON text that may be malformed there, so a parse error can name its field.
fn json_path_at(text: &str, at: usize) -> Option<String> {
    let mut stack: Vec<Option<String>> = Vec::new(); // current key per open object, None in arrays
    let mut last = String::new();
    let mut chars = text[..at].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                last.clear();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ if last.len() < 256 => last.push(c),
                        _ => {}
                    }
                }
            }
            '{' => stack.push(Some(String::new())),
            '[' => stack.push(None),
            '}' | ']' => {
                stack.pop();
            }
            ':' => {
                if let Some(Some(k)) = stack.last_mut() {
                    *k = last.clone();
                }
            }
            ',' => {
                if let Some(Some(k)) = stack.last_mut() {
                    k.clear();
                }
            }
            _ => {}
        }
    }
    let path: Vec<&str> = stack
        .iter()
        .flatten()
        .filter(|k| !k.is_empty())
        .map(|k| k.as_str())
        .collect();
    (!path.is_empty()).then(|| path.join("."))
}

fn num(x: f64) -> Value {
    // values are multiples of 1e-9: the shortest round-trip form has at most 9 decimals
    json!((x * 1e9).round() / 1e9)
}

/// Renders an outcome as the output JSON.
pub fn render(o: &RunOutcome<String>, incumbent: Option<&String>, burn: Option<&String>) -> Value {
    let consensus: Map<String, Value> = o
        .consensus
        .iter()
        .map(|(k, s)| (k.clone(), num(s.to_f64())))
        .collect();
    let weights: Map<String, Value> = match &o.weights {
        Weights::Set(w) => w
            .iter()
            .map(|(k, f)| (k.clone(), num(f.to_f64())))
            .collect(),
        Weights::Burn => burn.map(|b| (b.clone(), json!(1.0))).into_iter().collect(),
        Weights::Hold => incumbent
            .map(|i| (i.clone(), json!(1.0)))
            .into_iter()
            .collect(),
    };
    json!({
        "quorum_met": o.quorum_met,
        "participating_stake": num(o.participating.to_f64()),
        "consensus": consensus,
        "winner": o.winner,
        "weights": weights,
    })
}

pub fn run(args: ConsensusArgs) -> Result<u8, Failure> {
    let mut text = String::new();
    if args.input == "-" {
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_string(&mut text)
            .context("cannot read standard input")
            .map_err(Failure::input)?;
    } else {
        std::fs::File::open(&args.input)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_string(&mut text))
            .with_context(|| format!("cannot read {}", PathBuf::from(&args.input).display()))
            .map_err(Failure::input)?;
    }
    if text.len() as u64 > MAX_INPUT {
        return Err(Failure::input(anyhow!(
            "input is over the {MAX_INPUT}-byte cap"
        )));
    }
    let input = parse(&text)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let outcome = decide_run(&input.run, &input.params, threads).map_err(Failure::input)?;
    let out = render(&outcome, input.run.incumbent.as_ref(), input.burn.as_ref());
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}
