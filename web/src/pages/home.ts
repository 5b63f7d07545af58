import { api, type Health } from "../api";
import { h, link } from "../dom";
import { int, num, density } from "../format";
import { done, errorPage, featureHref, loading, saeHref, type PageCtx } from "../page";

export function searchForm(q = "", autofocus = false, sae: string | null = null): HTMLFormElement {
  return h(
    "form",
    { class: "search-form", action: "/search", method: "get", role: "search" },
    // A search from a page restricted to some SAEs' features stays restricted.
    sae ? h("input", { type: "hidden", name: "sae", value: sae }) : null,
    h("label", { for: "q" }, "Search contexts"),
    h(
      "div",
      { class: "row" },
      h("input", { id: "q", name: "q", type: "search", value: q, placeholder: "words, \"a phrase\", feat:SAE/123, feat:SAE/123>0.5, -word, OR, ( )…", required: true, maxlength: 1000, autofocus }),
      h("button", { type: "submit" }, "Search"),
    ),
  );
}

export async function homePage(ctx: PageCtx): Promise<void> {
  loading(ctx.main, "the index");
  ctx.setTitle("Index");
  try {
    const [info, { saes }, health] = await Promise.all([
      api.index(ctx.signal),
      api.saes(ctx.signal),
      api.health(ctx.signal).catch((): Health | null => null),
    ]);
    const jumpSae = h(
      "select",
      { id: "jump-sae", name: "sae" },
      saes.map((s) => h("option", { value: s.sae_id }, s.sae_id)),
    );
    const jumpF = h("input", { id: "jump-f", name: "feature", type: "number", min: 0, step: 1, required: true, inputmode: "numeric", placeholder: "0" });
    const syncMax = () => {
      const s = saes.find((x) => x.sae_id === jumpSae.value);
      if (s) jumpF.max = String(s.d_sae - 1);
    };
    jumpSae.addEventListener("change", syncMax);
    syncMax();
    const jump = h(
      "form",
      { class: "jump-form", "aria-label": "Jump to a feature" },
      h("div", { class: "field" }, h("label", { for: "jump-sae" }, "SAE"), jumpSae),
      h("div", { class: "field" }, h("label", { for: "jump-f" }, "Feature"), jumpF),
      h("button", { type: "submit" }, "Open feature"),
    );
    jump.addEventListener("submit", (e) => {
      e.preventDefault();
      const f = Number(jumpF.value);
      if (!jumpSae.value || !Number.isInteger(f) || f < 0) {
        jumpF.reportValidity();
        return;
      }
      ctx.navigate(featureHref(jumpSae.value, f));
    });

    const rows = saes.map((s) =>
      h(
        "tr",
        null,
        h("th", { scope: "row" }, link(saeHref(s.sae_id), s.sae_id)),
        h("td", { class: "hook" }, s.hook_in ?? ""),
        h("td", { class: "n" }, int(s.d_sae)),
        h("td", { class: "n" }, int(s.tokens_indexed)),
        h("td", { class: "n" }, num(s.mean_l0, 2)),
        h("td", { class: "n" }, `${int(s.dead_features)} (${density(s.d_sae ? s.dead_features / s.d_sae : 0)})`),
        h("td", { class: "n" }, num(s.explained_variance, 3)),
      ),
    );
    done(
      ctx.main,
      h("h1", null, "scopedex index"),
      h(
        "dl",
        { class: "facts" },
        h("div", null, h("dt", null, "Model"), h("dd", null, h("code", null, info.model.id))),
        h("div", null, h("dt", null, "Corpus"), h("dd", null, info.corpus.files.length === 1 ? h("code", null, info.corpus.files[0]) : `${info.corpus.files.length} files`)),
        h("div", null, h("dt", null, "Contexts"), h("dd", null, `${int(info.n_contexts)} × ${info.ctx_len} tokens`)),
        info.created ? h("div", null, h("dt", null, "Created"), h("dd", null, info.created)) : null,
        health ? h("div", null, h("dt", null, "Live model"), h("dd", null, health.model_loaded ? link("/activate", "loaded — try Activate") : "not loaded")) : null,
      ),
      info.corpus.files.length > 1
        ? h("details", { class: "files" }, h("summary", null, "Corpus files"), h("ul", null, info.corpus.files.map((f) => h("li", null, h("code", null, f)))))
        : null,
      h("div", { class: "tools" }, searchForm(), jump),
      h("h2", null, "SAEs"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data saes" },
          h(
            "thead",
            null,
            h("tr", null, ["SAE", "Hook", "Features", "Tokens indexed", "Mean L0", "Dead features", "Expl. var."].map((t) => h("th", { scope: "col" }, t))),
          ),
          h("tbody", null, rows),
        ),
      ),
      ...saes.filter((s) => s.warning).map((s) => h("p", { class: "warning" }, `${s.sae_id}: ${s.warning}`)),
    );
  } catch (e) {
    await errorPage(ctx, e);
  }
}
