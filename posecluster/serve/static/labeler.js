// The labeling canvas: frames of one labeled-data folder, body parts in config order.
// Image coordinates follow DeepLabCut's GUIs (matplotlib/napari): pixel i covers [i - 0.5, i + 0.5],
// so a click at CSS position s maps to x = (s - offsetX) / zoom - 0.5. The canvas follows its box (a
// ResizeObserver) and draws at devicePixelRatio, so markers stay sharp on HiDPI screens.
// The comforts of napari-deeplabcut (a labeler spends hours here): loop mode, next unlabeled frame, a
// frame list, names and skeleton on the canvas, marker size, brightness/contrast, undo and redo, a draft
// kept in this browser until saved (drafts.js).
// A frame's labels are one flat list of points ("slots"): here one per body part; a multi-animal
// project's labeler (animals.js) extends this class with each individual's body parts as slots.
"use strict";

function partColor(k, n) {  // DLC's default colormap is rainbow: violet -> red
  const hue = n > 1 ? 270 - (270 * k) / (n - 1) : 135;
  return `hsl(${hue}, 90%, 55%)`;
}

function copyPoints(points) { return points ? points.map((p) => (p ? p.slice() : null)) : points; }

function samePoints(a, b) {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((p, k) => (p === null || b[k] === null ? p === b[k]
    : Math.abs(p[0] - b[k][0]) < 1e-6 && Math.abs(p[1] - b[k][1]) < 1e-6));
}

function placedCount(points) { return points ? points.filter((p) => p !== null).length : 0; }
function baseName(image) { return image.slice(image.lastIndexOf("/") + 1); }

const HISTORY_KEPT = 20000;  // edits that can be undone: a day of clicking
const SKELETON_COLOR = "rgba(255, 255, 255, 0.85)";
const SLIDERS = [  // [setting, label, min, max, step]
  ["markerSize", "marker size", 1, 20, 1],
  ["brightness", "brightness", 0.2, 3, 0.05],
  ["contrast", "contrast", 0.2, 3, 0.05],
];

class Labeler {
  constructor(container, data, mode) {
    this.data = data;
    this.mode = mode;  // "label" or "refine"
    this.prepare();
    this.images = mode === "refine" ? data.proposed.filter((i) => data.images.includes(i)) : data.images.slice();
    this.bones = this.boneList();
    this.labels = {};   // what this page shows and edits
    this.stored = {};   // what the server last said is stored: the base of a per-frame merge
    for (const image of data.images) { this.labels[image] = this.fromWire(data.labels[image]); this.stored[image] = this.fromWire(data.labels[image]); }
    this.version = data.version;
    this.conflicts = new Map();  // image -> their labels, while the person chooses
    this.frame = 0;
    this.part = this.firstPart();
    this.history = [];  // edits to undo: {image, part, value before}
    this.redoable = []; // edits undone, to redo: {image, part, value before the undo}
    this.dirty = new Set();
    this.view = loadView();
    this.draft = new Draft(data.project, data.folder, data.user);
    this.zoom = 1; this.offsetX = 0; this.offsetY = 0; this.fitted = true;
    this.drag = null;
    this.img = new Image();
    this.listeners = [];
    this.build(container);
    this.listen(document, "keydown", (e) => this.onKey(e));
    this.listen(window, "mouseup", () => this.onUp());
    this.listen(window, "beforeunload", (e) => { if (this.unsaved()) { e.preventDefault(); e.returnValue = ""; } });
    const restored = this.restoreDraft();
    this.show(0, true);
    if (restored) this.status(`restored unsaved labels of ${restored} frame(s) kept in this browser; save to store them`, "ok");
  }

  listen(target, type, handler, options) { target.addEventListener(type, handler, options); this.listeners.push([target, type, handler, options]); }

  destroy() {
    this.listeners.forEach(([target, type, handler, options]) => target.removeEventListener(type, handler, options));
    if (this.resizer) this.resizer.disconnect();
  }

  unsaved() { return this.dirty.size; }

