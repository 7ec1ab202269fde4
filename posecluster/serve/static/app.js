// Pages: Projects, Label, Refine, Jobs. Plain JS, no build step; the server's cookie carries the token.
"use strict";

const main = document.getElementById("main");
let current = null;  // the active Labeler
let generation = 0;  // a page whose data arrives after the user moved on must not draw over the new one

function stale(gen) { return gen !== generation; }

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

function q(params) { return new URLSearchParams(params).toString(); }

async function projectsPage(gen) {
  const data = await api("/api/projects");
  if (stale(gen)) return;
  document.getElementById("root").textContent = data.root;
  if (!data.projects.length) { main.innerHTML = `<p>No DeepLabCut projects (config.yaml with labeled-data/) under ${esc(data.root)}.</p>`; return; }
  main.innerHTML = data.projects.map((p) => p.error ? `<h2>${esc(p.path)}</h2><p class="error">${esc(p.error)}</p>` : `
    <h2>${esc(p.path)}</h2>
    <p>${esc(p.task)} &middot; scorer <b>${esc(p.scorer)}</b> &middot; iteration <b>${p.iteration}</b> &middot;
       body parts: ${p.bodyparts.map(esc).join(", ")}</p>
    <table class="folders"><tr><th>video folder</th><th>frames</th><th>labeled</th><th>outliers proposed (this iteration)</th><th></th></tr>
    ${p.folders.map((f) => `<tr><td>${esc(f.name)}</td><td>${f.frames}</td><td>${f.labeled}</td><td>${f.proposed || ""}</td>
      <td><a href="#/label?${q({ project: p.path, folder: f.name })}">label</a>
      ${f.proposed ? ` &middot; <a href="#/refine?${q({ project: p.path, folder: f.name })}">refine</a>` : ""}
      ${f.error ? `<span class="error">${esc(f.error)}</span>` : ""}</td></tr>`).join("")}
    </table>`).join("");
}

