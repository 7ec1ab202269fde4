// Multi-animal (maDLC) projects: the labeler where a person chooses the animal, then places its parts,
// and the colours every multi-animal page shares (tracks.js). Each individual has the project's body
// parts; the unique body parts sit under DeepLabCut's "single". A frame is still one flat list of points
// for the Labeler it extends (each individual's parts in config order, then the unique ones), so undo,
// drafts and the per-frame merge work unchanged; on the wire it is {individual: {body part: point}}.
"use strict";

const UNIQUE_ANIMAL = "single";
// One colour per individual (matplotlib's tab10, as napari-deeplabcut colours by individual); unique
// body parts in near-white.
const ANIMAL_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const UNIQUE_COLOR = "#f0f0f0";

function animalColor(index, name) { return name === UNIQUE_ANIMAL ? UNIQUE_COLOR : ANIMAL_COLORS[index % ANIMAL_COLORS.length]; }

// [{name, parts, first}]: each individual with the body parts, then "single" with the unique ones;
// `first` is the group's first slot in a frame's flat list.
function animalGroups(individuals, bodyparts, unique) {
  const groups = [];
  let first = 0;
  for (const name of individuals) { groups.push({ name, parts: bodyparts, first }); first += bodyparts.length; }
  if (unique.length) groups.push({ name: UNIQUE_ANIMAL, parts: unique, first });
  return groups;
}

// Skeleton lines within each individual (never between two animals): pairs of flat slot indices.
function animalBones(groups, bodyparts, skeleton) {
  const index = new Map(bodyparts.map((p, k) => [p, k]));
  const pairs = (skeleton || []).map(([a, b]) => [index.get(a), index.get(b)]).filter(([a, b]) => a !== undefined && b !== undefined);
  return groups.filter((g) => g.name !== UNIQUE_ANIMAL).flatMap((g) => pairs.map(([a, b]) => [g.first + a, g.first + b]));
}

class AnimalLabeler extends Labeler {
  prepare() {
    this.groups = animalGroups(this.data.individuals, this.data.bodyparts, this.data.unique_bodyparts);
    this.slotGroup = this.groups.flatMap((g, i) => g.parts.map(() => i));
    this.shownGroup = -1;
  }

  get animal() { return this.slotGroup[this.part] ?? 0; }  // the chosen individual: the one whose part is current
  slotCount() { return this.slotGroup.length; }
  slotName(k) { const g = this.groups[this.slotGroup[k]]; return g.parts[k - g.first]; }
  color(k) { const i = this.slotGroup[k]; return animalColor(i, this.groups[i].name); }
  boneColor(a) { return this.color(a); }
  boneList() { return animalBones(this.groups, this.data.bodyparts, this.data.skeleton); }
  lastOf(g) { return g.first + g.parts.length - 1; }
  firstPart() { return this.groups[this.animal].first; }  // a new frame starts at the chosen animal's first part
  nextPart(k) { return Math.min(k + 1, this.lastOf(this.groups[this.slotGroup[k]])); }
  cyclePart(step) { const g = this.groups[this.animal], n = g.parts.length; return g.first + ((this.part - g.first + n + step) % n); }
  endsRound(k) { return k === this.lastOf(this.groups[this.slotGroup[k]]); }  // loop: this animal on the next frame

  fromWire(frame) {
    if (!frame) return null;
    return this.groups.flatMap((g) => g.parts.map((p) => {
      const point = frame[g.name] ? frame[g.name][p] : null;
      return Array.isArray(point) ? point.slice() : null;
    }));
  }

  // The model's points of a proposed frame come per individual, as labels do ([x, y, likelihood] each).
  machinePoints(image) { return this.fromWire(this.data.machine[image]); }

  toWire(points) {
    if (!points) return null;
    const frame = {};
    for (const g of this.groups) {
      frame[g.name] = {};
      g.parts.forEach((p, j) => { const point = points[g.first + j]; frame[g.name][p] = point ? point.slice() : null; });
    }
    return frame;
  }

