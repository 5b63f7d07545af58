//! The scorers' prompts and answers, after delphi's detection and fuzzing
//! (`delphi/scorers/classifier/{detection,fuzz}.py`), with scopedex's own wording.
//!
//! - **Detection**: given the explanation and a batch of contexts (activating test examples
//!   mixed with non-activating contexts), the model answers which ones activate the feature.
//! - **Fuzzing**: the same contexts with tokens marked `<<like this>>`: in activating examples
//!   the tokens at or above the threshold, in non-activating ones as many random tokens as an
//!   activating example has on average; the model answers which marks fit the explanation.
//!
//! The answer is a list `[1, 0, ...]`, one entry per example; with log probabilities the
//! probability of each entry is P("1") / (P("0") + P("1")) over its top alternatives.
use serde::{Deserialize, Serialize};

use crate::client::{Message, TokenLogprobs};
use crate::prompt::mark;
use crate::sample::{Example, Rng};

/// Version of the scorer prompts.
pub const SCORER_PROMPT_VERSION: &str = "scopedex-delphi-scorers-v1";

/// Which scorer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorerKind {
    /// Which contexts activate the feature.
    Detection,
    /// Which marked tokens are right.
    Fuzzing,
}

impl ScorerKind {
    /// `detection` / `fuzzing`.
    pub fn name(self) -> &'static str {
        match self {
            ScorerKind::Detection => "detection",
            ScorerKind::Fuzzing => "fuzzing",
        }
    }
}

const DETECTION_SYSTEM: &str = "You are an intelligent and careful assistant checking an \
explanation of a hidden feature of a language model. You will get the explanation and several \
text examples. For each example, decide whether the feature activates on some of its tokens, \
judging only by the explanation.\n\
Answer with a list of 0s and 1s, one per example, in order: 1 if the feature activates in the \
example, 0 if not. Answer with the list only, for example [1, 0, 0, 1, 0].";

const FUZZING_SYSTEM: &str = "You are an intelligent and careful assistant checking an \
explanation of a hidden feature of a language model. You will get the explanation and several \
text examples in which some tokens are marked between delimiters <<like this>>. For each \
example, decide whether the marked tokens are ones the explanation says the feature responds \
to.\n\
Answer with a list of 0s and 1s, one per example, in order: 1 if the marks fit the explanation, \
0 if not. Answer with the list only, for example [1, 0, 0, 1, 0].";

/// One example as a scorer shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredExample {
    /// The text shown (with marks for fuzzing).
    pub text: String,
    /// The right answer.
    pub actual: bool,
}

/// Detection: the plain text of each example; activating ones are the positives.
pub fn detection_examples(
    activating: &[Example],
    non_activating: &[Example],
) -> Vec<ScoredExample> {
    activating
        .iter()
        .map(|e| (e, true))
        .chain(non_activating.iter().map(|e| (e, false)))
        .map(|(e, actual)| ScoredExample {
            text: e
                .tokens
                .concat()
                .replace(['\n', '\r'], " ")
                .trim()
                .to_string(),
            actual,
        })
        .collect()
}

/// Fuzzing: activating examples marked at `threshold * max` (positives); non-activating ones
/// with `ceil(mean marked tokens per activating example)` random tokens marked (negatives).
pub fn fuzzing_examples(
    activating: &[Example],
    non_activating: &[Example],
    threshold: f32,
    max: f32,
    rng: &mut Rng,
) -> Vec<ScoredExample> {
    let mut out = Vec::with_capacity(activating.len() + non_activating.len());
    let mut marked_total = 0usize;
    for e in activating {
        let (text, pairs) = mark(e, threshold, max);
        marked_total += pairs.len();
        out.push(ScoredExample {
            text: text.replace(['\n', '\r'], " ").trim().to_string(),
            actual: true,
        });
    }
    let n_incorrect = if activating.is_empty() {
        1
    } else {
        marked_total.div_ceil(activating.len()).max(1)
    };
    for e in non_activating {
        let mut fake = e.clone();
        fake.acts = vec![0.0; e.tokens.len()];
        for i in rng.sample(e.tokens.len(), n_incorrect) {
            fake.acts[i] = max.max(1.0);
        }
        let (text, _) = mark(&fake, threshold, max.max(1.0));
        out.push(ScoredExample {
            text: text.replace(['\n', '\r'], " ").trim().to_string(),
            actual: false,
        });
    }
    out
}

