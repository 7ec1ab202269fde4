// The tracks of a multi-animal analysis (a `_el.h5` table): one video frame at a time with each
// individual's tracked points in its own colour, its skeleton and its name (its identity across frames).
// Points below the p-cutoff are not drawn, as DeepLabCut's labeled videos leave them out. Every point of
// the frame is also listed beside the canvas (data-x/-y: image pixels), so what is drawn can be read.
"use strict";

class TrackViewer {
  constructor(container, data) {
    this.data = data;
    this.groups = animalGroups(data.individuals, data.bodyparts, data.unique_bodyparts);
    this.bones = animalBones(this.groups, data.bodyparts, data.skeleton);
    this.pcutoff = data.pcutoff;
    this.frame = -1;
    this.points = [];
    this.img = new Image();
    this.zoom = 1; this.offsetX = 0; this.offsetY = 0;
    this.listeners = [];
    this.build(container);
    this.listen(document, "keydown", (e) => this.onKey(e));
    this.show(0);
  }

  unsaved() { return 0; }  // nothing to lose when the person leaves (app.js asks the active page)

  listen(target, type, handler) { target.addEventListener(type, handler); this.listeners.push([target, type, handler]); }

  destroy() {
    this.listeners.forEach(([target, type, handler]) => target.removeEventListener(type, handler));
    if (this.resizer) this.resizer.disconnect();
  }

