//! Feature-aware search, "more like this" and feature occurrences, each checked against a
//! brute-force evaluation over what the index stores: the contexts' text (`contexts.parquet`),
//! the sparse activation log (written at full f32 precision here) and the features' max
//! activations (`features.parquet`). Nothing is taken from the code under test.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use scopedex_store::fixture::{self, mix, FixtureSpec};
use scopedex_store::parquet::Table;
use scopedex_store::{
    ActivationReader, ActivationWriterOptions, ContextFeaturesRecord, ContextRecord, Error,
    FeatureRecord, IndexReader, IndexWriterOptions, TableReader, MAX_SIMILAR_TERMS,
    SIMILAR_LIST_LEN,
};

const BUCKETS: [f64; 3] = [0.25, 0.5, 0.75];

fn read_all<T: Table>(path: impl AsRef<Path>) -> Vec<T> {
    let mut out = Vec::new();
    for b in TableReader::<T>::open(path.as_ref()).unwrap() {
        out.extend(b.unwrap());
    }
    out
}

/// What the brute force knows about one context.
struct Ctx {
    id: u64,
    tokens: Vec<String>,
    /// `(sae, feature)` → (max activation, first position of it).
    features: BTreeMap<(String, u32), (f32, u32)>,
}

struct World {
    _dir: tempfile::TempDir,
    reader: IndexReader,
    spec: FixtureSpec,
    contexts: Vec<Ctx>,
    /// `(sae, feature)` → corpus-wide max activation from features.parquet.
    feature_max: HashMap<(String, u32), f32>,
}

fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let spec = FixtureSpec {
            contexts: 96,
            activation_l0: 3,
            ..FixtureSpec::default()
        };
        let out = dir.path().join("index");
        let options = IndexWriterOptions {
            activations: ActivationWriterOptions {
                mantissa_bits: 23, // exact: the brute force compares maxima bit for bit
                ..Default::default()
            },
            ..Default::default()
        };
        fixture::write_index_with(&out, &spec, options).unwrap();
        let reader = IndexReader::open(&out).unwrap();
        let layout = reader.layout().clone();
        let mut contexts: Vec<Ctx> = read_all::<ContextRecord>(layout.contexts())
            .into_iter()
            .map(|c| Ctx {
                id: c.context_id,
                tokens: tokenize(&c.text),
                features: BTreeMap::new(),
            })
            .collect();
        let mut feature_max = HashMap::new();
        for (sae, _) in &spec.saes {
            for r in read_all::<FeatureRecord>(layout.features(sae)) {
                feature_max.insert((sae.clone(), r.feature), r.max_act);
            }
            for batch in ActivationReader::open(layout.activations_dir(sae))
                .unwrap()
                .batches()
            {
                for e in batch.unwrap() {
                    assert!(e.value > 0.0);
                    let slot = contexts[e.context_id as usize]
                        .features
                        .entry((sae.clone(), e.feature))
                        .or_insert((0.0, 0));
                    let pos = u32::from(e.pos);
                    if e.value > slot.0 || (e.value == slot.0 && pos < slot.1) {
                        *slot = (e.value, pos);
                    }
                }
            }
        }
        World {
            _dir: dir,
            reader,
            spec,
            contexts,
            feature_max,
        }
    }

    /// Strength level of `(sae, f)` in `c` (None: not active).
    fn level(&self, c: &Ctx, sae: &str, f: u32) -> Option<usize> {
        let &(act, _) = c.features.get(&(sae.to_string(), f))?;
        let max = f64::from(self.feature_max[&(sae.to_string(), f)]);
        if max <= 0.0 {
            return Some(0);
        }
        Some(
            BUCKETS
                .iter()
                .filter(|&&t| f64::from(act) >= t * max)
                .count(),
        )
    }

    fn search(&self, q: &str) -> BTreeSet<u64> {
        self.reader
            .search(q, 10_000)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .iter()
            .map(|h| h.context_id)
            .collect()
    }

    fn brute(&self, e: &Expr) -> BTreeSet<u64> {
        self.contexts
            .iter()
            .filter(|c| self.eval(e, c))
            .map(|c| c.id)
            .collect()
    }

    fn eval(&self, e: &Expr, c: &Ctx) -> bool {
        match e {
            Expr::Words(ws) => c
                .tokens
                .windows(ws.len())
                .any(|w| w.iter().zip(ws).all(|(a, b)| a == b)),
            Expr::Feat(sae, f, level) => self.level(c, sae, *f).is_some_and(|l| l >= *level),
            Expr::Not(x) => !self.eval(x, c),
            Expr::And(xs) => xs.iter().all(|x| self.eval(x, c)),
            Expr::Or(xs) => xs.iter().any(|x| self.eval(x, c)),
        }
    }

    fn check(&self, q: &str, e: &Expr) -> usize {
        let want = self.brute(e);
        assert_eq!(self.search(q), want, "query {q:?}");
        want.len()
    }

    /// Features active somewhere, with a level some context reaches (for interesting queries).
    fn live_features(&self) -> Vec<(String, u32, usize)> {
        let mut out = BTreeSet::new();
        for c in &self.contexts {
            for (sae, f) in c.features.keys() {
                out.insert((sae.clone(), *f, self.level(c, sae, *f).unwrap()));
            }
        }
        out.into_iter().collect()
    }
}

