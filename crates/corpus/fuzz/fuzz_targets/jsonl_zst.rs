//! The JSONL.zst reader never panics on corrupt or truncated zstd streams.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scopedex_corpus::fuzzing::jsonl_zst(data);
});