  build(container) {
    const n = this.data.frames;
    this.canvas = h("canvas", { id: "canvas", tabindex: 0, "aria-label": "tracked frame" });
    this.stage = h("div", { class: "stage" }, this.canvas);
    this.slider = h("input", { id: "track-frame", type: "range", min: 0, max: Math.max(0, n - 1), step: 1, value: "0",
      oninput: (e) => this.show(Number(e.currentTarget.value)) });
    this.counter = h("div", { id: "frame-count", class: "muted" });
    this.list = h("div", { id: "track-points" });
    this.message = h("div", { id: "status", role: "status" });
    const button = (id, label, step, title) => h("button", { id, type: "button", title, onclick: () => this.show(this.frame + step) }, label);
    const aside = h("aside", {},
      h("div", { class: "frame-title" }, h("b", {}, this.data.video || this.data.table)),
      this.counter,
      h("div", { class: "row" }, button("prev", "\u2190 frame", -1, "previous frame (\u2190)"), button("next", "frame \u2192", 1, "next frame (\u2192)"),
        button("back10", "\u221210", -10, "10 frames back"), button("ahead10", "+10", 10, "10 frames ahead")),
      this.slider,
      h("ul", { id: "legend", class: "legend" }, this.groups.map((g, i) => h("li", { dataset: { individual: g.name, color: animalColor(i, g.name) } },
        h("span", { class: "dot", style: { background: animalColor(i, g.name) } }), " ", g.name))),
      h("p", { class: "muted" }, `points with likelihood below ${this.pcutoff} (the project's p-cutoff) are not drawn`),
      this.message, this.list,
      h("p", { class: "muted help" }, h("kbd", {}, "\u2190"), h("kbd", {}, "\u2192"), " / ", h("kbd", {}, "p"), h("kbd", {}, "n"),
        " frames, ", h("kbd", {}, "Home"), h("kbd", {}, "End"), " first and last"));
    show(container, h("div", { class: "labeler" }, this.stage, aside));
    this.ctx = this.canvas.getContext("2d");
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.stage);
    this.listen(window, "resize", () => this.resize());
    this.resize();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const top = this.stage.getBoundingClientRect().top + window.scrollY;
    const width = Math.max(160, Math.floor(this.stage.clientWidth));
    const height = Math.max(200, Math.floor(window.innerHeight - top - 16));
    if (width === this.width && height === this.height && dpr === this.dpr) return;
    this.width = width; this.height = height; this.dpr = dpr;
    this.canvas.style.width = width + "px";
    this.canvas.style.height = height + "px";
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.fit();
    this.draw();
  }

  fit() {
    if (!this.img.width) return;
    this.zoom = Math.min(this.width / this.img.width, this.height / this.img.height);
    this.offsetX = (this.width - this.img.width * this.zoom) / 2;
    this.offsetY = (this.height - this.img.height * this.zoom) / 2;
  }

  toScreen(x, y) { return [this.offsetX + (x + 0.5) * this.zoom, this.offsetY + (y + 0.5) * this.zoom]; }

  // A frame's points and picture are fetched together; an answer for a frame the person already left is
  // dropped, so fast stepping never shows one frame's points on another's picture.
  async show(index) {
    const n = this.data.frames;
    if (!n) { this.status("the table has no frames", "muted"); return; }
    index = Math.max(0, Math.min(n - 1, index));
    if (index === this.frame) return;
    this.frame = index;
    this.slider.value = String(index);
    this.counter.textContent = `frame ${index} (${index + 1} of ${n})`;
    const params = q({ table: this.data.table, frame: index });
    const img = new Image();
    const picture = new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error("the video frame could not be decoded")); });
    img.src = "/api/tracks/image?" + params;
    let answer;
    try {
      const r = await fetch("/api/tracks/frame?" + params);
      answer = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(answer.error || `${r.status} ${r.statusText}`);
      await picture;
    } catch (err) {
      if (index === this.frame) this.status(`frame ${index}: ${err.message}`, "error");
      return;
    }
    if (index !== this.frame) return;
    const sized = this.img.width === img.width && this.img.height === img.height;
    this.img = img;
    this.points = this.groups.map((g) => (g.name === UNIQUE_ANIMAL ? answer.unique : answer.individuals[this.groups.indexOf(g)]) || []);
    if (!sized) this.fit();
    this.status("", "");
    this.listPoints();
    this.draw();
    this.canvas.dataset.frame = String(index);
  }

  drawn(p) { return p && (p[2] === null || p[2] >= this.pcutoff); }

  listPoints() {
    show(this.list, this.groups.map((g, i) => h("table", { class: "track-points", dataset: { individual: g.name } },
      h("tr", {}, h("th", { colspan: 2, style: g.name === UNIQUE_ANIMAL ? {} : { color: animalColor(i, g.name) } }, g.name)),
      g.parts.map((part, j) => {
        const p = this.points[i][j];
        const drawn = this.drawn(p);
        return h("tr", { class: "point", dataset: p ? { individual: g.name, part, x: String(p[0]), y: String(p[1]), likelihood: String(p[2]), drawn: String(drawn) }
          : { individual: g.name, part, drawn: "false" } },
        h("td", {}, part), h("td", { class: drawn ? "" : "muted" }, p ? `${p[0].toFixed(1)}, ${p[1].toFixed(1)}${p[2] === null ? "" : ` p=${p[2].toFixed(2)}`}` : "not found"));
      }))));
  }

  draw() {
    const c = this.ctx, r = 5;
    if (!c || !this.width) return;
    c.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    c.clearRect(0, 0, this.width, this.height);
    if (!this.img.width) return;
    c.imageSmoothingEnabled = this.zoom < 2;
    c.drawImage(this.img, this.offsetX, this.offsetY, this.img.width * this.zoom, this.img.height * this.zoom);
    const flat = this.groups.flatMap((g, i) => g.parts.map((_, j) => this.points[i][j]));
    c.lineWidth = 2;
    for (const [a, b] of this.bones) {
      if (!this.drawn(flat[a]) || !this.drawn(flat[b])) continue;
      const g = this.groups.findIndex((group) => a >= group.first && a < group.first + group.parts.length);
      c.strokeStyle = animalColor(g, this.groups[g].name);
      c.beginPath(); c.moveTo(...this.toScreen(flat[a][0], flat[a][1])); c.lineTo(...this.toScreen(flat[b][0], flat[b][1])); c.stroke();
    }
    // Names first, markers over them: a marker's centre is always its animal's colour.
    c.font = "bold 13px system-ui, sans-serif"; c.textBaseline = "bottom"; c.lineWidth = 3; c.strokeStyle = "rgba(0, 0, 0, 0.8)";
    this.groups.forEach((g, i) => {
      const shown = this.points[i].filter((p) => this.drawn(p));
      if (!shown.length || g.name === UNIQUE_ANIMAL) return;
      const top = shown.reduce((a, b) => (b[1] < a[1] ? b : a));
      const [sx, sy] = this.toScreen(top[0], top[1]);
      c.strokeText(g.name, sx - 10, sy - r - 6);
      c.fillStyle = animalColor(i, g.name); c.fillText(g.name, sx - 10, sy - r - 6);
    });
    this.groups.forEach((g, i) => this.points[i].forEach((p) => {
      if (!this.drawn(p)) return;
      const [sx, sy] = this.toScreen(p[0], p[1]);
      c.beginPath(); c.arc(sx, sy, r, 0, 2 * Math.PI);
      c.fillStyle = animalColor(i, g.name); c.fill();
      c.strokeStyle = "#000"; c.lineWidth = 1; c.stroke();
    }));
  }

  status(text, cls) { this.message.textContent = text; this.message.className = cls || ""; }

  onKey(e) {
    const t = e.target;
    if (t && (["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName) || t.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (key === "ArrowRight" || key === "n") this.show(this.frame + 1);
    else if (key === "ArrowLeft" || key === "p") this.show(this.frame - 1);
    else if (key === "Home") this.show(0);
    else if (key === "End") this.show(this.data.frames - 1);
    else return;
    e.preventDefault();
  }
}
