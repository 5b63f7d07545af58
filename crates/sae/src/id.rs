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
    /// Transcoder: reads the pre-MLP norm's normalized input (`blocks.L.ln2.hook_normalized`)
    /// and predicts the MLP output (`blocks.L.hook_mlp_out`) (Llama Scope, Gemma Scope).
    TC,
    /// Residual stream entering the block (`blocks.L.hook_resid_pre`; SAELens'
    /// `gpt2-small-res-jb`).
    RP,
    /// Attention heads' outputs before the output projection, heads concatenated
    /// (`blocks.L.attn.hook_z`; Gemma Scope's attention SAEs).
    Z,
    /// Transcoder reading the MLP's input, the pre-MLP norm's output with its gain
    /// (`blocks.L.mlp.hook_in`), predicting `blocks.L.hook_mlp_out` (Gemma Scope 2).
    TM,
}

impl Position {
    /// Every position, in id order.
    pub const ALL: [Position; 7] = [
        Position::R,
        Position::A,
        Position::M,
        Position::TC,
        Position::RP,
        Position::Z,
        Position::TM,
    ];

    /// The id suffix: `R`, `A`, `M`, `TC`, `RP`, `Z` or `TM`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Position::R => "R",
            Position::A => "A",
            Position::M => "M",
            Position::TC => "TC",
            Position::RP => "RP",
            Position::Z => "Z",
            Position::TM => "TM",
        }
    }

    /// The hook the SAE reads at `layer`.
    pub fn hook_in(&self, layer: u32) -> String {
        match self {
            Position::R => format!("blocks.{layer}.hook_resid_post"),
            Position::A => format!("blocks.{layer}.hook_attn_out"),
            Position::M => format!("blocks.{layer}.hook_mlp_out"),
            Position::TC => format!("blocks.{layer}.ln2.hook_normalized"),
            Position::RP => format!("blocks.{layer}.hook_resid_pre"),
            Position::Z => format!("blocks.{layer}.attn.hook_z"),
            Position::TM => format!("blocks.{layer}.mlp.hook_in"),
        }
    }

    /// The hook the SAE reconstructs at `layer` (differs from [`Position::hook_in`] only for
    /// transcoders).
    pub fn hook_out(&self, layer: u32) -> String {
        match self {
            Position::TC | Position::TM => format!("blocks.{layer}.hook_mlp_out"),
            _ => self.hook_in(layer),
        }
    }

    /// Infers `(layer, position)` from a pair of hook names; `None` when the pair matches no
    /// position (e.g. a hook this crate does not know).
    pub fn from_hooks(hook_in: &str, hook_out: &str) -> Option<(u32, Position)> {
        let rest = hook_in.strip_prefix("blocks.")?;
        let (layer, _) = rest.split_once('.')?;
        let layer: u32 = layer.parse().ok()?;
        Position::ALL
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

/// An SAE's width: an expansion factor of its input (`8x`, Llama Scope) or a count of features
/// (`16k` = 16,384, `1m` = 1,048,576, or plain digits; Gemma Scope, SAELens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Width {
    /// `d_sae / d_in`.
    Expansion(u32),
    /// `d_sae` itself.
    Count(u32),
}

impl Width {
    /// The width of an SAE with `d_sae` features on a `d_in`-wide input: the expansion factor
    /// when it is a whole number, else the count.
    pub fn of(d_sae: usize, d_in: usize) -> Width {
        match (d_in > 0 && d_sae % d_in == 0, u32::try_from(d_sae)) {
            (true, _) => Width::Expansion((d_sae / d_in) as u32),
            (false, Ok(n)) => Width::Count(n),
            (false, Err(_)) => Width::Count(u32::MAX),
        }
    }

    /// The number of features for an input `d_in` wide.
    pub fn d_sae(&self, d_in: usize) -> usize {
        match *self {
            Width::Expansion(e) => e as usize * d_in,
            Width::Count(n) => n as usize,
        }
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Width::Expansion(e) => write!(f, "{e}x"),
            Width::Count(n) if n % (1 << 20) == 0 => write!(f, "{}m", n >> 20),
            Width::Count(n) if n % 1024 == 0 => write!(f, "{}k", n >> 10),
            Width::Count(n) => write!(f, "{n}"),
        }
    }
}

