//! Explanations in an index: atomic republish, serving from RocksDB, text search, reindex from
//! Parquet, and a reader of the old index that keeps working.
use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::*;

fn row(feature: u32, text: &str) -> ExplanationRecord {
    ExplanationRecord {
        feature,
        text: text.into(),
        model: "m".into(),
        prompt_version: "v".into(),
        settings: "{}".into(),
        train_contexts: vec![1, 2, u64::from(feature)],
        created: "2026-12-06T00:00:00Z".into(),
        scorer_model: String::new(),
        scored: String::new(),
        detection: ExplanationScores {
            n: 10,
            precision: 0.5,
            recall: 1.0,
            f1: 2.0 / 3.0,
            balanced_accuracy: 0.75,
            auroc: f32::NAN,
        },
        fuzzing: ExplanationScores::default(),
    }
}

#[test]
fn explanations_are_published_served_searched_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    let (sae, _) = spec.saes[0].clone();
    let old = IndexReader::open(&out).unwrap();
    assert_eq!(old.explanation(&sae, 3).unwrap(), None);
    assert!(old
        .search_explanations("legal", None, 10)
        .unwrap()
        .is_empty());

    explanations::publish(
        &out,
        &sae,
        vec![
            row(3, "references to legal documents and contracts"),
            row(5, "days of the week"),
            row(3, "legal documents such as contracts and deeds"),
        ],
    )
    .unwrap();
    // Nothing but the index is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The old reader still answers from the files it has open.
    assert!(old.feature(&sae, 3).unwrap().is_some());

    let r = IndexReader::open(&out).unwrap();
    let got = r.explanation(&sae, 3).unwrap().unwrap();
    assert_eq!(
        got.text, "legal documents such as contracts and deeds",
        "the last row wins"
    );
    assert_eq!(got.train_contexts, vec![1, 2, 3]);
    assert_eq!(got.detection.balanced_accuracy, 0.75);
    assert!(got.detection.auroc.is_nan() && got.fuzzing.f1.is_nan());
    assert_eq!(r.explanations(&sae).unwrap().len(), 2);
    let many = r.explanations_many(&sae, &[5, 4, 3]).unwrap();
    assert_eq!(
        many.iter()
            .map(|e| e.as_ref().map(|e| e.feature))
            .collect::<Vec<_>>(),
        vec![Some(5), None, Some(3)]
    );
    // The rest of the index is intact.
    assert_eq!(r.feature(&sae, 39).unwrap(), Some(spec.feature(&sae, 39)));
    assert_eq!(r.search("ctx33", 1).unwrap()[0].context_id, 33);

    let hits = r.search_explanations("legal contracts", None, 10).unwrap();
    assert_eq!((hits.len(), hits[0].feature), (1, 3));
    assert_eq!(hits[0].sae, sae);
    // No document has both words: any word may match.
    let hits = r
        .search_explanations("week contracts", Some(&sae), 10)
        .unwrap();
    assert_eq!(hits.len(), 2);
    let other = &spec.saes[1].0;
    assert!(r
        .search_explanations("week", Some(other), 10)
        .unwrap()
        .is_empty());

    // reindex rebuilds RocksDB and the text index from Parquet.
    drop(r);
    std::fs::remove_dir_all(out.join("rocksdb")).unwrap();
    std::fs::remove_dir_all(out.join("explanations")).unwrap();
    rebuild_serving(&out).unwrap();
    let r = IndexReader::open(&out).unwrap();
    assert_eq!(
        r.explanation(&sae, 5).unwrap().unwrap().text,
        "days of the week"
    );
    assert_eq!(
        r.search_explanations("week", None, 10).unwrap()[0].feature,
        5
    );

    // A second publish replaces the SAE's explanations; an empty one removes them.
    explanations::publish(&out, &sae, vec![row(7, "numbers")]).unwrap();
    let r = IndexReader::open(&out).unwrap();
    assert_eq!(r.explanation(&sae, 3).unwrap(), None);
    assert_eq!(r.explanation(&sae, 7).unwrap().unwrap().text, "numbers");
    explanations::publish(&out, &sae, Vec::new()).unwrap();
    let r = IndexReader::open(&out).unwrap();
    assert!(r.explanations(&sae).unwrap().is_empty());
    assert!(r
        .search_explanations("numbers", None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn bad_explanations_are_refused_and_leave_the_index_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    let (sae, d_sae) = spec.saes[0].clone();
    let e = explanations::publish(&out, &sae, vec![row(d_sae, "x")]).unwrap_err();
    assert!(matches!(e, Error::FeatureOutOfRange { .. }), "{e}");
    let e = explanations::publish(&out, "nope", vec![row(0, "x")]).unwrap_err();
    assert!(matches!(e, Error::UnknownSae { .. }), "{e}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left"
    );
    assert!(IndexReader::open(&out)
        .unwrap()
        .explanations(&sae)
        .unwrap()
        .is_empty());
}
