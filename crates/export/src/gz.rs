//! A streaming gzip writer on `zlib-rs` (zlib's deflate in Rust), for the bulk layout's
//! `*.jsonl.gz` files.
//!
//! `flate2` (the workspace's gzip) runs on `miniz_oxide` here, which took twice zlib's time at
//! the level the bulk files use; switching `flate2`'s backend is a workspace-wide feature, so
//! this crate calls `zlib-rs` directly and leaves every other user of `flate2` as it is. The
//! output is a standard gzip member (zlib's `windowBits = 15 + 16`), readable by any gunzip
//! (`flate2::read::GzDecoder`, Python's `gzip`, Node's `zlib`).
use std::io::{self, Write};

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Status};

/// Compressed bytes are produced in chunks of this size.
const OUT_CHUNK: usize = 1 << 17;

/// Gzip-compresses what is written into `inner`; [`GzWriter::finish`] ends the stream. Callers
/// should buffer in front (every `write` runs the compressor).
pub struct GzWriter<W: Write> {
    inner: W,
    z: Deflate,
    out: Vec<u8>,
}

fn deflate_error(e: zlib_rs::DeflateError) -> io::Error {
    io::Error::other(format!("gzip compression failed: {e:?}"))
}

impl<W: Write> GzWriter<W> {
    /// A gzip stream at `level` (0–9) into `inner`.
    pub fn new(inner: W, level: i32) -> Self {
        let config = DeflateConfig {
            level,
            window_bits: 15 + 16, // gzip header and trailer
            ..DeflateConfig::default()
        };
        GzWriter {
            inner,
            z: Deflate::new_with_config(config),
            out: vec![0; OUT_CHUNK],
        }
    }

    /// Runs the compressor on `input` with `flush`; returns the input consumed and the status.
    fn step(&mut self, input: &[u8], flush: DeflateFlush) -> io::Result<(usize, Status)> {
        let (in0, out0) = (self.z.total_in(), self.z.total_out());
        let status = self
            .z
            .compress(input, &mut self.out, flush)
            .map_err(deflate_error)?;
        let produced = (self.z.total_out() - out0) as usize;
        self.inner.write_all(&self.out[..produced])?;
        Ok(((self.z.total_in() - in0) as usize, status))
    }

    /// Ends the gzip stream (trailer written) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        loop {
            let (_, status) = self.step(&[], DeflateFlush::Finish)?;
            match status {
                Status::StreamEnd => return Ok(self.inner),
                Status::Ok => {}
                Status::BufError => return Err(io::Error::other("gzip finish made no progress")),
            }
        }
    }
}

impl<W: Write> Write for GzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            let (used, status) = self.step(rest, DeflateFlush::NoFlush)?;
            if used == 0 && status == Status::BufError {
                return Err(io::Error::other("gzip compression made no progress"));
            }
            rest = &rest[used..];
        }
        Ok(data.len())
    }

    /// Flushes the inner writer only (no deflate flush: it would cost compression).
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn round_trips_through_flate2() {
        let text: String = (0..50_000)
            .map(|i| format!("{{\"i\":{i},\"v\":[0.0,1.5]}}\n"))
            .collect();
        let mut w = GzWriter::new(Vec::new(), 5);
        for chunk in text.as_bytes().chunks(1000) {
            w.write_all(chunk).unwrap();
        }
        let gz = w.finish().unwrap();
        assert!(gz.len() < text.len() / 5, "{} bytes", gz.len());
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let empty = GzWriter::new(Vec::new(), 5).finish().unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_string(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
