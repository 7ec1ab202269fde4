// The labeling canvas: frames of one labeled-data folder, body parts in config order.
// Image coordinates follow DeepLabCut's GUIs (matplotlib/napari): pixel i covers [i - 0.5, i + 0.5],
// so a click at screen position s maps to x = (s - offsetX) / zoom - 0.5.
"use strict";

function partColor(k, n) {  // DLC's default colormap is rainbow: violet -> red
  const hue = n > 1 ? 270 - (270 * k) / (n - 1) : 135;
  return `hsl(${hue}, 90%, 55%)`;
}

class Labeler {
  constructor(container, data, mode, onStatus) {
    this.data = data;
    this.mode = mode;  // "label" or "refine"
    this.images = mode === "refine" ? data.proposed.filter((i) => data.images.includes(i)) : data.images.slice();
    this.labels = JSON.parse(JSON.stringify(data.labels));
    this.version = data.version;
    this.frame = 0;
    this.part = 0;
    this.history = [];
    this.dirty = new Set();
    this.zoom = 1; this.offsetX = 0; this.offsetY = 0;
    this.drag = null;
    this.img = new Image();
    this.build(container);
    this.keyHandler = (e) => this.onKey(e);
    document.addEventListener("keydown", this.keyHandler);
    window.addEventListener("beforeunload", (e) => { if (this.dirty.size) { e.preventDefault(); e.returnValue = ""; } });
    this.show(0, true);
  }

  destroy() { document.removeEventListener("keydown", this.keyHandler); }

  build(container) {
    const n = this.data.bodyparts.length;
    container.innerHTML = `
      <div class="labeler">
        <div class="stage"><canvas id="canvas"></canvas></div>
        <aside>
          <div><b id="frame-name"></b></div>
          <div class="muted" id="frame-count"></div>
          <div><button id="prev">&larr; frame</button><button id="next">frame &rarr;</button></div>
          <ul id="parts">${this.data.bodyparts.map((p, k) => `<li data-part="${k}"><span class="dot" style="background:${partColor(k, n)}"></span>${esc(p)}<span class="coords" id="coords-${k}"></span></li>`).join("")}</ul>
          <div><button id="occluded">not visible (x)</button><button id="undo">undo</button></div>
          <div><button id="zoom-in">+</button><button id="zoom-out">&minus;</button><button id="fit">fit</button></div>
          <div><button id="save"><b>save</b></button> <span id="dirty" class="muted"></span></div>
          <div id="status"></div>
          <p class="muted">click: place the current part, then the next; drag a point to move it;
          <kbd>x</kbd> not visible; <kbd>&larr;</kbd><kbd>&rarr;</kbd> / <kbd>p</kbd><kbd>n</kbd> frames;
          <kbd>&uarr;</kbd><kbd>&darr;</kbd> parts; wheel or <kbd>+</kbd><kbd>-</kbd> zoom, <kbd>0</kbd> fit;
          right/shift-drag pans; <kbd>Ctrl</kbd>+<kbd>z</kbd> undo; <kbd>Ctrl</kbd>+<kbd>s</kbd> save.</p>
        </aside>
      </div>`;
    this.canvas = container.querySelector("#canvas");
    const stage = container.querySelector(".stage");
    this.canvas.width = Math.max(320, stage.clientWidth);
    this.canvas.height = Math.max(240, window.innerHeight - 120);
    this.canvas.style.width = this.canvas.width + "px";
    this.canvas.style.height = this.canvas.height + "px";
    this.ctx = this.canvas.getContext("2d");
    const $ = (id) => container.querySelector("#" + id);
    $("prev").onclick = () => this.show(this.frame - 1);
    $("next").onclick = () => this.show(this.frame + 1);
    $("occluded").onclick = () => this.occlude();
    $("undo").onclick = () => this.undo();
    $("zoom-in").onclick = () => this.zoomAt(1.25);
    $("zoom-out").onclick = () => this.zoomAt(0.8);
    $("fit").onclick = () => { this.fit(); this.draw(); };
    $("save").onclick = () => this.save();
    container.querySelectorAll("#parts li").forEach((li) => { li.onclick = () => { this.part = +li.dataset.part; this.draw(); }; });
    this.$ = $;
    this.canvas.addEventListener("mousedown", (e) => this.onDown(e));
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    window.addEventListener("mouseup", (e) => this.onUp(e));
    this.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    this.canvas.addEventListener("wheel", (e) => { e.preventDefault(); const p = this.screen(e); this.zoomAt(e.deltaY < 0 ? 1.25 : 0.8, p.sx, p.sy); }, { passive: false });
  }

