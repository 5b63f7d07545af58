import { api, type Example, type FeatureDashboard, type Partner, type Scores, type TokenValue } from "../api";
import { h, link, announce } from "../dom";
import { act, actExact, density, int, num, quoted, visibleToken } from "../format";
import { compact, histogram } from "../plots";
import { tokenStrip } from "../tokens";
import { done, errorPage, featureHref, loading, saeHref, type PageCtx } from "../page";

const MORE = 10;

function scoreCells(name: string, s: Scores | null): HTMLElement {
  if (!s) return h("tr", null, h("th", { scope: "row" }, name), h("td", { colspan: 5, class: "muted" }, "not scored"));
  const cell = (x: number | null) => h("td", { class: "n" }, x === null ? "–" : num(x, 2));
  return h("tr", null, h("th", { scope: "row" }, name), cell(s.balanced_accuracy), cell(s.f1), cell(s.precision), cell(s.recall), cell(s.auroc));
}

/** The explanation and its scores, first thing on the page (as Neuronpedia shows it). */
function explanationCard(d: FeatureDashboard): HTMLElement {
  const e = d.explanation;
  if (!e) return h("p", { class: "explanation muted" }, "No explanation yet (scopedex explain).");
  return h(
    "section",
    { class: "card explanation", "aria-labelledby": "expl-h" },
    h("h2", { id: "expl-h" }, "Explanation"),
    h("p", { class: "expl-text" }, e.text),
    h(
      "p",
      { class: "muted small" },
      `by ${e.model} · ${e.prompt_version} · ${e.created}`,
      e.score !== null ? h("span", { class: "expl-score", title: "detection balanced accuracy (else fuzzing's)" }, ` · score ${num(e.score, 2)}`) : null,
    ),
    e.detection || e.fuzzing
      ? h(
          "table",
          { class: "data compact scores" },
          h("caption", null, `Scores on held-out examples${e.scorer_model ? ` (scored by ${e.scorer_model})` : ""}`),
          h(
            "thead",
            null,
            h("tr", null, h("th", { scope: "col" }, "Scorer"), ["Bal. acc.", "F1", "Precision", "Recall", "AUROC"].map((c) => h("th", { scope: "col", class: "n" }, c))),
          ),
          h("tbody", null, scoreCells("Detection", e.detection), scoreCells("Fuzzing", e.fuzzing)),
        )
      : null,
  );
}

function exampleRow(ex: Example, scale: number, label: string): HTMLElement {
  return h(
    "li",
    { class: "example", "data-context": ex.context_id },
    h(
      "div",
      { class: "ex-meta" },
      h("span", { class: "ex-act", title: "max activation in this context" }, act(ex.max_act)),
      h("span", { class: "muted" }, `ctx ${ex.context_id} · doc ${ex.doc_id}`),
    ),
    tokenStrip({
      tokens: ex.tokens,
      acts: ex.acts,
      scale,
      focusPos: ex.max_pos,
      label: `${label}, max ${actExact(ex.max_act)} at token ${ex.max_pos}. Arrow keys read each token's activation.`,
    }),
  );
}

function tokenValueTable(caption: string, rows: TokenValue[], cls: string): HTMLElement {
  if (rows.length === 0) return h("div", null, h("h3", null, caption), h("p", { class: "muted" }, "None."));
  return h(
    "table",
    { class: `data compact ${cls}` },
    h("caption", null, caption),
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "Token"), h("th", { scope: "col", class: "n" }, "Logit"))),
    h(
      "tbody",
      null,
      rows.map((r) =>
        h("tr", null, h("td", null, h("code", { class: "tokname", title: `token id ${r.token_id}` }, visibleToken(r.token))), h("td", { class: "n" }, num(r.value, 3))),
      ),
    ),
  );
}

function partnerTable(caption: string, rows: Partner[], showSae: boolean, cls: string): HTMLElement {
  if (rows.length === 0) return h("div", { class: cls }, h("h3", null, caption), h("p", { class: "muted" }, "No co-occurring features recorded."));
  return h(
    "table",
    { class: `data compact ${cls}` },
    h("caption", null, caption),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        h("th", { scope: "col" }, "Feature"),
        h("th", { scope: "col", class: "n", title: "tokens where both fire" }, "Both"),
        h("th", { scope: "col", class: "n", title: "|A∩B| / |A∪B| over tokens" }, "Jaccard"),
        h("th", { scope: "col", class: "n", title: "normalized pointwise mutual information" }, "NPMI"),
      ),
    ),
    h(
      "tbody",
      null,
      rows.map((p) =>
        h(
          "tr",
          null,
          h("td", null, link(featureHref(p.other_sae, p.other_feature), showSae ? `${p.other_sae} #${p.other_feature}` : `#${p.other_feature}`)),
          h("td", { class: "n" }, int(p.n_both)),
          h("td", { class: "n" }, num(p.jaccard, 3)),
          h("td", { class: "n" }, num(p.npmi, 3)),
        ),
      ),
    ),
  );
}

