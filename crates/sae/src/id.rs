//! SAE identifiers (`L15R-8x`, `L0TC-32x`) and their hook points.
//!
//! An id names a layer, a position in the block and an expansion factor, as the Llama Scope
//! release does (`fnlp/Llama3_1-8B-Base-L15R-8x`). Display and `FromStr` round-trip exactly;
//! hook names follow TransformerLens, as SAELens and Llama Scope configs use them (DESIGN.md).
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where in a transformer block an SAE reads (and writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    /// Residual stream after the block (`blocks.L.hook_resid_post`).
    R,
    /// Attention output (`blocks.L.hook_attn_out`).
    A,
    /// MLP output (`blocks.L.hook_mlp_out`).
    M,
    /// Transcoder: reads the post-attention RMSNorm output (`blocks.L.ln2.hook_normalized`) and
    /// predicts the MLP output (`blocks.L.hook_mlp_out`).
    TC,
}

impl Position {
    /// The id suffix: `R`, `A`, `M` or `TC`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Position::R => "R",
            Position::A => "A",
            Position::M => "M",
            Position::TC => "TC",
        }
    }

    /// The hook the SAE reads at `layer`.
    pub fn hook_in(&self, layer: u32) -> String {
        match self {
            Position::R => format!("blocks.{layer}.hook_resid_post"),
            Position::A => format!("blocks.{layer}.hook_attn_out"),
            Position::M => format!("blocks.{layer}.hook_mlp_out"),
            Position::TC => format!("blocks.{layer}.ln2.hook_normalized"),
        }
    }

    /// The hook the SAE reconstructs at `layer` (differs from [`Position::hook_in`] only for TC).
    pub fn hook_out(&self, layer: u32) -> String {
        match self {
            Position::TC => format!("blocks.{layer}.hook_mlp_out"),
            _ => self.hook_in(layer),
        }
    }

    /// Infers `(layer, position)` from a pair of hook names; `None` when the pair matches no
    /// position (e.g. a hook this crate does not know).
    pub fn from_hooks(hook_in: &str, hook_out: &str) -> Option<(u32, Position)> {
        let rest = hook_in.strip_prefix("blocks.")?;
        let (layer, _) = rest.split_once('.')?;
        let layer: u32 = layer.parse().ok()?;
        [Position::R, Position::A, Position::M, Position::TC]
            .into_iter()
            .find(|p| p.hook_in(layer) == hook_in && p.hook_out(layer) == hook_out)
            .map(|p| (layer, p))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SAE identifier: layer, position and expansion factor, written `L{layer}{pos}-{exp}x`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaeId {
    /// Transformer block index (0-based).
    pub layer: u32,
    /// Position within the block.
    pub position: Position,
    /// `d_sae / d_model`.
    pub expansion: u32,
}

impl SaeId {
    /// The hook the SAE reads, e.g. `blocks.15.hook_resid_post`.
    pub fn hook_in(&self) -> String {
        self.position.hook_in(self.layer)
    }

    /// The hook the SAE reconstructs (TC: `blocks.L.hook_mlp_out`).
    pub fn hook_out(&self) -> String {
        self.position.hook_out(self.layer)
    }
}

impl fmt::Display for SaeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}{}-{}x", self.layer, self.position, self.expansion)
    }
}

impl FromStr for SaeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<SaeId> {
        let bad = |reason: &str| Error::BadId {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let rest = s
            .strip_prefix('L')
            .ok_or_else(|| bad("must start with `L`"))?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("missing layer number after `L`"));
        }
        let layer: u32 = rest[..digits]
            .parse()
            .map_err(|_| bad("layer number out of range"))?;
        let rest = &rest[digits..];
        let (pos, rest) = rest
            .split_once('-')
            .ok_or_else(|| bad("missing `-` before the expansion factor"))?;
        let position = match pos {
            "R" => Position::R,
            "A" => Position::A,
            "M" => Position::M,
            "TC" => Position::TC,
            "" => return Err(bad("missing position (R, A, M or TC)")),
            _ => return Err(bad(&format!("unknown position {pos:?}"))),
        };
        let exp = rest
            .strip_suffix('x')
            .ok_or_else(|| bad("expansion factor must end with `x`"))?;
        if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expansion factor must be a positive integer"));
        }
        let expansion: u32 = exp
            .parse()
            .map_err(|_| bad("expansion factor out of range"))?;
        if expansion == 0 {
            return Err(bad("expansion factor must be a positive integer"));
        }
        Ok(SaeId {
            layer,
            position,
            expansion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        for s in ["L15R-8x", "L0TC-32x", "L31A-32x", "L7M-8x"] {
            let id: SaeId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
        }
        let id: SaeId = "L0TC-32x".parse().unwrap();
        assert_eq!(
            id,
            SaeId {
                layer: 0,
                position: Position::TC,
                expansion: 32
            }
        );
    }

    #[test]
    fn hooks() {
        let r: SaeId = "L15R-8x".parse().unwrap();
        assert_eq!(r.hook_in(), "blocks.15.hook_resid_post");
        assert_eq!(r.hook_out(), "blocks.15.hook_resid_post");
        let a: SaeId = "L2A-8x".parse().unwrap();
        assert_eq!(a.hook_in(), "blocks.2.hook_attn_out");
        let m: SaeId = "L2M-8x".parse().unwrap();
        assert_eq!(m.hook_out(), "blocks.2.hook_mlp_out");
        let tc: SaeId = "L8TC-8x".parse().unwrap();
        assert_eq!(tc.hook_in(), "blocks.8.ln2.hook_normalized");
        assert_eq!(tc.hook_out(), "blocks.8.hook_mlp_out");
        assert_eq!(
            Position::from_hooks("blocks.8.ln2.hook_normalized", "blocks.8.hook_mlp_out"),
            Some((8, Position::TC))
        );
        assert_eq!(
            Position::from_hooks("blocks.3.hook_resid_post", "blocks.3.hook_resid_post"),
            Some((3, Position::R))
        );
        assert_eq!(
            Position::from_hooks("blocks.3.hook_resid_pre", "blocks.3.hook_resid_pre"),
            None
        );
    }

    #[test]
    fn malformed_ids_show_the_expected_shape() {
        for s in [
            "", "15R-8x", "LR-8x", "L15-8x", "L15X-8x", "L15R8x", "L15R-8", "L15R-x", "L15R-0x",
            "L15R-8xx", "l15R-8x", "L15R--8x",
        ] {
            let err = s.parse::<SaeId>().unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("L{layer}{R|A|M|TC}-{expansion}x"),
                "{s:?}: {msg}"
            );
        }
        // Ordering: by layer, then position, then expansion.
        let mut ids: Vec<SaeId> = ["L2R-8x", "L1TC-8x", "L1R-32x", "L1R-8x"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        ids.sort();
        let shown: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(shown, ["L1R-8x", "L1R-32x", "L1TC-8x", "L2R-8x"]);
    }
}