  get image() { return this.images[this.frame]; }
  get points() { return this.labels[this.image]; }

  show(index, first) {
    if (!this.images.length) { this.status("no frames in this folder", "muted"); return; }
    this.frame = Math.max(0, Math.min(this.images.length - 1, index));
    this.part = 0;
    const src = "/api/image?path=" + encodeURIComponent(this.data.project + "/" + this.image);
    this.img.onload = () => {
      if (first || this.lastSize !== `${this.img.width}x${this.img.height}`) this.fit();
      this.lastSize = `${this.img.width}x${this.img.height}`;
      this.draw();
      this.canvas.dataset.loaded = this.image;
    };
    this.img.src = src;
    this.$("frame-name").textContent = this.image;
    this.$("frame-count").textContent = `frame ${this.frame + 1} of ${this.images.length}`;
  }

  fit() {
    const z = Math.min(this.canvas.width / this.img.width, this.canvas.height / this.img.height);
    this.zoom = z;
    this.offsetX = (this.canvas.width - this.img.width * z) / 2;
    this.offsetY = (this.canvas.height - this.img.height * z) / 2;
  }

  zoomAt(factor, sx, sy) {
    sx = sx ?? this.canvas.width / 2; sy = sy ?? this.canvas.height / 2;
    const zoom = Math.max(0.05, Math.min(64, this.zoom * factor));
    this.offsetX = sx - ((sx - this.offsetX) * zoom) / this.zoom;
    this.offsetY = sy - ((sy - this.offsetY) * zoom) / this.zoom;
    this.zoom = zoom;
    this.draw();
  }

  screen(e) {
    const r = this.canvas.getBoundingClientRect();
    return { sx: e.clientX - r.left, sy: e.clientY - r.top };
  }
  toImage(sx, sy) { return [(sx - this.offsetX) / this.zoom - 0.5, (sy - this.offsetY) / this.zoom - 0.5]; }
  toScreen(x, y) { return [this.offsetX + (x + 0.5) * this.zoom, this.offsetY + (y + 0.5) * this.zoom]; }

  record(part) { this.history.push({ image: this.image, part, before: this.points[part] && this.points[part].slice() }); }
  set(part, value) { this.points[part] = value; this.dirty.add(this.image); }

  hit(sx, sy) {
    let best = -1, bestD = 8;
    this.points.forEach((p, k) => {
      if (!p) return;
      const [px, py] = this.toScreen(p[0], p[1]);
      const d = Math.hypot(px - sx, py - sy);
      if (d <= bestD) { best = k; bestD = d; }
    });
    return best;
  }

  onDown(e) {
    const { sx, sy } = this.screen(e);
    if (e.button !== 0 || e.shiftKey) {
      this.drag = { pan: true, sx, sy, ox: this.offsetX, oy: this.offsetY };
      return;
    }
    const k = this.hit(sx, sy);
    if (k >= 0) {
      this.record(k);
      this.drag = { part: k };
      this.part = k;
      return;
    }
    this.record(this.part);
    this.set(this.part, this.toImage(sx, sy));
    this.part = Math.min(this.part + 1, this.data.bodyparts.length - 1);
    this.draw();
  }

  onMove(e) {
    if (!this.drag) return;
    const { sx, sy } = this.screen(e);
    if (this.drag.pan) {
      this.offsetX = this.drag.ox + sx - this.drag.sx;
      this.offsetY = this.drag.oy + sy - this.drag.sy;
    } else {
      this.set(this.drag.part, this.toImage(sx, sy));
    }
    this.draw();
  }

  onUp() { this.drag = null; }

  occlude() {
    this.record(this.part);
    this.set(this.part, null);
    this.part = Math.min(this.part + 1, this.data.bodyparts.length - 1);
    this.draw();
  }

