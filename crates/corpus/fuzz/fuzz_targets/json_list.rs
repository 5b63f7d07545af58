//! The `.json` list reader never panics, and a valid JSON list of n elements yields exactly n
//! items (documents or skips); any other input yields at least one skip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (docs, skips) = scopedex_corpus::fuzzing::json_list(data);
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Array(a)) => assert_eq!(docs + skips, a.len() as u64),
        _ => assert!(docs + skips >= 1),
    }
});
