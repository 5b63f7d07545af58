//! Readers end to end over generated fixtures: every format, every bad case, strict mode.
mod common;

use std::path::Path;

use common::*;
use scopedex_corpus::{CorpusSpec, Document, Error, Location, SkipKind, MAX_DOC_BYTES};

fn read_all(spec: &CorpusSpec) -> (Vec<Document>, scopedex_corpus::SkipReport) {
    let mut docs = spec.documents().unwrap();
    let out: Vec<Document> = docs.by_ref().map(|d| d.unwrap()).collect();
    (out, docs.skip_report().clone())
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn slimpajama_jsonl_zst_keeps_meta() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = slimpajama_lines(&[
        ("First doc.", "RedPajamaC4"),
        ("Second\ndoc with a newline.", "RedPajamaGithub"),
        ("", "RedPajamaBook"),
    ]);
    // Two concatenated zstd frames, as produced by chunked writers.
    let mut z = zstd(&lines[..20]);
    z.extend(zstd(&lines[20..]));
    write(tmp.path(), "train/chunk1/example_train_0.jsonl.zst", z);
    let (docs, report) = read_all(&CorpusSpec::new([tmp.path()]));
    assert!(report.is_empty(), "{report}");
    let ids: Vec<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "train/chunk1/example_train_0.jsonl.zst:0",
            "train/chunk1/example_train_0.jsonl.zst:1",
            "train/chunk1/example_train_0.jsonl.zst:2"
        ]
    );
    assert_eq!(docs[1].text, "Second\ndoc with a newline.");
    assert_eq!(docs[2].text, "");
    assert_eq!(
        docs[1].meta.as_ref().unwrap()["meta"]["redpajama_set_name"],
        "RedPajamaGithub"
    );
}

#[test]
fn txt_json_parquet_and_text_column() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "a.txt", "\u{feff}Whole file\nsecond line\n");
    write(d, "b.json", json_list(&["one", "two"]));
    let texts: Vec<Option<&str>> = (0..10).map(|i| Some(["p0", "p1", "p2"][i % 3])).collect();
    write(d, "c.parquet", parquet(&texts, 4)); // 3 row groups
    write(d, "d.jsonl", "{\"body\": \"custom column\", \"id\": 7}\r\n");
    let (docs, report) = read_all(&CorpusSpec::new([d]));
    let ids: Vec<&str> = docs.iter().map(|d| d.doc_id.as_str()).collect();
    assert_eq!(&ids[..3], ["a.txt:0", "b.json:0", "b.json:1"]);
    assert_eq!(docs[0].text, "Whole file\nsecond line\n");
    assert_eq!(docs.len(), 3 + 10);
    assert_eq!(docs[3 + 9].doc_id, "c.parquet:9");
    assert_eq!(docs[3 + 9].text, "p0");
    // d.jsonl has no `text` field.
    assert_eq!(report.skipped, 1);
    assert_eq!(report.first[0].kind, SkipKind::MissingText);
    assert_eq!(
        report.first[0].to_string(),
        format!(
            "{}:1: missing text: no `text` field (fields: body, id)",
            d.join("d.jsonl").display()
        )
    );

    let mut spec = CorpusSpec::new([d.join("d.jsonl")]);
    spec.text_column = "body".into();
    let (docs, report) = read_all(&spec);
    assert!(report.is_empty());
    assert_eq!(docs[0].text, "custom column");
    assert_eq!(docs[0].meta, Some(serde_json::json!({"id": 7})));

    let mut spec = CorpusSpec::new([d.join("a.txt")]);
    spec.txt_lines = true;
    let (docs, _) = read_all(&spec);
    let got: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| (d.doc_id.as_str(), d.text.as_str()))
        .collect();
    assert_eq!(got, [("a.txt:0", "Whole file"), ("a.txt:1", "second line")]);
}

#[test]
fn max_docs_stops_early() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a.json", json_list(&["a", "b", "c"]));
    write(tmp.path(), "b.json", json_list(&["d"]));
    let mut spec = CorpusSpec::new([tmp.path()]);
    spec.max_docs = Some(2);
    let (docs, _) = read_all(&spec);
    assert_eq!(docs.len(), 2);
}

