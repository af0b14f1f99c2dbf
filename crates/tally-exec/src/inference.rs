//! The built-in `inference` family: does a miner run a published reference model faithfully
//! and efficiently on the challenge input?
//!
//! The model is an MLP (ReLU between layers) whose weights come from the family seed (or from
//! a safetensors file the validator loads). Inputs and outputs are little-endian `f32` arrays.
//! The score is `accuracy x efficiency`:
//!
//! * accuracy from the relative L2 error `e = |y - y_ref| / |y_ref|` on a log tolerance curve:
//!   1 for `e <= 1e-4`, 0 for `e >= 0.5`, and `1 - (log10 e + 4) / (log10 0.5 + 4)` between;
//! * efficiency `min(1, fuel_ref / fuel)`, where `fuel_ref` is the fuel the family's own faithful
//!   wasm implementation uses on the same task, measured by this validator.
//!
//! A failed run, or output of the wrong length, scores 0 with its reason.

use crate::builder::{build, Variant};
use crate::family::{Family, Measured, Scored, Task};
use crate::runtime::{Failure, Limits, WasmRuntime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tally_core::{sha256, Score};

/// One dense layer, `w` row-major `output x input`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Inputs.
    pub input: usize,
    /// Outputs.
    pub output: usize,
    /// Weights.
    pub w: Vec<f32>,
    /// Biases.
    pub b: Vec<f32>,
}

/// A multilayer perceptron.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Layers in order.
    pub layers: Vec<Layer>,
}

impl Mlp {
    /// Weights from `seed` for layer widths `dims` (e.g. `[64, 64, 16]`).
    pub fn from_seed(seed: u64, dims: &[usize]) -> Mlp {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = dims
            .windows(2)
            .map(|d| {
                let bound = 1.0 / (d[0] as f32).sqrt();
                Layer {
                    input: d[0],
                    output: d[1],
                    w: (0..d[0] * d[1])
                        .map(|_| rng.gen_range(-bound..bound))
                        .collect(),
                    b: (0..d[1]).map(|_| rng.gen_range(-0.1..0.1)).collect(),
                }
            })
            .collect();
        Mlp { layers }
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.layers.first().map(|l| l.input).unwrap_or(0)
    }

    /// Output width.
    pub fn output(&self) -> usize {
        self.layers.last().map(|l| l.output).unwrap_or(0)
    }

    /// Multiply-adds per forward pass.
    pub fn flops(&self) -> usize {
        self.layers.iter().map(|l| l.input * l.output).sum()
    }

    /// The forward pass, in exactly the order of operations the faithful submission uses.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut cur = x.to_vec();
        let n = self.layers.len();
        for (li, l) in self.layers.iter().enumerate() {
            let mut y = vec![0f32; l.output];
            for (o, out) in y.iter_mut().enumerate() {
                let row = &l.w[o * l.input..(o + 1) * l.input];
                let acc = dot(row, &cur);
                let v = acc + l.b[o];
                *out = if li + 1 < n { v.max(0.0) } else { v };
            }
            cur = y;
        }
        cur
    }
}