/// The brute force's own query tree.
#[derive(Debug, Clone)]
enum Expr {
    Words(Vec<String>),
    Feat(String, u32, usize),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

fn w(s: &str) -> Expr {
    Expr::Words(s.split(' ').map(str::to_string).collect())
}

fn feat(sae: &str, f: u32, level: usize) -> Expr {
    Expr::Feat(sae.to_string(), f, level)
}

fn feat_q(sae: &str, f: u32, level: usize) -> String {
    match level {
        0 => format!("feat:{sae}/{f}"),
        l => format!("feat:{sae}/{f}>{}", BUCKETS[l - 1]),
    }
}

#[test]
fn words_and_phrases_match_the_brute_force() {
    let world = World::new();
    assert_eq!(world.check("fizz", &w("fizz")), 32);
    assert_eq!(world.check("ctx17", &w("ctx17")), 1);
    assert!(world.check("\"ctx4 even\"", &w("ctx4 even")) == 1);
    assert_eq!(world.check("\"ctx4 odd\"", &w("ctx4 odd")), 0);
    // A word the tokenizer splits is a phrase; case does not matter.
    world.check("EVEN-fizz", &w("even fizz"));
    world.check("text:Fizz", &w("fizz"));
}

#[test]
fn feature_terms_match_the_brute_force() {
    let world = World::new();
    let mut nonempty = 0;
    for (sae, f, _) in world.live_features().into_iter().step_by(5) {
        let n = world.check(&feat_q(&sae, f, 0), &feat(&sae, f, 0));
        assert!(n > 0, "{sae}/{f} is live");
        nonempty += 1;
    }
    assert!(nonempty > 10);
    // A feature that never fires (every 7th is dead in the fixture) matches nothing.
    assert_eq!(world.check("feat:L1R-8x/6", &feat("L1R-8x", 6, 0)), 0);
}

#[test]
fn strength_buckets_match_the_brute_force_and_rank_stronger_first() {
    let world = World::new();
    let mut per_level = [0usize; 4];
    for (sae, f, reached) in world.live_features() {
        for (level, count) in per_level.iter_mut().enumerate() {
            let n = world.check(&feat_q(&sae, f, level), &feat(&sae, f, level));
            if level <= reached {
                assert!(n > 0, "{sae}/{f} reaches level {reached}");
                *count += 1;
            }
        }
        // `>=` and percentages name the same buckets.
        assert_eq!(
            world.search(&format!("feat:{sae}/{f}>=0.5")),
            world.search(&format!("feat:{sae}/{f}>50%"))
        );
    }
    assert!(per_level.iter().all(|&n| n > 0), "{per_level:?}");
    // Hits of a feature come strongest bucket first.
    for (sae, f, _) in world.live_features().into_iter().take(40) {
        let hits = world.reader.search(&feat_q(&sae, f, 0), 1000).unwrap();
        let levels: Vec<usize> = hits
            .iter()
            .map(|h| {
                world
                    .level(&world.contexts[h.context_id as usize], &sae, f)
                    .unwrap()
            })
            .collect();
        assert!(
            levels.windows(2).all(|p| p[0] >= p[1]),
            "{sae}/{f}: {levels:?}"
        );
    }
}

#[test]
fn negation_and_or_and_grouping_match_the_brute_force() {
    let world = World::new();
    let live = world.live_features();
    let (s, f, _) = live[live.len() / 2].clone();
    let fq = feat_q(&s, f, 0);
    let fe = || feat(&s, f, 0);
    let not = |e: Expr| Expr::Not(Box::new(e));
    let cases: Vec<(String, Expr)> = vec![
        (format!("-{fq}"), not(fe())),
        (format!("NOT {fq}"), not(fe())),
        (format!("{fq} AND fizz"), Expr::And(vec![fe(), w("fizz")])),
        (format!("{fq} fizz"), Expr::And(vec![fe(), w("fizz")])),
        (format!("{fq} -fizz"), Expr::And(vec![fe(), not(w("fizz"))])),
        (format!("{fq} OR fizz"), Expr::Or(vec![fe(), w("fizz")])),
        (
            format!("even AND ({fq} OR fizz)"),
            Expr::And(vec![w("even"), Expr::Or(vec![fe(), w("fizz")])]),
        ),
        (
            format!("even {fq} OR fizz"),
            Expr::Or(vec![Expr::And(vec![w("even"), fe()]), w("fizz")]),
        ),
        (
            "-(even OR fizz)".to_string(),
            not(Expr::Or(vec![w("even"), w("fizz")])),
        ),
        (
            "odd OR -fizz".to_string(),
            Expr::Or(vec![w("odd"), not(w("fizz"))]),
        ),
        (
            "-even -fizz".to_string(),
            Expr::And(vec![not(w("even")), not(w("fizz"))]),
        ),
    ];
    for (q, e) in &cases {
        world.check(q, e);
    }
}

/// Random queries over words, phrases, features, buckets and every operator.
#[test]
fn random_queries_match_the_brute_force() {
    let world = World::new();
    let live = world.live_features();
    let phrases: Vec<String> = world
        .contexts
        .iter()
        .step_by(7)
        .map(|c| c.tokens[2..4].join(" "))
        .collect();
    let words = [
        "fizz",
        "even",
        "odd",
        "w3",
        "w17",
        "w42",
        "ctx5",
        "nosuchword",
    ];
    struct Gen<'a> {
        seed: u64,
        live: &'a [(String, u32, usize)],
        phrases: &'a [String],
        words: &'a [&'a str],
    }
    impl Gen<'_> {
        fn next(&mut self, n: u64) -> u64 {
            self.seed += 1;
            mix(self.seed) % n
        }
        fn expr(&mut self, depth: u32) -> (String, Expr) {
            let leaf = depth == 0 || self.next(3) == 0;
            if leaf {
                return match self.next(3) {
                    0 => {
                        let word = self.words[self.next(self.words.len() as u64) as usize];
                        (word.to_string(), w(word))
                    }
                    1 => {
                        let p = &self.phrases[self.next(self.phrases.len() as u64) as usize];
                        (format!("\"{p}\""), w(p))
                    }
                    _ => {
                        let (s, f, _) = &self.live[self.next(self.live.len() as u64) as usize];
                        let level = self.next(4) as usize;
                        (feat_q(s, *f, level), feat(s, *f, level))
                    }
                };
            }
            match self.next(5) {
                0 => {
                    let (q, e) = self.expr(depth - 1);
                    let q = if self.next(2) == 0 {
                        format!("-({q})")
                    } else {
                        format!("NOT ({q})")
                    };
                    (q, Expr::Not(Box::new(e)))
                }
                1 | 2 => {
                    let (a, ea) = self.expr(depth - 1);
                    let (b, eb) = self.expr(depth - 1);
                    let op = if self.next(2) == 0 { " AND " } else { " " };
                    (format!("({a}){op}({b})"), Expr::And(vec![ea, eb]))
                }
                _ => {
                    let (a, ea) = self.expr(depth - 1);
                    let (b, eb) = self.expr(depth - 1);
                    (format!("({a}) OR ({b})"), Expr::Or(vec![ea, eb]))
                }
            }
        }
    }
    let mut g = Gen {
        seed: 12,
        live: &live,
        phrases: &phrases,
        words: &words,
    };
    let mut sizes = Vec::new();
    for _ in 0..400 {
        let (q, e) = g.expr(3);
        sizes.push(world.check(&q, &e));
    }
    // The queries are not trivial: some match nothing, some everything, most in between.
    let n = world.contexts.len();
    assert!(sizes.contains(&0));
    assert!(
        sizes.iter().filter(|&&s| s > 0 && s < n).count() > 200,
        "{sizes:?}"
    );
}

