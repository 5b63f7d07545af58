//! The check that a batch's hook rows are finite before they reach an SAE: a NaN or an infinity
//! names its hook, context and position instead of spreading into the statistics.
use candle_core::Tensor;
use scopedex_model::HookPoint;

use crate::error::{Error, Result};

/// Whether every value of `rows` is finite, by one reduction on their device: `0·x` is 0 for a
/// finite `x` and NaN for an infinite or NaN one, and a sum of zeros is exactly 0.
fn all_finite_on_device(rows: &Tensor) -> Result<bool> {
    let zeros = rows
        .affine(0.0, 0.0)?
        .sum_all()?
        .to_dtype(candle_core::DType::F32)?;
    Ok(zeros.to_scalar::<f32>()? == 0.0)
}

/// Fails on the first NaN / infinity in `rows` (a hook's rows, context after context), naming
/// the hook, context and position: statistics computed from such values would be garbage.
pub(crate) fn check_finite(
    hook: HookPoint,
    rows: &Tensor,
    context_ids: &[u64],
    tokens: &[&[u32]],
) -> Result<()> {
    // On a GPU, one reduction there instead of copying every row to the host; the rows cross
    // only when something is not finite, to say where.
    if !rows.device().is_cpu() && all_finite_on_device(rows)? {
        return Ok(());
    }
    let d = rows.dim(1)?.max(1);
    let host: Vec<f32> = rows.flatten_all()?.to_vec1()?;
    let Some(i) = host.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let mut row = i / d;
    for (&id, t) in context_ids.iter().zip(tokens) {
        if row < t.len() {
            return Err(Error::NonFinite {
                hook: hook.to_string(),
                context_id: id,
                position: row,
                value: host[i],
            });
        }
        row -= t.len();
    }
    Err(Error::NonFinite {
        hook: hook.to_string(),
        context_id: context_ids.last().copied().unwrap_or(0),
        position: row,
        value: host[i],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_finiteness_check_finds_nan_and_infinities() {
        let t = |v: Vec<f32>| Tensor::from_vec(v, (2, 2), &candle_core::Device::Cpu).unwrap();
        assert!(all_finite_on_device(&t(vec![1.0, -3.0e38, 0.0, 2.0])).unwrap());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(!all_finite_on_device(&t(vec![1.0, 2.0, bad, 4.0])).unwrap());
        }
    }
}