/// Writes one file per bad case; returns the expected (file name, location, kind) skips in order.
fn bad_corpus(d: &Path) -> Vec<(&'static str, Location, SkipKind)> {
    let good = "{\"text\": \"good\"}";
    let jsonl = [
        good,
        "{\"text\": \"unterminated",
        "{\"title\": \"no text\"}",
        "{\"text\": 42}",
        "",
        "{\"text\": null}",
        "[\"not an object\"]",
        good,
    ]
    .join("\n");
    let mut jsonl = jsonl.into_bytes();
    jsonl.extend_from_slice(b"\n{\"text\": \"caf\xe9\"}\n");
    write(d, "01-mixed.jsonl", jsonl);
    // Several zstd blocks of poorly compressible text, so a cut in the middle leaves whole
    // blocks (documents) before it.
    let mut x: u64 = 1;
    let texts: Vec<String> = (0..4000)
        .map(|_| {
            (0..12)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("{:x}", x >> 20)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let pairs: Vec<(&str, &str)> = texts.iter().map(|t| (t.as_str(), "RedPajamaC4")).collect();
    let z = zstd(&slimpajama_lines(&pairs));
    write(d, "02-truncated.jsonl.zst", &z[..z.len() / 2]);
    write(
        d,
        "03-garbage.jsonl.zst",
        b"this is not zstd at all".repeat(10),
    );
    write(d, "04-empty.jsonl", "");
    write(d, "05-empty.txt", "");
    write(d, "06-blank.json", "  \n");
    write(d, "07-binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00binary");
    write(d, "08-binary.jsonl", b"\x00\x01\x02\x03");
    write(
        d,
        "09-list.json",
        "[\"ok\", 3, null, {\"text\": \"x\"}, \"ok too\"]",
    );
    write(d, "10-bad-utf8.json", b"[\"ok\",\n\"\xff\"]");
    write(d, "11-malformed.json", "[\"ok\",\n\"no end");
    write(d, "12-object.json", "{\"text\": \"not a list\"}");
    write(d, "13-bad-utf8.txt", b"fine\nthen \xc3\x28 bad");
    write(
        d,
        "14-nulls.parquet",
        parquet(&[Some("x"), None, Some("y")], 2),
    );
    write(d, "15-not.parquet", "not a parquet file");
    write(d, "16-empty.parquet", "");
    use Location::*;
    use SkipKind::*;
    vec![
        ("01-mixed.jsonl", Line(2), MalformedJson),
        ("01-mixed.jsonl", Line(3), MissingText),
        ("01-mixed.jsonl", Line(4), NonStringText),
        ("01-mixed.jsonl", Line(6), MissingText),
        ("01-mixed.jsonl", Line(7), MalformedJson),
        ("01-mixed.jsonl", Line(9), InvalidUtf8),
        ("02-truncated.jsonl.zst", Line(0), Corrupt), // line checked separately
        ("03-garbage.jsonl.zst", Line(1), Corrupt),
        ("04-empty.jsonl", File, EmptyFile),
        ("05-empty.txt", File, EmptyFile),
        ("06-blank.json", File, EmptyFile),
        ("07-binary.txt", File, Binary),
        ("08-binary.jsonl", File, Binary),
        ("09-list.json", Record(1), NonStringText),
        ("09-list.json", Record(2), MissingText),
        ("09-list.json", Record(3), NonStringText),
        ("10-bad-utf8.json", Line(2), InvalidUtf8),
        ("11-malformed.json", Line(2), MalformedJson),
        ("12-object.json", File, MalformedJson),
        ("13-bad-utf8.txt", Line(2), InvalidUtf8),
        ("14-nulls.parquet", Record(1), MissingText),
        ("15-not.parquet", File, Corrupt),
        ("16-empty.parquet", File, EmptyFile),
    ]
}

#[test]
fn every_bad_case_is_skipped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = bad_corpus(tmp.path());
    let (docs, report) = read_all(&CorpusSpec::new([tmp.path()]));
    let got: Vec<(String, Location, SkipKind)> = report
        .first
        .iter()
        .map(|s| (name(&s.file), s.location, s.kind))
        .collect();
    assert_eq!(report.skipped, expected.len() as u64, "{report}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((g.0.as_str(), g.2), (e.0, e.2), "{report}");
        if e.0 != "02-truncated.jsonl.zst" {
            assert_eq!(g.1, e.1, "{report}");
        } else {
            // Truncated mid-stream: the lines decoded before the cut are documents, the
            // skip names the line being read when the stream broke.
            assert!(matches!(g.1, Location::Line(n) if n > 1), "{report}");
        }
    }
    assert_eq!(report.first.len(), 20);
    let summary = report.to_string();
    assert!(
        summary.starts_with("skipped 23 corpus items ("),
        "{summary}"
    );
    assert!(summary.contains("; first 20 shown\n"), "{summary}");
    assert!(
        summary.contains("01-mixed.jsonl:2: malformed JSON: EOF while parsing a string"),
        "{summary}"
    );
    assert!(
        summary.contains("01-mixed.jsonl:4: non-string text: `text` is a number, not a string"),
        "{summary}"
    );
    assert!(
        summary.contains("01-mixed.jsonl:9: invalid UTF-8: bad byte at column 14"),
        "{summary}"
    );
    assert!(
        summary.contains("09-list.json (record 1): non-string text: element is a number"),
        "{summary}"
    );
    // Nothing good was lost.
    let by_file = |f: &str| docs.iter().filter(|d| d.doc_id.starts_with(f)).count();
    assert_eq!(by_file("01-mixed.jsonl"), 2);
    assert!(by_file("02-truncated.jsonl.zst") > 0);
    assert_eq!(by_file("09-list.json"), 2);
    assert_eq!(by_file("10-bad-utf8.json"), 0);
    assert_eq!(by_file("14-nulls.parquet"), 2);
    assert_eq!(
        docs.iter()
            .find(|d| d.doc_id == "01-mixed.jsonl:7")
            .unwrap()
            .text,
        "good"
    );
}

#[test]
fn strict_mode_stops_at_the_first_problem() {
    let tmp = tempfile::tempdir().unwrap();
    bad_corpus(tmp.path());
    let mut spec = CorpusSpec::new([tmp.path()]);
    spec.strict = true;
    let mut docs = spec.documents().unwrap();
    assert_eq!(docs.next().unwrap().unwrap().doc_id, "01-mixed.jsonl:0");
    let err = docs.next().unwrap().unwrap_err();
    assert!(matches!(&err, Error::BadInput(s) if s.kind == SkipKind::MalformedJson));
    let msg = err.to_string();
    let file = tmp.path().join("01-mixed.jsonl");
    assert!(
        msg.starts_with(&format!("{}:2: malformed JSON: ", file.display())),
        "{msg}"
    );
    assert!(docs.next().is_none());
}

#[test]
fn gigantic_documents_are_skipped_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let big = "a".repeat(MAX_DOC_BYTES + 1);
    write(d, "big.txt", &big);
    let mut jsonl = format!("{{\"text\": \"{big}\"}}\n").into_bytes();
    jsonl.extend_from_slice(b"{\"text\": \"after\"}\n");
    write(d, "big.jsonl", jsonl);
    drop(big);
    write(d, "cap.txt", "b".repeat(MAX_DOC_BYTES));
    let (docs, report) = read_all(&CorpusSpec::new([d]));
    let got: Vec<(String, Location, SkipKind)> = report
        .first
        .iter()
        .map(|s| (name(&s.file), s.location, s.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("big.jsonl".into(), Location::Line(1), SkipKind::TooLarge),
            ("big.txt".into(), Location::File, SkipKind::TooLarge),
        ]
    );
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].text, "after");
    assert_eq!(docs[0].doc_id, "big.jsonl:1");
    assert_eq!(docs[1].text.len(), MAX_DOC_BYTES);
}
