//! Accumulator settings: [`AccumConfig`] (with [`CoocConfig`]) and their range checks. Equal
//! settings are required to merge.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Co-occurrence settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoocConfig {
    /// Partners kept per feature (0 disables co-occurrence).
    pub partners: usize,
    /// Dense exact counts are used when they take at most this many bytes (4 per cell).
    pub exact_budget_bytes: u64,
    /// Misra–Gries counters per feature in sketch mode (≥ `partners`).
    pub sketch_counters: usize,
}

impl Default for CoocConfig {
    fn default() -> Self {
        CoocConfig {
            partners: 32,
            // Exact up to d_sae = 16384 within one SAE (≈ 537 MB triangle).
            exact_budget_bytes: 600_000_000,
            sketch_counters: 128,
        }
    }
}

/// Accumulator settings (equal settings are required to merge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccumConfig {
    /// Top contexts per feature.
    pub top_k: usize,
    /// Equal-width intervals of `[0, max]` for interval samples.
    pub intervals: usize,
    /// Samples per interval (also the reservoir size of each activation bucket).
    pub samples_per_interval: usize,
    /// Bins of the per-feature activation histogram.
    pub hist_bins: usize,
    /// Range `(lo, hi)` of the log-spaced activation histogram; values outside are clamped into
    /// the first/last bin.
    pub hist_range: (f32, f32),
    /// Top tokens reported per feature.
    pub top_tokens: usize,
    /// Misra–Gries counters per feature for top tokens (exact while a feature fires on at most
    /// this many distinct tokens; otherwise error ≤ n_fired/(m+1)).
    pub token_counters: usize,
    /// Bins of the per-SAE density histogram (log10 density from `density_min_log10` to 0).
    pub density_bins: usize,
    /// Lower end of the density histogram, log10.
    pub density_min_log10: f32,
    /// Co-occurrence settings.
    pub cooc: CoocConfig,
    /// Skip position 0 of every context (the BOS token) everywhere.
    pub exclude_bos: bool,
}

impl Default for AccumConfig {
    fn default() -> Self {
        AccumConfig {
            top_k: 32,
            intervals: 10,
            samples_per_interval: 8,
            hist_bins: 64,
            hist_range: (1e-4, 1e4),
            top_tokens: 16,
            token_counters: 128,
            density_bins: 32,
            density_min_log10: -8.0,
            cooc: CoocConfig::default(),
            exclude_bos: true,
        }
    }
}

impl AccumConfig {
    /// Checks ranges (ranks and interval numbers are u16 in the records).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let (lo, hi) = self.hist_range;
        if self.top_k > 1 << 16 || self.samples_per_interval > 1 << 16 {
            return bad(format!(
                "top_k {} and samples_per_interval {} must be ≤ 65536",
                self.top_k, self.samples_per_interval
            ));
        }
        if self.intervals == 0 || self.intervals > 1 << 16 {
            return bad(format!("intervals {} must be in 1..=65536", self.intervals));
        }
        if self.hist_bins == 0 || !(lo > 0.0 && hi > lo && hi.is_finite()) {
            return bad(format!(
                "hist_bins {} must be ≥ 1 and hist_range ({lo}, {hi}) must satisfy 0 < lo < hi < inf",
                self.hist_bins
            ));
        }
        if self.token_counters < self.top_tokens || self.cooc.sketch_counters < self.cooc.partners {
            return bad(format!(
                "token_counters {} / sketch_counters {} must be ≥ top_tokens {} / partners {}",
                self.token_counters, self.cooc.sketch_counters, self.top_tokens, self.cooc.partners
            ));
        }
        if self.density_bins == 0
            || self.density_min_log10.is_nan()
            || self.density_min_log10 >= 0.0
        {
            return bad(format!(
                "density_bins {} must be ≥ 1 and density_min_log10 {} < 0",
                self.density_bins, self.density_min_log10
            ));
        }
        Ok(())
    }
}
