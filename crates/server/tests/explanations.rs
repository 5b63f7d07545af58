//! Explanations through the API builders on a fixture index: the dashboard, the SAE table,
//! search hits (the features at the matched words lead, with their explanations) and the
//! feature search, each validated against `schemas/openapi.yaml`.
mod openapi;

use scopedex_server::{views, Snapshot};
use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::{ExplanationRecord, ExplanationScores, IndexReader};

fn row(feature: u32, text: &str) -> ExplanationRecord {
    ExplanationRecord {
        feature,
        text: text.into(),
        model: "m".into(),
        prompt_version: "scopedex-delphi-v1".into(),
        settings: "{}".into(),
        train_contexts: vec![],
        created: "2026-12-06T00:00:00Z".into(),
        scorer_model: "s".into(),
        scored: "2026-12-06T00:00:01Z".into(),
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
fn explanations_on_dashboards_tables_hits_and_feature_search() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("index");
    let spec = FixtureSpec::default();
    fixture::write_index(&out, &spec).unwrap();
    let sae = spec.saes[0].0.clone();
    // Explain every feature that fires on context 33's first word ("ctx33", position 1).
    let r = IndexReader::open(&out).unwrap();
    let cf = r.context_features(&sae, 33).unwrap().unwrap();
    let at_word: Vec<u32> = (0..cf.features.len())
        .filter(|&i| cf.max_pos[i] == 1)
        .map(|i| cf.features[i])
        .collect();
    drop(r);
    let mut rows: Vec<ExplanationRecord> = at_word
        .iter()
        .map(|&f| row(f, &format!("marker word {f}")))
        .collect();
    let legal = (0..).find(|f| !at_word.contains(f)).unwrap();
    rows.push(row(legal, "legal documents and contracts"));
    scopedex_store::explanations::publish(&out, &sae, rows).unwrap();

    let spec_api = openapi::Spec::load();
    let snap = Snapshot::open(&out).unwrap();
    let check =
        |path: &str, body: &serde_json::Value| spec_api.check("GET", path, 200, body).unwrap();

    let d = serde_json::to_value(views::dashboard(&snap, &sae, legal).unwrap()).unwrap();
    check(&format!("/api/saes/{sae}/features/{legal}"), &d);
    assert_eq!(d["explanation"]["text"], "legal documents and contracts");
    assert_eq!(d["explanation"]["score"], 0.75);
    assert_eq!(
        d["explanation"]["detection"]["auroc"],
        serde_json::Value::Null
    );
    assert_eq!(d["explanation"]["fuzzing"], serde_json::Value::Null);
    let d1 = serde_json::to_value(views::dashboard(&snap, &spec.saes[1].0, 0).unwrap()).unwrap();
    assert_eq!(d1["explanation"], serde_json::Value::Null);

    let params = views::FeatureListParams {
        sort: scopedex_server::snapshot::FeatureSort::Feature,
        descending: false,
        live: false,
        limit: 5,
        offset: legal as usize,
    };
    let list = serde_json::to_value(views::feature_list(&snap, &sae, params).unwrap()).unwrap();
    check(&format!("/api/saes/{sae}/features"), &list);
    assert_eq!(
        list["features"][0]["explanation"],
        "legal documents and contracts"
    );
    assert_eq!(list["features"][0]["explanation_score"], 0.75);

    let hits = serde_json::to_value(views::search_listing(&snap, "ctx33", 5, Some(&sae)).unwrap())
        .unwrap();
    check("/api/search", &hits);
    let hit = &hits["hits"][0];
    assert_eq!(hit["context_id"], 33);
    let got: Vec<u64> = hit["at_words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["feature"].as_u64().unwrap())
        .collect();
    let mut want: Vec<u64> = at_word.iter().map(|&f| u64::from(f)).collect();
    want.truncate(views::AT_WORDS_FEATURES);
    assert_eq!(got.len(), want.len(), "{hit}");
    assert!(got.iter().all(|f| at_word.contains(&(*f as u32))));
    for f in hit["at_words"].as_array().unwrap() {
        assert_eq!(f["explanation"], format!("marker word {}", f["feature"]));
    }

    // expl: terms combine with words and feat: terms in the context search.
    let by_expl = views::search_listing(&snap, "expl:\"legal contracts\"", 50, Some(&sae)).unwrap();
    let by_feat =
        views::search_listing(&snap, &format!("feat:{sae}/{legal}"), 50, Some(&sae)).unwrap();
    let ids = |r: &views::SearchResults| r.hits.iter().map(|h| h.context_id).collect::<Vec<_>>();
    assert!(!by_feat.hits.is_empty());
    assert_eq!(ids(&by_expl), ids(&by_feat));
    let combined = views::search_listing(&snap, "expl:legal -ctx33", 50, Some(&sae)).unwrap();
    assert!(ids(&combined).iter().all(|&c| c != 33));
    for bad in ["expl:zzzunknown", "expl:\"legal", "expl:"] {
        assert!(views::search_listing(&snap, bad, 5, None).is_err(), "{bad}");
    }
    let found =
        serde_json::to_value(views::feature_search(&snap, "contracts legal", None, 10).unwrap())
            .unwrap();
    check("/api/features/search", &found);
    assert_eq!(found["hits"][0]["feature"], legal);
    assert_eq!(found["hits"][0]["sae"], sae.as_str());
    for bad in ["", "   "] {
        assert!(views::feature_search(&snap, bad, None, 10).is_err());
    }
    assert!(views::feature_search(&snap, "x", Some("nope"), 10).is_err());
    assert!(views::feature_search(&snap, "x", None, 0).is_err());
}
