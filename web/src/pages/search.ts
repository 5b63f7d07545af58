import { api } from "../api";
import { h, link, announce } from "../dom";
import { act, num } from "../format";
import { done, errorPage, featureHref, loading, type PageCtx } from "../page";
import { searchForm } from "./home";

/** The context text with case-insensitive matches of the query words marked (no innerHTML). */
function marked(text: string, q: string): Node[] {
  const words = q
    .split(/\s+/)
    .map((w) => w.replace(/[^\p{L}\p{N}_'-]/gu, ""))
    .filter((w) => w.length > 1);
  if (words.length === 0) return [document.createTextNode(text)];
  // Whole words only, as the text index matches them.
  const alt = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${alt})(?![\\p{L}\\p{N}])`, "giu");
  const out: Node[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    const i = m.index ?? 0;
    if (i > last) out.push(document.createTextNode(text.slice(last, i)));
    out.push(h("mark", null, m[0]));
    last = i + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

export async function searchPage(ctx: PageCtx): Promise<void> {
  const q = (ctx.query.get("q") ?? "").trim();
  const limit = Math.min(1000, Math.max(1, Math.floor(Number(ctx.query.get("limit") ?? "25")) || 25));
  ctx.setTitle(q ? `Search: ${q}` : "Search");
  const form = () => searchForm(q, !q);
  if (!q) {
    done(ctx.main, h("h1", null, "Search contexts"), form(), h("p", { class: "muted" }, "Find corpus contexts by their text and see which features fire most on them."));
    return;
  }
  loading(ctx.main, `results for “${q}”`);
  try {
    const r = await api.search(q, limit, ctx.signal);
    const hits = r.hits.map((hit) =>
      h(
        "li",
        { class: "hit", "data-context": hit.context_id },
        h("div", { class: "ex-meta" }, h("span", { class: "muted" }, `ctx ${hit.context_id} · doc ${hit.doc_id} · score ${num(hit.score, 2)}`)),
        h("p", { class: "hit-text" }, marked(hit.text, q)),
        hit.features.length
          ? h(
              "ul",
              { class: "chips feats", "aria-label": "Strongest features in this context" },
              hit.features.map((f) => h("li", null, link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}`), h("span", { class: "count" }, act(f.max_act)))),
            )
          : h("p", { class: "muted small" }, "No features fired in this context."),
      ),
    );
    done(
      ctx.main,
      h("h1", null, "Search contexts"),
      form(),
      h("p", { class: "muted", role: "status" }, `${r.hits.length}${r.hits.length >= limit ? "+" : ""} context${r.hits.length === 1 ? "" : "s"} match “${r.query}”.`),
      r.hits.length ? h("ol", { class: "hits" }, hits) : h("p", null, "No context contains that text. Try fewer or other words."),
      r.hits.length >= limit && limit < 1000
        ? h("p", null, link(`/search?${new URLSearchParams({ q, limit: String(Math.min(1000, limit * 2)) })}`, "Show more results"))
        : null,
    );
    announce(`${r.hits.length} results`);
  } catch (e) {
    await errorPage(ctx, e);
  }
}
