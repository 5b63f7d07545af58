//! Model forward throughput (SmolLM2-135M, batch 16 × 128 tokens, all 30 blocks, no LM head)
//! against the f32 GEMM rate of the same matmul shapes (the roofline probe: candle's kernel and
//! the BLAS `scopedex_linalg` picks), in one run.
//!
//! Reported: forward tokens/s (best of 5 after a warm-up), the forward's achieved GFLOP/s
//! (matmul FLOPs only, attention included) and its fraction of the GEMM probe, per-shape GEMM
//! GFLOP/s, and peak RSS. When `SCOPEDEX_REF_PYTHON` names a Python with torch, transformers
//! and gguf, `benches/hf_forward.py` runs HF transformers on the same tokens and thread count, its
//! forwards alternating with ours (a shared machine's load then falls on both), and the ratios
//! are printed.
//!
//! Run: `cargo bench -p scopedex-benches --bench forward` (or, without a release build of every
//! dependency, `cargo test -p scopedex-benches --bench forward` — dependencies are optimised in
//! the dev profile too). `SCOPEDEX_MODEL` overrides the model path, `SCOPEDEX_BENCH_BATCH` and
//! `SCOPEDEX_BENCH_SEQ` the batch shape, `SCOPEDEX_BENCH_LAYERS` how many blocks run (a forward
//! to a hooked layer), `SCOPEDEX_BENCH_DEVICE` (`cpu` or `cuda`, a `cuda` build) and
//! `SCOPEDEX_BENCH_DTYPE` (`f32`, `bf16`, `f16`) where it runs. `SCOPEDEX_BENCH_JSON=FILE` also
//! writes the figures as JSON (scripts/gpu-check.sh reads it).
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use scopedex_model::{Backend, CapturePlan, HookPoint, Model};

const BATCH: usize = 16;
/// Timed forwards of each side (alternating with the reference's when there is one).
const ROUNDS: usize = 5;
const SEQ: usize = 128;

/// `name` from the environment, else `default` (the batch shape can be overridden to compare at
/// the indexer's shorter contexts: `SCOPEDEX_BENCH_BATCH=32 SCOPEDEX_BENCH_SEQ=32`).
fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

