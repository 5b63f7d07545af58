//! A batch's reconstruction terms (the sums behind explained variance and MSE), reduced where the
//! rows are: on a GPU only `O(rows + d_out)` numbers cross to the host instead of the target and
//! its reconstruction (`2 × rows × d_out` floats: 8 GiB at 256 × 1,024 tokens and d_model 4,096).
//!
//! The per-dimension sums are fixed point ([`DIM_SUM_FRAC_BITS`]) so that sums over any grouping
//! of rows (batches, shards) are exact. The device computes them exactly too, in f64: each value
//! `v` splits into `hi = round(v·2²⁴)` and `lo = round((v·2²⁴ − hi)·2²⁴)`, both integers, and
//! `round(v·2⁴⁸) = hi·2²⁴ + lo` (the subtraction is exact by Sterbenz's lemma). Integer sums in
//! f64 are exact in any order while they stay below 2⁵³, which is checked per chunk; a chunk past
//! it is summed on the host.
use candle_core::{DType, Device, Tensor};

use crate::codes::SparseCodes;
use crate::error::{Error, Result};
use crate::sae::Sae;

/// Fractional bits of [`ReconTerms::dim_sum`].
pub const DIM_SUM_FRAC_BITS: i32 = 48;

/// `v` in fixed point with [`DIM_SUM_FRAC_BITS`] fractional bits (round half away from zero).
pub fn dim_fixed(v: f32) -> i128 {
    (v as f64 * f64::from(DIM_SUM_FRAC_BITS).exp2()).round() as i128
}

/// Gathered decoder rows per device chunk are capped at this many values (256 MiB in f32).
const GATHER_ELEMS: usize = 64 << 20;
/// Rows per device chunk at most (bounds the f64 temporaries: 4,096 × d_out × 8 bytes each).
const MAX_CHUNK_ROWS: usize = 4096;
/// f64 holds every integer below 2⁵³; the check keeps a margin of one bit.
const EXACT_F64_SUM: f64 = (1u64 << 52) as f64;

/// The reconstruction terms of a batch of rows: a target `y` (as the SAE sees it, see
/// [`Sae::prepare_target`]) and the SAE's reconstruction `ŷ` of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconTerms {
    /// `‖y_r − ŷ_r‖²` per row (accumulated in f64).
    pub row_sse: Vec<f32>,
    /// `‖y_r‖²` per row.
    pub row_sum_sq: Vec<f64>,
    /// `Σ_r dim_fixed(y_r[d])` over every row, per output dimension.
    pub dim_sum: Vec<i128>,
    /// The same sum over the `first_rows` given (a context's position 0, which an index may
    /// leave out of its statistics: subtracting this is exact).
    pub first_rows_dim_sum: Vec<i128>,
}

