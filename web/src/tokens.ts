// Token strips: every token of a context shaded by the feature's activation, with the exact value
// in a tooltip on hover and on keyboard focus. One token per strip is in the tab order (the max);
// arrow keys, Home and End move between the tokens of a strip (roving tabindex).

import { h } from "./dom";
import { actExact, visibleToken, quoted } from "./format";

/** Background shade for an activation relative to the scale's maximum. */
export function shade(v: number, max: number): string {
  if (!(v > 0) || !(max > 0)) return "";
  const a = Math.min(1, v / max);
  // Keep faint activations visible, strong ones saturated.
  const alpha = 0.12 + 0.78 * a;
  return `rgba(255, 122, 0, ${alpha.toFixed(3)})`;
}

export interface StripOptions {
  tokens: string[];
  acts: number[];
  /** Scale maximum (the feature's max activation) so strips are comparable. */
  scale: number;
  /** Position that gets the tab stop (defaults to the argmax). */
  focusPos?: number;
  label: string;
}

export function tokenStrip(o: StripOptions): HTMLElement {
  const strip = h("div", { class: "strip", role: "group", "aria-label": o.label });
  let best = o.focusPos ?? -1;
  if (best < 0 || best >= o.tokens.length) {
    best = 0;
    o.acts.forEach((v, i) => {
      if (v > (o.acts[best] ?? 0)) best = i;
    });
  }
  o.tokens.forEach((t, i) => {
    const v = o.acts[i] ?? 0;
    const text = visibleToken(t);
    const el = h(
      "span",
      {
        class: "tok" + (v > 0 ? " on" : "") + (text !== t ? " ws" : ""),
        tabindex: i === best ? 0 : -1,
        "data-pos": i,
        "data-act": String(v),
        "aria-label": `${quoted(t)} ${actExact(v)}`,
      },
      text,
    );
    const bg = shade(v, o.scale);
    if (bg) el.style.backgroundColor = bg;
    if (t.includes("\n")) el.classList.add("nl");
    strip.appendChild(el);
  });
  return strip;
}

let installed = false;

/** Installs the delegated tooltip and arrow-key handlers once for the whole page. */
export function installTokenBehaviour(): void {
  if (installed) return;
  installed = true;
  const tip = document.getElementById("tooltip") as HTMLElement;
  let current: HTMLElement | null = null;

  const show = (el: HTMLElement) => {
    current = el;
    tip.textContent = "";
    const v = Number(el.dataset.act ?? "0");
    tip.appendChild(h("strong", { class: "tip-val" }, actExact(v)));
    tip.appendChild(h("span", { class: "tip-meta" }, ` at pos ${el.dataset.pos} `, h("code", null, el.textContent ?? "")));
    tip.hidden = false;
    const r = el.getBoundingClientRect();
    const tw = tip.offsetWidth;
    const th = tip.offsetHeight;
    let x = r.left + r.width / 2 - tw / 2 + window.scrollX;
    x = Math.max(window.scrollX + 4, Math.min(x, window.scrollX + document.documentElement.clientWidth - tw - 4));
    let y = r.top + window.scrollY - th - 6;
    if (r.top - th - 6 < 0) y = r.bottom + window.scrollY + 6;
    tip.style.left = `${x}px`;
    tip.style.top = `${y}px`;
    el.setAttribute("aria-describedby", "tooltip");
  };
  const hide = (el?: HTMLElement | null) => {
    if (el && el !== current) return;
    current?.removeAttribute("aria-describedby");
    current = null;
    tip.hidden = true;
  };
  const tokOf = (t: EventTarget | null): HTMLElement | null =>
    t instanceof HTMLElement && t.classList.contains("tok") ? t : null;

  document.addEventListener("mouseover", (e) => {
    const t = tokOf(e.target);
    if (t) show(t);
  });
  document.addEventListener("mouseout", (e) => {
    const t = tokOf(e.target);
    if (t && document.activeElement !== t) hide(t);
  });
  document.addEventListener("focusin", (e) => {
    const t = tokOf(e.target);
    if (t) show(t);
    else hide();
  });
  document.addEventListener("focusout", (e) => {
    const t = tokOf(e.target);
    if (t) hide(t);
  });
  document.addEventListener("keydown", (e) => {
    const t = tokOf(e.target);
    if (!t) {
      if (e.key === "Escape") hide();
      return;
    }
    const strip = t.parentElement;
    if (!strip) return;
    const toks = Array.from(strip.querySelectorAll<HTMLElement>(".tok"));
    const i = toks.indexOf(t);
    let j = i;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") j = Math.min(toks.length - 1, i + 1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") j = Math.max(0, i - 1);
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = toks.length - 1;
    else if (e.key === "Escape") {
      hide();
      return;
    } else return;
    e.preventDefault();
    if (j !== i) {
      t.tabIndex = -1;
      toks[j].tabIndex = 0;
      toks[j].focus();
    }
  });
  window.addEventListener("resize", () => hide());
  window.addEventListener("popstate", () => hide());
}
