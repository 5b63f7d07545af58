// What every page gets from the router, and shared page pieces (errors, loading).

import { api, ApiError, type SaeSummary } from "./api";
import { h, link, clear } from "./dom";

export interface PageCtx {
  main: HTMLElement;
  /** Captured path segments (decoded). */
  params: string[];
  query: URLSearchParams;
  signal: AbortSignal;
  setTitle(title: string): void;
  /** Client-side navigation (pushes a history entry unless replace). */
  navigate(url: string, replace?: boolean): void;
}

export type Page = (ctx: PageCtx) => Promise<void>;

export function featureHref(sae: string, f: number): string {
  return `/sae/${encodeURIComponent(sae)}/feature/${f}`;
}
export function saeHref(sae: string): string {
  return `/sae/${encodeURIComponent(sae)}`;
}

export function loading(main: HTMLElement, what: string): void {
  clear(main);
  main.setAttribute("aria-busy", "true");
  main.appendChild(h("p", { class: "loading", role: "status" }, `Loading ${what}…`));
}

export function done(main: HTMLElement, ...content: (Node | null | false)[]): void {
  clear(main);
  main.removeAttribute("aria-busy");
  for (const c of content) if (c) main.appendChild(c);
}

function saeLinks(saes: SaeSummary[] | string[]): HTMLElement {
  const ids = saes.map((s) => (typeof s === "string" ? s : s.sae_id));
  if (ids.length === 0) return h("p", null, "This index has no SAEs.");
  return h(
    "ul",
    { class: "links" },
    ids.map((id) => h("li", null, link(saeHref(id), id))),
  );
}

/** A page-level error with next steps; never a blank page. */
export async function errorPage(ctx: PageCtx, err: unknown, context: { sae?: string; feature?: number } = {}): Promise<void> {
  if (err instanceof DOMException && err.name === "AbortError") return;
  const e = err instanceof ApiError ? err : new ApiError(0, "client_error", err instanceof Error ? err.message : String(err));
  const parts: Node[] = [];
  let title = "Something went wrong";
  const { sae, feature } = context;

  if (e.status === 404 && sae !== undefined) {
    // Unknown SAE or unknown feature of a known SAE? Ask for the SAE to tell them apart.
    let summary: SaeSummary | null = null;
    try {
      summary = await api.sae(sae, ctx.signal);
    } catch (e2) {
      if (e2 instanceof DOMException && e2.name === "AbortError") return;
    }
    if (summary && feature !== undefined) {
      title = "Unknown feature";
      const last = summary.d_sae - 1;
      parts.push(
        h("p", { class: "lead" }, `${sae} has no feature ${feature}: its features are numbered 0 to ${last}.`),
        h(
          "ul",
          { class: "links" },
          h("li", null, link(featureHref(sae, 0), `Feature 0`)),
          feature > last && last >= 0 ? h("li", null, link(featureHref(sae, last), `Feature ${last} (the last)`)) : null,
          h("li", null, link(saeHref(sae), `${sae} overview`), " (sortable feature list, random live feature)"),
        ),
      );
    } else if (!summary) {
      title = "Unknown SAE";
      parts.push(h("p", { class: "lead" }, `This index has no SAE called “${sae}”.`));
      try {
        const { saes } = await api.saes(ctx.signal);
        parts.push(h("p", null, "Its SAEs are:"), saeLinks(saes));
      } catch {
        /* the list is a nicety */
      }
    }
  } else if (e.status === 503) {
    title = "Not available";
  } else if (e.status === 0) {
    title = e.kind === "network" ? "Server unreachable" : title;
  } else if (e.status === 404) {
    title = "Not found";
  } else if (e.status === 400 || e.status === 422) {
    title = "Bad request";
  }
  ctx.setTitle(title);
  done(
    ctx.main,
    h(
      "section",
      { class: "error-page", "data-error": e.kind, "data-status": e.status },
      h("h1", null, title),
      ...parts,
      h("p", { class: "detail" }, h("span", { class: "muted" }, `${e.status || ""} ${e.kind}`.trim() + ": "), e.detail),
      h("p", null, link("/", "Back to the index overview"), " · ", link("/search", "Search contexts")),
    ),
  );
}

/** The 404 page for paths the UI does not know. */
export async function notFoundPage(ctx: PageCtx): Promise<void> {
  ctx.setTitle("Page not found");
  const list = h("div");
  done(
    ctx.main,
    h(
      "section",
      { class: "error-page", "data-error": "unknown_page" },
      h("h1", null, "Page not found"),
      h("p", { class: "lead" }, `There is no page at ${location.pathname}.`),
      h("p", null, "Pages are: ", link("/", "the index"), ", ", h("code", null, "/sae/{sae}"), ", ", h("code", null, "/sae/{sae}/feature/{n}"), ", ", link("/search", "search"), " and ", link("/activate", "activate"), "."),
      list,
    ),
  );
  try {
    const { saes } = await api.saes(ctx.signal);
    list.appendChild(h("p", null, "SAEs of this index:"));
    list.appendChild(saeLinks(saes));
  } catch {
    /* optional */
  }
}

/** Inline (section-level) error, for parts of a page that fail on their own. */
export function inlineError(err: unknown): HTMLElement {
  const msg = err instanceof ApiError ? `${err.kind}: ${err.detail}` : String(err);
  return h("p", { class: "error", role: "alert" }, msg);
}
