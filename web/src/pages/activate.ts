import { api, ApiError, type Activation } from "../api";
import { h, link, clear, announce } from "../dom";
import { act, actExact, quoted, visibleToken } from "../format";
import { featureHref, done, type PageCtx } from "../page";

let lastText = "";

function resultView(r: Activation): HTMLElement {
  const max = Math.max(0, ...r.tokens.flatMap((t) => t.features.map((f) => f.act)));
  const tokenRow = h(
    "div",
    { class: "strip", role: "group", "aria-label": "Tokens; each links to its strongest features below" },
    r.tokens.map((t) => {
      const top = Math.max(0, ...t.features.map((f) => f.act));
      const a = h(
        "a",
        {
          class: "tok" + (top > 0 ? " on" : ""),
          href: `#tok-${t.pos}`,
          "data-pos": t.pos,
          "data-act": String(top),
          "aria-label": `${quoted(t.token)} ${actExact(top)}`,
        },
        visibleToken(t.token),
      );
      if (top > 0 && max > 0) a.style.backgroundColor = `rgba(255,122,0,${(0.12 + (0.78 * top) / max).toFixed(3)})`;
      return a;
    }),
  );
  const rows = r.tokens.map((t) =>
    h(
      "tr",
      { id: `tok-${t.pos}` },
      h("td", { class: "n" }, String(t.pos)),
      h("td", null, h("code", { class: "tokname" }, visibleToken(t.token))),
      h(
        "td",
        null,
        t.features.length
          ? h(
              "ul",
              { class: "chips feats" },
              t.features.map((f) => h("li", null, link(featureHref(f.sae, f.feature), `${f.sae} #${f.feature}`), h("span", { class: "count" }, act(f.act)))),
            )
          : h("span", { class: "muted" }, "—"),
      ),
    ),
  );
  return h(
    "div",
    { class: "activation" },
    h("p", { class: "muted small" }, "Shaded by each token's strongest feature activation."),
    tokenRow,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "data per-token" }, h("thead", null, h("tr", null, h("th", { scope: "col", class: "n" }, "Pos"), h("th", { scope: "col" }, "Token"), h("th", { scope: "col" }, "Strongest features"))), h("tbody", null, rows)),
    ),
  );
}

export async function activatePage(ctx: PageCtx): Promise<void> {
  ctx.setTitle("Activate");
  const ta = h("textarea", { id: "text", name: "text", rows: 5, maxlength: 8192, required: true, placeholder: "Paste text to run through the model and SAEs…" });
  ta.value = lastText;
  const topN = h("input", { id: "top-n", name: "top_n", type: "number", min: 1, max: 64, value: 5, inputmode: "numeric" });
  const btn = h("button", { type: "submit", class: "primary" }, "Run");
  const out = h("div", { class: "result", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "activate-form" },
    h("label", { for: "text" }, "Text"),
    ta,
    h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: "top-n" }, "Features per token"), topN), btn),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = ta.value;
    lastText = text;
    if (!text.trim()) {
      ta.reportValidity();
      return;
    }
    btn.disabled = true;
    clear(out);
    out.appendChild(h("p", { class: "loading", role: "status" }, "Running the model…"));
    try {
      const n = Math.min(64, Math.max(1, Math.floor(Number(topN.value)) || 5));
      const r = await api.activate(text, n);
      clear(out);
      out.appendChild(resultView(r));
      announce(`${r.tokens.length} tokens`);
    } catch (err) {
      clear(out);
      if (err instanceof ApiError && err.status === 503) {
        out.appendChild(
          h(
            "div",
            { class: "notice no-model", role: "alert" },
            h("h2", null, "No model loaded"),
            h("p", null, "This server was started without a model, so it can only show the precomputed index. Start ", h("code", null, "scopedex serve"), " with the model to run text live."),
            h("p", { class: "muted small" }, err.detail),
            h("p", null, "Meanwhile, ", link("/search", "search the indexed contexts"), "."),
          ),
        );
      } else if (err instanceof ApiError) {
        out.appendChild(h("p", { class: "error", role: "alert" }, err.status === 413 ? "The text is too long. " : "", `${err.kind}: ${err.detail}`));
      } else {
        out.appendChild(h("p", { class: "error", role: "alert" }, String(err)));
      }
    } finally {
      btn.disabled = false;
    }
  });
  done(ctx.main, h("h1", null, "Activate"), h("p", { class: "muted" }, "See which features fire on each token of your own text (needs a server with the model loaded)."), form, out);
  // Tell the user early when the server has no model.
  try {
    const health = await api.health(ctx.signal);
    if (!health.model_loaded && !out.firstChild) {
      out.appendChild(h("p", { class: "notice", role: "note" }, "Note: this server reports no model loaded; running will fail until it is started with one."));
    }
  } catch {
    /* optional */
  }
}
