// Pages: Projects, Label, Refine, Tracks (multi-animal), Jobs. Plain JS, no build step; the DOM is built with dom.js (text nodes
// only). The server's cookie (or the facility's sign-in proxy) carries who the user is.
"use strict";

const main = document.getElementById("main");
let current = null;  // the active Labeler or TrackViewer
let generation = 0;  // a page whose data arrives after the user moved on must not draw over the new one
let me = null;       // /api/me: user, prefixes, whether jobs can be started
let shownHash = location.hash;

function stale(gen) { return gen !== generation; }

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(body.error || `${r.status} ${r.statusText}`);
    err.status = r.status;
    err.body = body;
    throw err;
  }
  return body;
}

function folderRow(p, f) {
  const params = { project: p.path, folder: f.name };
  return h("tr", {},
    h("td", {}, f.name), h("td", {}, String(f.frames)), h("td", {}, String(f.labeled)), h("td", {}, f.proposed ? String(f.proposed) : ""),
    h("td", {},
      f.error ? h("span", { class: "error" }, f.error) : [
        h("a", { href: "#/label?" + q(params) }, "label"),
        f.proposed ? [" \u00b7 ", h("a", { href: "#/refine?" + q(params) }, "refine")] : null,
      ]));
}

function projectSection(p) {
  if (p.error) return h("section", { class: "project" }, h("h2", {}, p.path), h("p", { class: "error" }, p.error));
  return h("section", { class: "project", dataset: { project: p.path } },
    h("h2", {}, p.path),
    h("p", {}, p.task, " \u00b7 scorer ", h("b", {}, p.scorer), " \u00b7 iteration ", h("b", {}, String(p.iteration)),
      " \u00b7 body parts: ", p.bodyparts.join(", ")),
    p.multianimal ? animalsSummary(p) : null,
    h("table", { class: "folders" },
      h("tr", {}, ["video folder", "frames", "labeled", "outliers proposed (this iteration)", ""].map((t) => h("th", {}, t))),
      p.folders.map((f) => folderRow(p, f))),
    me && me.jobs ? runPanel(p) : null);
}

async function projectsPage(gen) {
  const data = await api("/api/projects");
  if (stale(gen)) return;
  if (!data.projects.length) {
    show(main, h("p", {}, "No DeepLabCut projects (config.yaml with labeled-data/) in ",
      data.root || data.prefixes.join(", "), "."));
    return;
  }
  show(main, data.projects.map(projectSection));
}

// A multi-animal project: its individuals and its tracked videos (the `_el.h5` tables under it).
function animalsSummary(p) {
  return [
    h("p", { class: "animals-line" }, "individuals: ", p.individuals.join(", "),
      p.unique_bodyparts.length ? [" \u00b7 unique body parts: ", p.unique_bodyparts.join(", ")] : null),
    p.tracks.length ? h("p", { class: "tracks-line" }, "tracks: ", p.tracks.map((t, i) => [i ? ", " : "",
      h("a", { href: "#/tracks?" + q({ table: t }), dataset: { table: t } }, t.slice(t.lastIndexOf("/") + 1))])) : null,
  ];
}

async function tracksPage(params, gen) {
  const data = await api("/api/tracks?" + q({ table: params.get("table") || "" }));
  if (stale(gen)) return;
  const holder = h("div", { id: "tracks" });
  show(main,
    h("h2", {}, "Tracks: ", data.table),
    h("p", { class: "muted" }, `${data.individuals.length} individuals, ${data.frames} frames, scorer `, data.scorer),
    holder);
  current = new TrackViewer(holder, data);
  window.tracks = current;
}

async function labelPage(params, mode, gen) {
  const data = await api("/api/labels?" + q({ project: params.get("project") || "", folder: params.get("folder") || "" }));
  if (stale(gen)) return;
  const holder = h("div", { id: "labeler" });
  show(main,
    h("h2", {}, mode === "refine" ? "Refine: " : "Label: ", data.project, " / ", data.folder),
    h("p", { class: "muted" }, "scorer ", data.scorer, ", iteration ", String(data.iteration),
      mode === "refine" ? [" \u00b7 frames proposed by ", h("code", {}, "posecluster outliers"),
        "; dashed circles: the network's prediction (p = likelihood); then run ", h("code", {}, "posecluster merge")] : null),
    holder);
  const Kind = data.multianimal ? AnimalLabeler : Labeler;  // animals.js: choose the animal, then its parts
  current = new Kind(holder, { ...data, user: me ? me.user : "" }, mode);
  window.labeler = current;
}