/// An SAE identifier: layer, position and width, written `L{layer}{pos}-{width}` (`L15R-8x`,
/// `L12Z-16k`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaeId {
    /// Transformer block index (0-based).
    pub layer: u32,
    /// Position within the block.
    pub position: Position,
    /// Expansion factor or feature count.
    pub width: Width,
}

impl SaeId {
    /// The hook the SAE reads, e.g. `blocks.15.hook_resid_post`.
    pub fn hook_in(&self) -> String {
        self.position.hook_in(self.layer)
    }

    /// The hook the SAE reconstructs (transcoders: `blocks.L.hook_mlp_out`).
    pub fn hook_out(&self) -> String {
        self.position.hook_out(self.layer)
    }

    /// The id of an SAE reading `hook_in` and writing `hook_out` with `d_sae` features on a
    /// `d_in`-wide input; `None` when the hooks match no position.
    pub fn from_hooks(hook_in: &str, hook_out: &str, d_sae: usize, d_in: usize) -> Option<SaeId> {
        Position::from_hooks(hook_in, hook_out).map(|(layer, position)| SaeId {
            layer,
            position,
            width: Width::of(d_sae, d_in),
        })
    }
}

impl fmt::Display for SaeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}{}-{}", self.layer, self.position, self.width)
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
        let (pos, width) = rest
            .split_once('-')
            .ok_or_else(|| bad("missing `-` before the width"))?;
        let position = match Position::ALL.into_iter().find(|p| p.as_str() == pos) {
            Some(p) => p,
            None if pos.is_empty() => return Err(bad("missing position")),
            None => return Err(bad(&format!("unknown position {pos:?}"))),
        };
        let (digits, unit) = match width.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&width[..i], Some(c)),
            _ => (width, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(
                "the width must be a positive integer with x, k, m or no unit",
            ));
        }
        let n: u64 = digits.parse().map_err(|_| bad("width out of range"))?;
        let width = match unit {
            Some('x') => Width::Expansion(u32::try_from(n).map_err(|_| bad("width out of range"))?),
            Some(u @ ('k' | 'm')) => {
                let n = n << if u == 'k' { 10 } else { 20 };
                Width::Count(u32::try_from(n).map_err(|_| bad("width out of range"))?)
            }
            None => Width::Count(u32::try_from(n).map_err(|_| bad("width out of range"))?),
            Some(u) => return Err(bad(&format!("unknown width unit {u:?} (x, k or m)"))),
        };
        if matches!(width, Width::Expansion(0) | Width::Count(0)) {
            return Err(bad("the width must be positive"));
        }
        Ok(SaeId {
            layer,
            position,
            width,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_round_trip() {
        for s in [
            "L15R-8x",
            "L0TC-32x",
            "L31A-32x",
            "L7M-8x",
            "L12Z-16k",
            "L3RP-1000",
            "L20R-1m",
            "L5TM-65k",
        ] {
            let id: SaeId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
        }
        let id: SaeId = "L0TC-32x".parse().unwrap();
        assert_eq!(
            id,
            SaeId {
                layer: 0,
                position: Position::TC,
                width: Width::Expansion(32)
            }
        );
        let z: SaeId = "L12Z-16k".parse().unwrap();
        assert_eq!(z.width, Width::Count(16384));
        assert_eq!(z.hook_in(), "blocks.12.attn.hook_z");
        assert_eq!("L1R-16384".parse::<SaeId>().unwrap().to_string(), "L1R-16k");
        assert_eq!(Width::of(24576, 768), Width::Expansion(32));
        assert_eq!(Width::of(16384, 2304), Width::Count(16384));
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
            Some((3, Position::RP))
        );
        assert_eq!(
            Position::from_hooks("blocks.3.mlp.hook_in", "blocks.3.hook_mlp_out"),
            Some((3, Position::TM))
        );
        assert_eq!(
            Position::from_hooks("blocks.3.hook_resid_pre", "blocks.3.hook_mlp_out"),
            None
        );
    }

    #[test]
    fn malformed_ids_show_the_expected_shape() {
        for s in [
            "", "15R-8x", "LR-8x", "L15-8x", "L15X-8x", "L15R8x", "L15R-q", "L15R-x", "L15R-0x",
            "L15R-8xx", "l15R-8x", "L15R--8x", "L15R-8y", "L1R-0",
        ] {
            let err = s.parse::<SaeId>().unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("L{layer}{R|A|M|TC|RP|Z|TM}-{width}"),
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