#[test]
fn stored_context_features_are_the_activation_log_aggregated() {
    let world = World::new();
    for (sae, _) in &world.spec.saes {
        let rows = read_all::<ContextFeaturesRecord>(world.reader.layout().context_features(sae));
        assert_eq!(rows.len(), world.contexts.len());
        for r in rows {
            let c = &world.contexts[r.context_id as usize];
            let want: BTreeMap<u32, (f32, u32)> = c
                .features
                .iter()
                .filter(|((s, _), _)| s == sae)
                .map(|((_, f), v)| (*f, *v))
                .collect();
            let got: BTreeMap<u32, (f32, u32)> = r
                .features
                .iter()
                .zip(r.max_acts.iter().zip(&r.max_pos))
                .map(|(&f, (&a, &p))| (f, (a, p)))
                .collect();
            assert_eq!(got, want, "{sae} context {}", r.context_id);
            assert!(
                r.max_acts.windows(2).all(|p| p[0] >= p[1]),
                "strongest first"
            );
        }
    }
}

#[test]
fn bad_queries_are_errors_with_positions() {
    let world = World::new();
    for (q, pos) in [
        ("fizz (even", 5),
        ("fizz even)", 9),
        ("feat:L9R/1", 5),
        ("feat:L1R-8x/48", 12),
        ("feat:L1R-8x/4>0.6", 14),
        ("even AND", 8),
        ("\"open", 0),
    ] {
        match world.reader.search(q, 10) {
            Err(e @ Error::Query { .. }) => {
                assert!(e.is_user_error());
                let Error::Query { position, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*position, Some(pos), "{q}: {e}");
            }
            other => panic!("{q}: {other:?}"),
        }
    }
}

