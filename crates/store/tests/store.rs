//! End-to-end tests of the store: Parquet and RocksDB round trips of every table, search,
//! publish and crash safety, reader errors, the activation log's size, and the schema docs.
use std::path::Path;

use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::parquet::{all_schemas, describe_schema, read_all};
use scopedex_store::*;

fn spec() -> FixtureSpec {
    FixtureSpec::default()
}

fn fixture_index(dir: &Path) -> (FixtureSpec, IndexReader) {
    let spec = spec();
    let out = dir.join("index");
    fixture::write_index(&out, &spec).unwrap();
    (spec.clone(), IndexReader::open(&out).unwrap())
}

#[test]
fn parquet_round_trip_of_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let out = dir.path().join("index");
    let report = fixture::write_index(&out, &spec).unwrap();
    assert_eq!(report.contexts, spec.contexts);
    let layout = IndexLayout::new(&out);

    assert_eq!(
        read_all::<ContextRecord>(layout.contexts()).unwrap(),
        spec.contexts()
    );
    for (sae, d_sae) in &spec.saes {
        let features: Vec<_> = (0..*d_sae).map(|f| spec.feature(sae, f)).collect();
        assert_eq!(
            read_all::<FeatureRecord>(layout.features(sae)).unwrap(),
            features
        );
        let examples: Vec<_> = (0..*d_sae).flat_map(|f| spec.examples_of(sae, f)).collect();
        assert_eq!(
            read_all::<ExampleRecord>(layout.examples(sae)).unwrap(),
            examples
        );
        let cooc: Vec<_> = (0..*d_sae)
            .flat_map(|f| spec.cooccurrence_of(sae, f))
            .collect();
        assert_eq!(
            read_all::<CooccurrenceRecord>(layout.cooccurrence(sae)).unwrap(),
            cooc
        );
        assert_eq!(
            read_all::<SaeSummary>(layout.summary(sae)).unwrap(),
            vec![spec.summary(sae, *d_sae)]
        );
        assert_eq!(report.saes[sae].features, u64::from(*d_sae));
    }
}

#[test]
fn parquet_files_have_bounded_row_groups_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contexts.parquet");
    let spec = FixtureSpec {
        contexts: 9000,
        ctx_len: 4,
        ..spec()
    };
    let mut w = TableWriter::<ContextRecord>::create(&path).unwrap();
    // One big call: the writer splits it.
    w.write(&spec.contexts()).unwrap();
    assert_eq!(w.finish().unwrap().0, 9000);
    let reader = TableReader::<ContextRecord>::open(&path).unwrap();
    assert_eq!(reader.num_rows(), 9000);
    let batches: Vec<Vec<ContextRecord>> = reader.map(Result::unwrap).collect();
    assert!(batches.len() >= 3, "{} batches", batches.len());
    assert!(batches.iter().all(|b| b.len() <= 4096));
    assert_eq!(batches.concat(), spec.contexts());

    // A file of another table is rejected by schema, not misread.
    match TableReader::<FeatureRecord>::open(&path) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("schema mismatch"), "{reason}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn rocksdb_round_trip_of_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, r) = fixture_index(dir.path());
    assert_eq!(r.sae_ids(), vec!["L1R-8x", "L2R-8x"]);
    assert_eq!(r.manifest().contexts, spec.contexts);
    assert_eq!(r.num_contexts(), spec.contexts);
    for i in 0..spec.contexts {
        assert_eq!(r.context(i).unwrap(), Some(spec.context(i)));
    }
    assert_eq!(r.context(spec.contexts).unwrap(), None);
    let got = r.contexts(&[3, 999, 0]).unwrap();
    assert_eq!(
        got,
        vec![Some(spec.context(3)), None, Some(spec.context(0))]
    );

    for (sae, d_sae) in &spec.saes {
        assert_eq!(r.sae_summary(sae).unwrap(), Some(spec.summary(sae, *d_sae)));
        for f in 0..*d_sae {
            assert_eq!(r.feature(sae, f).unwrap(), Some(spec.feature(sae, f)));
            assert_eq!(
                r.examples(sae, f, None, 1000, 0).unwrap(),
                spec.examples_of(sae, f)
            );
            let mut cooc = spec.cooccurrence_of(sae, f);
            cooc.sort_by(|a, b| b.n_both.cmp(&a.n_both).then(a.other_sae.cmp(&b.other_sae)));
            assert_eq!(r.cooccurrence(sae, f, None, 1000).unwrap(), cooc);
        }
    }
}

