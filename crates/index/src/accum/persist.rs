//! The framing of serialized accumulator state, for `--resume` checkpoints and shard outputs:
//! postcard behind an 8-byte magic/version ([`encode`] / [`decode`]), used by
//! `SaeAccumulator::to_bytes` and `CrossCooc::to_bytes`. A leaf module.
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// Magic prefix of a serialized [`SaeAccumulator`](super::SaeAccumulator) (format version in
/// the last byte).
pub(crate) const MAGIC_SAE: &[u8; 8] = b"SDXACC\x00\x01";
/// Magic prefix of a serialized [`CrossCooc`](super::CrossCooc).
pub(crate) const MAGIC_CROSS: &[u8; 8] = b"SDXCRS\x00\x01";

pub(crate) fn encode<T: Serialize>(magic: &[u8; 8], v: &T) -> Result<Vec<u8>> {
    let mut out = magic.to_vec();
    let body = postcard::to_stdvec(v)
        .map_err(|e| Error::CorruptState(format!("cannot encode state: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(magic: &[u8; 8], bytes: &[u8]) -> Result<T> {
    if bytes.len() < 8 || &bytes[..8] != magic {
        return Err(Error::CorruptState(format!(
            "bad magic/version (expected {:?})",
            String::from_utf8_lossy(magic)
        )));
    }
    postcard::from_bytes(&bytes[8..]).map_err(|e| Error::CorruptState(e.to_string()))
}