/// The brute-force "more like this": the weighted overlap of feature terms.
fn brute_similar(world: &World, source: u64, sae: Option<&str>) -> (Vec<(u64, f64)>, usize) {
    let terms_of = |c: &Ctx, only: Option<&str>| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (s, f) in c.features.keys() {
            if only.is_some_and(|o| o != s) {
                continue;
            }
            let level = world.level(c, s, *f).unwrap();
            out.insert(format!("{s}/{f}"));
            for b in &BUCKETS[..level] {
                out.insert(format!("{s}/{f}>{b}"));
            }
        }
        out
    };
    let all: Vec<BTreeSet<String>> = world.contexts.iter().map(|c| terms_of(c, None)).collect();
    let n = world.contexts.len() as f64;
    let mut df: HashMap<&str, f64> = HashMap::new();
    for ts in &all {
        for t in ts {
            *df.entry(t.as_str()).or_default() += 1.0;
        }
    }
    let weight = |t: &str| (1.0 + (n - df[t] + 0.5) / (df[t] + 0.5)).ln() as f32;
    let mut src: Vec<(String, f32)> = terms_of(&world.contexts[source as usize], sae)
        .into_iter()
        .map(|t| {
            let wt = weight(&t);
            (t, wt)
        })
        .collect();
    src.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    src.truncate(MAX_SIMILAR_TERMS);
    let mut scores: Vec<(u64, f64)> = world
        .contexts
        .iter()
        .filter(|c| c.id != source)
        .map(|c| {
            let s: f64 = src
                .iter()
                .filter(|(t, _)| all[c.id as usize].contains(t))
                .map(|(_, w)| f64::from(*w))
                .sum();
            (c.id, s)
        })
        .filter(|&(_, s)| s > 0.0)
        .collect();
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    (scores, src.len())
}

