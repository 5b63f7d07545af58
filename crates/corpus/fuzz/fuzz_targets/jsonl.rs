//! The JSONL reader never panics and accounts for every non-blank line as a document or a skip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (docs, skips) = scopedex_corpus::fuzzing::jsonl(data);
    let lines = data.split(|&b| b == b'\n').count() as u64;
    assert!(docs + skips <= lines.max(1));
    assert!(
        docs + skips >= 1,
        "an input always yields a document or a skip"
    );
});
