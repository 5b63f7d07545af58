//! Contexts end to end: exact window boundaries, offsets that round-trip, order and density of
//! ids under parallel tokenization, long-document segmentation, token bounds.
mod common;

use std::sync::Arc;

use common::*;
use scopedex_corpus::{contexts, Context, ContextConfig, CorpusSpec, SEGMENT_BYTES};
use tokenizers::Tokenizer;

fn collect(spec: &CorpusSpec, tok: &Arc<Tokenizer>, cfg: ContextConfig) -> Vec<Context> {
    let mut stream = contexts(spec.documents().unwrap(), tok.clone(), cfg);
    let out: Vec<Context> = stream.by_ref().flat_map(|c| c.unwrap()).collect();
    assert!(stream.next().is_none());
    out
}

/// Asserts the invariants every context must keep against its document text.
fn check_offsets(c: &Context, doc: &str, bos: bool, byte_level: bool) {
    assert_eq!(c.tokens.len(), c.token_starts.len());
    assert_eq!(c.tokens.len(), c.token_ends.len());
    let first = usize::from(bos);
    if bos {
        assert_eq!((c.token_starts[0], c.token_ends[0]), (0, 0));
    }
    // The window text is a substring of the document...
    assert!(doc.contains(&c.text), "{:?} not in doc", c.text);
    for i in first..c.tokens.len() {
        let s = c.token_text(i).expect("offsets on char boundaries");
        assert!(!s.is_empty() || c.tokens.len() == first);
    }
    assert_eq!(c.token_starts[first], 0);
    assert_eq!(*c.token_ends.last().unwrap() as usize, c.text.len());
    if byte_level {
        // ...tiled by its tokens in order (overlapping only on a split multi-byte char).
        for i in first + 1..c.tokens.len() {
            let (prev_end, start) = (c.token_ends[i - 1] as usize, c.token_starts[i] as usize);
            assert!(start <= prev_end, "gap at {i} in {c:?}");
            // An overlap is exactly one multi-byte char.
            assert!(
                start == prev_end || c.text[start..prev_end].chars().count() == 1,
                "{c:?}"
            );
        }
    }
}

#[test]
fn exact_windows_with_bos_and_round_trip() {
    let tok = byte_bpe();
    let bos = bos_id(&tok);
    let tmp = tempfile::tempdir().unwrap();
    let texts = [
        "Hello world, the weather in Zürich is café-like: 日本語 🎉 done.",
        "",
        "the",
        "  leading and trailing spaces  ",
    ];
    write(tmp.path(), "doc-0.json", json_list(&texts));
    let spec = CorpusSpec::new([tmp.path().join("doc-0.json")]);
    let ctxs = collect(&spec, &tok, ContextConfig::new(8, Some(bos)));

    // Expected: each document tokenized alone, cut in runs of 7 content tokens.
    let mut expected: Vec<(String, Vec<u32>)> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let ids = tok.encode(*t, false).unwrap().get_ids().to_vec();
        for w in ids.chunks(7) {
            let mut v = vec![bos];
            v.extend_from_slice(w);
            expected.push((format!("doc-0.json:{i}"), v));
        }
    }
    let got: Vec<(String, Vec<u32>)> = ctxs
        .iter()
        .map(|c| (c.doc_id.clone(), c.tokens.clone()))
        .collect();
    assert_eq!(got, expected);
    let ids: Vec<u64> = ctxs.iter().map(|c| c.context_id).collect();
    assert_eq!(ids, (0..ctxs.len() as u64).collect::<Vec<_>>());
    for c in &ctxs {
        let i: usize = c.doc_id.rsplit(':').next().unwrap().parse().unwrap();
        check_offsets(c, texts[i], true, true);
    }
    // [<bos>, H, e, ll, o, Ġworld, ",", Ġthe]
    let first = &ctxs[0];
    assert_eq!(first.text, "Hello world, the");
    assert_eq!(first.token_text(1), Some("H"));
    assert_eq!(first.token_text(3), Some("ll"));
    assert_eq!(
        first.token_text(5),
        Some(" world"),
        "leading space kept despite trim_offsets"
    );
    assert_eq!(first.token_text(7), Some(" the"));
    // Windows of an ASCII document tile it exactly, spaces included.
    let doc3: String = ctxs
        .iter()
        .filter(|c| c.doc_id == "doc-0.json:3")
        .map(|c| c.text.as_str())
        .collect();
    assert_eq!(doc3, texts[3]);
    let doc2: Vec<&Context> = ctxs.iter().filter(|c| c.doc_id == "doc-0.json:2").collect();
    assert_eq!(doc2.len(), 1);
    assert_eq!(doc2[0].text, "the");
    assert_eq!(
        doc2[0].tokens.len(),
        3,
        "short last window ([<bos>, t, he]), not padded"
    );
}