#[test]
fn similar_contexts_rank_by_the_brute_force_weighted_overlap() {
    let world = World::new();
    for source in [0u64, 5, 31, 77, 95] {
        for sae in [None, Some("L1R-8x"), Some("L2R-8x")] {
            let (want, n_terms) = brute_similar(&world, source, sae);
            let got = world
                .reader
                .similar_to_context(source, sae, 1000)
                .unwrap()
                .unwrap();
            assert_eq!(got.terms.len(), n_terms);
            assert!(got.hits.iter().all(|h| h.context_id != source));
            assert_eq!(got.hits.len(), want.len(), "source {source} {sae:?}");
            // Same score sequence, and every hit has the brute-force score of its context.
            let want_score: HashMap<u64, f64> = want.iter().copied().collect();
            for (h, (_, ws)) in got.hits.iter().zip(&want) {
                let tol = 1e-4 * ws.max(1.0);
                assert!((f64::from(h.score) - ws).abs() < tol, "{h:?} vs {ws}");
                let own = want_score[&h.context_id];
                assert!((f64::from(h.score) - own).abs() < tol, "{h:?} vs {own}");
            }
            // A top-5 page is the head of the full ranking.
            let top = world
                .reader
                .similar_to_context(source, sae, 5)
                .unwrap()
                .unwrap();
            for (a, b) in top.hits.iter().zip(&got.hits) {
                assert!((a.score - b.score).abs() < 1e-4);
            }
        }
    }
    assert_eq!(
        world.reader.similar_to_context(10_000, None, 5).unwrap(),
        None
    );
    assert!(matches!(
        world.reader.similar_to_context(0, Some("nope"), 5),
        Err(Error::UnknownSae { .. })
    ));
}

#[test]
fn context_top_features_are_the_head_of_each_saes_list() {
    let world = World::new();
    let r = &world.reader;
    let saes = r.sae_ids();
    let mut seen = 0;
    for c in &world.contexts {
        let top = r.context_top_features(c.id).unwrap();
        assert_eq!(top.len(), saes.len());
        for (sae, top) in saes.iter().zip(&top) {
            let full = r.context_features(sae, c.id).unwrap();
            let want: Vec<(u32, f32)> = full
                .map(|f| f.features.into_iter().zip(f.max_acts).collect())
                .unwrap_or_default();
            let n = want.len().min(scopedex_store::rocks::CONTEXT_TOP_FEATURES);
            assert_eq!(top[..], want[..n], "context {} {sae}", c.id);
            seen += top.len();
        }
    }
    assert!(seen > 0);
}

#[test]
fn batched_context_reads_equal_one_read_per_context() {
    let world = World::new();
    let r = &world.reader;
    // Every context, shuffled, with an unknown id in the middle (no record: empty lists).
    let mut ids: Vec<u64> = world.contexts.iter().map(|c| c.id).rev().collect();
    ids.insert(ids.len() / 2, 10_000);
    let tops = r.context_top_features_many(&ids).unwrap();
    assert_eq!(tops.len(), ids.len());
    for (&id, top) in ids.iter().zip(&tops) {
        assert_eq!(*top, r.context_top_features(id).unwrap(), "context {id}");
    }
    for sae in r.sae_ids() {
        let mut seen = vec![None; ids.len()];
        r.with_context_features_many(sae, &ids, |j, cf| {
            assert!(seen[j].is_none(), "visited twice");
            seen[j] = Some(cf.iter().collect::<Vec<_>>());
        })
        .unwrap();
        for (&id, got) in ids.iter().zip(&seen) {
            let want = r
                .with_context_features(sae, id, |cf| cf.iter().collect::<Vec<_>>())
                .unwrap();
            assert_eq!(*got, want, "{sae} context {id}");
        }
        assert!(seen.iter().filter(|s| s.is_some()).count() > ids.len() / 2);
    }
    assert!(matches!(
        r.with_context_features_many("nope", &ids, |_, _| {}),
        Err(Error::UnknownSae { .. })
    ));
}

#[test]
fn precomputed_similar_lists_equal_the_live_ones() {
    let world = World::new();
    let r = &world.reader;
    assert_eq!(r.similar_lists_precomputed(), SIMILAR_LIST_LEN);
    let mut shared = 0;
    for c in &world.contexts {
        for limit in [SIMILAR_LIST_LEN, 20, 1, 0, SIMILAR_LIST_LEN + 10] {
            let stored = r.similar_list(c.id, None, limit).unwrap().unwrap();
            let live = r.similar_list_live(c.id, None, limit).unwrap().unwrap();
            assert_eq!(stored, live, "context {} limit {limit}", c.id);
            shared += stored.hits.iter().map(|h| h.shared.len()).sum::<usize>();
        }
        // Restricted to one SAE: live, and the same as asking live.
        assert_eq!(
            r.similar_list(c.id, Some("L2R-8x"), 5).unwrap(),
            r.similar_list_live(c.id, Some("L2R-8x"), 5).unwrap()
        );
    }
    assert!(
        shared > 0,
        "no shared features at all: the comparison is empty"
    );
    assert_eq!(r.similar_list(10_000, None, 5).unwrap(), None);
}

