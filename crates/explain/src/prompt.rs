//! The explainer's prompt, in delphi's shape (`delphi/explainers/default`): a system message
//! with the guidelines and the answer format (`[EXPLANATION]: ...` on the last line), three
//! few-shot user/assistant pairs, then the feature's examples, one per line, the activating
//! tokens marked `<<like this>>` and followed by an `Activations:` line of (token, 0-10)
//! pairs. The wording and the few-shot examples are scopedex's own; [`PROMPT_VERSION`] names
//! them and is stored with every explanation, so a change of wording is a new version.
use serde::{Deserialize, Serialize};

use crate::client::Message;
use crate::sample::Example;

/// Version of the explainer prompt (wording, few-shot examples, formatting rules).
pub const PROMPT_VERSION: &str = "scopedex-delphi-v1";

/// Most `(token, activation)` pairs listed per example (delphi lists about 11).
const MAX_LISTED: usize = 12;

/// Prompt choices; recorded with each explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptConfig {
    /// Add the `Activations:` line after each example (delphi's default).
    pub activations: bool,
    /// Ask for three reasoning steps before the answer (delphi's `cot`).
    pub chain_of_thought: bool,
    /// Include the few-shot pairs.
    pub few_shot: bool,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            activations: true,
            chain_of_thought: false,
            few_shot: true,
        }
    }
}

const SYSTEM: &str = "You are a careful AI researcher studying patterns in language. You will see \
text examples in which some tokens are marked between delimiters <<like this>>; a run of \
consecutive marked tokens is marked as one <<run of tokens>>. After each example, a line lists \
how strongly each marked token activates a hidden feature, from 0 (not at all) to 10 (most).\n\
Your task is to explain what the feature responds to.\n\
- Describe the common pattern of the marked tokens and, when it matters, of the words around them.\n\
- Be concise and specific: one short phrase or sentence.\n\
- Do not mention the delimiters << >> and do not list several alternative explanations.\n\
- The last line of your answer must be the explanation, written as [EXPLANATION]: your explanation";

const CHAIN_OF_THOUGHT: &str =
    "\nBefore the last line, think in three steps: 1. name a few of the \
marked tokens (at most 5); 2. note what the examples and the words around the marked tokens have \
in common; 3. state a hypothesis, then give the final line.";

/// (examples, answer) few-shot pairs.
const FEW_SHOT: [(&str, &str); 3] = [
    (
        "Example 1: the bank raised its interest <<rates>> again on Monday\n\
         Activations: (\" rates\", 8)\n\
         Example 2: mortgage <<rates>> have fallen for the third month\n\
         Activations: (\" rates\", 9)\n\
         Example 3: savers look for better <<returns>> on deposits\n\
         Activations: (\" returns\", 5)",
        "[EXPLANATION]: Prices of borrowing or saving money, such as interest and mortgage rates.",
    ),
    (
        "Example 1: she walked <<quickly>> to the door\n\
         Activations: (\" quickly\", 7)\n\
         Example 2: the river flowed <<slowly>> past the town\n\
         Activations: (\" slowly\", 8)\n\
         Example 3: he answered <<politely>>, then left\n\
         Activations: (\" politely\", 6)",
        "[EXPLANATION]: Adverbs ending in \"-ly\" that describe how an action is done.",
    ),
    (
        "Example 1: the meeting is on <<Tuesday>> at noon\n\
         Activations: (\" Tuesday\", 9)\n\
         Example 2: shops close early on <<Sundays>> here\n\
         Activations: (\" Sundays\", 8)\n\
         Example 3: see you next <<Friday>>!\n\
         Activations: (\" Friday\", 9)",
        "[EXPLANATION]: Days of the week, mostly when naming when something happens.",
    ),
];

/// `ceil(10 a / max)` clamped to 0..=10 (delphi's `normalize_activations`).
pub fn scale(act: f32, max: f32) -> u8 {
    if max.is_nan() || act.is_nan() || max <= 0.0 || act <= 0.0 {
        return 0;
    }
    (10.0 * act / max).ceil().clamp(0.0, 10.0) as u8
}