#[test]
fn multibyte_chars_split_by_byte_tokens_widen_to_the_char() {
    let tok = byte_bpe();
    let tmp = tempfile::tempdir().unwrap();
    // "🎉" is 4 bytes with no merge: 4 byte tokens, each covering the whole char.
    write(tmp.path(), "t.txt", "a🎉b");
    let spec = CorpusSpec::new([tmp.path()]);
    let ctxs = collect(&spec, &tok, ContextConfig::new(3, None));
    let all: Vec<&str> = ctxs
        .iter()
        .flat_map(|c| (0..c.len()).map(|i| c.token_text(i).unwrap()))
        .collect();
    assert_eq!(all, ["a", "🎉", "🎉", "🎉", "🎉", "b"]);
    assert_eq!(ctxs[0].text, "a🎉");
    assert_eq!(ctxs[0].token_starts, [0, 1, 1]);
    assert_eq!(ctxs[1].text, "🎉b");
    assert_eq!(ctxs[1].token_starts, [0, 0, 4]);
    assert_eq!(ctxs[1].token_ends, [4, 4, 5]);
}

#[test]
fn whitespace_tokenizer_offsets_skip_spaces() {
    let tok = word_level(&["the", "cat", "sat"]);
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a.jsonl",
        "{\"text\": \"the  cat sat  on the mat\"}\n",
    );
    let ctxs = collect(
        &CorpusSpec::new([tmp.path()]),
        &tok,
        ContextConfig::new(3, None),
    );
    let texts: Vec<&str> = ctxs.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["the  cat sat", "on the mat"]);
    assert_eq!(ctxs[0].token_starts, [0, 5, 9]);
    assert_eq!(ctxs[0].token_ends, [3, 8, 12]);
    assert_eq!(ctxs[1].tokens, [0, 1, 0]);
    for c in &ctxs {
        check_offsets(c, "the  cat sat  on the mat", false, false);
    }
}

fn corpus_of(n_files: usize, docs_per_file: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in 0..n_files {
        let texts: Vec<String> = (0..docs_per_file)
            .map(|d| {
                format!("Doc {d} of file {f}: the quick brown fox jumps over the lazy dog. ")
                    .repeat(d % 5 + 1)
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        write(tmp.path(), &format!("doc-{f}.json"), json_list(&refs));
    }
    tmp
}

#[test]
fn order_and_ids_do_not_depend_on_threads() {
    let tok = byte_bpe();
    let tmp = corpus_of(3, 400);
    let spec = CorpusSpec::new([tmp.path()]);
    let cfg = ContextConfig::new(16, Some(bos_id(&tok)));
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| collect(&spec, &tok, cfg.clone()))
    };
    let one = run(1);
    let four = run(4);
    assert_eq!(one, four);
    assert!(one.len() > 1000);
    assert!(one
        .windows(2)
        .all(|w| w[1].context_id == w[0].context_id + 1));
    // doc ids appear in corpus order: files sorted (doc-0, doc-1, doc-2), records in order.
    let mut seen: Vec<&str> = one.iter().map(|c| c.doc_id.as_str()).collect();
    seen.dedup();
    assert_eq!(seen.len(), 1200);
    assert_eq!(seen[400], "doc-1.json:0");
}