#[test]
fn examples_filter_page_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, r) = fixture_index(dir.path());
    let all = spec.examples_of("L1R-8x", 5);
    let top = r
        .examples("L1R-8x", 5, Some(ExampleKind::Top), 100, 0)
        .unwrap();
    assert_eq!(top.len(), usize::from(spec.top_k));
    assert!(top.iter().all(|e| e.kind == ExampleKind::Top));
    assert!(top.windows(2).all(|w| w[0].rank < w[1].rank));
    let i1 = r
        .examples("L1R-8x", 5, Some(ExampleKind::Interval(1)), 100, 0)
        .unwrap();
    assert_eq!(
        i1,
        all.iter()
            .filter(|e| e.kind == ExampleKind::Interval(1))
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        r.examples("L1R-8x", 5, None, 3, 2).unwrap(),
        all[2..5].to_vec()
    );
    assert!(r.examples("L1R-8x", 5, None, 10, 1000).unwrap().is_empty());
    assert!(r
        .examples("L1R-8x", 5, Some(ExampleKind::Interval(9)), 10, 0)
        .unwrap()
        .is_empty());
    // The last feature's range does not run into the next SAE's keys.
    let last = r.examples("L1R-8x", 47, None, 1000, 0).unwrap();
    assert!(last.iter().all(|e| e.feature == 47));
}

#[test]
fn cooccurrence_filters_by_other_sae_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, r) = fixture_index(dir.path());
    let other = r.cooccurrence("L1R-8x", 2, Some("L2R-8x"), 100).unwrap();
    assert_eq!(other.len(), spec.partners as usize);
    assert!(other
        .iter()
        .all(|c| c.other_sae == "L2R-8x" && c.other_feature < 40));
    assert!(other.windows(2).all(|w| w[0].n_both >= w[1].n_both));
    assert_eq!(r.cooccurrence("L1R-8x", 2, None, 2).unwrap().len(), 2);
    assert!(matches!(
        r.cooccurrence("L1R-8x", 2, Some("nope"), 5),
        Err(Error::UnknownSae { .. })
    ));
}