fn best<F: FnMut() -> Result<(), Box<dyn std::error::Error>>>(
    n: usize,
    mut f: F,
) -> Result<f64, Box<dyn std::error::Error>> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Deterministic token ids in `[3, vocab)`.
fn tokens(vocab: usize, batch: usize, seq_len: usize) -> Vec<Vec<u32>> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..batch)
        .map(|_| {
            let mut seq = vec![1u32];
            while seq.len() < seq_len {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                seq.push(3 + ((s >> 33) as usize % (vocab - 3)) as u32);
            }
            seq
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model_path = std::env::var_os("SCOPEDEX_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let dev = match std::env::var("SCOPEDEX_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let dtype = match std::env::var("SCOPEDEX_BENCH_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        _ => DType::F32,
    };
    let (batch, seq_len) = (
        env_usize("SCOPEDEX_BENCH_BATCH", BATCH),
        env_usize("SCOPEDEX_BENCH_SEQ", SEQ),
    );
    let t0 = Instant::now();
    let full = Model::read_config(&model_path)?.n_layers;
    let layers = env_usize("SCOPEDEX_BENCH_LAYERS", full).min(full);
    let model = Model::load_blocks(&model_path, &Backend::new(&dev, dtype)?, layers)?;
    let load_s = t0.elapsed().as_secs_f64();
    let mut cfg = model.config().clone();
    cfg.n_layers = layers;
    let threads = candle_core::utils::get_num_threads();
    println!(
        "model: {}  (load {load_s:.2} s, {})",
        model_path.display(),
        model.backend().describe()
    );
    println!(
        "threads: {threads}; batch {batch} x {seq_len} tokens, {} blocks, no LM head\n",
        cfg.n_layers
    );

    // GEMM probe: the model's matmul shapes at M = batch tokens.
    let m = batch * seq_len;
    let (d, hd) = (cfg.d_model, cfg.head_dim);
    let qkv = (cfg.n_heads + 2 * cfg.n_kv_heads) * hd;
    let shapes = [
        ("qkv", d, qkv),
        ("o_proj", cfg.n_heads * hd, d),
        ("gate+up", d, 2 * cfg.d_mlp),
        ("down", cfg.d_mlp, d),
    ];
    // Both kernels on the same shapes: candle's own matmul (the `gemm` crate) and the one the
    // model uses (`scopedex_linalg`: a BLAS when installed).
    let backend = scopedex_linalg::init();
    println!("GEMM backend: {backend}\n");
    println!("| GEMM M×K×N | candle s | candle GFLOP/s | scopedex s | scopedex GFLOP/s | ratio |");
    println!("|---|---|---|---|---|---|");
    let mut probe_flops = 0.0;
    let (mut candle_s, mut probe_s) = (0.0, 0.0);
    for (name, k, n) in shapes {
        let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?.to_dtype(dtype)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &dev)?.to_dtype(dtype)?;
        let sc = best(5, || {
            a.matmul(&b)?;
            dev.synchronize()?;
            Ok(())
        })?;
        let s = best(5, || {
            scopedex_linalg::matmul(&a, &b)?;
            dev.synchronize()?;
            Ok(())
        })?;
        let flops = 2.0 * (m * k * n) as f64;
        probe_flops += flops;
        candle_s += sc;
        probe_s += s;
        println!(
            "| {name} {m}×{k}×{n} | {sc:.4} | {:.1} | {s:.4} | {:.1} | {:.2}× |",
            flops / sc / 1e9,
            flops / s / 1e9,
            sc / s
        );
    }
    let probe_gflops = probe_flops / probe_s / 1e9;
    println!(
        "| all four (time-weighted) | {candle_s:.4} | {:.1} | {probe_s:.4} | {probe_gflops:.1} | {:.2}× |\n",
        probe_flops / candle_s / 1e9,
        candle_s / probe_s
    );

    // Forward. With a reference, its runs alternate with ours (after a warm-up of each), so a
    // neighbour's load on a shared machine falls on both; best of `ROUNDS` each.
    let seqs = tokens(cfg.vocab_size, batch, seq_len);
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let plan = CapturePlan::new([HookPoint::ResidPost(cfg.n_layers - 1)]);
    let mut reference = match std::env::var_os("SCOPEDEX_REF_PYTHON") {
        Some(py) => Some(HfReference::start(&py, &root, &model_path, &seqs, threads)?),
        None => None,
    };
    let ours = || -> Result<f64, Box<dyn std::error::Error>> {
        let t = Instant::now();
        model.forward_capture(&refs, &plan)?;
        dev.synchronize()?;
        Ok(t.elapsed().as_secs_f64())
    };
    ours()?;
    let (mut s, mut hf_s) = (f64::INFINITY, f64::INFINITY);
    let (mut ours_runs, mut hf_runs, mut round_ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let a = ours()?;
        s = s.min(a);
        ours_runs.push(a);
        if let Some(r) = reference.as_mut() {
            // Both libraries' idle worker threads spin for a while after a run.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let b = r.run()?;
            hf_s = hf_s.min(b);
            hf_runs.push(b);
            round_ratios.push(b / a);
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    let toks = (batch * seq_len) as f64;
    // Per token per layer: projections 2·d·(qkv + d + 3·d_mlp) + attention 2·2·T_avg·n_heads·hd.
    let proj = 2.0 * (d * (qkv + d) + 3 * d * cfg.d_mlp) as f64;
    let attn = 4.0 * ((seq_len + 1) as f64 / 2.0) * (cfg.n_heads * hd) as f64;
    let flops = toks * cfg.n_layers as f64 * (proj + attn);
    let gflops = flops / s / 1e9;
    println!(
        "| forward (best of {ROUNDS}) | s | tokens/s | GFLOP/s | of GEMM probe | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| scopedex ({dtype:?}) | {s:.3} | {:.0} | {gflops:.1} | {:.0} % | {:.0} |",
        toks / s,
        100.0 * gflops / probe_gflops,
        peak_rss_mb()
    );
    eprintln!("runs: ours {ours_runs:.3?}, HF {hf_runs:.3?}");
    if reference.is_some() {
        let hf_gflops = flops / hf_s / 1e9;
        round_ratios.sort_by(f64::total_cmp);
        println!(
            "| HF transformers (torch f32) | {hf_s:.3} | {:.0} | {hf_gflops:.1} | {:.0} % | — |\n\n\
             scopedex / HF = {:.2}x (best against best); per alternating round: median {:.2}x, \
             range {:.2}–{:.2}x",
            toks / hf_s,
            100.0 * hf_gflops / probe_gflops,
            hf_s / s,
            round_ratios[round_ratios.len() / 2],
            round_ratios[0],
            round_ratios[round_ratios.len() - 1],
        );
    }
    if let Some(path) = std::env::var_os("SCOPEDEX_BENCH_JSON") {
        let json = serde_json::json!({
            "backend": model.backend().describe(),
            "batch": batch, "seq_len": seq_len, "layers": layers,
            "seconds": s, "tokens_per_s": toks / s, "gflops": gflops,
            "gemm_probe_gflops": probe_gflops,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

/// HF transformers in a child process (`benches/hf_forward.py`) that runs one forward of the
/// same tokens each time it is asked.
struct HfReference {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl HfReference {
    /// Starts the reference and waits until it has loaded the model and run its warm-up.
    fn start(
        python: &std::ffi::OsStr,
        root: &std::path::Path,
        model: &std::path::Path,
        seqs: &[Vec<u32>],
        threads: usize,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let ids_path = std::env::temp_dir().join("scopedex-forward-bench-ids.json");
        std::fs::write(&ids_path, serde_json::to_string(seqs)?)?;
        let mut child = Command::new(python)
            .arg(root.join("benches/hf_forward.py"))
            .arg(model)
            .arg(&ids_path)
            .arg(threads.to_string())
            // Our process's allocator knobs are not the reference's.
            .env_remove("GLIBC_TUNABLES")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut r = HfReference {
            child,
            stdin,
            stdout,
        };
        match r.stdout.next() {
            Some(Ok(line)) if line.trim() == "ready" => Ok(r),
            other => {
                let _ = r.child.wait();
                Err(format!("HF reference did not start (said {other:?}; see its stderr)").into())
            }
        }
    }

    /// One forward's seconds, as the reference timed it.
    fn run(&mut self) -> Result<f64, Box<dyn std::error::Error>> {
        use std::io::Write;
        writeln!(self.stdin, "run")?;
        self.stdin.flush()?;
        let line = self.stdout.next().ok_or("HF reference exited")??;
        Ok(line
            .strip_prefix("seconds=")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("HF reference said {line:?}"))?)
    }
}

impl Drop for HfReference {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "stop");
        let _ = self.child.wait();
    }
}