#[test]
fn long_documents_are_segmented_without_changing_tokens() {
    let tok = byte_bpe();
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 3 * SEGMENT_BYTES + 1000 {
        text.push_str(&format!("word{i}  spaced\tand, the  hello world! "));
        i += 1;
    }
    write(tmp.path(), "long.txt", &text);
    let spec = CorpusSpec::new([tmp.path()]);
    let ctxs = collect(&spec, &tok, ContextConfig::new(128, None));
    let got: Vec<u32> = ctxs.iter().flat_map(|c| c.tokens.clone()).collect();
    let want = tok.encode(text.as_str(), false).unwrap().get_ids().to_vec();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "segmented tokenization differs");
    assert!(ctxs[..ctxs.len() - 1].iter().all(|c| c.len() == 128));
    // Windows tile the document.
    let joined: String = ctxs.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(joined, text);
}

#[test]
fn max_tokens_yields_a_prefix_of_the_full_run() {
    let tok = byte_bpe();
    let tmp = corpus_of(2, 50);
    let spec = CorpusSpec::new([tmp.path()]);
    let full = collect(&spec, &tok, ContextConfig::new(32, Some(bos_id(&tok))));
    let mut cfg = ContextConfig::new(32, Some(bos_id(&tok)));
    cfg.max_tokens = Some(1000);
    let part = collect(&spec, &tok, cfg);
    let n: usize = part.iter().map(Context::len).sum();
    assert!(n <= 1000 && n + 32 > 1000, "{n}");
    assert_eq!(part[..], full[..part.len()]);
}

#[test]
fn skips_reach_the_stream_report_and_strict_errors_come_after_good_contexts() {
    let tok = byte_bpe();
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a.jsonl",
        "{\"text\": \"the world\"}\nnot json\n{\"text\": \"hello\"}\n",
    );
    let spec = CorpusSpec::new([tmp.path()]);
    let mut stream = contexts(
        spec.documents().unwrap(),
        tok.clone(),
        ContextConfig::new(8, None),
    );
    let n: usize = stream.by_ref().map(|c| c.unwrap().len()).sum();
    assert_eq!(n, 2);
    assert_eq!(stream.skip_report().skipped, 1);
    assert_eq!(stream.contexts_emitted(), 2);

    let mut strict = spec.clone();
    strict.strict = true;
    let mut stream = contexts(
        strict.documents().unwrap(),
        tok.clone(),
        ContextConfig::new(8, None),
    );
    let first = stream.next().unwrap().unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].doc_id, "a.jsonl:0");
    let err = stream.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("a.jsonl:2: malformed JSON"), "{err}");
    assert!(stream.next().is_none());

    // An invalid configuration is the stream's first item.
    let mut bad = contexts(
        spec.documents().unwrap(),
        tok,
        ContextConfig::new(1, Some(0)),
    );
    assert!(bad.next().unwrap().is_err());
    assert!(bad.next().is_none());
}

/// The nlp-corpus layout (a directory of `doc-N.json` lists of sentences, plus a README), on a
/// small generated copy: the real asset is covered by the end-to-end tests.
#[test]
fn nlp_corpus_layout() {
    let tok = byte_bpe();
    let tmp = corpus_of(11, 20);
    write(tmp.path(), "README.npm.md", "# not a corpus file");
    let spec = CorpusSpec::new([tmp.path().join("doc-*.json")]);
    let files = spec.resolve_files().unwrap();
    assert_eq!(files.len(), 11);
    assert_eq!(files[1].id_prefix, "doc-1.json");
    assert_eq!(files[2].id_prefix, "doc-10.json");
    let ctxs = collect(&spec, &tok, ContextConfig::new(128, Some(bos_id(&tok))));
    let mut docs: Vec<&str> = ctxs.iter().map(|c| c.doc_id.as_str()).collect();
    docs.dedup();
    assert_eq!(docs.len(), 220);
}