const PAGE = 50;  // per-video rows per page: a 100,000-video job is read a page at a time
const FINISHED = [["done", "done"], ["done-with-warnings", "done with missing frames"], ["skipped", "already done"], ["failed", "failed"]];

function jobCard(gen, j, first) {
  const videos = h("div", { class: "videos-of" });
  const preview = h("div", { class: "preview" });
  const card = h("div", { class: "job", dataset: { job: j.job_id } });
  if (j.status === "unreadable") {
    return show(card, h("h3", {}, "Job ", j.job_id, " \u00b7 ", h("span", { class: "error" }, "unreadable")),
      h("p", { class: "error" }, j.error));
  }
  const filters = h("p", { class: "filters" }, "show: ");
  const buttons = [["", `all finished (${j.videos_finished})`], ...FINISHED.filter(([s]) => j.counts[s]).map(([s, label]) => [s, `${label} (${j.counts[s]})`])]
    .map(([status, label], n) => h("button", {
      class: n === 0 ? "active" : "", dataset: { status },
      onclick: (e) => {
        filters.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b === e.currentTarget));
        jobVideos(gen, videos, preview, j, status, 0, false);
      },
    }, label));
  append(filters, buttons);
  show(card,
    h("h3", {}, "Job ", j.job_id, " \u00b7 ", h("span", { class: j.videos_failed ? "error" : "ok" }, j.status)),
    h("p", {}, "out ", j.out_path || ".", " \u00b7 model ", j.model, " \u00b7 ", String(j.workers), " workers \u00b7 ",
      number(j.fps, 1), " frames/s over ", number(j.seconds, 0), " s", h("br"),
      "videos ", bar(j.videos_finished, j.videos_total), " (",
      FINISHED.map(([s, label]) => `${j.counts[s] || 0} ${label}`).join(", "), `, ${j.counts.pending || 0} pending)`,
      ` \u00b7 segments: ${j.segments_computed} computed, ${j.segments_cached} cached`,
      j.first_table_s !== null ? ` \u00b7 first table after ${number(j.first_table_s, 1)} s` : ""),
    filters, videos, preview);
  jobVideos(gen, videos, preview, j, "", 0, first);
  return card;
}

function videoRow(v, i, onShow) {
  const outputs = Object.entries(v.outputs).map(([fmt, o]) =>
    [o.path ? h("a", { href: "/api/file?" + q({ path: o.path }) }, fmt) : fmt, " "]);
  return h("tr", { class: "video-" + v.status },
    h("td", {}, v.video), h("td", {}, v.status), h("td", {}, String(v.frames)),
    h("td", {}, v.missing_frames ? `${v.missing_frames} (${v.missing})` : ""),
    h("td", {}, v.segments ? `${v.segments} (${v.segments_computed} computed)` : ""),
    h("td", { class: "error" }, v.error), h("td", {}, outputs),
    h("td", {}, !(v.outputs.h5 && v.outputs.h5.path) ? null
      : v.outputs.h5.path.endsWith("_el.h5") ? h("a", { href: "#/tracks?" + q({ table: v.outputs.h5.path }) }, "tracks")  // multi-animal
        : h("button", { dataset: { show: String(i) }, onclick: () => onShow(v) }, "show")));
}

async function jobVideos(gen, holder, preview, j, status, offset, firstPreview) {
  let page;
  try {
    page = await api("/api/jobs/videos?" + q({ out: j.out_path || "", job: j.job_id, status, offset, limit: PAGE }));
  } catch (err) {
    if (!stale(gen)) show(holder, h("p", { class: "error" }, err.message));
    return;
  }
  if (stale(gen)) return;
  const last = Math.min(offset + page.videos.length, page.total);
  const showVideo = (v) => {
    const frame = Math.floor(v.frames / 2);
    show(preview, h("p", {}, v.video, ", frame ", String(frame)),
      h("img", { class: "frame", alt: "frame with poses", src: "/api/jobs/frame?" + q({ table: v.outputs.h5.path, frame }) }),
      h("img", { alt: "trajectory", src: "/api/jobs/plot?" + q({ table: v.outputs.h5.path }) }));
  };
  show(holder,
    h("table", { class: "videos" },
      h("tr", {}, ["video", "status", "frames", "missing frames", "segments", "error", "outputs", ""].map((t) => h("th", {}, t))),
      page.videos.map((v, i) => videoRow(v, i, showVideo))),
    h("p", { class: "pager" }, page.total ? `${offset + 1}\u2013${last} of ${page.total}` : "none yet",
      offset > 0 ? h("button", { onclick: () => jobVideos(gen, holder, preview, j, status, Math.max(0, offset - PAGE), false) }, "previous") : null,
      last < page.total ? h("button", { onclick: () => jobVideos(gen, holder, preview, j, status, offset + PAGE, false) }, "next") : null));
  const first = page.videos.find((v) => v.outputs.h5 && v.outputs.h5.path && !v.outputs.h5.path.endsWith("_el.h5"));
  if (firstPreview && first) showVideo(first);  // the newest job's first finished video, without a click
}

