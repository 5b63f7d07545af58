import { api, ApiError, type FeatureMatch, type SearchResults, type SimilarResults } from "../api";
import { h, link, announce } from "../dom";
import { act, num } from "../format";
import { done, errorPage, featureHref, loading, type PageCtx } from "../page";
import { searchForm } from "./home";

interface Range {
  start: number;
  end: number;
  node: (text: string) => Node;
}

const utf8 = new TextEncoder();
const utf8dec = new TextDecoder();

/** UTF-16 index of UTF-8 byte offset `byte` of `text` (the API gives byte ranges). */
function utf16At(bytes: Uint8Array, byte: number): number {
  return utf8dec.decode(bytes.slice(0, Math.max(0, Math.min(byte, bytes.length)))).length;
}

/** The words of a query (not feat: terms, operators or negated words), for marking. */
function queryWords(q: string): string[] {
  return q
    .replace(/(^|\s)-\S+/g, " ")
    .split(/[\s()"]+/)
    .filter((w) => !/^feat:/i.test(w) && !["AND", "OR", "NOT"].includes(w))
    .map((w) => w.replace(/^text:/i, "").replace(/[^\p{L}\p{N}_'-]/gu, ""))
    .filter((w) => w.length > 1);
}

/**
 * The context text with the firing tokens of the query's features marked (class `fire`, the
 * feature in the title) and case-insensitive matches of the query words marked (no innerHTML).
 */
function marked(text: string, q: string, matches: FeatureMatch[] = []): Node[] {
  const ranges: Range[] = [];
  const bytes = utf8.encode(text);
  for (const m of matches) {
    if (m.end <= m.start) continue;
    const start = utf16At(bytes, m.start);
    const end = utf16At(bytes, m.end);
    if (ranges.some((r) => r.start < end && start < r.end)) continue;
    ranges.push({
      start,
      end,
      node: (t) =>
        h("mark", { class: "fire", title: `${m.sae} #${m.feature} fires ${act(m.max_act)} here`, "data-feature": `${m.sae}/${m.feature}` }, t),
    });
  }
  const words = queryWords(q);
  if (words.length) {
    // Whole words only, as the text index matches them.
    const alt = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
    const re = new RegExp(`(?<![\\p{L}\\p{N}])(?:${alt})(?![\\p{L}\\p{N}])`, "giu");
    for (const m of text.matchAll(re)) {
      const start = m.index ?? 0;
      const end = start + m[0].length;
      if (ranges.some((r) => r.start < end && start < r.end)) continue;
      ranges.push({ start, end, node: (t) => h("mark", null, t) });
    }
  }
  ranges.sort((a, b) => a.start - b.start);
  const out: Node[] = [];
  let last = 0;
  for (const r of ranges) {
    if (r.start > last) out.push(document.createTextNode(text.slice(last, r.start)));
    out.push(r.node(text.slice(r.start, r.end)));
    last = r.end;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

function strength(s: number): string {
  return s > 0 ? ` ≥ ${Math.round(s * 100)}%` : "";
}

/** The query's feature terms as chips linking to their dashboards. */
function queryChips(r: SearchResults): HTMLElement | null {
  if (r.features.length === 0) return null;
  return h(
    "ul",
    { class: "chips query-feats", "aria-label": "Features in the query" },
    r.features.map((f) =>
      h(
        "li",
        { class: f.negated ? "negated" : null },
        f.negated ? h("span", { class: "muted" }, "not ") : null,
        link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}${strength(f.min_strength)}`),
      ),
    ),
  );
}

function likeLink(contextId: number): HTMLElement {
  return link(`/search?${new URLSearchParams({ like: String(contextId) })}`, "More like this");
}

/** A query error with the offending position pointed at. */
function syntaxError(q: string, e: ApiError): HTMLElement {
  const chars = Array.from(q);
  const pos = Math.min(e.position ?? 0, chars.length);
  return h(
    "div",
    { class: "warning query-error", role: "alert" },
    h("p", null, e.detail),
    h(
      "pre",
      { class: "query-caret" },
      chars.slice(0, pos).join(""),
      h("mark", null, chars[pos] ?? " "),
      chars.slice(pos + 1).join(""),
      "\n",
      " ".repeat(pos) + "^",
    ),
    h(
      "p",
      { class: "muted small" },
      "Syntax: words, \"a phrase\", feat:SAE/FEATURE (fires), feat:SAE/FEATURE>0.5 (max ≥ 25/50/75 % of the feature's max), -x or NOT x, x AND y (default), x OR y, ( ).",
    ),
  );
}

async function similarPage(ctx: PageCtx, like: number): Promise<void> {
  const sae = ctx.query.get("sae");
  ctx.setTitle(`More like context ${like}`);
  loading(ctx.main, `contexts like ${like}`);
  try {
    const r: SimilarResults = await api.similar(like, sae, 25, ctx.signal);
    const hits = r.hits.map((hit) =>
      h(
        "li",
        { class: "hit", "data-context": hit.context_id },
        h("div", { class: "ex-meta" }, h("span", { class: "muted" }, `ctx ${hit.context_id} · doc ${hit.doc_id} · score ${num(hit.score, 2)} · `), likeLink(hit.context_id)),
        h("p", { class: "hit-text" }, hit.text),
        h(
          "ul",
          { class: "chips feats", "aria-label": "Shared features, rarest first" },
          hit.shared.map((f) => h("li", null, link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}`), h("span", { class: "count" }, `w ${num(f.weight, 2)}`))),
        ),
      ),
    );
    done(
      ctx.main,
      h("h1", null, `Contexts like context ${like}`),
      searchForm(),
      h("p", { class: "muted", role: "status" }, `${r.hits.length} contexts share features with context ${like}${r.sae ? ` in ${r.sae}` : ""} (ranked by the rarity of the ${r.terms} shared feature terms).`),
      r.hits.length ? h("ol", { class: "hits similar" }, hits) : h("p", null, "No other context shares a feature with this one."),
    );
    announce(`${r.hits.length} similar contexts`);
  } catch (e) {
    await errorPage(ctx, e);
  }
}

export async function searchPage(ctx: PageCtx): Promise<void> {
  const like = ctx.query.get("like");
  if (like !== null && /^\d+$/.test(like)) return similarPage(ctx, Number(like));
  const q = (ctx.query.get("q") ?? "").trim();
  const limit = Math.min(1000, Math.max(1, Math.floor(Number(ctx.query.get("limit") ?? "25")) || 25));
  const sae = ctx.query.get("sae")?.trim() || null;
  ctx.setTitle(q ? `Search: ${q}` : "Search");
  const form = () => searchForm(q, !q, sae);
  if (!q) {
    done(
      ctx.main,
      h("h1", null, "Search contexts"),
      form(),
      h("p", { class: "muted" }, "Find corpus contexts by their text and by the features that fire on them (feat:SAE/FEATURE), and see which features fire most on them."),
    );
    return;
  }
  loading(ctx.main, `results for “${q}”`);
  try {
    const [r, fr] = await Promise.all([
      api.search(q, limit, sae, ctx.signal),
      // Explanations are searched as plain words: feat: terms and operators are left out.
      api.featureSearch(q.replace(/feat:\S+/g, " ").replace(/[()"]/g, " ").trim() || q, 10, ctx.signal).catch(() => null),
    ]);
    const hits = r.hits.map((hit) =>
      h(
        "li",
        { class: "hit", "data-context": hit.context_id },
        h("div", { class: "ex-meta" }, h("span", { class: "muted" }, `ctx ${hit.context_id} · doc ${hit.doc_id} · score ${num(hit.score, 2)} · `), likeLink(hit.context_id)),
        h("p", { class: "hit-text" }, marked(hit.text, q, hit.matches)),
        // What the matched words mean to the SAEs: the features that fire hardest on them.
        hit.at_words.length
          ? h(
              "ul",
              { class: "at-words", "aria-label": "Features that fire on the matched words" },
              hit.at_words.map((f) =>
                h(
                  "li",
                  null,
                  link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}`),
                  " ",
                  f.explanation ? h("span", { class: "expl" }, f.explanation) : h("span", { class: "muted" }, "not explained"),
                  h("span", { class: "count" }, ` ${act(f.max_act)}`),
                ),
              ),
            )
          : null,
        hit.features.length
          ? h(
              "ul",
              { class: "chips feats", "aria-label": "Strongest features in this context" },
              // Explained features lead: a chip that says what the feature means.
              [...hit.features]
                .sort((a, b) => Number(b.explanation !== null) - Number(a.explanation !== null))
                .map((f) =>
                  h(
                    "li",
                    { class: f.explanation ? "explained" : null, title: f.explanation ?? "not explained" },
                    link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}`),
                    f.explanation ? h("span", { class: "chip-expl" }, f.explanation) : null,
                    h("span", { class: "count" }, act(f.max_act)),
                  ),
                ),
            )
          : h("p", { class: "muted small" }, "No features fired in this context."),
      ),
    );
    done(
      ctx.main,
      h("h1", null, "Search contexts"),
      form(),
      queryChips(r),
      fr && fr.hits.length
        ? h(
            "section",
            { class: "card feature-hits", "aria-labelledby": "fh-h" },
            h("h2", { id: "fh-h" }, "Features whose explanation matches"),
            h(
              "ul",
              { class: "feature-hits-list" },
              fr.hits.map((f) =>
                h(
                  "li",
                  null,
                  link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}`),
                  " ",
                  h("span", { class: "expl" }, f.explanation.text),
                  f.explanation.score !== null ? h("span", { class: "muted small" }, ` · score ${num(f.explanation.score, 2)}`) : null,
                  " ",
                  link(`/search?${new URLSearchParams({ q: `feat:${f.sae}/${f.feature}` })}`, "contexts"),
                ),
              ),
            ),
          )
        : null,
      h("p", { class: "muted", role: "status" }, `${r.hits.length}${r.hits.length >= limit ? "+" : ""} context${r.hits.length === 1 ? "" : "s"} match “${r.query}”.`),
      sae
        ? h(
            "p",
            { class: "muted small feature-saes" },
            `Strongest features of ${r.feature_saes.join(", ")} only · `,
            link(`/search?${new URLSearchParams({ q, limit: String(limit) })}`, "all SAEs"),
          )
        : null,
      r.hits.length ? h("ol", { class: "hits" }, hits) : h("p", null, "No context matches. Try fewer or other words or features."),
      r.hits.length >= limit && limit < 1000
        ? h("p", null, link(`/search?${new URLSearchParams({ q, limit: String(Math.min(1000, limit * 2)), ...(sae ? { sae } : {}) })}`, "Show more results"))
        : null,
    );
    announce(`${r.hits.length} results`);
  } catch (e) {
    if (e instanceof ApiError && e.kind === "invalid_query") {
      done(ctx.main, h("h1", null, "Search contexts"), form(), syntaxError(q, e));
      announce("The query has an error");
      return;
    }
    await errorPage(ctx, e);
  }
}