/// The dot product in the reference's order: four lanes (element `i` into lane `i % 4`, then
/// `(l0 + l1) + (l2 + l3)`) when the width is divisible by four, else one running sum.
pub fn dot(w: &[f32], x: &[f32]) -> f32 {
    let x = |i: usize| x.get(i).copied().unwrap_or(0.0);
    if w.len().is_multiple_of(4) {
        let mut l = [0f32; 4];
        for (c, chunk) in w.chunks_exact(4).enumerate() {
            for u in 0..4 {
                l[u] += chunk[u] * x(4 * c + u);
            }
        }
        (l[0] + l[1]) + (l[2] + l[3])
    } else {
        let mut acc = 0f32;
        for (i, wi) in w.iter().enumerate() {
            acc += wi * x(i);
        }
        acc
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The accuracy of `output` against `reference` in fixed point (units of 1e-9): [`accuracy`] of
/// the relative L2 error, rounded once so every validator computes the same. Output of another
/// length scores 0. Validator-hosted scoring and the miner-hosted scorer both use it.
pub fn accuracy_units(reference: &[f32], output: &[f32]) -> u64 {
    if output.len() != reference.len() {
        return 0;
    }
    let diff: f64 = output
        .iter()
        .zip(reference)
        .map(|(a, b)| ((*a as f64) - (*b as f64)).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = reference
        .iter()
        .map(|b| (*b as f64).powi(2))
        .sum::<f64>()
        .sqrt()
        .max(1e-9);
    (accuracy(diff / norm) * 1e9).round() as u64
}

/// The accuracy curve of the relative L2 error.
pub fn accuracy(e: f64) -> f64 {
    if !e.is_finite() || e >= 0.5 {
        return 0.0;
    }
    if e <= 1e-4 {
        return 1.0;
    }
    (1.0 - (e.log10() + 4.0) / (0.5f64.log10() + 4.0)).clamp(0.0, 1.0)
}

/// The inference family.
pub struct Inference {
    mlp: Mlp,
    ref_fuel: u64,
    limits: Limits,
}

impl Inference {
    /// The family for `mlp`; measures its reference fuel with `runtime` on a probe input.
    pub fn new(mlp: Mlp, runtime: &WasmRuntime, limits: Limits) -> Result<Inference, Failure> {
        let module = runtime.load(&build(&mlp, Variant::Faithful), &[])?;
        let probe = bytes(&vec![0.5f32; mlp.input()]);
        let r = runtime.run(
            &module,
            &probe,
            &limits,
            "task-eval=reference;deployment=reference",
        );
        r.output?;
        Ok(Inference {
            mlp,
            ref_fuel: r.fuel.max(1),
            limits,
        })
    }

    /// The default model: widths 64 -> 64 -> 16 from `seed`.
    pub fn default_mlp(seed: u64) -> Mlp {
        Mlp::from_seed(seed, &[64, 64, 16])
    }

    /// The model.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The reference fuel per task.
    pub fn reference_fuel(&self) -> u64 {
        self.ref_fuel
    }

    /// The limits runs use.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl Family for Inference {
    fn id(&self) -> &'static str {
        "inference"
    }

    fn imports(&self) -> &'static [&'static str] {
        &["tool"]
    }

    fn tasks(&self, seed: &[u8; 32], count: usize) -> Vec<Task> {
        (0..count as u64)
            .map(|id| {
                let mut s = seed.to_vec();
                s.extend_from_slice(b"inference-task");
                s.extend_from_slice(&id.to_le_bytes());
                let mut rng = ChaCha8Rng::from_seed(sha256(&s));
                let x: Vec<f32> = (0..self.mlp.input())
                    .map(|_| rng.gen_range(-1.0..1.0))
                    .collect();
                Task {
                    id,
                    input: bytes(&x),
                }
            })
            .collect()
    }

    fn reference(&self, task: &Task) -> Vec<u8> {
        bytes(&self.mlp.forward(&f32s(&task.input)))
    }

    fn score(&self, _task: &Task, reference: &[u8], m: &Measured) -> Scored {
        let zero = |error: Option<Failure>| Scored {
            score: Score::ZERO,
            accuracy: Score::ZERO,
            efficiency: Score::ZERO,
            error,
        };
        let out = match &m.output {
            Ok(o) => o,
            Err(f) => return zero(Some(f.clone())),
        };
        if out.len() != reference.len() {
            return zero(Some(Failure::MalformedOutput(format!(
                "{} bytes, expected {}",
                out.len(),
                reference.len()
            ))));
        }
        let acc_units = accuracy_units(&f32s(reference), &f32s(out));
        let eff_units = ((self.ref_fuel as u128 * 1_000_000_000) / m.fuel.max(1) as u128)
            .min(1_000_000_000) as u64;
        let score = acc_units * eff_units / 1_000_000_000;
        Scored {
            score: Score::saturating_from_units(score),
            accuracy: Score::saturating_from_units(acc_units),
            efficiency: Score::saturating_from_units(eff_units),
            error: None,
        }
    }
}
