//! A reader for numpy `.npz` archives of float arrays (Gemma Scope's `params.npz`).
//!
//! Why not candle's `Tensor::read_npz`: it refuses Fortran-ordered arrays, which numpy writes
//! for any transposed array saved as is. This reads the `.npy` members (format 1.0–3.0) of
//! little-endian `f4`, `f8` or `f2` arrays in either order, as row-major f32. Members must be
//! stored uncompressed (`np.savez`); compressed ones are refused by name.
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// One array: its name (the member name without `.npy`), shape and row-major values.
#[derive(Debug)]
pub(crate) struct NpyArray {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

/// Every array of the archive at `path`.
pub(crate) fn read_npz(path: &Path) -> Result<Vec<NpyArray>> {
    let bad = |field: &str, reason: String| Error::invalid(path, field, reason);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad("(zip)", format!("is not a readable .npz archive: {e}")))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| {
            bad(
                "(zip)",
                format!("member {i} cannot be read ({e}); only uncompressed np.savez archives are"),
            )
        })?;
        let member_name = member
            .name()
            .map_err(|e| bad("(zip)", format!("member {i} has an unreadable name: {e}")))?
            .to_string();
        let Some(name) = member_name.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let mut bytes = Vec::with_capacity(member.size() as usize);
        member
            .read_to_end(&mut bytes)
            .map_err(|e| bad(&name, format!("cannot be read: {e}")))?;
        out.push(parse_npy(&name, &bytes).map_err(|reason| bad(&name, reason))?);
    }
    Ok(out)
}

/// Parses one `.npy` file.
fn parse_npy(name: &str, bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("is not a .npy array".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("has .npy format version {v}, expected 1 to 3")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("has a truncated or non-text header")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("header lacks '{key}'"))?;
        let rest = header[at + key.len() + 2..].trim_start();
        Ok(rest.strip_prefix(':').unwrap_or(rest).trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("has an unreadable 'descr'")?;
    let fortran = field("fortran_order")?.starts_with("True");
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("has an unreadable 'shape'")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("has shape ({shape_text})"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + header_len..];
    let width = match descr {
        "<f4" | "=f4" => 4,
        "<f8" | "=f8" => 8,
        "<f2" | "=f2" => 2,
        other => {
            return Err(format!(
                "has dtype {other}; expected little-endian f4, f8 or f2"
            ))
        }
    };
    if body.len() != n * width {
        return Err(format!(
            "holds {} bytes of data for shape {shape:?} of {descr} ({} expected)",
            body.len(),
            n * width
        ));
    }
    let values: Vec<f32> = body
        .chunks_exact(width)
        .map(|c| match width {
            4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            8 => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
            _ => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
        })
        .collect();
    let data = if fortran && shape.len() > 1 {
        fortran_to_row_major(&values, &shape)
    } else {
        values
    };
    Ok(NpyArray {
        name: name.to_string(),
        shape,
        data,
    })
}

/// Column-major (first index fastest) values → row-major (last index fastest).
fn fortran_to_row_major(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let n = values.len();
    let mut out = vec![0f32; n];
    // Strides of the column-major layout.
    let mut strides = vec![1usize; shape.len()];
    for d in 1..shape.len() {
        strides[d] = strides[d - 1] * shape[d - 1];
    }
    let mut index = vec![0usize; shape.len()];
    for o in out.iter_mut() {
        let src: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        *o = values[src];
        // Advance the row-major multi-index.
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn reads_c_and_fortran_order_and_dtypes() {
        let vals: Vec<u8> = [1f32, 2., 3., 4., 5., 6.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let c = parse_npy("a", &npy("<f4", false, "(2, 3)", &vals)).unwrap();
        assert_eq!(c.shape, [2, 3]);
        assert_eq!(c.data, [1., 2., 3., 4., 5., 6.]);
        // The same bytes in Fortran order are the columns [1,2], [3,4], [5,6].
        let f = parse_npy("a", &npy("<f4", true, "(2, 3)", &vals)).unwrap();
        assert_eq!(f.data, [1., 3., 5., 2., 4., 6.]);
        let d: Vec<u8> = [0.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            parse_npy("b", &npy("<f8", false, "(2,)", &d)).unwrap().data,
            [0.5, -2.0]
        );
        assert!(parse_npy("c", &npy("<i8", false, "(1,)", &[0; 8]))
            .unwrap_err()
            .contains("i8"));
        assert!(parse_npy("d", &npy("<f4", false, "(3,)", &vals[..8]))
            .unwrap_err()
            .contains("bytes"));
    }
}