#[test]
fn caller_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = fixture_index(dir.path());
    match r.feature("L9X", 0) {
        Err(e @ Error::UnknownSae { .. }) => {
            assert!(e.is_user_error());
            assert!(e.to_string().contains("L1R-8x, L2R-8x"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match r.examples("L2R-8x", 40, None, 10, 0) {
        Err(Error::FeatureOutOfRange {
            feature: 40,
            d_sae: 40,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.sae_summary("x"), Err(Error::UnknownSae { .. })));
    assert!(matches!(r.activations("x"), Err(Error::UnknownSae { .. })));
}

#[test]
fn search_finds_the_right_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, r) = fixture_index(dir.path());
    let hits = r.search("ctx17", 10).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.context_id).collect::<Vec<_>>(),
        vec![17]
    );
    assert!(hits[0].score > 0.0);

    let fizz: Vec<u64> = {
        let mut v: Vec<u64> = r
            .search("fizz", 1000)
            .unwrap()
            .iter()
            .map(|h| h.context_id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        fizz,
        (0..spec.contexts)
            .filter(|i| i % 3 == 0)
            .collect::<Vec<_>>()
    );
    let both: Vec<u64> = r
        .search("+fizz +even", 1000)
        .unwrap()
        .iter()
        .map(|h| h.context_id)
        .collect();
    assert!(!both.is_empty() && both.iter().all(|i| i % 6 == 0));
    assert_eq!(
        r.search("\"ctx4 even\"", 10)
            .unwrap()
            .iter()
            .map(|h| h.context_id)
            .collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(r.search("fizz", 5).unwrap().len(), 5);
    assert!(r.search("fizz", 0).unwrap().is_empty());
    assert!(r.search("nosuchword", 10).unwrap().is_empty());

    match r.search("text:(unclosed", 10) {
        Err(e @ Error::Query { .. }) => {
            assert!(e.is_user_error());
            assert!(e.to_string().contains("unclosed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let ctx = r.context(17).unwrap().unwrap();
    let snip = r.snippets("ctx17", &[&ctx.text], 40).unwrap();
    assert_eq!(&snip[0].fragment[snip[0].highlighted[0].clone()], "ctx17");
}

#[test]
fn publish_over_an_existing_index_and_old_readers_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let small = FixtureSpec {
        contexts: 10,
        ..spec()
    };
    fixture::write_index(&out, &small).unwrap();
    let old = IndexReader::open(&out).unwrap();
    assert_eq!(old.num_contexts(), 10);

    for fallback in [false, true] {
        let big = FixtureSpec {
            contexts: 30,
            ..spec()
        };
        let options = IndexWriterOptions {
            force_rename_fallback: fallback,
            ..Default::default()
        };
        fixture::write_index_with(&out, &big, options).unwrap();
        let new = IndexReader::open(&out).unwrap();
        assert_eq!(new.num_contexts(), 30);
        assert_eq!(new.context(29).unwrap(), Some(big.context(29)));
    }
    // The reader opened before the republish still answers from the old files.
    assert_eq!(old.context(9).unwrap(), Some(small.context(9)));
    assert_eq!(old.context(29).unwrap(), None);
    assert_eq!(old.search("ctx5", 3).unwrap()[0].context_id, 5);
    // Nothing but the index is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["index"]);
}

#[test]
fn a_crash_before_publish_leaves_the_old_index_intact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let spec = spec();
    fixture::write_index(&out, &spec).unwrap();
    let manifest_before = std::fs::read(out.join("manifest.json")).unwrap();

    // 1. Writer dropped mid-way (error path): its temporary directory is removed.
    let mut w = IndexWriter::create(
        &out,
        FixtureSpec {
            contexts: 5,
            ..spec.clone()
        }
        .manifest(),
    )
    .unwrap();
    fixture::fill(
        &mut w,
        &FixtureSpec {
            contexts: 5,
            ..spec.clone()
        },
    )
    .unwrap();
    let tmp = w.tmp_dir().to_path_buf();
    assert!(tmp.exists());
    drop(w);
    assert!(!tmp.exists());

    // 2. Process killed mid-way (no destructor runs): the partial directory stays beside it.
    let mut w = IndexWriter::create(&out, spec.manifest()).unwrap();
    w.write_contexts(&spec.contexts()[..3]).unwrap();
    let tmp = w.tmp_dir().to_path_buf();
    std::mem::forget(w);
    assert!(tmp.exists() && !tmp.join("manifest.json").exists());

    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        manifest_before
    );
    let r = IndexReader::open(&out).unwrap();
    assert_eq!(r.num_contexts(), spec.contexts);
    assert_eq!(
        r.feature("L1R-8x", 3).unwrap(),
        Some(spec.feature("L1R-8x", 3))
    );
    // The stale directory belongs to a live process (this one), so recovery leaves it.
    assert_eq!(recover(&out).unwrap(), Recovery::Nothing);
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn reader_errors_for_missing_and_foreign_indexes() {
    let dir = tempfile::tempdir().unwrap();
    match IndexReader::open(dir.path().join("nope")) {
        Err(e @ Error::MissingIndex { .. }) => {
            assert!(e.to_string().contains("does not exist"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    match IndexReader::open(dir.path()) {
        Err(e @ Error::MissingIndex { .. }) => {
            assert!(e.to_string().contains("manifest.json"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let (_, r) = fixture_index(dir.path());
    let out = r.dir().to_path_buf();
    drop(r);
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    std::fs::write(
        out.join("manifest.json"),
        manifest.replace("\"format_version\": 2", "\"format_version\": 3"),
    )
    .unwrap();
    match IndexReader::open(&out) {
        Err(
            e @ Error::FormatVersion {
                found: 3,
                expected: 2,
                ..
            },
        ) => {
            let msg = e.to_string();
            assert!(
                msg.contains("format version 3") && msg.contains("reads version 2"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(out.join("manifest.json"), manifest).unwrap();
    std::fs::remove_dir_all(out.join("rocksdb")).unwrap();
    match IndexReader::open(&out) {
        Err(e @ Error::MissingIndex { .. }) => assert!(e.to_string().contains("reindex"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rebuild_serving_recreates_rocksdb_and_tantivy() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, r) = fixture_index(dir.path());
    let out = r.dir().to_path_buf();
    drop(r);
    std::fs::remove_dir_all(out.join("rocksdb")).unwrap();
    std::fs::remove_dir_all(out.join("tantivy")).unwrap();
    rebuild_serving(&out).unwrap();
    rebuild_serving(&out).unwrap(); // over an existing store too
    let r = IndexReader::open(&out).unwrap();
    assert_eq!(
        r.feature("L2R-8x", 39).unwrap(),
        Some(spec.feature("L2R-8x", 39))
    );
    assert_eq!(r.search("ctx33", 1).unwrap()[0].context_id, 33);
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "contexts.parquet",
            "manifest.json",
            "rocksdb",
            "saes",
            "tantivy",
            "vocab.parquet"
        ]
    );
}

/// A killed `reindex` leaves `rocksdb.new-{pid}` / `tantivy.new-{pid}` inside the index; the
/// next one removes them, and rewrites the manifest (a new inode) so running servers reload.
#[cfg(unix)]
#[test]
fn rebuild_serving_removes_what_a_killed_rebuild_left_and_renews_the_manifest() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let (_spec, r) = fixture_index(dir.path());
    let out = r.dir().to_path_buf();
    drop(r);
    // A pid above Linux's pid_max (2^22) is never alive.
    let dead = 4_194_999;
    for name in [format!("rocksdb.new-{dead}"), format!("tantivy.new-{dead}")] {
        std::fs::create_dir_all(out.join(&name).join("sub")).unwrap();
        std::fs::write(out.join(&name).join("sub/file"), vec![0u8; 4096]).unwrap();
    }
    std::fs::write(out.join(format!("manifest.json.tmp-{dead}")), "{").unwrap();
    // A live process's rebuild (ours: this test's pid is alive) is left alone.
    let parent = std::os::unix::process::parent_id();
    std::fs::create_dir(out.join(format!("rocksdb.new-{parent}"))).unwrap();
    let manifest_before = std::fs::read(out.join("manifest.json")).unwrap();
    let ino_before = std::fs::metadata(out.join("manifest.json")).unwrap().ino();
    rebuild_serving(&out).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "contexts.parquet".to_string(),
            "manifest.json".into(),
            "rocksdb".into(),
            format!("rocksdb.new-{parent}"),
            "saes".into(),
            "tantivy".into(),
            "vocab.parquet".into()
        ]
    );
    assert_eq!(
        std::fs::read(out.join("manifest.json")).unwrap(),
        manifest_before
    );
    assert_ne!(
        std::fs::metadata(out.join("manifest.json")).unwrap().ino(),
        ino_before,
        "a new inode, so a server's stamp check sees the rebuild"
    );
    IndexReader::open(&out).unwrap();
}

#[test]
fn writer_refuses_to_publish_over_what_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let user = dir.path().join("photos");
    std::fs::create_dir(&user).unwrap();
    std::fs::write(user.join("cat.jpg"), b"meow").unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"precious").unwrap();
    for out in [&user, &file] {
        let err = IndexWriter::create(out, spec.manifest()).err().unwrap();
        assert!(matches!(err, Error::NotOurs { .. }), "{err}");
    }
    assert_eq!(std::fs::read(user.join("cat.jpg")).unwrap(), b"meow");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no leftovers"
    );
    // An empty directory and an earlier index are fine.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fixture::write_index(&empty, &spec).unwrap();
    fixture::write_index(&empty, &spec).unwrap();
    IndexReader::open(&empty).unwrap();
}

#[test]
fn writer_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let mut w = IndexWriter::create(dir.path().join("i"), spec.manifest()).unwrap();
    w.write_contexts(&[spec.context(5)]).unwrap();
    assert!(matches!(
        w.write_contexts(&[spec.context(5)]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        w.write_features("L2R-8x", &[spec.feature("L2R-8x", 40)]),
        Err(Error::FeatureOutOfRange { .. })
    ));
    assert!(matches!(
        w.write_features("nope", &[]),
        Err(Error::UnknownSae { .. })
    ));
    let mut c = spec.cooccurrence_of("L1R-8x", 0)[0].clone();
    c.other_sae = "nope".into();
    assert!(matches!(
        w.write_cooccurrence("L1R-8x", &[c]),
        Err(Error::UnknownSae { .. })
    ));
    assert!(matches!(
        w.write_summary("L1R-8x", &spec.summary("L2R-8x", 40)),
        Err(Error::InvalidInput(_))
    ));
    let mut m = spec.manifest();
    m.saes[0].id = "../evil".into();
    assert!(matches!(
        IndexWriter::create(dir.path().join("j"), m),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn activation_log_round_trip_and_bytes_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    // 400 contexts × 127 positions × ~32 active features of 16384 ≈ 1.6 M entries.
    let spec = FixtureSpec {
        contexts: 400,
        ctx_len: 128,
        saes: vec![("L1R-8x".into(), 16_384)],
        activation_l0: 32,
        ..spec()
    };
    let entries: Vec<ActivationEntry> = (0..spec.contexts)
        .flat_map(|i| spec.activations_of_context("L1R-8x", 16_384, i))
        .collect();
    let mut report = Vec::new();
    for bits in [23u8, 10, 7] {
        let sub = dir.path().join(format!("bits{bits}"));
        let options = ActivationWriterOptions {
            mantissa_bits: bits,
            ..Default::default()
        };
        let mut w = ActivationWriter::create(&sub, options).unwrap();
        for chunk in entries.chunks(100_000) {
            w.write(chunk).unwrap();
        }
        let stats = w.finish().unwrap();
        assert_eq!(stats.entries, entries.len() as u64);
        report.push(format!(
            "mantissa_bits={bits}: {:.3} bytes/entry",
            stats.bytes_per_entry()
        ));
        if bits == 10 {
            assert!(stats.bytes_per_entry() < 4.0, "{report:?}");
            // Feature lookup returns exactly that feature's entries, rounded to f16 precision.
            let reader = ActivationReader::open(&sub).unwrap();
            for f in [0u32, 1, 777, 16_383] {
                let mut want: Vec<ActivationEntry> = entries
                    .iter()
                    .filter(|e| e.feature == f)
                    .map(|e| ActivationEntry {
                        value: round_mantissa(e.value, 10),
                        ..*e
                    })
                    .collect();
                want.sort_by_key(|e| (e.context_id, e.pos));
                assert_eq!(reader.feature(f).unwrap(), want);
            }
            let total: usize = reader.batches().map(|b| b.unwrap().len()).sum();
            assert_eq!(total, entries.len());
        }
    }
    println!(
        "activation log, {} entries ({} contexts x {} positions, ~{} active of 16384): {}",
        entries.len(),
        spec.contexts,
        spec.ctx_len - 1,
        spec.activation_l0,
        report.join(", ")
    );
}

#[test]
fn index_with_activation_log_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        contexts: 8,
        activation_l0: 4,
        ..spec()
    };
    let out = dir.path().join("index");
    let report = fixture::write_index(&out, &spec).unwrap();
    let r = IndexReader::open(&out).unwrap();
    assert!(r.manifest().parameters.keep_activations);
    let n: usize = r
        .activations("L2R-8x")
        .unwrap()
        .batches()
        .map(|b| b.unwrap().len())
        .sum();
    assert_eq!(n as u64, report.saes["L2R-8x"].activations);
    assert!(n > 0);
}

/// `schemas/index.md` documents each table's columns between `<!-- schema:{name} -->` and
/// `<!-- /schema -->`. Run with `SCOPEDEX_BLESS=1` to rewrite the blocks from the code.
#[test]
fn documented_schemas_match_the_writers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/index.md");
    let mut doc = std::fs::read_to_string(&path).unwrap();
    let bless = std::env::var_os("SCOPEDEX_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (name, schema) in all_schemas() {
        let open = format!("<!-- schema:{name} -->\n");
        let close = "<!-- /schema -->";
        let start = doc
            .find(&open)
            .unwrap_or_else(|| panic!("no {open:?} in {}", path.display()))
            + open.len();
        let end = start + doc[start..].find(close).unwrap();
        let want = format!("```text\n{}```\n", describe_schema(&schema));
        if doc[start..end] != want {
            mismatches.push(format!(
                "{name}:\n--- documented\n{}--- code\n{want}",
                &doc[start..end]
            ));
            doc.replace_range(start..end, &want);
        }
    }
    if bless {
        std::fs::write(&path, doc).unwrap();
    } else {
        assert!(
            mismatches.is_empty(),
            "schemas/index.md is out of date (SCOPEDEX_BLESS=1 rewrites it):\n{}",
            mismatches.join("\n")
        );
    }
}

#[test]
fn documented_manifest_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/index.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let start = doc.find("```json\n").unwrap() + 8;
    let end = start + doc[start..].find("```").unwrap();
    let m: Manifest = serde_json::from_str(&doc[start..end]).unwrap();
    assert_eq!(m.format_version, FORMAT_VERSION);
    m.validate().unwrap();
}

#[test]
fn context_features_round_trip_and_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, r) = fixture_index(dir.path());
    for (sae, d_sae) in &spec.saes {
        let want: Vec<_> = (0..spec.contexts)
            .map(|i| spec.context_features_of(sae, *d_sae, i))
            .collect();
        assert_eq!(
            read_all::<ContextFeaturesRecord>(r.layout().context_features(sae)).unwrap(),
            want
        );
        for w in &want {
            assert_eq!(
                r.context_features(sae, w.context_id).unwrap().as_ref(),
                Some(w)
            );
        }
        assert_eq!(r.context_features(sae, spec.contexts).unwrap(), None);
    }
    assert!(matches!(
        r.context_features("nope", 0),
        Err(Error::UnknownSae { .. })
    ));
}

#[test]
fn context_features_are_validated_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec();
    let mut w = IndexWriter::create(dir.path().join("index"), spec.manifest()).unwrap();
    let rec = |id: u64, features: Vec<u32>, max_acts: Vec<f32>| ContextFeaturesRecord {
        context_id: id,
        max_pos: vec![1; max_acts.len()],
        features,
        max_acts,
    };
    w.write_context_features("L1R-8x", &[rec(3, vec![1], vec![1.0])])
        .unwrap();
    // Not increasing within one SAE; fine in another.
    let err = w
        .write_context_features("L1R-8x", &[rec(3, vec![], vec![])])
        .unwrap_err();
    assert!(err.is_user_error(), "{err}");
    w.write_context_features("L2R-8x", &[rec(0, vec![], vec![])])
        .unwrap();
    let err = w
        .write_context_features("L1R-8x", &[rec(4, vec![1, 2], vec![1.0])])
        .unwrap_err();
    assert!(err.to_string().contains("max_acts"), "{err}");
    let err = w
        .write_context_features(
            "L1R-8x",
            &[ContextFeaturesRecord {
                max_pos: vec![],
                ..rec(4, vec![1], vec![1.0])
            }],
        )
        .unwrap_err();
    assert!(err.to_string().contains("max_pos"), "{err}");
    let err = w
        .write_context_features("L1R-8x", &[rec(5, vec![48], vec![1.0])])
        .unwrap_err();
    assert!(matches!(err, Error::FeatureOutOfRange { .. }), "{err}");
    assert!(matches!(
        w.write_context_features("nope", &[]),
        Err(Error::UnknownSae { .. })
    ));
}

/// The vocabulary table: read back as written; ids that are not `0..n` in order, or a
/// truncated file, are errors naming the file (never a half-rendered index).
#[test]
fn vocabulary_round_trip_and_bad_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (_spec, r) = fixture_index(dir.path());
    let out = r.dir().to_path_buf();
    drop(r);
    assert_eq!(read_vocab(&out).unwrap(), None, "the fixture writes none");
    let vocab: Vec<VocabRecord> = (0..300u32)
        .map(|i| VocabRecord {
            token_id: i,
            piece: format!("Ġt{i}"),
            text: format!(" t{i}"),
            bytes: format!(" t{i}").into_bytes(),
        })
        .collect();
    let write = |rows: &[VocabRecord]| {
        let mut w = parquet::TableWriter::<VocabRecord>::create(out.join("vocab.parquet")).unwrap();
        w.write(rows).unwrap();
        w.finish().unwrap();
    };
    write(&vocab);
    assert_eq!(
        IndexReader::open(&out).unwrap().vocab().unwrap(),
        Some(vocab.clone())
    );

    let mut gap = vocab.clone();
    gap.remove(7);
    write(&gap);
    let err = read_vocab(&out).unwrap_err().to_string();
    assert!(
        err.contains("vocab.parquet") && err.contains("row 7"),
        "{err}"
    );

    write(&vocab);
    let bytes = std::fs::read(out.join("vocab.parquet")).unwrap();
    std::fs::write(out.join("vocab.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let err = read_vocab(&out).unwrap_err().to_string();
    assert!(err.contains("vocab.parquet"), "{err}");
}
