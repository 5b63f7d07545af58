// Client-side router: shareable URLs through the history API; back/forward re-render.
import "./style.css";
import { homePage } from "./pages/home";
import { saePage } from "./pages/sae";
import { featurePage } from "./pages/feature";
import { searchPage } from "./pages/search";
import { activatePage } from "./pages/activate";
import { notFoundPage, type Page, type PageCtx } from "./page";
import { installTokenBehaviour } from "./tokens";

const routes: [RegExp, string, Page][] = [
  [/^\/$/, "home", homePage],
  [/^\/sae\/([^/]+)\/?$/, "sae", saePage],
  [/^\/sae\/([^/]+)\/feature\/([^/]+)\/?$/, "feature", featurePage],
  [/^\/search\/?$/, "search", searchPage],
  [/^\/activate\/?$/, "activate", activatePage],
];

const main = document.getElementById("main") as HTMLElement;
let current: AbortController | null = null;
let renderSeq = 0;
/** pathname + search of the page on screen: a change of hash alone does not re-render. */
let rendered = "";

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function markNav(): void {
  for (const a of document.querySelectorAll<HTMLAnchorElement>("header.top nav a")) {
    const p = new URL(a.href).pathname;
    const on = p === "/" ? location.pathname === "/" : location.pathname.startsWith(p);
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function render(focus: boolean, restoreY?: number): Promise<void> {
  current?.abort();
  const ctrl = new AbortController();
  current = ctrl;
  const seq = ++renderSeq;
  const path = location.pathname;
  rendered = location.pathname + location.search;
  let page: Page = notFoundPage;
  let name = "not-found";
  let params: string[] = [];
  for (const [re, n, p] of routes) {
    const m = re.exec(path);
    if (m) {
      page = p;
      name = n;
      params = m.slice(1).map(safeDecode);
      break;
    }
  }
  markNav();
  const ctx: PageCtx = {
    main,
    params,
    query: new URLSearchParams(location.search),
    signal: ctrl.signal,
    setTitle: (t) => {
      if (seq === renderSeq) document.title = `${t} · scopedex`;
    },
    navigate,
  };
  document.body.dataset.page = name;
  main.dataset.state = "loading";
  try {
    await page(ctx);
  } catch (e) {
    if (!(e instanceof DOMException && e.name === "AbortError")) console.error(e);
  }
  if (seq !== renderSeq) return;
  main.dataset.state = "ready";
  if (restoreY !== undefined) window.scrollTo(0, restoreY);
  if (focus) {
    const h1 = main.querySelector("h1");
    if (h1) {
      h1.setAttribute("tabindex", "-1");
      h1.focus({ preventScroll: true });
    }
  }
}

function saveScroll(): void {
  history.replaceState({ ...(history.state ?? {}), y: window.scrollY }, "");
}

export function navigate(url: string, replace = false): void {
  const target = new URL(url, location.href);
  if (target.origin !== location.origin) {
    location.href = url;
    return;
  }
  saveScroll();
  if (replace) history.replaceState({ y: 0 }, "", target.pathname + target.search + target.hash);
  else history.pushState({ y: 0 }, "", target.pathname + target.search + target.hash);
  window.scrollTo(0, 0);
  void render(true);
}

document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.("a");
  if (!a || !a.href || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  // In-page anchors stay with the browser.
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

// GET forms (search) navigate client-side too.
document.addEventListener("submit", (e) => {
  const form = e.target as HTMLFormElement;
  if (e.defaultPrevented || form.method.toLowerCase() !== "get" || !form.getAttribute("action")) return;
  e.preventDefault();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) q.append(k, String(v));
  navigate(`${form.getAttribute("action")}?${q}`);
});

window.addEventListener("popstate", (e) => {
  if (location.pathname + location.search === rendered) return;
  const y = (e.state as { y?: number } | null)?.y;
  void render(true, y ?? 0);
});

history.scrollRestoration = "manual";
installTokenBehaviour();
void render(false);