/// The example's text with the tokens at or above `threshold * max` marked `<<...>>`
/// (consecutive ones as one run), and the `(token, scaled activation)` pairs of the marked
/// tokens, at most [`MAX_LISTED`] (the strongest, in text order).
pub fn mark(example: &Example, threshold: f32, max: f32) -> (String, Vec<(String, u8)>) {
    let cut = threshold * max;
    let marked = |a: f32| a > 0.0 && a >= cut;
    let mut text = String::new();
    let mut open = false;
    let mut listed: Vec<(usize, f32)> = Vec::new();
    for (i, (tok, &a)) in example.tokens.iter().zip(&example.acts).enumerate() {
        let m = marked(a);
        if m && !open {
            text.push_str("<<");
            open = true;
        } else if !m && open {
            text.push_str(">>");
            open = false;
        }
        text.push_str(&clean(tok));
        if m {
            listed.push((i, a));
        }
    }
    if open {
        text.push_str(">>");
    }
    if listed.len() > MAX_LISTED {
        listed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        listed.truncate(MAX_LISTED);
        listed.sort_by_key(|p| p.0);
    }
    let pairs = listed
        .into_iter()
        .map(|(i, a)| (clean(&example.tokens[i]), scale(a, max)))
        .collect();
    (text, pairs)
}

/// Newlines inside a token would break the one-example-per-line layout.
fn clean(token: &str) -> String {
    token.replace(['\n', '\r'], "\u{21b5}")
}

fn activations_line(pairs: &[(String, u8)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(t, a)| format!("({}, {a})", serde_json::Value::from(t.as_str())))
        .collect();
    format!("Activations: {}", items.join(", "))
}