#[test]
fn occurrences_page_through_every_context_of_the_activation_log() {
    let world = World::new();
    for (sae, f, _) in world.live_features().into_iter().step_by(3) {
        let want: Vec<(u64, f32, u32)> = world
            .contexts
            .iter()
            .filter_map(|c| {
                c.features
                    .get(&(sae.clone(), f))
                    .map(|&(a, p)| (c.id, a, p))
            })
            .collect();
        let mut got = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = world.reader.occurrences(&sae, f, after, 4).unwrap();
            assert!(page.occurrences.len() <= 4);
            got.extend(
                page.occurrences
                    .iter()
                    .map(|o| (o.context_id, o.max_act, o.max_pos)),
            );
            pages += 1;
            match page.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        assert_eq!(got, want, "{sae}/{f}");
        assert!(pages >= want.len().div_ceil(4));
    }
    // Without a log there is nothing to page through.
    let dir = tempfile::tempdir().unwrap();
    fixture::write_index(&dir.path().join("i"), &FixtureSpec::default()).unwrap();
    let r = IndexReader::open(dir.path().join("i")).unwrap();
    assert!(r
        .occurrences("L1R-8x", 0, None, 10)
        .unwrap()
        .occurrences
        .is_empty());
    assert!(matches!(
        r.occurrences("L1R-8x", 48, None, 10),
        Err(Error::FeatureOutOfRange { .. })
    ));
}

/// Prints the text index's bytes per context by field (the cost of the feature terms), for the
/// index at `$SCOPEDEX_MEASURE_INDEX` or the fixture:
/// `SCOPEDEX_MEASURE_INDEX=out/demo-index cargo test -p scopedex-store --test feature_search \
///  -- --ignored --nocapture index_size`.
#[test]
#[ignore = "a measurement, not a check"]
fn index_size_of_feature_terms_per_context() {
    let world;
    let dir = match std::env::var_os("SCOPEDEX_MEASURE_INDEX") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            world = World::new();
            world.reader.dir().to_path_buf()
        }
    };
    let reader = IndexReader::open(&dir).unwrap();
    let index = tantivy::Index::open_in_dir(reader.layout().tantivy()).unwrap();
    let searcher = index.reader().unwrap().searcher();
    let n = searcher.num_docs() as f64;
    let usage = searcher.space_usage().unwrap();
    let mut per_field: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for seg in usage.segments() {
        for (i, part) in [
            seg.termdict(),
            seg.postings(),
            seg.positions(),
            seg.fieldnorms(),
        ]
        .into_iter()
        .enumerate()
        {
            for f in part.fields() {
                per_field.entry(f.field_name().to_string()).or_default()[i] +=
                    f.total().get_bytes();
            }
        }
    }
    let mut terms = 0usize;
    let mut features = 0usize;
    for sae in reader.sae_ids() {
        for r in read_all::<ContextFeaturesRecord>(reader.layout().context_features(sae)) {
            features += r.features.len();
            terms += reader.feature_terms(sae, &r).unwrap().len();
        }
    }
    println!(
        "{}: {n} contexts, {:.1} active features and {:.1} feature terms per context (all SAEs); \
         total tantivy {:.0} bytes/context",
        dir.display(),
        features as f64 / n,
        terms as f64 / n,
        usage.total().get_bytes() as f64 / n
    );
    for (field, [dict, post, pos, norms]) in per_field {
        println!(
            "  {field:>10}: termdict {:.1}  postings {:.1}  positions {:.1}  fieldnorms {:.1}  \
             = {:.1} bytes/context",
            dict as f64 / n,
            post as f64 / n,
            pos as f64 / n,
            norms as f64 / n,
            (dict + post + pos + norms) as f64 / n
        );
    }
}