  chooseAnimal(i) {
    this.part = this.groups[(i + this.groups.length) % this.groups.length].first;
    this.draw();
  }

  extraControls() {
    this.animalButtons = this.groups.map((g, i) => h("button", {
      type: "button", class: "animal", dataset: { individual: g.name, color: animalColor(i, g.name) }, onclick: () => this.chooseAnimal(i),
      title: g.name === UNIQUE_ANIMAL ? "the unique body parts (DeepLabCut's \"single\")" : "label this animal's parts",
    }, h("span", { class: "dot", style: { background: animalColor(i, g.name) } }), " ", g.name));
    return [
      h("div", { id: "animals", class: "animals", role: "group", "aria-label": "animal to label" }, this.animalButtons),
      h("div", { class: "row" }, h("button", { id: "copy-previous", type: "button", onclick: () => this.copyPrevious(),
        title: "every animal's points of the previous labeled frame, where this frame has none yet (c)" }, "copy previous frame's animals")),
    ];
  }

  extraHelp() {
    return ["choose the animal, then click its parts; ", h("kbd", {}, "i"), " next animal; ", h("kbd", {}, "c"),
      " copies the previous labeled frame's animals. "];
  }

  extraKey(key) {
    if (key === "i") this.chooseAnimal(this.animal + 1);
    else if (key === "c") this.copyPrevious();
    else return false;
    return true;
  }

  partsList() {
    const g = this.groups[this.animal];
    return h("ul", { id: "parts", dataset: { individual: g.name } }, g.parts.map((p, j) => h("li", {
      dataset: { part: String(g.first + j) }, onclick: () => { this.part = g.first + j; this.draw(); },
    }, h("span", { class: "dot", style: { background: this.color(g.first + j) } }), h("span", { class: "part-name" }, p),
      h("span", { class: "coords" }))));
  }

  // The parts list follows the chosen animal; the animal buttons show which one that is.
  refreshPanel() {
    if (this.shownGroup !== this.animal) {
      show(this.partsPanel, this.partsList());
      this.shownGroup = this.animal;
    }
    this.animalButtons.forEach((b, i) => b.classList.toggle("current", i === this.animal));
  }

  // Every point of the nearest earlier frame with labels, into this frame's empty slots (points already
  // placed here stay): one step to undo.
  copyPrevious() {
    if (!this.images.length) return;
    let source = -1;
    for (let i = this.frame - 1; i >= 0; i--) if (placedCount(this.labels[this.images[i]])) { source = i; break; }
    if (source < 0) { this.status("no labeled frame before this one to copy from", "muted"); return; }
    const from = this.labels[this.images[source]], next = copyPoints(this.points);
    let copied = 0;
    from.forEach((p, k) => { if (p && !next[k]) { next[k] = p.slice(); copied++; } });
    if (!copied) { this.status(`nothing to copy: every point of ${baseName(this.images[source])} is placed here already`, "muted"); return; }
    this.recordFrame();
    this.labels[this.image] = next;
    this.dirty.add(this.image);
    this.keepDraft();
    this.draw();
    this.status(`copied ${copied} point(s) from ${baseName(this.images[source])}; drag them into place (Alt-drag)`, "ok");
  }

  // Part names as for one animal, and each individual's name above its topmost point.
  drawNames(c, points) {
    super.drawNames(c, points);
    c.font = "bold 13px system-ui, sans-serif"; c.textBaseline = "bottom"; c.lineWidth = 3; c.strokeStyle = "rgba(0, 0, 0, 0.8)";
    this.groups.forEach((g, i) => {
      const placed = g.parts.map((_, j) => points[g.first + j]).filter((p) => p);
      if (!placed.length || g.name === UNIQUE_ANIMAL) return;
      const top = placed.reduce((a, b) => (b[1] < a[1] ? b : a));
      const [sx, sy] = this.toScreen(top[0], top[1]);
      c.strokeText(g.name, sx - 10, sy - this.view.markerSize - 12);
      c.fillStyle = animalColor(i, g.name); c.fillText(g.name, sx - 10, sy - this.view.markerSize - 12);
    });
  }
}
