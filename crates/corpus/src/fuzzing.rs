//! Entry points for the fuzz targets in `crates/corpus/fuzz` (not a stable API).
//!
//! Each runs one reader over in-memory bytes to the end and returns (documents, skips). Readers
//! must never panic, whatever the bytes.
use std::io::Cursor;

use crate::readers::json_list::JsonList;
use crate::readers::lines::{LineSource, Mode};
use crate::readers::{FileCtx, Limits, Source};

fn ctx() -> FileCtx {
    FileCtx {
        path: "fuzz".into(),
        id_prefix: "fuzz".into(),
        limits: Limits {
            max_doc_bytes: 1 << 12,
            max_json_file_bytes: 1 << 20,
        },
    }
}

fn drain(mut source: impl Source) -> (u64, u64) {
    let (mut docs, mut skips) = (0, 0);
    while let Some(item) = source.next_item() {
        match item {
            Ok(d) => {
                assert!(d.doc_id.starts_with("fuzz:"));
                docs += 1;
            }
            Err(s) => {
                let _ = s.to_string();
                skips += 1;
            }
        }
    }
    (docs, skips)
}

/// Runs the JSONL reader (text field `text`) over `data`, with a small line buffer and a 4 KiB
/// record cap.
pub fn jsonl(data: &[u8]) -> (u64, u64) {
    let reader = std::io::BufReader::with_capacity(64, Cursor::new(data));
    drain(LineSource::new(
        reader,
        ctx(),
        Mode::Jsonl("text".into()),
        false,
    ))
}

/// Runs the JSONL.zst reader over `data` (a zstd stream, usually corrupt).
pub fn jsonl_zst(data: &[u8]) -> (u64, u64) {
    match zstd::stream::read::Decoder::new(Cursor::new(data)) {
        Ok(dec) => {
            let reader = std::io::BufReader::with_capacity(64, dec);
            drain(LineSource::new(
                reader,
                ctx(),
                Mode::Jsonl("text".into()),
                true,
            ))
        }
        Err(_) => (0, 1),
    }
}

/// Runs the `.json` list reader over `data`.
pub fn json_list(data: &[u8]) -> (u64, u64) {
    drain(JsonList::read(Cursor::new(data), ctx()))
}