/// Few-shot (explanation, examples, answer) of each scorer, as delphi's scorer prompts have.
type FewShot = (&'static str, &'static [&'static str], &'static str);
const DETECTION_FEW_SHOT: [FewShot; 2] = [
    (
        "words about rain and storms",
        &[
            "heavy rain is expected tonight",
            "she bought a new phone",
            "the storm knocked down trees",
        ],
        "[1, 0, 1]",
    ),
    (
        "numbers written as digits",
        &["the train leaves at noon", "he scored 42 points"],
        "[0, 1]",
    ),
];
const FUZZING_FEW_SHOT: [FewShot; 2] = [
    (
        "words about rain and storms",
        &[
            "heavy <<rain>> is expected tonight",
            "she <<bought>> a new phone",
            "the <<storm>> knocked down trees",
        ],
        "[1, 0, 1]",
    ),
    (
        "numbers written as digits",
        &["the <<train>> leaves at noon", "he scored <<42>> points"],
        "[0, 1]",
    ),
];

fn scorer_user(explanation: &str, texts: &[&str]) -> String {
    let mut user = format!("Feature explanation: {explanation}\n\nText examples:\n");
    for (i, t) in texts.iter().enumerate() {
        user.push_str(&format!("\nExample {}: {}\n", i + 1, t));
    }
    user.push_str(&format!(
        "\nAnswer with a list of exactly {} values, 0 or 1.",
        texts.len()
    ));
    user
}

/// The messages asking about one batch of examples: the system prompt, two few-shot pairs,
/// then the batch.
pub fn scorer_messages(
    kind: ScorerKind,
    explanation: &str,
    batch: &[ScoredExample],
) -> Vec<Message> {
    let (system, few_shot) = match kind {
        ScorerKind::Detection => (DETECTION_SYSTEM, &DETECTION_FEW_SHOT),
        ScorerKind::Fuzzing => (FUZZING_SYSTEM, &FUZZING_FEW_SHOT),
    };
    let mut messages = vec![Message::new("system", system)];
    for (e, texts, answer) in few_shot {
        messages.push(Message::new("user", scorer_user(e, texts)));
        messages.push(Message::new("assistant", *answer));
    }
    let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
    messages.push(Message::new("user", scorer_user(explanation, &texts)));
    messages
}

/// Reads the `n` answers from the last `[...]` list in `answer` whose entries are all 0 or 1
/// (`None` when there is none of length `n`).
pub fn parse_answers(answer: &str, n: usize) -> Option<Vec<bool>> {
    let mut end = answer.len();
    while let Some(close) = answer[..end].rfind(']') {
        let Some(open) = answer[..close].rfind('[') else {
            break;
        };
        let inner = &answer[open + 1..close];
        let values: Option<Vec<bool>> = inner
            .split(',')
            .map(|v| match v.trim().trim_matches(|c| c == '"' || c == '\'') {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            })
            .collect();
        if let Some(v) = values.filter(|v| v.len() == n) {
            return Some(v);
        }
        end = open;
    }
    None
}

/// Per answer entry, P("1") / (P("0") + P("1")) from the log probabilities of the generated
/// `0`/`1` tokens, in order (`None` when the endpoint returned none or fewer than `n`).
pub fn answer_probabilities(logprobs: &[TokenLogprobs], n: usize) -> Option<Vec<f32>> {
    let mut out = Vec::with_capacity(n);
    for t in logprobs {
        if !matches!(t.token.trim(), "0" | "1") {
            continue;
        }
        let (mut p0, mut p1) = (0f64, 0f64);
        for (tok, lp) in &t.top {
            match tok.trim() {
                "0" => p0 += f64::from(*lp).exp(),
                "1" => p1 += f64::from(*lp).exp(),
                _ => {}
            }
        }
        if p0 + p1 > 0.0 {
            out.push((p1 / (p0 + p1)) as f32);
        } else {
            out.push(if t.token.trim() == "1" { 1.0 } else { 0.0 });
        }
    }
    (out.len() >= n).then(|| {
        out.truncate(n);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tokens: &[&str], acts: &[f32]) -> Example {
        Example {
            context_id: 0,
            kind: None,
            max_act: acts.iter().copied().fold(0.0, f32::max),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            acts: acts.to_vec(),
        }
    }

    #[test]
    fn answers_are_read_from_the_last_well_formed_list() {
        assert_eq!(parse_answers("[1, 0, 1]", 3), Some(vec![true, false, true]));
        assert_eq!(
            parse_answers("Like [1, 0] in the rules; my answer: ['0','1']", 2),
            Some(vec![false, true])
        );
        assert_eq!(
            parse_answers("[1, 0, 1] then [1, 0]", 3),
            Some(vec![true, false, true])
        );
        assert_eq!(parse_answers("[1, 0]", 3), None);
        assert_eq!(parse_answers("[1, 2, 0]", 3), None);
        assert_eq!(parse_answers("yes, no, yes", 3), None);
        assert_eq!(parse_answers("", 1), None);
        assert_eq!(parse_answers("[1, 0", 2), None);
    }

    #[test]
    fn probabilities_come_from_the_answer_tokens_alternatives() {
        let t = |tok: &str, top: &[(&str, f32)]| TokenLogprobs {
            token: tok.into(),
            top: top.iter().map(|(a, b)| (a.to_string(), *b)).collect(),
        };
        let lp = [
            t("[", &[("[", 0.0)]),
            t("1", &[("1", (0.75f32).ln()), ("0", (0.25f32).ln())]),
            t(",", &[(",", 0.0)]),
            t(" 0", &[(" 0", (0.6f32).ln()), (" 1", (0.2f32).ln())]),
            t("]", &[("]", 0.0)]),
        ];
        let p = answer_probabilities(&lp, 2).unwrap();
        assert!(
            (p[0] - 0.75).abs() < 1e-5 && (p[1] - 0.25).abs() < 1e-5,
            "{p:?}"
        );
        assert_eq!(answer_probabilities(&lp, 3), None);
        assert_eq!(answer_probabilities(&[], 1), None);
    }

    #[test]
    fn fuzzing_marks_as_many_wrong_tokens_as_activating_examples_have() {
        let act = [
            e(&["a", " b", " c"], &[0.0, 2.0, 2.0]),
            e(&["d", " e"], &[1.0, 0.0]),
        ];
        let non = [e(&["x", " y", " z", " w"], &[0.0; 4])];
        let mut rng = Rng::new(1, 2);
        let v = fuzzing_examples(&act, &non, 0.3, 2.0, &mut rng);
        assert_eq!(v[0].text, "a<< b c>>");
        assert!(v[0].actual && v[1].actual && !v[2].actual);
        // ceil((2 + 1) / 2) = 2 marked tokens in the negative.
        let inside: usize = v[2]
            .text
            .split("<<")
            .skip(1)
            .map(|s| s.split(">>").next().unwrap().split_whitespace().count())
            .sum();
        assert_eq!(inside, 2, "{}", v[2].text);
        let d = detection_examples(&act, &non);
        assert_eq!(d[0].text, "a b c");
        let m = scorer_messages(ScorerKind::Detection, "letters", &d);
        assert_eq!(m.len(), 6, "system, two few-shot pairs, the batch");
        assert_eq!(m[2].content, "[1, 0, 1]");
        assert!(m[5].content.contains("Feature explanation: letters"));
        assert!(m[5].content.contains("Example 3: x y z w"));
        assert!(m[5].content.contains("exactly 3 values"));
    }
}