  undo() {
    const last = this.history.pop();
    if (!last) return;
    const index = this.images.indexOf(last.image);
    this.labels[last.image][last.part] = last.before;
    this.dirty.add(last.image);
    this.part = last.part;
    if (index !== this.frame) this.show(index); else this.draw();
    this.part = last.part;
  }

  onKey(e) {
    if (e.target && ["INPUT", "TEXTAREA"].includes(e.target.tagName)) return;
    const ctrl = e.ctrlKey || e.metaKey;
    const n = this.data.bodyparts.length;
    if (ctrl && e.key === "z") this.undo();
    else if (ctrl && e.key === "s") this.save();
    else if (e.key === "ArrowRight" || e.key === "n") this.show(this.frame + 1);
    else if (e.key === "ArrowLeft" || e.key === "p") this.show(this.frame - 1);
    else if (e.key === "ArrowDown" || (e.key === "Tab" && !e.shiftKey)) { this.part = (this.part + 1) % n; this.draw(); }
    else if (e.key === "ArrowUp" || (e.key === "Tab" && e.shiftKey)) { this.part = (this.part + n - 1) % n; this.draw(); }
    else if (e.key === "x" || e.key === "Delete") this.occlude();
    else if (e.key === "+" || e.key === "=") this.zoomAt(1.25);
    else if (e.key === "-") this.zoomAt(0.8);
    else if (e.key === "0") { this.fit(); this.draw(); }
    else return;
    e.preventDefault();
  }

  draw() {
    const c = this.ctx, n = this.data.bodyparts.length;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.clearRect(0, 0, this.canvas.width, this.canvas.height);
    c.imageSmoothingEnabled = this.zoom < 2;
    if (this.img.complete && this.img.width) c.drawImage(this.img, this.offsetX, this.offsetY, this.img.width * this.zoom, this.img.height * this.zoom);
    const machine = this.mode === "refine" ? this.data.machine[this.image] : null;
    if (machine) {
      machine.forEach((m, k) => {
        if (m[0] === null) return;
        const [sx, sy] = this.toScreen(m[0], m[1]);
        c.strokeStyle = partColor(k, n); c.lineWidth = 1; c.setLineDash([3, 3]);
        c.beginPath(); c.arc(sx, sy, 9, 0, 2 * Math.PI); c.stroke(); c.setLineDash([]);
      });
    }
    (this.points || []).forEach((p, k) => {
      if (!p) return;
      const [sx, sy] = this.toScreen(p[0], p[1]);
      c.fillStyle = partColor(k, n); c.strokeStyle = k === this.part ? "#fff" : "#000"; c.lineWidth = k === this.part ? 2 : 1;
      c.beginPath(); c.arc(sx, sy, 5, 0, 2 * Math.PI); c.fill(); c.stroke();
    });
    this.$("parts").querySelectorAll("li").forEach((li, k) => {
      li.classList.toggle("current", k === this.part);
      const p = this.points && this.points[k];
      let text = p ? `${p[0].toFixed(1)}, ${p[1].toFixed(1)}` : "not visible";
      if (machine && machine[k][2] !== null) text += ` p=${machine[k][2].toFixed(2)}`;
      this.$("coords-" + k).textContent = text;
    });
    this.$("dirty").textContent = this.dirty.size ? `${this.dirty.size} frame(s) not saved` : "";
  }

  status(text, cls) { const s = this.$("status"); s.textContent = text; s.className = cls || ""; }

  async save() {
    const labels = {};
    this.dirty.forEach((image) => { labels[image] = this.labels[image]; });
    const url = `/api/labels?project=${encodeURIComponent(this.data.project)}&folder=${encodeURIComponent(this.data.folder)}`;
    const started = performance.now();
    const r = await fetch(url, { method: "PUT", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify({ version: this.version, labels }) });
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      this.version = body.version;
      this.dirty.clear();
      this.status(`saved ${body.saved} frame(s) in ${Math.round(performance.now() - started)} ms`, "ok");
    } else if (r.status === 409) {
      this.status("Conflict: " + body.error + " Your unsaved labels stay in this page.", "error");
    } else {
      this.status(`Save failed (${r.status}): ${body.error || r.statusText}`, "error");
    }
    this.draw();
    this.canvas.dataset.saved = String(r.status);
  }
}

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