impl ReconTerms {
    /// The terms of host rows `y` and `y_hat` (`[rows, d]` row-major each).
    pub fn from_rows(y: &[f32], y_hat: &[f32], d: usize, first_rows: &[usize]) -> Result<Self> {
        let rows = y.len() / d.max(1);
        if y.len() != rows * d || y_hat.len() != y.len() {
            return Err(Error::Shape {
                what: "reconstruction target and its reconstruction".into(),
                expected: format!("two [rows, {d}] matrices"),
                found: vec![y.len(), y_hat.len()],
            });
        }
        check_first_rows(first_rows, rows)?;
        let d = d.max(1);
        let row_sse = y
            .chunks_exact(d)
            .zip(y_hat.chunks_exact(d))
            .map(|(a, b)| {
                a.iter()
                    .zip(b)
                    .map(|(&p, &q)| {
                        let e = p as f64 - q as f64;
                        e * e
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        let row_sum_sq = y
            .chunks_exact(d)
            .map(|row| row.iter().map(|&v| v as f64 * v as f64).sum())
            .collect();
        let mut dim_sum = vec![0i128; d];
        add_fixed_rows(&mut dim_sum, y.chunks_exact(d));
        let mut first_rows_dim_sum = vec![0i128; d];
        add_fixed_rows(
            &mut first_rows_dim_sum,
            first_rows.iter().map(|&r| &y[r * d..(r + 1) * d]),
        );
        Ok(ReconTerms {
            row_sse,
            row_sum_sq,
            dim_sum,
            first_rows_dim_sum,
        })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.row_sse.len()
    }

    /// These rows followed by `next`'s (same width).
    pub fn append(&mut self, next: ReconTerms) {
        self.row_sse.extend(next.row_sse);
        self.row_sum_sq.extend(next.row_sum_sq);
        add_into(&mut self.dim_sum, &next.dim_sum);
        add_into(&mut self.first_rows_dim_sum, &next.first_rows_dim_sum);
    }
}

fn add_into(acc: &mut Vec<i128>, more: &[i128]) {
    if acc.is_empty() {
        acc.extend_from_slice(more);
    } else {
        for (a, b) in acc.iter_mut().zip(more) {
            *a += b;
        }
    }
}

fn add_fixed_rows<'a>(acc: &mut [i128], rows: impl Iterator<Item = &'a [f32]>) {
    for row in rows {
        for (s, &v) in acc.iter_mut().zip(row) {
            *s += dim_fixed(v);
        }
    }
}

fn check_first_rows(first_rows: &[usize], rows: usize) -> Result<()> {
    match first_rows.iter().find(|&&r| r >= rows) {
        Some(&r) => Err(Error::Shape {
            what: "first rows".into(),
            expected: format!("row indices < {rows}"),
            found: vec![r],
        }),
        None => Ok(()),
    }
}

impl Sae {
    /// The reconstruction terms of `codes` (from [`Sae::encode`]) against the raw rows `target`
    /// of the hook the SAE reconstructs (`[rows, d_out]`, any device). On a CUDA device the
    /// decode and every sum run there; elsewhere on the host, from [`Sae::decode`].
    pub fn reconstruction_terms(
        &self,
        target: &Tensor,
        codes: &SparseCodes,
        first_rows: &[usize],
    ) -> Result<ReconTerms> {
        let y = self.prepare_target(target)?;
        if self.device.is_cuda() {
            return self.reconstruction_terms_on_device(&y, codes, first_rows, GATHER_ELEMS);
        }
        let y_hat = self.decode(codes)?;
        ReconTerms::from_rows(
            &y.flatten_all()?.to_vec1()?,
            &y_hat.flatten_all()?.to_vec1()?,
            self.d_out,
            first_rows,
        )
    }

    /// [`Sae::reconstruction_terms`] computed with tensor ops on `y`'s device (prepared target,
    /// f32 `[rows, d_out]`), `gather_elems` bounding each chunk's gathered decoder rows.
    pub(crate) fn reconstruction_terms_on_device(
        &self,
        y: &Tensor,
        codes: &SparseCodes,
        first_rows: &[usize],
        gather_elems: usize,
    ) -> Result<ReconTerms> {
        let rows = y.dim(0)?;
        let d = self.d_out;
        if codes.n_rows() != rows || codes.d_sae != self.d_sae {
            return Err(Error::Shape {
                what: "codes for the reconstruction target".into(),
                expected: format!("{rows} rows of d_sae {}", self.d_sae),
                found: vec![codes.n_rows(), codes.d_sae],
            });
        }
        if let Some(&f) = codes.features.iter().find(|&&f| f as usize >= self.d_sae) {
            return Err(Error::Shape {
                what: "codes".into(),
                expected: format!("feature ids < {}", self.d_sae),
                found: vec![f as usize],
            });
        }
        check_first_rows(first_rows, rows)?;
        let device = y.device();
        let w_dec = self.decoder_on(device)?;
        let b_dec = Tensor::from_slice(&self.b_dec, (1, d), device)?;
        let widest = (0..rows)
            .map(|r| codes.row_ptr[r + 1] - codes.row_ptr[r])
            .max()
            .unwrap_or(0);
        let chunk = (gather_elems / (widest.max(1) * d.max(1))).clamp(1, MAX_CHUNK_ROWS);
        // Every chunk's results stay on the device until the end: one copy of each kind per
        // batch, not one per chunk.
        let (mut sse, mut sum_sq, mut hi, mut lo, mut bounds) =
            (vec![], vec![], vec![], vec![], vec![]);
        let starts: Vec<usize> = (0..rows).step_by(chunk).collect();
        for &r0 in &starts {
            let n = chunk.min(rows - r0);
            let y64 = y.narrow(0, r0, n)?.to_dtype(DType::F64)?;
            let y_hat = self.decode_chunk_on(device, &w_dec, &b_dec, codes, r0, n)?;
            sse.push((&y64 - y_hat.to_dtype(DType::F64)?)?.sqr()?.sum(1)?);
            sum_sq.push(y64.sqr()?.sum(1)?);
            let sums = exact_dim_sum_parts(&y64)?;
            hi.push(sums.hi);
            lo.push(sums.lo);
            bounds.push(sums.bound);
        }
        let mut terms = ReconTerms {
            row_sse: Vec::with_capacity(rows),
            row_sum_sq: Vec::with_capacity(rows),
            dim_sum: vec![0; d],
            first_rows_dim_sum: vec![0; d],
        };
        if rows == 0 {
            return Ok(terms);
        }
        terms.row_sse = Tensor::cat(&sse, 0)?.to_dtype(DType::F32)?.to_vec1()?;
        terms.row_sum_sq = Tensor::cat(&sum_sq, 0)?.to_vec1()?;
        let hi: Vec<Vec<f64>> = Tensor::stack(&hi, 0)?.to_vec2()?;
        let lo: Vec<Vec<f64>> = Tensor::stack(&lo, 0)?.to_vec2()?;
        let bounds: Vec<f64> = Tensor::cat(&bounds, 0)?.to_vec1()?;
        let shift = 1i128 << (DIM_SUM_FRAC_BITS / 2);
        for (i, &r0) in starts.iter().enumerate() {
            // NaN (a non-finite target) also takes the host path.
            if bounds[i].is_nan() || bounds[i] >= EXACT_F64_SUM {
                let n = chunk.min(rows - r0);
                let host: Vec<f32> = y.narrow(0, r0, n)?.flatten_all()?.to_vec1()?;
                add_fixed_rows(&mut terms.dim_sum, host.chunks_exact(d.max(1)));
                continue;
            }
            for ((a, &h), &l) in terms.dim_sum.iter_mut().zip(&hi[i]).zip(&lo[i]) {
                *a += h as i128 * shift + l as i128;
            }
        }
        if !first_rows.is_empty() {
            let idx: Vec<u32> = first_rows.iter().map(|&r| r as u32).collect();
            let idx = Tensor::from_vec(idx, first_rows.len(), device)?;
            let picked: Vec<f32> = y.index_select(&idx, 0)?.flatten_all()?.to_vec1()?;
            add_fixed_rows(&mut terms.first_rows_dim_sum, picked.chunks_exact(d.max(1)));
        }
        Ok(terms)
    }

    /// The raw decoder `[d_sae, d_out]` on `device`, uploaded once per SAE and device.
    fn decoder_on(&self, device: &Device) -> Result<Tensor> {
        if let Some(t) = self.w_dec_device.get() {
            if t.device().same_device(device) {
                return Ok(t.clone());
            }
        }
        let t = Tensor::from_slice(&self.w_dec, (self.d_sae, self.d_out), device)?;
        // Only the SAE's own device is cached (a test may pass another).
        if device.same_device(&self.device) {
            let _ = self.w_dec_device.set(t.clone());
        }
        Ok(t)
    }

    /// `[n, d_out]` reconstruction of code rows `r0..r0 + n`: each row's decoder rows gathered
    /// (padded with feature 0 at weight 0 to the chunk's widest row), weighted and summed.
    fn decode_chunk_on(
        &self,
        device: &Device,
        w_dec: &Tensor,
        b_dec: &Tensor,
        codes: &SparseCodes,
        r0: usize,
        n: usize,
    ) -> Result<Tensor> {
        let d = self.d_out;
        let width = (r0..r0 + n)
            .map(|r| codes.row_ptr[r + 1] - codes.row_ptr[r])
            .max()
            .unwrap_or(0);
        let summed = if width == 0 {
            Tensor::zeros((n, d), DType::F32, device)?
        } else {
            let mut feats = vec![0u32; n * width];
            let mut vals = vec![0f32; n * width];
            for i in 0..n {
                let (f, v) = codes.row(r0 + i);
                feats[i * width..i * width + f.len()].copy_from_slice(f);
                vals[i * width..i * width + v.len()].copy_from_slice(v);
            }
            let feats = Tensor::from_vec(feats, n * width, device)?;
            let vals = Tensor::from_vec(vals, (n * width, 1), device)?;
            w_dec
                .index_select(&feats, 0)?
                .broadcast_mul(&vals)?
                .reshape((n, width, d))?
                .sum(1)?
        };
        Ok((summed.broadcast_add(b_dec)? * (1.0 / self.s_out as f64))?)
    }
}

/// One chunk's per-dimension sums of `hi` and `lo` (see the module doc), `[d]` f64 each, and
/// `[1]`: the largest `Σ_r |hi|`, which says whether those sums are exact.
struct DimSumParts {
    hi: Tensor,
    lo: Tensor,
    bound: Tensor,
}

fn exact_dim_sum_parts(y64: &Tensor) -> Result<DimSumParts> {
    let half_bits = f64::from(DIM_SUM_FRAC_BITS / 2).exp2();
    let scaled = y64.affine(half_bits, 0.0)?;
    let hi = scaled.round()?;
    let lo = (&scaled - &hi)?.affine(half_bits, 0.0)?.round()?;
    Ok(DimSumParts {
        bound: hi.abs()?.sum(0)?.max_keepdim(0)?,
        hi: hi.sum(0)?,
        lo: lo.sum(0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{fabricate_llama_scope, FabricateSpec};

    fn fabricated(d_model: usize, d_sae: usize, k: usize) -> Sae {
        let dir = tempfile::tempdir().unwrap();
        let spec = FabricateSpec {
            d_model,
            d_sae,
            k,
            hook_in: "blocks.0.hook_resid_post".into(),
            hook_out: "blocks.0.hook_resid_post".into(),
            norm: (4.0, 4.0),
            seed: 7,
        };
        fabricate_llama_scope(dir.path(), &spec).unwrap();
        Sae::load(dir.path(), &Device::Cpu).unwrap()
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
            })
            .collect()
    }

    /// The device path (here on the CPU) against the host's terms: the fixed-point sums equal,
    /// the f64 row sums to their rounding.
    fn check(sae: &Sae, y: Vec<f32>, first_rows: &[usize], gather_elems: usize) {
        let d = sae.d_out();
        let rows = y.len() / d;
        let x = Tensor::from_vec(y.clone(), (rows, d), &Device::Cpu).unwrap();
        let codes = sae.encode(&x).unwrap();
        let prepared = sae.prepare_target(&x).unwrap();
        let host = sae.reconstruction_terms(&x, &codes, first_rows).unwrap();
        let device = sae
            .reconstruction_terms_on_device(&prepared, &codes, first_rows, gather_elems)
            .unwrap();
        assert_eq!(device.dim_sum, host.dim_sum);
        assert_eq!(device.first_rows_dim_sum, host.first_rows_dim_sum);
        assert_eq!(device.n_rows(), rows);
        for r in 0..rows {
            let (a, b) = (device.row_sum_sq[r], host.row_sum_sq[r]);
            assert!((a - b).abs() <= 1e-12 * b.abs(), "row {r}: {a} vs {b}");
            let (a, b) = (device.row_sse[r], host.row_sse[r]);
            assert!(
                (a - b).abs() <= 1e-4 * host.row_sum_sq[r] as f32 + 1e-6,
                "row {r}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn device_terms_equal_host_terms() {
        let sae = fabricated(16, 64, 4);
        let mut y = values(37 * 16, 5);
        // Values whose fixed point rounds: halves of the last bit (away from zero) and below it.
        y[3] = (-49f32).exp2();
        y[4] = -(-49f32).exp2();
        y[5] = 3.0 * (-50f32).exp2();
        y[6] = 1e-30;
        y[7] = -0.5;
        check(&sae, y.clone(), &[0, 9, 20, 36], GATHER_ELEMS);
        // Many chunks (one or two rows each).
        check(&sae, y.clone(), &[0, 9, 20, 36], 16 * 4 * 2);
        // Values so large that the f64 sums could pass 2⁵³: summed on the host instead.
        let big: Vec<f32> = y.iter().map(|v| v * 3.0e7).collect();
        check(&sae, big, &[1], GATHER_ELEMS);
        // No rows.
        let empty = Tensor::zeros((0, 16), DType::F32, &Device::Cpu).unwrap();
        let none = sae
            .reconstruction_terms_on_device(&empty, &SparseCodes::new(64), &[], GATHER_ELEMS)
            .unwrap();
        assert_eq!((none.n_rows(), none.dim_sum), (0, vec![0; 16]));
    }

    #[test]
    fn host_terms_are_the_textbook_sums() {
        let d = 3;
        let y = [1.0f32, -2.0, 0.5, 4.0, 0.25, -1.0];
        let y_hat = [1.0f32, -1.0, 0.5, 3.0, 0.25, 1.0];
        let t = ReconTerms::from_rows(&y, &y_hat, d, &[1]).unwrap();
        assert_eq!(t.row_sse, [1.0, 5.0]);
        assert_eq!(t.row_sum_sq, [5.25, 17.0625]);
        let unit = 1i128 << DIM_SUM_FRAC_BITS;
        assert_eq!(t.dim_sum, [5 * unit, -7 * unit / 4, -unit / 2]);
        assert_eq!(t.first_rows_dim_sum, [4 * unit, unit / 4, -unit]);
        assert!(ReconTerms::from_rows(&y, &y_hat, d, &[2]).is_err());
        assert!(ReconTerms::from_rows(&y, &y_hat[..5], d, &[]).is_err());
    }
}