async function labelPage(params, mode, gen) {
  const data = await api("/api/labels?" + q({ project: params.get("project"), folder: params.get("folder") }));
  if (stale(gen)) return;
  main.innerHTML = `<h2>${mode === "refine" ? "Refine" : "Label"}: ${esc(data.project)} / ${esc(data.folder)}</h2>
    <p class="muted">scorer ${esc(data.scorer)}, iteration ${data.iteration}${mode === "refine" ?
      ` &middot; frames proposed by <code>posecluster outliers</code>; dashed circles: the network's prediction (p = likelihood); then run <code>posecluster merge</code>` : ""}</p>
    <div id="labeler"></div>`;
  current = new Labeler(document.getElementById("labeler"), data, mode);
  window.labeler = current;
}

function bar(done, total) {
  const pct = total ? Math.round((100 * done) / total) : 0;
  return `<span class="progress"><span style="width:${pct}%"></span></span> ${done}/${total}`;
}

const PAGE = 50;  // per-video rows per page: a 100,000-video job is read a page at a time
const FINISHED = [["done", "done"], ["done-with-warnings", "done with missing frames"], ["skipped", "already done"], ["failed", "failed"]];

async function jobsPage(gen) {
  const data = await api("/api/jobs");
  if (stale(gen)) return;
  if (!data.jobs.length) { main.innerHTML = "<p>No archive jobs (<code>posecluster infer</code> manifests) under the root.</p>"; return; }
  main.innerHTML = data.jobs.map((j, n) => `
    <div class="job" data-job="${esc(j.job_id)}">
      <h3>Job ${esc(j.job_id)} &middot; <span class="${j.videos_failed || j.error ? "error" : "ok"}">${esc(j.status)}</span></h3>
      ${j.error ? `<p class="error">${esc(j.error)}</p>` : ""}
      <p>out ${esc(j.out)} &middot; model ${esc(j.model)} &middot; ${j.workers} workers &middot;
         ${j.fps.toFixed(1)} frames/s over ${j.seconds.toFixed(0)} s<br>
         videos ${bar(j.videos_finished, j.videos_total)}
         (${FINISHED.map(([s, label]) => `${j.counts[s] || 0} ${label}`).join(", ")}, ${j.counts.pending || 0} pending)
         &middot; segments: ${j.segments_computed} computed, ${j.segments_cached} cached
         ${j.first_table_s != null ? `&middot; first table after ${j.first_table_s.toFixed(1)} s` : ""}</p>
      <p class="filters">show: <button data-status="" class="active">all finished (${j.videos_finished})</button>
        ${FINISHED.filter(([s]) => j.counts[s]).map(([s, label]) => `<button data-status="${s}">${label} (${j.counts[s]})</button>`).join(" ")}</p>
      <div class="videos-of"></div>
      <div class="preview"></div>
    </div>`).join("") + (data.older ? `<p class="muted">${data.older} older jobs not shown.</p>` : "");
  main.querySelectorAll("div.job").forEach((div, n) => {
    const j = data.jobs[n];
    const show = (status, offset) => jobVideos(gen, div, j, status, offset, n === 0 && offset === 0 && !status);
    div.querySelectorAll("button[data-status]").forEach((b) => {
      b.onclick = () => {
        div.querySelectorAll("button[data-status]").forEach((o) => o.classList.toggle("active", o === b));
        show(b.dataset.status, 0);
      };
    });
    if (j.status !== "unreadable") show("", 0);
  });
}

async function jobVideos(gen, div, j, status, offset, preview) {
  const page = await api("/api/jobs/videos?" + q({ out: j.out_path || "", job: j.job_id, status, offset, limit: PAGE }));
  if (stale(gen)) return;
  const holder = div.querySelector(".videos-of");
  const last = Math.min(offset + page.videos.length, page.total);
  holder.innerHTML = `
    <table class="videos"><tr><th>video</th><th>status</th><th>frames</th><th>missing frames</th><th>segments</th><th>error</th><th>outputs</th><th></th></tr>
    ${page.videos.map((v, i) => `<tr class="video-${esc(v.status)}"><td>${esc(v.video)}</td><td>${esc(v.status)}</td><td>${v.frames}</td>
      <td>${v.missing_frames ? `${v.missing_frames} (${esc(v.missing)})` : ""}</td>
      <td>${v.segments ? `${v.segments} (${v.segments_computed} computed)` : ""}</td><td class="error">${esc(v.error)}</td>
      <td>${Object.entries(v.outputs).map(([fmt, o]) => o.path ? `<a href="/api/file?${q({ path: o.path })}">${esc(fmt)}</a>` : esc(fmt)).join(" ")}</td>
      <td>${v.outputs.h5 && v.outputs.h5.path ? `<button data-show="${i}">show</button>` : ""}</td></tr>`).join("")}
    </table>
    <p class="pager">${page.total ? `${offset + 1}&ndash;${last} of ${page.total}` : "none yet"}
      ${offset > 0 ? `<button data-page="${Math.max(0, offset - PAGE)}">previous</button>` : ""}
      ${last < page.total ? `<button data-page="${offset + PAGE}">next</button>` : ""}</p>`;
  holder.querySelectorAll("button[data-page]").forEach((b) => { b.onclick = () => jobVideos(gen, div, j, status, Number(b.dataset.page), false); });
  holder.querySelectorAll("button[data-show]").forEach((b) => {
    b.onclick = () => {
      const v = page.videos[Number(b.dataset.show)];
      const frame = Math.floor(v.frames / 2);
      div.querySelector(".preview").innerHTML = `<p>${esc(v.video)}, frame ${frame}</p>
        <img class="frame" alt="frame with poses" src="/api/jobs/frame?${q({ table: v.outputs.h5.path, frame })}">
        <img alt="trajectory" src="/api/jobs/plot?${q({ table: v.outputs.h5.path })}">`;
    };
  });
  const first = holder.querySelector("button[data-show]");
  if (preview && first) first.click();  // the newest job's first finished video, without a click
}

async function route() {
  const gen = ++generation;
  if (current) { current.destroy(); current = null; }
  const [path, query] = (location.hash.slice(1) || "/projects").split("?");
  const params = new URLSearchParams(query || "");
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === "#" + path));
  main.innerHTML = "<p class='muted'>loading…</p>";
  try {
    if (path === "/label") await labelPage(params, "label", gen);
    else if (path === "/refine") await labelPage(params, "refine", gen);
    else if (path === "/jobs") await jobsPage(gen);
    else await projectsPage(gen);
    if (!stale(gen)) document.body.dataset.page = path;
  } catch (err) {
    if (!stale(gen)) main.innerHTML = `<p class="error">${esc(err.message)}</p>`;
  }
}

window.addEventListener("hashchange", route);
route();
