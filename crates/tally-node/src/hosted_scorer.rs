//! Miner-hosted scoring: the [`HostedScorer`] trait a validator scores hosters' revealed outputs
//! through, and [`MlpHostedScorer`], the `inference` family's: the reference output is the
//! family's reference model run natively on the epoch's input, computed once per `(run, input)`
//! and cached, and each output scores its fixed-point accuracy
//! ([`tally_exec::inference::accuracy_units`]), the same curve validator-hosted scoring uses.

use std::sync::Mutex;
use tally_core::{Hash32, Hotkey, Score};
use tally_exec::inference::{accuracy_units, Mlp};
use tally_protocol::payload::Tensor;

/// Scores hosters' outputs for one run.
pub trait HostedScorer: Send + Sync {
    /// Each output's score against this node's reference output on `input`, or why the
    /// reference could not be computed.
    fn score(
        &self,
        run: u64,
        input: &Tensor,
        outputs: &[(Hotkey, Tensor)],
    ) -> Result<Vec<(Hotkey, Score)>, String>;
}

/// The `inference` family's hosted scorer: a reference MLP run natively.
pub struct MlpHostedScorer {
    mlp: Mlp,
    /// The last reference computed: `(run, SHA-256 of the input's values, output)`.
    cache: Mutex<Option<(u64, Hash32, Vec<f32>)>>,
}

impl MlpHostedScorer {
    /// A scorer with `mlp` as the reference model.
    pub fn new(mlp: Mlp) -> MlpHostedScorer {
        MlpHostedScorer {
            mlp,
            cache: Mutex::new(None),
        }
    }

    /// The reference output on `input` for `run` (cached per run and input).
    pub fn reference(&self, run: u64, input: &Tensor) -> Result<Vec<f32>, String> {
        let x = input
            .f32_values()
            .ok_or_else(|| "the epoch's input is not an f32 tensor".to_string())?;
        if x.len() != self.mlp.input() {
            return Err(format!(
                "the epoch's input has {} values; the reference model takes {}",
                x.len(),
                self.mlp.input()
            ));
        }
        let digest = tally_core::sha256(&input.data);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((r, d, y)) = c.as_ref() {
            if *r == run && *d == digest {
                return Ok(y.clone());
            }
        }
        let y = self.mlp.forward(&x);
        *c = Some((run, digest, y.clone()));
        Ok(y)
    }
}

impl HostedScorer for MlpHostedScorer {
    fn score(
        &self,
        run: u64,
        input: &Tensor,
        outputs: &[(Hotkey, Tensor)],
    ) -> Result<Vec<(Hotkey, Score)>, String> {
        let reference = self.reference(run, input)?;
        Ok(outputs
            .iter()
            .map(|(h, t)| {
                let units = t.f32_values().map_or(0, |y| accuracy_units(&reference, &y));
                (*h, Score::saturating_from_units(units))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_exec::inference::Inference;

    #[test]
    fn the_reference_scores_one_and_others_less() {
        let mlp = Inference::default_mlp(7);
        let x: Vec<f32> = (0..64).map(|i| (i as f32) / 64.0 - 0.5).collect();
        let input = Tensor::f32(&[64], &x).unwrap();
        let y = mlp.forward(&x);
        let s = MlpHostedScorer::new(mlp);
        let noisy: Vec<f32> = y.iter().map(|v| v * 1.01).collect();
        let zeros = vec![0.0f32; 16];
        let outs = vec![
            (Hotkey([1; 32]), Tensor::f32(&[16], &y).unwrap()),
            (Hotkey([2; 32]), Tensor::f32(&[16], &noisy).unwrap()),
            (Hotkey([3; 32]), Tensor::f32(&[16], &zeros).unwrap()),
            (Hotkey([4; 32]), Tensor::f32(&[8], &zeros[..8]).unwrap()),
        ];
        let got = s.score(3, &input, &outs).unwrap();
        assert_eq!(got[0].1, Score::ONE);
        assert!(
            got[1].1 > Score::ZERO && got[1].1 < Score::ONE,
            "{:?}",
            got[1]
        );
        assert_eq!(got[2].1, Score::ZERO);
        assert_eq!(got[3].1, Score::ZERO);
        // a wrong-sized input is an error, not a panic
        let bad = Tensor::f32(&[8], &zeros[..8]).unwrap();
        assert!(s.score(3, &bad, &outs).is_err());
    }
}