function statsHeader(d: FeatureDashboard): HTMLElement {
  const stat = (label: string, value: string, extra?: string) =>
    h("div", { class: "stat" }, h("dt", null, label), h("dd", null, value, extra ? h("span", { class: "muted small" }, ` ${extra}`) : null));
  return h(
    "dl",
    { class: "stats" },
    stat("Density", density(d.density), d.density > 0 ? `(1e${Math.log10(d.density).toFixed(2)})` : "(dead)"),
    stat("Fired on", `${int(d.n_fired)} tokens`),
    stat("Max act", act(d.max_act)),
    stat("Mean act", act(d.mean_act), "when firing"),
  );
}

export async function featurePage(ctx: PageCtx): Promise<void> {
  const sae = ctx.params[0];
  const raw = ctx.params[1];
  ctx.setTitle(`${sae} #${raw}`);
  if (!/^\d{1,10}$/.test(raw)) {
    done(
      ctx.main,
      h(
        "section",
        { class: "error-page", "data-error": "bad_feature" },
        h("h1", null, "Not a feature number"),
        h("p", { class: "lead" }, `“${raw}” is not a feature index: features are numbered 0, 1, 2, …`),
        h("p", null, link(saeHref(sae), `${sae} overview`), " · ", link("/", "Index")),
      ),
    );
    return;
  }
  const f = Number(raw);
  loading(ctx.main, `${sae} feature ${f}`);
  let d: FeatureDashboard;
  try {
    d = await api.feature(sae, f, ctx.signal);
  } catch (e) {
    await errorPage(ctx, e, { sae, feature: f });
    return;
  }
  const scale = d.max_act > 0 ? d.max_act : 1;

  // Top examples, with "load more" through the examples endpoint.
  const topList = h("ol", { class: "examples top" }, d.top_examples.map((ex, i) => exampleRow(ex, scale, `Top example ${i + 1}`)));
  const moreBtn = h("button", { type: "button" }, "Load more examples");
  const moreMsg = h("span", { class: "muted", role: "status" });
  let shown = d.top_examples.length;
  moreBtn.addEventListener("click", async () => {
    moreBtn.disabled = true;
    moreMsg.textContent = "Loading…";
    try {
      const r = await api.examples(sae, f, "top", MORE, shown);
      r.examples.forEach((ex) => {
        shown += 1;
        topList.appendChild(exampleRow(ex, scale, `Top example ${shown}`));
      });
      moreMsg.textContent = r.examples.length < MORE ? "No more examples." : `${r.examples.length} more shown.`;
      moreBtn.disabled = r.examples.length < MORE;
    } catch (e) {
      moreMsg.textContent = e instanceof Error ? e.message : String(e);
      moreBtn.disabled = false;
    }
  });

  const intervals = [...d.intervals].sort((a, b) => b.interval - a.interval);
  const intervalView =
    intervals.length === 0
      ? h("p", { class: "muted" }, "No interval samples.")
      : h(
          "div",
          { class: "intervals" },
          intervals.map((iv, i) =>
            h(
              "details",
              { class: "interval", open: i < 2, "data-interval": iv.interval },
              h("summary", null, `Interval ${iv.interval}: ${act(iv.min)} – ${act(iv.max)}`, h("span", { class: "muted" }, ` · ${iv.examples.length} example${iv.examples.length === 1 ? "" : "s"}`)),
              iv.examples.length
                ? h("ol", { class: "examples" }, iv.examples.map((ex, j) => exampleRow(ex, scale, `Interval ${iv.interval} example ${j + 1}`)))
                : h("p", { class: "muted" }, "No samples in this interval."),
            ),
          ),
        );

  const same = d.cooccurrence.filter((p) => p.other_sae === d.sae);
  const other = d.cooccurrence.filter((p) => p.other_sae !== d.sae);

  const prev = f > 0 ? link(featureHref(sae, f - 1), `← #${f - 1}`) : null;
  const next = f + 1 < d.d_sae ? link(featureHref(sae, f + 1), `#${f + 1} →`) : null;
  if (prev) prev.setAttribute("rel", "prev");
  if (next) next.setAttribute("rel", "next");

  done(
    ctx.main,
    h("p", { class: "crumbs" }, link("/", "Index"), " / ", link(saeHref(d.sae), d.sae), " / ", `feature ${d.feature}`),
    h(
      "header",
      { class: "feature-head" },
      h("h1", null, `${d.sae} `, h("span", { class: "fnum" }, `#${d.feature}`)),
      h("nav", { class: "prevnext", "aria-label": "Neighbouring features" }, prev ?? h("span", { class: "muted" }, "← first"), next ?? h("span", { class: "muted" }, "last →")),
    ),
    explanationCard(d),
    statsHeader(d),
    d.n_fired === 0 ? h("p", { class: "warning" }, "This feature never fired on the indexed corpus (dead).") : null,
    h(
      "div",
      { class: "feature-grid" },
      h(
        "div",
        { class: "main-col" },
        h(
          "section",
          { class: "card", "aria-labelledby": "top-h" },
          h("h2", { id: "top-h" }, "Top activations"),
          h("p", { class: "muted small hint" }, "Hover a token, or Tab to an example and use ← → to read each token's activation."),
          d.top_examples.length ? topList : h("p", { class: "muted" }, "No examples: the feature did not fire."),
          d.top_examples.length ? h("div", { class: "tools" }, moreBtn, moreMsg) : null,
        ),
        h("section", { class: "card", "aria-labelledby": "int-h" }, h("h2", { id: "int-h" }, "Interval samples"), intervalView),
      ),
      h(
        "div",
        { class: "side" },
        h(
          "section",
          { class: "card", "aria-labelledby": "hist-h" },
          h("h2", { id: "hist-h" }, "Activations"),
          histogram({
            counts: d.act_hist,
            edges: d.act_hist_edges,
            title: "Activation histogram (firing tokens)",
            xLabel: "activation",
            formatEdge: compact,
            logY: true,
            color: "var(--accent)",
            width: 360,
          }),
        ),
        h(
          "section",
          { class: "card", "aria-labelledby": "logit-h" },
          h("h2", { id: "logit-h" }, "Logit effects"),
          d.logit_hist.length
            ? histogram({
                counts: d.logit_hist,
                edges: d.logit_hist.map((_, i) => d.logit_hist_range[0] + ((d.logit_hist_range[1] - d.logit_hist_range[0]) * i) / d.logit_hist.length).concat([d.logit_hist_range[1]]),
                title: "Logit effects over the vocabulary",
                xLabel: "logit effect",
                formatEdge: compact,
                color: "var(--accent)",
                width: 360,
              })
            : null,
          h("div", { class: "two" }, tokenValueTable("Top positive", d.logit_pos, "logits-pos"), tokenValueTable("Top negative", d.logit_neg, "logits-neg")),
        ),
        h(
          "section",
          { class: "card", "aria-labelledby": "tt-h" },
          h("h2", { id: "tt-h" }, "Top tokens"),
          d.top_tokens.length
            ? h(
                "ul",
                { class: "chips top-tokens" },
                d.top_tokens.map((t) => h("li", { title: `token id ${t.token_id}` }, h("code", null, quoted(t.token)), h("span", { class: "count" }, int(t.count)))),
              )
            : h("p", { class: "muted" }, "None."),
        ),
        h(
          "section",
          { class: "card cooc", "aria-labelledby": "cooc-h" },
          h("h2", { id: "cooc-h" }, "Co-occurring features"),
          partnerTable(`Same SAE (${d.sae})`, same, false, "cooc-same"),
          partnerTable("Other SAEs", other, true, "cooc-other"),
        ),
        h(
          "section",
          { class: "card neighbours", "aria-labelledby": "nb-h" },
          h("h2", { id: "nb-h" }, "Closest decoder directions"),
          d.decoder_neighbours.length
            ? h(
                "table",
                { class: "neighbours" },
                h("thead", null, h("tr", null, h("th", { scope: "col" }, "Feature"), h("th", { scope: "col", class: "n", title: "cosine similarity of the decoder directions" }, "Cosine"))),
                h(
                  "tbody",
                  null,
                  d.decoder_neighbours.map((n) =>
                    h(
                      "tr",
                      null,
                      h("td", null, link(featureHref(n.other_sae, n.other_feature), n.other_sae === d.sae ? `#${n.other_feature}` : `${n.other_sae} #${n.other_feature}`)),
                      h("td", { class: "n" }, num(n.cosine, 3)),
                    ),
                  ),
                ),
              )
            : h("p", { class: "muted" }, "Not computed for this index."),
        ),
      )
    ),
  );
  announce(`${d.sae} feature ${d.feature} loaded`);
}
