//! SAE encode throughput against the GEMM alone, at Llama Scope and SmolLM2 shapes.
//!
//! For each shape a random TopK SAE (decoder norms ≠ 1, so the gate multiply is exercised) is
//! built in memory; the same token batch is timed through (a) the pre-activation GEMM alone,
//! chunk by chunk exactly as `Sae::encode` runs it, and (b) the full `Sae::encode` (GEMM + bias,
//! gate, top-k selection, CSR output). Reported: tokens/s, GEMM GFLOP/s, and the selection +
//! sparsification time (timed alone on the same pre-activations) as a percentage of GEMM time
//! (goal ≤ 15 %). Best of 5 (encode: 3) after a warm-up, so other load on the machine inflates
//! each figure as little as possible.
//!
//! Run: `cargo bench -p scopedex-benches --bench encode` (about a minute; `SCOPEDEX_BENCH_QUICK=1`
//! shrinks the token counts ~4x).
use std::time::Instant;

use candle_core::{Device, Tensor};
use scopedex_sae::{DatasetNorm, LlamaScopeHyperparams, LlamaScopeTensors, Sae};

struct Shape {
    name: &'static str,
    d_model: usize,
    d_sae: usize,
    k: usize,
    tokens: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "Llama Scope 8x",
        d_model: 4096,
        d_sae: 32768,
        k: 50,
        tokens: 256,
    },
    Shape {
        name: "SmolLM2 8x",
        d_model: 576,
        d_sae: 4608,
        k: 32,
        tokens: 4096,
    },
    Shape {
        name: "SmolLM2 32x",
        d_model: 576,
        d_sae: 18432,
        k: 32,
        tokens: 2048,
    },
];

/// Deterministic approximately-normal values (sum of 4 uniforms, xorshift64*).
fn randn(n: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|_| (next() + next() + next() + next() - 2.0) * 1.732 * scale)
        .collect()
}

fn build(shape: &Shape, dev: &Device) -> Result<Sae, Box<dyn std::error::Error>> {
    let (m, s) = (shape.d_model, shape.d_sae);
    let params = LlamaScopeHyperparams {
        d_model: m,
        d_sae: s,
        expansion_factor: (s / m) as u32,
        hook_point_in: "blocks.0.hook_resid_post".into(),
        hook_point_out: "blocks.0.hook_resid_post".into(),
        act_fn: "topk".into(),
        jump_relu_threshold: None,
        top_k: Some(shape.k),
        norm_activation: "dataset-wise".into(),
        dataset_average_activation_norm: Some(DatasetNorm {
            input: 10.0,
            output: 10.0,
        }),
        sparsity_include_decoder_norm: true,
        use_decoder_bias: true,
        apply_decoder_bias_to_pre_encoder: false,
    };
    let scale = 1.0 / (m as f32).sqrt();
    let tensors = LlamaScopeTensors {
        encoder_weight: Tensor::from_vec(randn(s * m, scale, 1), (s, m), dev)?,
        encoder_bias: Tensor::from_vec(randn(s, 0.1, 2), s, dev)?,
        decoder_weight: Tensor::from_vec(randn(m * s, scale * 1.5, 3), (m, s), dev)?,
        decoder_bias: Tensor::from_vec(randn(m, 0.1, 4), m, dev)?,
    };
    Ok(Sae::from_llama_scope(shape.name, &params, &tensors, dev)?)
}

/// Best wall time of `reps` runs after one warm-up.
fn best<F: FnMut() -> Result<(), Box<dyn std::error::Error>>>(
    reps: usize,
    mut f: F,
) -> Result<f64, Box<dyn std::error::Error>> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let quick = std::env::var_os("SCOPEDEX_BENCH_QUICK").is_some();
    println!(
        "threads: {}  (GEMM: {}; best of 5, encode best of 3)\n",
        rayon_threads(),
        scopedex_linalg::init()
    );
    println!(
        "| shape | d_in → d_sae, k | tokens | GEMM s | GEMM GFLOP/s | selection s | selection / GEMM \
         | encode s | encode tok/s | mean L0 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for shape in &SHAPES {
        let sae = build(shape, &dev)?;
        let tokens = if quick {
            shape.tokens / 4
        } else {
            shape.tokens
        };
        let x = Tensor::from_vec(
            randn(
                tokens * shape.d_model,
                10.0 / (shape.d_model as f32).sqrt(),
                5,
            ),
            (tokens, shape.d_model),
            &dev,
        )?;
        let chunk = sae.chunk_rows();
        let chunks: Vec<Tensor> = (0..tokens)
            .step_by(chunk)
            .map(|s| x.narrow(0, s, chunk.min(tokens - s)))
            .collect::<Result<_, _>>()?;
        // (a) GEMM alone, chunk by chunk as encode runs it; keep the last outputs for (b).
        let mut pre: Vec<Tensor> = Vec::new();
        let gemm = best(5, || {
            pre = chunks
                .iter()
                .map(|c| sae.preactivations(c))
                .collect::<Result<_, _>>()?;
            Ok(())
        })?;
        // (b) bias + gate + selection + CSR on the same pre-activations.
        let select = best(5, || {
            for p in &pre {
                std::hint::black_box(sae.sparsify(p)?);
            }
            Ok(())
        })?;
        drop(pre);
        // (c) the whole encode.
        let mut l0 = 0.0;
        let encode = best(3, || {
            let codes = sae.encode(&x)?;
            l0 = codes.mean_l0();
            Ok(())
        })?;
        let flops = 2.0 * tokens as f64 * shape.d_model as f64 * shape.d_sae as f64;
        println!(
            "| {} | {} → {}, k {} | {} | {:.3} | {:.1} | {:.4} | {:.1} % | {:.3} | {:.0} | {:.1} |",
            shape.name,
            shape.d_model,
            shape.d_sae,
            shape.k,
            tokens,
            gemm,
            flops / gemm / 1e9,
            select,
            100.0 * select / gemm,
            encode,
            tokens as f64 / encode,
            l0
        );
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
