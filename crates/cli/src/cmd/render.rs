//! Human output of the query commands: tokens highlighted by activation (ANSI background
//! colours when stdout is a terminal, the strongest token in `[[ ]]` otherwise).
use std::io::IsTerminal;

use scopedex_server::views::ExampleView;

/// Background colours (xterm-256) from faint to strong.
const SHADES: [u8; 5] = [230, 222, 215, 209, 203];

/// Whether stdout is a terminal (colours on).
pub fn colour() -> bool {
    std::io::stdout().is_terminal()
}

/// Characters of a hit's text printed by `search` and `similar`.
const HIT_TEXT_CHARS: usize = 240;

/// The first lines of a search / similar hit: score, context, document and the start of its text.
pub fn print_hit_header(score: f32, context_id: u64, doc_id: &str, text: &str) {
    let text: String = text.chars().take(HIT_TEXT_CHARS).collect();
    println!(
        "\n{score:>8.3}  context {context_id} ({doc_id})\n    {}",
        visible(&text)
    );
}

/// A token as printed: newlines and tabs made visible.
pub fn visible(token: &str) -> String {
    token.replace('\n', "↵").replace('\t', "→")
}

/// One token, highlighted by `act / max`.
pub fn token(text: &str, act: f32, max: f32, strongest: bool, colour: bool) -> String {
    let t = visible(text);
    if colour {
        if act > 0.0 && max > 0.0 {
            let level = ((act / max).clamp(0.0, 1.0) * (SHADES.len() - 1) as f32).round() as usize;
            let bold = if strongest { ";1" } else { "" };
            return format!("\x1b[48;5;{};30{bold}m{t}\x1b[0m", SHADES[level]);
        }
        return t;
    }
    if strongest {
        format!("[[{t}]]")
    } else {
        t
    }
}

/// An example context on one line, tokens highlighted relative to `max`.
pub fn example_line(e: &ExampleView, max: f32, colour: bool) -> String {
    e.tokens
        .iter()
        .zip(&e.acts)
        .enumerate()
        .map(|(p, (t, &a))| token(t, a, max, p == e.max_pos as usize, colour))
        .collect()
}

/// Prints a list of examples with a header line each.
pub fn examples(examples: &[ExampleView]) {
    let colour = colour();
    let max = examples.iter().map(|e| e.max_act).fold(0.0f32, f32::max);
    for e in examples {
        println!(
            "{:>10} #{:<3} max {:.3} at {:<4} context {} ({})",
            e.kind, e.rank, e.max_act, e.max_pos, e.context_id, e.doc_id
        );
        println!("    {}", example_line(e, max, colour));
    }
}

/// Pretty JSON on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Opens an index for a query command (exit code 2 when it is missing or of another format).
pub fn open(index: &std::path::Path) -> anyhow::Result<scopedex_server::Snapshot> {
    use anyhow::Context as _;
    scopedex_server::Snapshot::open(index)
        .with_context(|| format!("opening the index {}", index.display()))
}
