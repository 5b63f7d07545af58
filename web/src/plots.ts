// Inline SVG bar charts (no plotting library).

import { h, s } from "./dom";
import { int } from "./format";

export interface HistOptions {
  counts: number[];
  /** Bin edges (counts.length + 1); bins are drawn evenly spaced, labelled by their edges. */
  edges: number[];
  title: string;
  xLabel: string;
  formatEdge: (v: number) => string;
  /** Log-scale counts (1 + count) so small bins stay visible. */
  logY?: boolean;
  color?: string;
  /** Drawing width in SVG units: smaller for narrow slots so labels stay legible. */
  width?: number;
}

export function histogram(o: HistOptions): HTMLElement {
  const W = o.width ?? 600;
  const H = Math.round(W * 0.42) + 30;
  const m = { l: 48, r: 10, t: 10, b: 42 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const n = o.counts.length;
  const total = o.counts.reduce((a, b) => a + b, 0);
  const fig = h("figure", { class: "plot" });
  if (n === 0 || total === 0) {
    fig.appendChild(h("figcaption", null, o.title));
    fig.appendChild(h("p", { class: "muted" }, "No data to plot."));
    return fig;
  }
  const tr = (c: number) => (o.logY ? Math.log10(1 + c) : c);
  const ymax = Math.max(...o.counts.map(tr)) || 1;
  const bw = pw / n;
  const edgeLabel = (i: number) => (i < o.edges.length ? o.formatEdge(o.edges[i]) : "");
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `${o.title}: ${n} bins, ${int(total)} in total`,
    preserveAspectRatio: "xMidYMid meet",
  });
  svg.appendChild(s("title", null, o.title));
  // axes
  svg.appendChild(s("line", { x1: m.l, y1: m.t + ph, x2: m.l + pw, y2: m.t + ph, class: "axis" }));
  svg.appendChild(s("line", { x1: m.l, y1: m.t, x2: m.l, y2: m.t + ph, class: "axis" }));
  // y ticks: 0 and max
  const ymaxCount = Math.max(...o.counts);
  for (const [val, label] of [
    [0, "0"],
    [ymax, int(ymaxCount)],
  ] as [number, string][]) {
    const y = m.t + ph - (val / ymax) * ph;
    svg.appendChild(s("text", { x: m.l - 6, y: y + 4, class: "tick", "text-anchor": "end" }, label));
  }
  o.counts.forEach((c, i) => {
    const bh = (tr(c) / ymax) * ph;
    const x = m.l + i * bw;
    const rect = s("rect", {
      x: x + Math.min(1, bw * 0.1),
      y: m.t + ph - bh,
      width: Math.max(0.5, bw - Math.min(2, bw * 0.2)),
      height: Math.max(c > 0 ? 1 : 0, bh),
      class: "bar",
      fill: o.color ?? "currentColor",
    });
    rect.appendChild(s("title", null, `${edgeLabel(i)} – ${edgeLabel(i + 1)}: ${int(c)}`));
    svg.appendChild(rect);
  });
  // x ticks: at most ~6 edge labels
  const step = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i <= n; i += step) {
    const x = m.l + i * bw;
    svg.appendChild(s("line", { x1: x, y1: m.t + ph, x2: x, y2: m.t + ph + 4, class: "axis" }));
    svg.appendChild(s("text", { x, y: m.t + ph + 16, class: "tick", "text-anchor": "middle" }, edgeLabel(i)));
  }
  svg.appendChild(s("text", { x: m.l + pw / 2, y: H - 6, class: "label", "text-anchor": "middle" }, o.xLabel));
  fig.appendChild(svg);
  fig.appendChild(h("figcaption", null, o.title, o.logY ? h("span", { class: "muted" }, " (log count)") : null));
  return fig;
}

/** Edge formatter for log10 edges: 10^x as a compact number. */
export function pow10(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const r = Math.round(v * 10) / 10;
  return Number.isInteger(r) ? `1e${r}` : `1e${r.toFixed(1)}`;
}

/** Edge formatter for activation values. */
export function compact(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 100 || a < 0.01) return v.toExponential(0).replace("e+", "e");
  if (a >= 10) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}