  // What a kind of project changes (animals.js overrides these): the slots of a frame, their colours and
  // names, the skeleton's pairs of slots, the order parts are placed in, and the points as the server
  // sends and takes them.
  prepare() {}
  slotCount() { return this.data.bodyparts.length; }
  slotName(k) { return this.data.bodyparts[k]; }
  color(k) { return partColor(k, this.slotCount()); }
  boneColor() { return SKELETON_COLOR; }
  boneList() {
    const index = new Map(this.data.bodyparts.map((p, k) => [p, k]));
    return (this.data.skeleton || []).map(([a, b]) => [index.get(a), index.get(b)]).filter(([a, b]) => a !== undefined && b !== undefined);
  }
  firstPart() { return 0; }
  nextPart(k) { return Math.min(k + 1, this.slotCount() - 1); }
  cyclePart(step) { const n = this.slotCount(); return (this.part + n + step) % n; }
  endsRound(k) { return k === this.slotCount() - 1; }  // loop mode: the next frame after this part
  selectPart(k) { this.part = k; }
  fromWire(points) { return copyPoints(points); }
  machinePoints(image) { return this.data.machine[image] || null; }  // the model's [x, y, likelihood] per slot
  toWire(points) { return copyPoints(points); }
  extraControls() { return null; }
  extraHelp() { return null; }
  extraKey() { return false; }
  refreshPanel() {}
  partsList() {
    return h("ul", { id: "parts" }, this.data.bodyparts.map((p, k) => h("li", { dataset: { part: String(k) }, onclick: () => { this.part = k; this.draw(); } },
      h("span", { class: "dot", style: { background: this.color(k) } }), h("span", { class: "part-name" }, p), h("span", { class: "coords", id: "coords-" + k }))));
  }

