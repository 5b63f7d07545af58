//! With the `cuda` feature: compile kernels/topk.cu to PTX with nvcc (no GPU needed), embedded
//! by src/device_select.rs with include_str!. The driver JIT-compiles the PTX for the GPU it runs on, so
//! one virtual arch (compute_XX) serves that GPU and every newer one.
//! nvcc: $NVCC, else $CUDA_ROOT/bin/nvcc (or CUDA_PATH / CUDA_HOME), else `nvcc` on PATH.
//! Arch: $CUDA_COMPUTE_CAP (as candle-kernels reads it: "90" -> compute_90), default 80.
use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels/topk.cu");
    for v in [
        "NVCC",
        "NVCC_CCBIN",
        "CUDA_ROOT",
        "CUDA_PATH",
        "CUDA_HOME",
        "CUDA_COMPUTE_CAP",
    ] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = env::var_os("NVCC").map(PathBuf::from).unwrap_or_else(|| {
        ["CUDA_ROOT", "CUDA_PATH", "CUDA_HOME"]
            .iter()
            .filter_map(env::var_os)
            .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("nvcc"))
    });
    let cap: String = env::var("CUDA_COMPUTE_CAP")
        .unwrap_or_else(|_| "80".into())
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("topk.ptx");
    let mut cmd = Command::new(&nvcc);
    cmd.args([
        "--ptx",
        "-O3",
        "-std=c++17",
        &format!("-arch=compute_{cap}"),
        "-o",
    ])
    .arg(&out)
    .arg("kernels/topk.cu");
    if let Some(ccbin) = env::var_os("NVCC_CCBIN") {
        cmd.arg("-ccbin").arg(ccbin);
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run {} ({e}): install the toolkit (scripts/install-cuda-toolkit.sh) and set CUDA_ROOT", nvcc.display())
    });
    assert!(status.success(), "nvcc failed on kernels/topk.cu: {status}");
}