const ARCHIVE_REFRESH_MS = 5000;
const ARCHIVE_STALE_MS = 1000;

// Archive jobs: read again while one is running, and whenever a cluster job ends (it may have written one);
// a listing that fails is asked again with the cluster section's backoff (runs.js), the last one kept.
async function archiveSection(holder, gen) {
  let timer = null;
  let failures = 0;
  const heading = h("h2", {}, "Archive jobs");
  const notice = h("div", { class: "archive-notice", role: "status" });
  const cards = h("div", {}, h("p", { class: "muted" }, "loading\u2026"));
  show(holder, heading, notice, cards);
  const load = oneAtATime(async () => {
    if (stale(gen)) return;
    clearTimeout(timer);
    let data;
    try {
      data = await api("/api/jobs");
    } catch (err) {
      if (stale(gen)) return;
      failures += 1;
      const delay = retryDelay(failures);
      retryNotice(notice, err, failures, delay, load);
      timer = setTimeout(load, delay);
      return;
    }
    if (stale(gen)) return;
    failures = 0;
    show(notice);
    show(cards, data.jobs.length ? data.jobs.map((j, n) => jobCard(gen, j, n === 0))
        : h("p", {}, "No archive jobs (", h("code", {}, "posecluster infer"), " manifests) yet."),
      data.older ? h("p", { class: "muted" }, `${data.older} older jobs not shown.`) : null);
    holder.dataset.updated = String(Date.now());
    if (data.refreshing) timer = setTimeout(load, ARCHIVE_STALE_MS);  // an older answer: a fresh one is on its way
    else if (data.jobs.some((j) => j.status === "running")) timer = setTimeout(load, ARCHIVE_REFRESH_MS);
  });
  await load();
  return load;
}

async function jobsPage(gen) {
  const runs = h("section", { id: "runs" });
  const archive = h("section", { id: "archive-jobs" }, h("p", { class: "muted" }, "loading\u2026"));
  show(main, runs, archive);
  let reloadArchive = null;
  if (me && me.jobs) runsSection(runs, gen, () => reloadArchive && reloadArchive());
  reloadArchive = await archiveSection(archive, gen);
}

async function route() {
  const gen = ++generation;
  if (current) { current.destroy(); current = null; window.labeler = null; window.tracks = null; }
  const [path, query] = (location.hash.slice(1) || "/projects").split("?");
  const params = new URLSearchParams(query || "");
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + path));
  show(main, h("p", { class: "muted" }, "loading\u2026"));
  try {
    if (!me) {
      me = await api("/api/me");
      document.getElementById("root").textContent = me.whole_root ? me.root : `${me.user}: ${me.prefixes.join(", ")}`;
    }
    if (path === "/label") await labelPage(params, "label", gen);
    else if (path === "/refine") await labelPage(params, "refine", gen);
    else if (path === "/tracks") await tracksPage(params, gen);
    else if (path === "/jobs") await jobsPage(gen);
    else await projectsPage(gen);
    if (!stale(gen)) document.body.dataset.page = path;
  } catch (err) {
    if (!stale(gen)) {
      show(main, h("p", { class: "error", id: "page-error" }, err.message), h("p", {}, h("a", { href: "#/projects" }, "back to the projects")));
      document.body.dataset.page = path;
    }
  }
}

// In-app navigation asks before leaving unsaved labels (a reload or closing the tab: beforeunload, labeler.js).
window.addEventListener("hashchange", () => {
  if (current && current.unsaved() &&
      !window.confirm(`${current.unsaved()} frame(s) have labels that are not saved (this browser keeps them as a draft ` +
                      "for this folder until they are). Leave this page?")) {
    history.replaceState(null, "", shownHash || "#/projects");  // stay: no hashchange, no new history entry
    return;
  }
  shownHash = location.hash;
  route();
});
route();