  build(container) {
    const $ = (id) => container.querySelector("#" + id);
    const button = (id, label, onclick, title) => h("button", { id, onclick, title, type: "button" }, label);
    const toggle = (id, setting, label) => h("label", { class: "toggle" }, h("input", {
      id, type: "checkbox", checked: this.view[setting],
      onchange: (e) => { this.view[setting] = e.currentTarget.checked; saveView(this.view); this.draw(); },
    }), " ", label);
    const slider = ([setting, label, min, max, step]) => h("label", { class: "slider" }, label, h("input", {
      id: "view-" + setting, type: "range", min, max, step, value: String(this.view[setting]),
      oninput: (e) => { this.view[setting] = Number(e.currentTarget.value); saveView(this.view); this.draw(); },
    }));
    this.canvas = h("canvas", { id: "canvas", tabindex: 0, "aria-label": "frame to label" });
    this.stage = h("div", { class: "stage" }, this.canvas);
    this.frameList = h("ol", { id: "frames", class: "frames", "aria-label": "frames" },
      this.images.map((image, i) => h("li", { dataset: { image }, title: image, onclick: () => this.show(i) },
        h("span", { class: "frame-name" }, baseName(image)), h("span", { class: "frame-state" }))));
    const aside = h("aside", {},
      h("div", { class: "frame-title" }, h("b", { id: "frame-name" })),
      h("div", { class: "muted", id: "frame-count" }),
      h("div", { class: "row" }, button("prev", "\u2190 frame", () => this.show(this.frame - 1)), button("next", "frame \u2192", () => this.show(this.frame + 1)),
        button("next-unlabeled", "next unlabeled", () => this.nextUnlabeled(), "the next frame without any label (u)")),
      this.extraControls(),
      this.partsPanel = h("div", { id: "parts-panel" }, this.partsList()),
      h("div", { class: "row" }, button("occluded", "not visible (x)", () => this.occlude()),
        button("undo", "undo", () => this.undo(), "Ctrl+Z"), button("redo", "redo", () => this.redo(), "Ctrl+Shift+Z or Ctrl+Y")),
      h("div", { class: "row" }, button("zoom-in", "+", () => this.zoomAt(1.25)), button("zoom-out", "\u2212", () => this.zoomAt(0.8)),
        button("fit", "fit", () => { this.fit(); this.draw(); })),
      h("div", { class: "row" }, button("save", h("b", {}, "save"), () => this.save(), "Ctrl+S"), " ", h("span", { id: "dirty", class: "muted" })),
      h("div", { id: "status", role: "status" }),
      h("div", { id: "conflicts" }),
      h("div", { class: "row" }, toggle("loop", "loop", "loop (next frame after the last part)"),
        toggle("show-names", "names", "names"), this.bones.length ? toggle("show-skeleton", "skeleton", "skeleton") : null),
      h("div", { class: "sliders" }, SLIDERS.map(slider),
        button("view-reset", "reset view", () => this.resetView(), "marker size, brightness and contrast as they were")),
      this.frameList,
      h("p", { class: "muted help" }, "click: place the current part, then the next (also near another point); ",
        h("kbd", {}, "Alt"), "-drag (or ", h("kbd", {}, "Ctrl"), "-drag) moves the point under the mouse; ",
        h("kbd", {}, "x"), " not visible; ", h("kbd", {}, "\u2190"), h("kbd", {}, "\u2192"), " / ", h("kbd", {}, "p"), h("kbd", {}, "n"), " frames, ",
        h("kbd", {}, "u"), " next unlabeled; ", h("kbd", {}, "\u2191"), h("kbd", {}, "\u2193"), " parts; wheel or ", h("kbd", {}, "+"), h("kbd", {}, "-"),
        " zoom, ", h("kbd", {}, "0"), " fit; right/shift-drag pans; ", h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "z"), " undo, ",
        h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "Shift"), "+", h("kbd", {}, "z"), " redo; ", h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "s"),
        " save. ", this.extraHelp(), "Unsaved labels are kept in this browser until saved. Browser shortcuts (Ctrl+0, Ctrl+\u00b1, Ctrl+x, Tab) stay the browser's."));
    show(container, h("div", { class: "labeler" }, this.stage, aside));
    this.$ = $;
    this.ctx = this.canvas.getContext("2d");
    // A button or box clicked with the mouse hands the keys back to the canvas at once: Space or Enter
    // must never press the last clicked button again (a keyboard user who tabbed there keeps them).
    aside.addEventListener("click", (e) => {  // after the control's own handler; detail 0: a key pressed it
      if (e.detail > 0 && e.target.closest("button, input, label, li")) this.canvas.focus({ preventScroll: true });
    });
    this.canvas.addEventListener("mousedown", (e) => this.onDown(e));
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    this.canvas.addEventListener("wheel", (e) => {
      if (e.ctrlKey) return;  // the browser's page zoom
      e.preventDefault();
      const p = this.screen(e);
      this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, p.sx, p.sy);
    }, { passive: false });
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.stage);
    this.listen(window, "resize", () => this.resize());
    this.resize();
  }

  resetView() {
    for (const [setting] of SLIDERS) { this.view[setting] = VIEW_DEFAULTS[setting]; this.$("view-" + setting).value = String(this.view[setting]); }
    saveView(this.view);
    this.draw();
  }

  // The canvas takes its box's width and the window's remaining height, in CSS pixels, and a backing
  // store of devicePixelRatio times that.
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const top = this.stage.getBoundingClientRect().top + window.scrollY;
    const width = Math.max(160, Math.floor(this.stage.clientWidth));
    const height = Math.max(200, Math.floor(window.innerHeight - top - 16));
    if (width === this.width && height === this.height && dpr === this.dpr) return;
    const centre = this.width ? this.toImage(this.width / 2, this.height / 2) : null;
    this.width = width; this.height = height; this.dpr = dpr;
    this.canvas.style.width = width + "px";
    this.canvas.style.height = height + "px";
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    if (this.img.width && this.fitted) this.fit();
    else if (centre) {  // keep what the person was looking at in the middle
      this.offsetX = width / 2 - (centre[0] + 0.5) * this.zoom;
      this.offsetY = height / 2 - (centre[1] + 0.5) * this.zoom;
    }
    this.canvas.dataset.size = `${width}x${height}@${dpr}`;
    this.draw();
  }

  get image() { return this.images[this.frame]; }
  get points() { return this.labels[this.image]; }

  show(index, first) {
    if (!this.images.length) {
      this.status(this.mode === "refine" ? "no proposed frames in this folder" : "no frames in this folder", "muted");
      return;
    }
    this.drag = null;
    this.frame = Math.max(0, Math.min(this.images.length - 1, index));
    this.part = this.firstPart();
    const image = this.image;
    this.img.onload = () => {
      if (image !== this.image) return;
      if (first || this.lastSize !== `${this.img.width}x${this.img.height}`) this.fit();
      this.lastSize = `${this.img.width}x${this.img.height}`;
      this.draw();
      this.canvas.dataset.loaded = image;
    };
    this.img.onerror = () => { if (image === this.image) this.status(`${image}: the frame could not be loaded`, "error"); };
    this.img.src = "/api/image?" + q({ path: this.data.project + "/" + image });
    this.$("frame-name").textContent = image;
    this.$("frame-count").textContent = `frame ${this.frame + 1} of ${this.images.length}`;
    this.showConflicts();
    this.refreshFrameList();
    this.scrollFrameList();
  }

  // "u": the next frame (after this one, wrapping round) on which no part is placed yet.
  nextUnlabeled() {
    for (let step = 1; step <= this.images.length; step++) {
      const index = (this.frame + step) % this.images.length;
      if (!placedCount(this.labels[this.images[index]])) { this.show(index); return; }
    }
    this.status("every frame has labels", "muted");
  }

  // The current frame in view in the list, scrolling the list alone (scrollIntoView would move the page,
  // and the canvas under the mouse with it).
  scrollFrameList() {
    const list = this.frameList, item = list.children[this.frame];
    if (!item) return;
    const top = item.offsetTop - list.offsetTop;
    if (top < list.scrollTop) list.scrollTop = top;
    else if (top + item.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = top + item.offsetHeight - list.clientHeight;
  }

  refreshFrameList() { this.images.forEach((image, i) => this.frameItem(image, i)); }

  frameItem(image, i) {
    const li = this.frameList.children[i];
    if (!li) return;
    const placed = placedCount(this.labels[image]);
    li.dataset.state = placed ? "labeled" : "unlabeled";
    li.classList.toggle("labeled", placed > 0);
    li.classList.toggle("unsaved", this.dirty.has(image));
    li.classList.toggle("current", i === this.frame);
    li.lastChild.textContent = `${placed}/${this.slotCount()}${this.dirty.has(image) ? " \u2022" : ""}`;
  }

  fit() {
    if (!this.img.width) return;
    const z = Math.min(this.width / this.img.width, this.height / this.img.height);
    this.zoom = z;
    this.offsetX = (this.width - this.img.width * z) / 2;
    this.offsetY = (this.height - this.img.height * z) / 2;
    this.fitted = true;
  }

  zoomAt(factor, sx, sy) {
    sx = sx ?? this.width / 2; sy = sy ?? this.height / 2;
    const zoom = Math.max(0.05, Math.min(64, this.zoom * factor));
    this.offsetX = sx - ((sx - this.offsetX) * zoom) / this.zoom;
    this.offsetY = sy - ((sy - this.offsetY) * zoom) / this.zoom;
    this.zoom = zoom;
    this.fitted = false;
    this.draw();
  }

  screen(e) {
    const r = this.canvas.getBoundingClientRect();
    return { sx: e.clientX - r.left, sy: e.clientY - r.top };
  }
  toImage(sx, sy) { return [(sx - this.offsetX) / this.zoom - 0.5, (sy - this.offsetY) / this.zoom - 0.5]; }
  toScreen(x, y) { return [this.offsetX + (x + 0.5) * this.zoom, this.offsetY + (y + 0.5) * this.zoom]; }

  // A point on the image: the picture spans [-0.5, width - 0.5]; DeepLabCut keeps labels at x >= 0, so
  // the outer half of the edge pixels snaps to 0. Outside the picture: no point (null).
  onImage(sx, sy) {
    const [x, y] = this.toImage(sx, sy);
    const w = this.img.width, hgt = this.img.height;
    if (!w || x < -0.5 || y < -0.5 || x > w - 0.5 || y > hgt - 0.5) return null;
    return [Math.min(Math.max(x, 0), w - 0.5), Math.min(Math.max(y, 0), hgt - 0.5)];
  }

  // Every change goes through record (before) and set: undo/redo swap values, the draft follows.
  record(part) {
    this.history.push({ image: this.image, part, value: this.points[part] && this.points[part].slice() });
    if (this.history.length > HISTORY_KEPT) this.history.shift();
    this.redoable = [];
  }
  set(part, value) {
    this.points[part] = value;
    this.dirty.add(this.image);
    if (!this.drag) this.keepDraft();
  }

  keepDraft() {
    if (!this.draft.write(this.dirty, this.labels, this.stored)) this.status("this browser keeps no draft (storage full or off): save often", "error");
  }

  restoreDraft() {
    const frames = this.draft.read(this.data.images, this.slotCount());
    let restored = 0;
    for (const [image, frame] of Object.entries(frames)) {
      if (samePoints(frame.labels, this.stored[image])) continue;  // saved after all (elsewhere, or the answer was lost)
      this.labels[image] = frame.labels;
      if (frame.base) this.stored[image] = frame.base;  // the merge compares with what these edits started from
      this.dirty.add(image);
      restored++;
    }
    this.keepDraft();
    return restored;
  }

  hit(sx, sy) {
    let best = -1, bestD = Math.max(8, this.view.markerSize + 3);
    this.points.forEach((p, k) => {
      if (!p) return;
      const [px, py] = this.toScreen(p[0], p[1]);
      const d = Math.hypot(px - sx, py - sy);
      if (d <= bestD) { best = k; bestD = d; }
    });
    return best;
  }

  // A click places the current part wherever it lands, even next to another point (dragging before the
  // release adjusts it); only with Alt (or Ctrl/Cmd) held does it take the point under the mouse.
  onDown(e) {
    this.canvas.focus({ preventScroll: true });
    if (!this.images.length) return;
    const { sx, sy } = this.screen(e);
    if (e.button !== 0 || e.shiftKey) {
      this.drag = { pan: true, sx, sy, ox: this.offsetX, oy: this.offsetY };
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey) {
      e.preventDefault();
      const k = this.hit(sx, sy);
      if (k < 0) { this.status("no point under the mouse to move", "muted"); return; }
      this.record(k);
      this.drag = { part: k };
      return;
    }
    const point = this.onImage(sx, sy);
    if (!point) { this.status("outside the frame: no point placed", "muted"); return; }
    const placed = this.part;
    this.record(placed);
    this.drag = { part: placed, placing: true };
    this.set(placed, point);
    this.part = this.nextPart(placed);
    this.draw();
  }

  onMove(e) {
    if (!this.drag) return;
    const { sx, sy } = this.screen(e);
    if (this.drag.pan) {
      this.offsetX = this.drag.ox + sx - this.drag.sx;
      this.offsetY = this.drag.oy + sy - this.drag.sy;
      this.fitted = false;
    } else {
      const point = this.onImage(sx, sy);
      if (point) this.set(this.drag.part, point);
    }
    this.draw();
  }

  onUp() {
    const drag = this.drag;
    this.drag = null;
    if (!drag || drag.pan) return;
    this.keepDraft();
    this.draw();
    if (drag.placing) this.afterPlacing(drag.part);
  }

  // Loop mode: the last part placed (or marked not visible) moves on to the next frame.
  afterPlacing(part) {
    if (!this.view.loop || !this.endsRound(part)) return;
    if (this.frame < this.images.length - 1) this.show(this.frame + 1);
    else this.status("last frame of the folder: every frame passed once", "muted");
  }

  occlude() {
    if (!this.images.length) return;
    const part = this.part;
    this.record(part);
    this.set(part, null);
    this.part = this.nextPart(part);
    this.draw();
    this.afterPlacing(part);
  }

  undo() { this.swapEdit(this.history, this.redoable); }
  redo() { this.swapEdit(this.redoable, this.history); }

  // A change of the whole frame at once (animals.js copies a frame's animals): one step to undo.
  recordFrame() {
    this.history.push({ image: this.image, part: null, value: copyPoints(this.points) });
    if (this.history.length > HISTORY_KEPT) this.history.shift();
    this.redoable = [];
  }

  // Undo and redo are one operation: put back the stored value, keep the replaced one on the other stack.
  swapEdit(from, to) {
    const edit = from.pop();
    if (!edit) { this.status(from === this.history ? "nothing to undo" : "nothing to redo", "muted"); return; }
    const points = this.labels[edit.image];
    if (edit.part === null) {
      to.push({ image: edit.image, part: null, value: copyPoints(points) });
      this.labels[edit.image] = copyPoints(edit.value);
    } else {
      to.push({ image: edit.image, part: edit.part, value: points[edit.part] && points[edit.part].slice() });
      points[edit.part] = edit.value;
    }
    this.dirty.add(edit.image);
    this.keepDraft();
    const index = this.images.indexOf(edit.image);
    if (index !== this.frame && index >= 0) this.show(index);
    if (edit.part !== null) this.selectPart(edit.part);
    this.draw();
  }

  // Keys act only when the page (not a form field) has focus, and never with the browser's modifiers:
  // Ctrl+x, Ctrl+0, Ctrl+plus/minus and Tab stay the browser's.
  onKey(e) {
    const t = e.target;
    if (t && (["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || t.isContentEditable)) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (ctrl && !e.altKey && !e.shiftKey && key === "z") this.undo();
    else if (ctrl && !e.altKey && ((e.shiftKey && key === "z") || (!e.shiftKey && key === "y"))) this.redo();
    else if (ctrl && !e.altKey && key === "s") this.save();
    else if (ctrl || e.altKey) return;
    else if ((key === " " || key === "Enter") && (t === this.canvas || t === document.body)) { /* taken: nothing scrolls or re-fires */ }
    else if (key === "ArrowRight" || key === "n") this.show(this.frame + 1);
    else if (key === "ArrowLeft" || key === "p") this.show(this.frame - 1);
    else if (key === "u") this.nextUnlabeled();
    else if (key === "ArrowDown") { this.part = this.cyclePart(1); this.draw(); }
    else if (key === "ArrowUp") { this.part = this.cyclePart(-1); this.draw(); }
    else if (key === "x" || key === "Delete") this.occlude();
    else if (key === "+" || key === "=") this.zoomAt(1.25);
    else if (key === "-") this.zoomAt(0.8);
    else if (key === "0") { this.fit(); this.draw(); }
    else if (!this.extraKey(key)) return;
    e.preventDefault();
  }

  marker(c, x, y, radius, fill, stroke, width, square) {
    const [sx, sy] = this.toScreen(x, y);
    c.beginPath();
    if (square) c.rect(sx - radius, sy - radius, 2 * radius, 2 * radius); else c.arc(sx, sy, radius, 0, 2 * Math.PI);
    if (fill) { c.fillStyle = fill; c.fill(); }
    c.strokeStyle = stroke; c.lineWidth = width; c.stroke();
  }

  drawSkeleton(c, points) {
    c.lineWidth = Math.max(1, this.view.markerSize / 3);
    for (const [a, b] of this.bones) {
      if (!points[a] || !points[b]) continue;
      c.strokeStyle = this.boneColor(a);
      c.beginPath(); c.moveTo(...this.toScreen(...points[a])); c.lineTo(...this.toScreen(...points[b])); c.stroke();
    }
  }

  drawNames(c, points) {
    const r = this.view.markerSize;
    c.font = "12px system-ui, sans-serif"; c.textBaseline = "bottom"; c.lineWidth = 3; c.strokeStyle = "rgba(0, 0, 0, 0.8)";
    points.forEach((p, k) => {
      if (!p) return;
      const [sx, sy] = this.toScreen(p[0], p[1]);
      c.strokeText(this.slotName(k), sx + r + 2, sy - r);  // canvas text: a name is drawn, never parsed
      c.fillStyle = this.color(k); c.fillText(this.slotName(k), sx + r + 2, sy - r);
    });
  }

  draw() {
    const c = this.ctx, r = this.view.markerSize;
    if (!c || !this.width) return;
    c.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);  // CSS pixels from here on
    c.clearRect(0, 0, this.width, this.height);
    c.imageSmoothingEnabled = this.zoom < 2;
    if (this.img.complete && this.img.width) {
      c.filter = `brightness(${this.view.brightness}) contrast(${this.view.contrast})`;  // the picture only, not the markers
      c.drawImage(this.img, this.offsetX, this.offsetY, this.img.width * this.zoom, this.img.height * this.zoom);
      c.filter = "none";
    }
    const points = this.points || [];
    if (this.view.skeleton) this.drawSkeleton(c, points);
    const machine = this.mode === "refine" ? this.machinePoints(this.image) : null;
    if (machine) {
      machine.forEach((m, k) => {
        if (!m || m[0] === null) return;
        c.setLineDash([3, 3]); this.marker(c, m[0], m[1], r + 4, null, this.color(k), 1); c.setLineDash([]);
      });
    }
    const theirs = this.conflicts.get(this.image);
    if (theirs) theirs.forEach((p, k) => { if (p) this.marker(c, p[0], p[1], r + 1, null, this.color(k), 2, true); });
    points.forEach((p, k) => {
      if (p) this.marker(c, p[0], p[1], r, this.color(k), k === this.part ? "#fff" : "#000", k === this.part ? 2 : 1);
    });
    if (this.view.names) this.drawNames(c, points);
    this.refreshPanel();
    this.$("parts").querySelectorAll("li").forEach((li) => {
      const k = Number(li.dataset.part);
      li.classList.toggle("current", k === this.part);
      const p = points[k];
      let text = p ? `${p[0].toFixed(1)}, ${p[1].toFixed(1)}` : "not visible";
      if (machine && machine[k] && machine[k][2] !== null) text += ` p=${machine[k][2].toFixed(2)}`;
      li.querySelector(".coords").textContent = text;
    });
    if (this.image !== undefined) this.frameItem(this.image, this.frame);
    this.$("dirty").textContent = this.dirty.size ? `${this.dirty.size} frame(s) not saved` : "";
  }

  status(text, cls) { const s = this.$("status"); s.textContent = text; s.className = cls || ""; }

  // Conflicts: frames someone else saved while this page changed them too. Theirs are drawn as squares;
  // the person keeps theirs or the page's, frame by frame.
  showConflicts() {
    const holder = this.$("conflicts");
    show(holder, [...this.conflicts.keys()].map((image) => h("div", { class: "conflict", dataset: { image } },
      h("span", { class: "error" }, "changed by someone else: "),
      h("a", { href: "#", onclick: (e) => { e.preventDefault(); this.show(this.images.indexOf(image)); } }, image), " ",
      h("button", { class: "keep-mine", onclick: () => this.resolve(image, "mine") }, "keep mine"),
      h("button", { class: "take-theirs", onclick: () => this.resolve(image, "theirs") }, "take theirs (squares)"))));
  }

  resolve(image, choice) {
    const theirs = this.conflicts.get(image);
    this.conflicts.delete(image);
    this.stored[image] = copyPoints(theirs);
    if (choice === "theirs") {
      this.labels[image] = copyPoints(theirs);
      this.dirty.delete(image);
    }
    this.keepDraft();
    this.showConflicts();
    this.refreshFrameList();
    this.draw();
    if (choice === "mine") this.save();
  }

  // A save sends the changed frames with the labels they started from; the server merges frame by frame.
  async save() {
    const sent = {}, wire = {}, base = {};
    this.dirty.forEach((image) => {
      sent[image] = copyPoints(this.labels[image]);
      wire[image] = this.toWire(sent[image]);
      base[image] = this.toWire(this.stored[image]);
    });
    const url = "/api/labels?" + q({ project: this.data.project, folder: this.data.folder });
    const started = performance.now();
    let r, body;
    try {
      r = await fetch(url, { method: "PUT", headers: { "Content-Type": "application/json" },
                             body: JSON.stringify({ version: this.version, labels: wire, base }) });
      body = await r.json().catch(() => ({}));
    } catch (err) {
      this.status(`Save failed: ${err.message}; your labels stay in this page and this browser.`, "error");
      this.canvas.dataset.saved = "network";
      return;
    }
    if (r.ok || (r.status === 409 && body.labels)) {
      const conflicted = new Set((body.conflicts || []).map((c) => c.image));
      this.version = body.version;
      for (const [image, answered] of Object.entries(body.labels)) {
        const points = this.fromWire(answered);
        this.stored[image] = copyPoints(points);
        if (sent[image] && !conflicted.has(image) && samePoints(this.labels[image], sent[image])) this.dirty.delete(image);
        if (!this.dirty.has(image)) this.labels[image] = copyPoints(points);  // others' frames come in
      }
      (body.conflicts || []).forEach((c) => this.conflicts.set(c.image, this.fromWire(c.theirs)));
      this.keepDraft();  // what was stored leaves the draft; a conflicted frame stays in it
      this.showConflicts();
      this.refreshFrameList();
      if (conflicted.size) this.status(`Saved ${body.saved} frame(s). ${body.error}`, "error");
      else this.status(`saved ${body.saved} frame(s) in ${Math.round(performance.now() - started)} ms`, "ok");
    } else {
      this.status(`Save failed (${r.status}): ${body.error || r.statusText}. Your labels stay in this page and this browser.`, "error");
    }
    this.draw();
    this.canvas.dataset.saved = String(r.status);
  }
}
