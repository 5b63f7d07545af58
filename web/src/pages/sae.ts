import { api, type FeatureList } from "../api";
import { h, link, announce } from "../dom";
import { act, density, int, num } from "../format";
import { histogram, pow10 } from "../plots";
import { done, errorPage, featureHref, inlineError, loading, saeHref, type PageCtx } from "../page";

const PAGE = 50;
const SORTS = ["feature", "density", "max_act"] as const;

export async function saePage(ctx: PageCtx): Promise<void> {
  const sae = ctx.params[0];
  const sort = (SORTS as readonly string[]).includes(ctx.query.get("sort") ?? "") ? ctx.query.get("sort")! : "density";
  const order = ctx.query.get("order") === "asc" ? "asc" : "desc";
  const live = ctx.query.get("live") !== "0";
  const page = Math.max(1, Math.floor(Number(ctx.query.get("page") ?? "1")) || 1);
  loading(ctx.main, sae);
  ctx.setTitle(sae);
  try {
    const [summary, list] = await Promise.all([
      api.sae(sae, ctx.signal),
      api.features(sae, { sort, order, live, limit: PAGE, offset: (page - 1) * PAGE }, ctx.signal).catch((e: unknown) => e),
    ]);
    const url = (over: Record<string, string>) => {
      const q = new URLSearchParams({ sort, order, live: live ? "1" : "0", page: String(page), ...over });
      return `${saeHref(sae)}?${q}`;
    };

    const randomBtn = h("button", { type: "button", class: "primary" }, "Random live feature");
    const randomMsg = h("span", { class: "muted", role: "status" });
    randomBtn.addEventListener("click", async () => {
      randomBtn.disabled = true;
      randomMsg.textContent = "Picking…";
      try {
        const r = await api.random(sae);
        ctx.navigate(featureHref(r.sae, r.feature));
      } catch (e) {
        randomMsg.textContent = e instanceof Error ? e.message : String(e);
        randomBtn.disabled = false;
      }
    });

    const controls = h(
      "form",
      { class: "list-controls", "aria-label": "Sort features" },
      h(
        "div",
        { class: "field" },
        h("label", { for: "sort" }, "Sort by"),
        h(
          "select",
          { id: "sort", name: "sort" },
          [
            ["density", "Density"],
            ["max_act", "Max activation"],
            ["feature", "Feature index"],
          ].map(([v, t]) => h("option", { value: v, selected: v === sort }, t)),
        ),
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "order" }, "Order"),
        h(
          "select",
          { id: "order", name: "order" },
          h("option", { value: "desc", selected: order === "desc" }, "Descending"),
          h("option", { value: "asc", selected: order === "asc" }, "Ascending"),
        ),
      ),
      h("div", { class: "field check" }, h("input", { id: "live", name: "live", type: "checkbox", checked: live }), h("label", { for: "live" }, "Live features only")),
    );
    controls.addEventListener("change", () => {
      const fd = new FormData(controls);
      ctx.navigate(url({ sort: String(fd.get("sort")), order: String(fd.get("order")), live: fd.get("live") ? "1" : "0", page: "1" }));
    });
    controls.addEventListener("submit", (e) => e.preventDefault());

    let listView: HTMLElement;
    if (list instanceof Error || !(list as FeatureList).features) {
      listView = inlineError(list);
    } else {
      const l = list as FeatureList;
      const pages = Math.max(1, Math.ceil(l.total / PAGE));
      listView = h(
        "div",
        null,
        h("p", { class: "muted" }, `${int(l.total)} ${live ? "live " : ""}features · page ${page} of ${pages}`),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "data features" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                h("th", { scope: "col" }, "Feature"),
                h("th", { scope: "col", class: "n", "aria-sort": sort === "density" ? (order === "asc" ? "ascending" : "descending") : null }, "Density"),
                h("th", { scope: "col", class: "n", "aria-sort": sort === "max_act" ? (order === "asc" ? "ascending" : "descending") : null }, "Max act"),
                h("th", { scope: "col", class: "n" }, "Mean act"),
                h("th", { scope: "col" }, "Explanation"),
                h("th", { scope: "col", class: "n", title: "detection balanced accuracy (else fuzzing's)" }, "Score"),
              ),
            ),
            h(
              "tbody",
              null,
              l.features.map((f) =>
                h(
                  "tr",
                  null,
                  h("th", { scope: "row" }, link(featureHref(sae, f.feature), `#${f.feature}`)),
                  h("td", { class: "n" }, density(f.density)),
                  h("td", { class: "n" }, act(f.max_act)),
                  h("td", { class: "n" }, act(f.mean_act)),
                  h("td", { class: f.explanation ? "expl" : "expl muted" }, f.explanation ?? "–"),
                  h("td", { class: "n" }, f.explanation_score === null ? "–" : num(f.explanation_score, 2)),
                ),
              ),
            ),
          ),
        ),
        h(
          "nav",
          { class: "pager", "aria-label": "Feature list pages" },
          page > 1 ? link(url({ page: String(page - 1) }), "← Previous page") : h("span", { class: "muted" }, "← Previous page"),
          page < pages ? link(url({ page: String(page + 1) }), "Next page →") : h("span", { class: "muted" }, "Next page →"),
        ),
      );
    }

    const s = summary;
    done(
      ctx.main,
      h("p", { class: "crumbs" }, link("/", "Index"), " / ", s.sae_id),
      h("h1", null, s.sae_id),
      h(
        "dl",
        { class: "facts" },
        h("div", null, h("dt", null, "Hook"), h("dd", null, h("code", null, s.hook_in ?? "?"), s.hook_out && s.hook_out !== s.hook_in ? [" → ", h("code", null, s.hook_out)] : null)),
        h("div", null, h("dt", null, "Features"), h("dd", null, `${int(s.d_sae)} (d_in ${int(s.d_in)})`)),
        h("div", null, h("dt", null, "Tokens indexed"), h("dd", null, int(s.tokens_indexed))),
        h("div", null, h("dt", null, "Mean L0"), h("dd", null, num(s.mean_l0, 2))),
        h("div", null, h("dt", null, "Dead features"), h("dd", null, `${int(s.dead_features)} (${density(s.d_sae ? s.dead_features / s.d_sae : 0)})`)),
        h("div", null, h("dt", null, "Explained variance"), h("dd", null, num(s.explained_variance, 3))),
      ),
      s.warning ? h("p", { class: "warning", role: "note" }, s.warning) : null,
      h("div", { class: "tools" }, randomBtn, randomMsg),
      h(
        "div",
        { class: "cols" },
        h(
          "section",
          { class: "card", "aria-labelledby": "dens-h" },
          h("h2", { id: "dens-h" }, "Feature density"),
          histogram({
            counts: s.density_hist,
            edges: s.density_hist_edges,
            title: "Live features by log10 density",
            xLabel: "fraction of tokens the feature fires on",
            formatEdge: pow10,
            color: "var(--accent)",
            width: 420,
          }),
          h("p", { class: "muted small" }, `${int(s.dead_features)} dead features are not in the plot.`),
        ),
        h("section", { class: "card", "aria-labelledby": "list-h" }, h("h2", { id: "list-h" }, "Features"), controls, listView),
      ),
    );
    announce(`${s.sae_id} loaded`);
  } catch (e) {
    await errorPage(ctx, e, { sae });
  }
}
