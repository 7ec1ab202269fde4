// Building the page from data: every value becomes a text node or a checked attribute, never markup.
// (Stored files are untrusted: a job summary or a folder name may hold "<img onerror=...>".)
"use strict";

// Links the app makes point at its own pages (#/...) or its own API (/api/...); anything else is dropped.
function safeHref(value) {
  const text = String(value);
  return text.startsWith("#/") || text.startsWith("/api/") ? text : "#";
}

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);  // CSSOM: allowed under the CSP, no style="" markup
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "href") el.setAttribute("href", safeHref(value));
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function show(el, ...children) { el.replaceChildren(); return append(el, children); }

function q(params) { return new URLSearchParams(params).toString(); }

function number(value, digits) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toFixed(digits) : "?";
}

function bar(done, total) {
  const pct = total ? Math.max(0, Math.min(100, Math.round((100 * done) / total))) : 0;
  return h("span", { class: "progress-of" }, h("span", { class: "progress" }, h("span", { style: { width: pct + "%" } })),
    ` ${done}/${total}`);
}
