//! The simulator's stand-in for the `inference` family's reference model (the real one lives
//! in `tally-exec`, which pulls in wasmtime and stays out of the simulator): a fixed linear map
//! whose weights come from SHA-256, so simulated hosters and validators compute the same
//! reference, and a score that is 1 for the exact reference output and falls with the
//! relative L1 error, 0 from 50 % on.

use tally_core::hash::tagged_sha256;
use tally_core::{Hotkey, Score};
use tally_protocol::payload::Tensor;

/// Output width of the toy model.
pub const OUTPUT: u32 = 16;

/// The toy model's output on `input` (`[OUTPUT]` f32), or why there is none.
pub fn reference(input: &Tensor) -> Result<Tensor, String> {
    let x = input.f32_values().ok_or("the input is not f32")?;
    let mut y = vec![0f32; OUTPUT as usize];
    for (j, yj) in y.iter_mut().enumerate() {
        let w = tagged_sha256(b"tally-sim/toy-model/v1", &[&(j as u64).to_le_bytes()]);
        for (i, xi) in x.iter().enumerate() {
            // weights in [-1, 1) from the digest's bytes
            let b = w[i % 32] as f32 / 128.0 - 1.0;
            *yj += b * xi;
        }
    }
    Tensor::f32(&[OUTPUT], &y)
}

/// The score of `output` against `reference`.
pub fn score(reference: &Tensor, output: &Tensor) -> Score {
    let (Some(r), Some(y)) = (reference.f32_values(), output.f32_values()) else {
        return Score::ZERO;
    };
    if r.len() != y.len() {
        return Score::ZERO;
    }
    let err: f64 = r.iter().zip(&y).map(|(a, b)| (a - b).abs() as f64).sum();
    let norm: f64 = r.iter().map(|a| a.abs() as f64).sum::<f64>().max(1e-9);
    let rel = err / norm;
    if rel >= 0.5 {
        return Score::ZERO;
    }
    Score::saturating_from_units(((1.0 - 2.0 * rel) * 1e9).round() as u64)
}

/// Scores every output against the toy model's reference on `input`.
pub fn score_all(
    input: &Tensor,
    outputs: &[(Hotkey, Tensor)],
) -> Result<Vec<(Hotkey, Score)>, String> {
    let r = reference(input)?;
    Ok(outputs.iter().map(|(h, o)| (*h, score(&r, o))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_scores_one_and_zeros_score_zero() {
        let x = Tensor::f32(&[64], &(0..64).map(|i| i as f32 / 64.0).collect::<Vec<_>>()).unwrap();
        let r = reference(&x).unwrap();
        assert_eq!(score(&r, &r), Score::ONE);
        let z = Tensor::f32(&[OUTPUT], &[0.0; OUTPUT as usize]).unwrap();
        assert_eq!(score(&r, &z), Score::ZERO);
    }
}
