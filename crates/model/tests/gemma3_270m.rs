//! The real Gemma 3 270M GGUF (`scripts/fetch-assets.sh --model gemma-3-270m`) against
//! transformers loading the same file (`scripts/make-family-fixtures.py --gemma3-270m`): token
//! ids from the GGUF's SentencePiece vocabulary identical, every hook at the first, a middle and
//! the last layer and the last-position logits within 1e-4 (relative L2).
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{fixture, rel_l2, root, Fixture};
use scopedex_model::{load_tokenizer, Backend, CapturePlan, Family, HookPoint, Model};

const TOLERANCE: f64 = 1e-4;
const LAYERS: [usize; 3] = [0, 8, 17];

fn gguf_path() -> PathBuf {
    let p = root().join("assets/models/gemma-3-270m-Q4_K_M.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-assets.sh --model gemma-3-270m",
        p.display()
    );
    p
}

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load(&gguf_path(), &Backend::cpu()).expect("load Gemma 3 GGUF"))
}

fn reference() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        fixture(&root().join("tests/fixtures/model/gemma3_270m_reference.safetensors"))
    })
}

#[test]
fn gemma3_270m_gguf_tokenizer_matches_transformers() {
    let tok = load_tokenizer(&gguf_path()).unwrap();
    assert_eq!(tok.bos_id, Some(2));
    let f = reference();
    for (i, text) in f.texts.iter().enumerate() {
        let ours = tok.encode_with_bos(text, 1 << 20).unwrap();
        assert_eq!(ours, f.tokens(i), "text {i} {text:?}");
    }
}

#[test]
fn gemma3_270m_hooks_and_logits_match_transformers() {
    let model = model();
    assert_eq!(model.family(), Family::Gemma3);
    let f = reference();
    let hooks: Vec<HookPoint> = LAYERS
        .iter()
        .flat_map(|&l| {
            [
                HookPoint::ResidPre(l),
                HookPoint::ResidPost(l),
                HookPoint::AttnZ(l),
                HookPoint::AttnOut(l),
                HookPoint::Ln2Normalized(l),
                HookPoint::MlpIn(l),
                HookPoint::MlpOut(l),
            ]
        })
        .collect();
    // All texts as one packed batch of unequal lengths.
    let seqs: Vec<Vec<u32>> = (0..f.texts.len()).map(|i| f.tokens(i)).collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let out = model
        .forward_capture(&refs, &CapturePlan::new(hooks.clone()).with_logits())
        .unwrap();
    let mut worst = 0f64;
    for hook in &hooks {
        let rows = out.valid_rows(*hook).unwrap();
        let mut start = 0;
        for (i, s) in seqs.iter().enumerate() {
            let ours = rows.narrow(0, start, s.len()).unwrap();
            start += s.len();
            // The fixture holds every hook for the first texts, the last layer's residual
            // stream for all.
            let Some(theirs) = f.tensors.get(&format!("t{i}.{hook}")) else {
                assert!(i >= 4, "text {i}: {hook} missing from the fixture");
                continue;
            };
            let rel = rel_l2(&ours, theirs);
            assert!(rel <= TOLERANCE, "text {i} {hook}: relative L2 {rel:e}");
            worst = worst.max(rel);
        }
    }
    let logits = out.logits.unwrap();
    for i in 0..seqs.len() {
        let ours = logits.get(i).unwrap();
        if let Some(theirs) = f.tensors.get(&format!("t{i}.logits")) {
            let rel = rel_l2(&ours, theirs);
            assert!(rel <= TOLERANCE, "text {i} logits: relative L2 {rel:e}");
        }
        let top: Vec<i64> = f.tensors[&format!("t{i}.top_ids")].to_vec1().unwrap();
        let ours = ours.to_vec1::<f32>().unwrap();
        let argmax = (0..ours.len())
            .max_by(|&a, &b| ours[a].total_cmp(&ours[b]))
            .unwrap();
        assert_eq!(argmax as i64, top[0], "text {i}: argmax");
    }
    eprintln!("gemma-3-270m: worst hook relative L2 {worst:e}");
}
