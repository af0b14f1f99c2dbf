//! Loading the reference MLP from a safetensors file.
//!
//! The format: an 8-byte little-endian header length, a JSON header mapping tensor names to
//! `{"dtype", "shape", "data_offsets": [start, end]}`, then the data. The MLP reads tensors
//! `layers.{i}.weight` (`[out, in]`, F32) and `layers.{i}.bias` (`[out]`, F32) for i = 0, 1, …
//! Parsing is bounded (header at most 1 MiB, every offset inside the data, shapes matching
//! lengths, finite values only) and never panics on a malformed file.

use crate::inference::{Layer, Mlp};
use std::collections::BTreeMap;

/// Largest header accepted.
pub const MAX_HEADER: u64 = 1 << 20;

fn tensor(
    header: &serde_json::Value,
    data: &[u8],
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let t = header
        .get(name)
        .ok_or_else(|| format!("missing tensor {name}"))?;
    if t.get("dtype").and_then(|d| d.as_str()) != Some("F32") {
        return Err(format!("{name}: only F32 tensors are supported"));
    }
    let shape: Vec<usize> = t
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| format!("{name}: no shape"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| format!("{name}: bad shape"))
        })
        .collect::<Result<_, _>>()?;
    let offs = t
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .ok_or_else(|| format!("{name}: no data_offsets"))?;
    let (a, b) = match offs.as_slice() {
        [a, b] => (
            a.as_u64().unwrap_or(u64::MAX) as usize,
            b.as_u64().unwrap_or(0) as usize,
        ),
        _ => return Err(format!("{name}: data_offsets must be [start, end]")),
    };
    let count = shape
        .iter()
        .try_fold(1usize, |x, d| x.checked_mul(*d))
        .ok_or_else(|| format!("{name}: shape overflows"))?;
    let bytes = data
        .get(a..b)
        .ok_or_else(|| format!("{name}: offsets outside the data"))?;
    if count.checked_mul(4) != Some(bytes.len()) {
        return Err(format!(
            "{name}: shape {shape:?} does not match {} bytes",
            bytes.len()
        ));
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(format!("{name}: non-finite values"));
    }
    Ok((shape, v))
}

/// Reads an MLP from safetensors bytes.
pub fn load_mlp(bytes: &[u8]) -> Result<Mlp, String> {
    let n = bytes
        .get(..8)
        .map(|h| u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]))
        .ok_or("file shorter than its header length")?;
    if n > MAX_HEADER {
        return Err(format!(
            "header of {n} bytes is over the {MAX_HEADER}-byte cap"
        ));
    }
    let end = 8 + n as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..end).ok_or("file shorter than its header")?)
            .map_err(|e| format!("header is not JSON: {e}"))?;
    let data = &bytes[end..];
    let mut layers = Vec::new();
    for i in 0..64 {
        let w = format!("layers.{i}.weight");
        if header.get(&w).is_none() {
            break;
        }
        let (ws, wv) = tensor(&header, data, &w)?;
        let (bs, bv) = tensor(&header, data, &format!("layers.{i}.bias"))?;
        let [out, inp] = ws[..] else {
            return Err(format!("{w}: must be 2-D [out, in]"));
        };
        if bs != [out] {
            return Err(format!("layers.{i}.bias: shape {bs:?}, expected [{out}]"));
        }
        if let Some(prev) = layers.last().map(|l: &Layer| l.output) {
            if prev != inp {
                return Err(format!(
                    "{w}: input {inp} does not follow the previous output {prev}"
                ));
            }
        }
        layers.push(Layer {
            input: inp,
            output: out,
            w: wv,
            b: bv,
        });
    }
    if layers.is_empty() {
        return Err("no layers.0.weight tensor".into());
    }
    Ok(Mlp { layers })
}

/// Writes an MLP as safetensors bytes (for tests and for publishing a model).
pub fn save_mlp(mlp: &Mlp) -> Vec<u8> {
    let mut header = BTreeMap::new();
    let mut data: Vec<u8> = Vec::new();
    for (i, l) in mlp.layers.iter().enumerate() {
        for (name, shape, vals) in [
            (format!("layers.{i}.weight"), vec![l.output, l.input], &l.w),
            (format!("layers.{i}.bias"), vec![l.output], &l.b),
        ] {
            let start = data.len();
            data.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
            header.insert(name, serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}));
        }
    }
    let h = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed_files() {
        let m = Mlp::from_seed(3, &[8, 4, 2]);
        let bytes = save_mlp(&m);
        assert_eq!(load_mlp(&bytes).unwrap(), m);
        assert!(load_mlp(&bytes[..4]).is_err());
        assert!(load_mlp(&bytes[..bytes.len() - 4])
            .unwrap_err()
            .contains("outside"));
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&(u64::MAX).to_le_bytes());
        assert!(load_mlp(&huge).unwrap_err().contains("cap"));
        let mut nan = m.clone();
        nan.layers[0].w[0] = f32::NAN;
        assert!(load_mlp(&save_mlp(&nan))
            .unwrap_err()
            .contains("non-finite"));
        assert!(load_mlp(&save_mlp(&Mlp { layers: vec![] })).is_err());
    }
}
