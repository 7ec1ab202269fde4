// What the labeler keeps in this browser (localStorage): unsaved labels per project + folder, so that a
// reload, a crash or a closed tab loses nothing, and the person's view settings (marker size, brightness,
// contrast, loop, names, skeleton). Stored text is read back as untrusted: every point is checked.
"use strict";

const VIEW_KEY = "posecluster-view";
const VIEW_DEFAULTS = { markerSize: 5, brightness: 1, contrast: 1, loop: false, names: true, skeleton: true };

function readStored(key) {
  try { return JSON.parse(window.localStorage.getItem(key) || "null"); } catch (err) { return null; }
}

function writeStored(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch (err) {  // storage full or disabled: the page still works, only without a draft
    return false;
  }
}

function loadView() {
  const stored = readStored(VIEW_KEY) || {};
  const view = { ...VIEW_DEFAULTS };
  for (const key of Object.keys(VIEW_DEFAULTS)) {
    if (typeof stored[key] === typeof VIEW_DEFAULTS[key] && (typeof stored[key] !== "number" || Number.isFinite(stored[key]))) view[key] = stored[key];
  }
  return view;
}

function saveView(view) { writeStored(VIEW_KEY, view); }

// [[x, y] | null per part] with finite numbers, or null when the stored value is anything else.
function validPoints(points, n) {
  if (!Array.isArray(points) || points.length !== n) return null;
  const ok = points.every((p) => p === null || (Array.isArray(p) && p.length === 2 && p.every((v) => typeof v === "number" && Number.isFinite(v))));
  return ok ? points.map((p) => (p ? p.slice() : null)) : null;
}

class Draft {
  // Per account too: on a shared workstation one person's unsaved labels never reach the next person.
  constructor(project, folder, user) { this.key = `posecluster-draft|${user || ""}|${project}|${folder}`; }

  // {image: {labels, base}} of the frames still unsaved when the page was left; unknown frames dropped.
  read(images, n) {
    const stored = readStored(this.key);
    const frames = {};
    if (!stored || typeof stored.frames !== "object" || stored.frames === null) return frames;
    for (const image of images) {
      const frame = stored.frames[image];
      if (!frame || typeof frame !== "object") continue;
      const labels = validPoints(frame.labels, n);
      if (!labels) continue;
      frames[image] = { labels, base: frame.base === null ? null : validPoints(frame.base, n) };
    }
    return frames;
  }

  // The dirty frames with the labels they started from; nothing dirty: the draft is removed.
  write(dirty, labels, stored) {
    if (!dirty.size) return writeStored(this.key, null);
    const frames = {};
    dirty.forEach((image) => { frames[image] = { labels: labels[image], base: stored[image] ?? null }; });
    return writeStored(this.key, { saved: Date.now(), frames });
  }
}