/// The explainer's messages for `examples` (the training set), activations scaled by `max`.
pub fn explainer_messages(
    examples: &[Example],
    config: &PromptConfig,
    threshold: f32,
    max: f32,
) -> Vec<Message> {
    let mut system = SYSTEM.to_string();
    if config.chain_of_thought {
        system.push_str(CHAIN_OF_THOUGHT);
    }
    let mut messages = vec![Message::new("system", system)];
    if config.few_shot {
        for (user, assistant) in FEW_SHOT {
            let user = if config.activations {
                user.to_string()
            } else {
                user.lines()
                    .filter(|l| !l.trim_start().starts_with("Activations:"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            messages.push(Message::new("user", user));
            messages.push(Message::new("assistant", assistant));
        }
    }
    let mut body = Vec::with_capacity(examples.len() * 2);
    for (i, e) in examples.iter().enumerate() {
        let (text, pairs) = mark(e, threshold, max);
        body.push(format!("Example {}: {}", i + 1, text.trim()));
        if config.activations && !pairs.is_empty() {
            body.push(activations_line(&pairs));
        }
    }
    messages.push(Message::new("user", body.join("\n")));
    messages
}

/// Why an answer holds no explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the answer is empty")]
    Empty,
    /// Cut off by the token limit before an explanation line.
    #[error("the answer was cut off at the token limit before an [EXPLANATION]: line")]
    Truncated,
    /// No `[EXPLANATION]:` line.
    #[error("no [EXPLANATION]: line in the answer (starts: {0:?})")]
    NoMarker(String),
    /// The marker with nothing after it.
    #[error("[EXPLANATION]: is followed by no text")]
    Blank,
    /// Longer than [`MAX_EXPLANATION_CHARS`]: a ramble, not an explanation.
    #[error("the explanation is {0} characters long (at most {MAX_EXPLANATION_CHARS})")]
    TooLong(usize),
}

/// Longest explanation accepted, in characters.
pub const MAX_EXPLANATION_CHARS: usize = 400;

/// Extracts the explanation: the text after the last `[EXPLANATION]:` (case-insensitive, the
/// brackets optional), up to the end of its line, trimmed of quotes and markers.
pub fn parse_explanation(answer: &str, truncated: bool) -> Result<String, ParseError> {
    if answer.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    // ASCII lower-casing keeps every byte offset, so the original is cut where the copy matched.
    let lower = answer.to_ascii_lowercase();
    let found = ["[explanation]:", "explanation:"]
        .iter()
        .filter_map(|m| lower.rfind(m).map(|i| i + m.len()))
        .max();
    let Some(start) = found else {
        if truncated {
            return Err(ParseError::Truncated);
        }
        let head: String = answer.trim().chars().take(60).collect();
        return Err(ParseError::NoMarker(head));
    };
    let rest = &answer[start..];
    let line = rest
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let text = line
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '*' || c == '`' || c.is_whitespace())
        .replace("<<", "")
        .replace(">>", "");
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(ParseError::Blank);
    }
    let n = text.chars().count();
    if n > MAX_EXPLANATION_CHARS {
        return Err(ParseError::TooLong(n));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(tokens: &[&str], acts: &[f32]) -> Example {
        Example {
            context_id: 0,
            kind: None,
            max_act: acts.iter().copied().fold(0.0, f32::max),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            acts: acts.to_vec(),
        }
    }

    #[test]
    fn activations_scale_like_delphi() {
        assert_eq!(scale(0.0, 4.0), 0);
        assert_eq!(scale(0.01, 4.0), 1);
        assert_eq!(scale(2.0, 4.0), 5);
        assert_eq!(scale(2.01, 4.0), 6);
        assert_eq!(scale(4.0, 4.0), 10);
        assert_eq!(scale(9.0, 4.0), 10);
        assert_eq!(scale(1.0, 0.0), 0);
    }

    #[test]
    fn runs_of_activating_tokens_are_marked_once() {
        let e = example(
            &["The", " cat", " sat", " on", "\n", "mat"],
            &[0.0, 3.0, 2.0, 0.5, 0.0, 4.0],
        );
        let (text, pairs) = mark(&e, 0.3, 4.0);
        assert_eq!(text, "The<< cat sat>> on\u{21b5}<<mat>>");
        assert_eq!(
            pairs,
            vec![(" cat".into(), 8), (" sat".into(), 5), ("mat".into(), 10)]
        );
        assert_eq!(
            activations_line(&pairs),
            r#"Activations: (" cat", 8), (" sat", 5), ("mat", 10)"#
        );
    }

    #[test]
    fn the_prompt_has_system_few_shot_and_one_line_per_example() {
        let e = example(&["a", " b"], &[0.0, 1.0]);
        let m = explainer_messages(&[e.clone(), e], &PromptConfig::default(), 0.3, 1.0);
        assert_eq!(m.len(), 1 + 6 + 1);
        assert_eq!(m[0].role, "system");
        assert!(m[0].content.contains("[EXPLANATION]:"));
        assert_eq!(
            m[7].content,
            "Example 1: a<< b>>\nActivations: (\" b\", 10)\nExample 2: a<< b>>\nActivations: (\" b\", 10)"
        );
        let bare = PromptConfig {
            activations: false,
            few_shot: false,
            chain_of_thought: true,
        };
        let m = explainer_messages(&[example(&["a"], &[1.0])], &bare, 0.3, 1.0);
        assert_eq!(m.len(), 2);
        assert!(m[0].content.contains("three steps"));
        assert_eq!(m[1].content, "Example 1: <<a>>");
    }

    #[test]
    fn answers_parse_or_say_why_not() {
        let ok = |a: &str| parse_explanation(a, false).unwrap();
        assert_eq!(ok("[EXPLANATION]: Days of the week."), "Days of the week.");
        assert_eq!(
            ok("Step 1: ...\nStep 2: ...\n[EXPLANATION]:  \"legal <<documents>>\" \nthanks"),
            "legal documents"
        );
        assert_eq!(ok("explanation: plural nouns"), "plural nouns");
        // The last marker wins (a model that repeats the few-shot format).
        assert_eq!(ok("[EXPLANATION]: a\n[EXPLANATION]: b"), "b");
        assert_eq!(parse_explanation("  \n", false), Err(ParseError::Empty));
        assert_eq!(
            parse_explanation("Step 1: the tok", true),
            Err(ParseError::Truncated)
        );
        assert!(matches!(
            parse_explanation("I think it is about cats", false),
            Err(ParseError::NoMarker(_))
        ));
        assert_eq!(
            parse_explanation("[EXPLANATION]:   ", false),
            Err(ParseError::Blank)
        );
        let long = format!("[EXPLANATION]: {}", "word ".repeat(200));
        assert!(matches!(
            parse_explanation(&long, false),
            Err(ParseError::TooLong(_))
        ));
        // Non-ASCII text before the marker.
        assert_eq!(ok("Ünïcödé first\n[EXPLANATION]: x"), "x");
    }
}
