//! A CBLAS `sgemm` loaded with `dlopen` at first use.
//!
//! Why at run time rather than linked: the build needs no BLAS, a machine without one still
//! runs (on the portable kernel), and the one knob OpenBLAS needs on this CPU can be set for
//! our process alone before the library initialises. Debian's OpenBLAS 0.3.21 predates AMD
//! Zen 4 and, auto-detecting, falls back to its SSE3 "Prescott" kernel (~67 GFLOP/s on the
//! 2-core CI machine); told `OPENBLAS_CORETYPE=SKYLAKEX` on a CPU with the AVX-512 subsets that
//! kernel uses, it runs at ~300 GFLOP/s (measured by `benches/` `gemm`). OpenBLAS reads the
//! variable in its load-time constructor, so it is set (only when unset) just before `dlopen`.
use std::ffi::c_int;

use libloading::Library;

/// `cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`.
type SgemmFn = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);
type SetThreadsFn = unsafe extern "C" fn(c_int);
type CoreNameFn = unsafe extern "C" fn() -> *const std::ffi::c_char;

pub(crate) const ROW_MAJOR: c_int = 101;
pub(crate) const NO_TRANS: c_int = 111;
pub(crate) const TRANS: c_int = 112;

/// Library names tried in order when `SCOPEDEX_BLAS` does not name a file.
const CANDIDATES: &[&str] = &[
    "libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "libopenblas.so",
];

pub(crate) struct Blas {
    sgemm: SgemmFn,
    set_threads: Option<SetThreadsFn>,
    /// Where it was loaded from and the kernel it chose, for logs and benchmarks.
    pub(crate) description: String,
    // Keeps the function pointers valid for the life of the process.
    _lib: Library,
}

impl Blas {
    /// Loads the BLAS named by `SCOPEDEX_BLAS` (a path), none when it is `off`, otherwise the
    /// first of [`CANDIDATES`] that opens. Errors are returned as text for the log line.
    pub(crate) fn load() -> Result<Option<Blas>, String> {
        let choice = std::env::var("SCOPEDEX_BLAS").unwrap_or_default();
        if choice.eq_ignore_ascii_case("off") || choice == "0" {
            return Ok(None);
        }
        select_openblas_kernel();
        let names: Vec<String> = if choice.is_empty() || choice.eq_ignore_ascii_case("auto") {
            CANDIDATES.iter().map(|s| s.to_string()).collect()
        } else {
            vec![choice.clone()]
        };
        let mut errors = Vec::new();
        for name in &names {
            // SAFETY: loading a shared library runs its constructors; OpenBLAS's only read the
            // environment and start its thread pool.
            match unsafe { Library::new(name) } {
                Ok(lib) => return Self::from_library(lib, name).map(Some),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        if choice.is_empty() || choice.eq_ignore_ascii_case("auto") {
            // Not installed: the portable kernel is the documented fallback.
            tracing::debug!("no BLAS found ({})", errors.join("; "));
            Ok(None)
        } else {
            Err(format!("SCOPEDEX_BLAS={choice}: {}", errors.join("; ")))
        }
    }

    fn from_library(lib: Library, name: &str) -> Result<Blas, String> {
        // SAFETY: the symbol types are CBLAS's and OpenBLAS's published C signatures.
        unsafe {
            let sgemm = *lib
                .get::<SgemmFn>(b"cblas_sgemm\0")
                .map_err(|e| format!("{name}: no cblas_sgemm: {e}"))?;
            let set_threads = lib
                .get::<SetThreadsFn>(b"openblas_set_num_threads\0")
                .ok()
                .map(|s| *s);
            let core = lib
                .get::<CoreNameFn>(b"openblas_get_corename\0")
                .ok()
                .map(|f| {
                    let p = f();
                    if p.is_null() {
                        String::new()
                    } else {
                        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
                    }
                })
                .unwrap_or_default();
            let description = if core.is_empty() {
                name.to_string()
            } else {
                format!("{name} ({core})")
            };
            Ok(Blas {
                sgemm,
                set_threads,
                description,
                _lib: lib,
            })
        }
    }

    /// Caps the library's own thread pool (OpenBLAS otherwise uses every core).
    pub(crate) fn set_threads(&self, n: usize) {
        if let Some(f) = self.set_threads {
            // SAFETY: plain C call with an int.
            unsafe { f(n.max(1) as c_int) }
        }
    }

    /// Row-major `C = alpha·op(A)·op(B) + beta·C`; the caller has checked every bound.
    ///
    /// # Safety
    /// `a`, `b`, `c` must hold the elements the dimensions and leading dimensions address.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn sgemm(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: *const f32,
        lda: usize,
        b: *const f32,
        ldb: usize,
        beta: f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let t = |x: bool| if x { TRANS } else { NO_TRANS };
        (self.sgemm)(
            ROW_MAJOR,
            t(trans_a),
            t(trans_b),
            m as c_int,
            n as c_int,
            k as c_int,
            alpha,
            a,
            lda as c_int,
            b,
            ldb as c_int,
            beta,
            c,
            ldc as c_int,
        )
    }
}

/// Sets `OPENBLAS_CORETYPE=SKYLAKEX` when the user has not chosen a kernel and this CPU has
/// every AVX-512 subset that kernel uses (so it is never chosen where it would fault).
fn select_openblas_kernel() {
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512cd");
        if avx512 {
            // Called once, from `crate::backend`'s OnceLock, before the library starts threads.
            std::env::set_var("OPENBLAS_CORETYPE", "SKYLAKEX");
        }
    }
}
