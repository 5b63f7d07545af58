// Number and token formatting shared by the pages.

const nf = new Intl.NumberFormat("en-US");

export function int(n: number): string {
  return nf.format(n);
}

/** An activation as shown in tables: 3 significant decimals. */
export function act(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && a < 0.001) return v.toExponential(2);
  return v.toFixed(3);
}

/** An activation as shown on hover/focus: the value to 6 significant digits. */
export function actExact(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

/** A density (fraction of tokens) as a percentage. */
export function density(d: number): string {
  if (d === 0) return "0%";
  const p = d * 100;
  if (p >= 1) return p.toFixed(2) + "%";
  if (p >= 0.001) return p.toPrecision(3) + "%";
  return p.toExponential(2) + "%";
}

export function num(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  return v.toFixed(digits);
}

/**
 * A token's text made visible: newlines become ⏎, tabs ⇥, a token that is only spaces shows
 * them as ·, and control characters their code. Other leading spaces are kept (pre-wrap) so
 * the context reads naturally.
 */
export function visibleToken(t: string): string {
  if (t === "") return "∅";
  let out = t
    .replace(/\r\n|\r|\n/g, "⏎")
    .replace(/\t/g, "⇥")
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  if (/^ +$/.test(out)) out = out.replace(/ /g, "·");
  return out;
}

/** A token in quotes for labels and tables (whitespace visible). */
export function quoted(t: string): string {
  return `“${visibleToken(t).replace(/ /g, "·")}”`;
}
