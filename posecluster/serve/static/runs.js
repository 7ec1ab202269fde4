// Work started from the browser as Ray jobs (POST /api/runs): forms on each project, and the cluster's
// jobs on the Jobs page, followed every 2 s to the end, with logs and a stop button.
"use strict";

const REFRESH_MS = 2000;
const openLogs = new Set();

function field(label, input) { return h("label", {}, label, " ", input); }
function text(name, value, placeholder) { return h("input", { name, value: value || "", placeholder: placeholder || "", size: 36 }); }
function num(name, value, min, max, step) { return h("input", { name, type: "number", value: value ?? "", min, max, step: step || 1 }); }
function select(name, options, chosen) {
  return h("select", { name }, options.map((o) => h("option", { value: o, selected: o === chosen }, o)));
}

function formValues(form) {
  const out = {};
  form.querySelectorAll("input, select").forEach((el) => {
    if (el.type === "checkbox") out[el.name] = el.checked;
    else if (el.type === "number") { if (el.value !== "") out[el.name] = Number(el.value); }
    else if (el.value !== "") out[el.name] = el.value;
  });
  return out;
}

function runForm(kind, title, fixed, inputs) {
  const status = h("span", { class: "run-status" });
  const form = h("div", { class: "run-form", dataset: { kind } }, h("b", {}, title), " ", inputs, " ");
  append(form, [h("button", {
    class: "start", onclick: async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      status.textContent = "submitting\u2026";
      status.className = "run-status muted";
      try {
        const started = await api("/api/runs", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ kind, ...fixed, ...formValues(form) }),
        });
        status.textContent = `started ${started.id}`;
        status.className = "run-status ok";
        if (location.hash === "#/jobs") route(); else location.hash = "#/jobs";  // follow it on the Jobs page
      } catch (err) {
        status.textContent = err.message;
        status.className = "run-status error";
      } finally {
        button.disabled = false;
      }
    },
  }, "start"), " ", status]);
  return form;
}

function runPanel(p) {
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "");
  return h("details", { class: "run" }, h("summary", {}, "Start work on the cluster (Ray jobs)"),
    runForm("extract-frames", "Extract frames", { project: p.path }, [
      field("videos", text("videos", "", "a video or folder, e.g. videos/")), field("method", select("method", ["kmeans", "uniform"], "kmeans")),
      field("frames per video", num("n", 20, 1, 500))]),
    runForm("train", "Train", { project: p.path }, [
      field("into", text("out", `${p.path}/runs/run-${stamp}`)), field("epochs", num("epochs", "", 1, 100000)),
      field("backbone", select("backbone", ["resnet50", "resnet18", "resnet34", "resnet101"], "resnet50")),
      field("weights", select("weights", ["imagenet", "none"], "imagenet")), field("ensemble members", num("ensemble", 1, 1, 16)),
      field("input scale", num("global_scale", "", 0.05, 2, 0.05)), field("crop (px)", num("crop", "", 16, 4096)),
      field("evaluate after", h("input", { name: "evaluate", type: "checkbox" }))]),
    runForm("evaluate", "Evaluate", { project: p.path }, [field("run", text("run", "", "a run folder"))]),
    runForm("outliers", "Outlier frames", { project: p.path }, [
      field("pose tables", text("poses", "", "the --out of an analysis or archive run")), field("frames per video", num("n", 20, 1, 500))]),
    runForm("merge", "Merge refined labels (new iteration)", { project: p.path }, []));
}

function archiveForm() {
  return runForm("infer", "Archive run", {}, [
    field("videos", text("videos", "", "a folder or prefix of videos")), field("model", text("model", "", "a run folder")),
    field("into", text("out", "", "where pose tables and the manifest go")),
    field("frames per segment", num("segment_frames", 1000, 10, 10000000)), field("workers", num("workers", "", 1, 4096))]);
}

function runRow(run, refresh) {
  const progress = run.progress ? [bar(run.progress.done, run.progress.total), " ", run.progress.unit] : "";
  const logs = h("pre", { class: "log", hidden: !openLogs.has(run.id) });
  const row = h("tr", { class: "run-" + run.status.toLowerCase(), dataset: { run: run.id } },
    h("td", {}, run.kind), h("td", {}, run.location), h("td", {}, run.user),
    h("td", { class: "run-state" }, run.status, run.message && run.finished ? h("div", { class: "muted" }, run.message) : null),
    h("td", {}, progress),
    h("td", {}, run.started ? new Date(run.started * 1000).toLocaleTimeString() : ""),
    h("td", {},
      h("button", { class: "logs", onclick: () => { if (openLogs.has(run.id)) openLogs.delete(run.id); else openLogs.add(run.id); refresh(); } },
        openLogs.has(run.id) ? "hide log" : "log"),
      run.finished ? null : h("button", {
        class: "stop", onclick: async () => {
          if (!window.confirm(`Stop ${run.kind} in ${run.location}?`)) return;
          await api("/api/runs/stop?" + q({ id: run.id }), { method: "POST" }).catch((err) => window.alert(err.message));
          refresh();
        },
      }, "stop")));
  if (openLogs.has(run.id)) {
    api("/api/runs/logs?" + q({ id: run.id })).then((l) => { logs.textContent = l.log; }).catch((err) => { logs.textContent = err.message; });
  }
  return [row, h("tr", { class: "log-row", hidden: !openLogs.has(run.id) }, h("td", { colspan: 7 }, logs))];
}

// A cluster (or storage) that does not answer is asked again after 2, 4, 8 ... 60 s, for as long as the
// page is open; the page keeps its forms and what it last showed meanwhile.
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60000;

function retryDelay(failures) { return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1)); }

// One request of a section at a time: "ask now", stop and log buttons and timers never start a second
// polling loop; a call during a request runs once more after it, so that its change is shown.
function oneAtATime(ask) {
  let busy = false, again = false;
  const run = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try { await ask(); } finally { busy = false; }
    if (again) { again = false; await run(); }
  };
  return run;
}

function retryNotice(notice, err, failures, delay, now) {
  show(notice, h("span", { class: "error" }, err.message), ` \u00b7 asking again in ${Math.round(delay / 1000)} s`,
    failures > 1 ? ` (${failures} tries so far)` : "", " ", h("button", { class: "retry-now", type: "button", onclick: now }, "ask now"));
}

async function runsSection(holder, gen, onFinished) {
  let timer = null;
  let unfinished = null;  // ids still running at the last look
  let failures = 0;
  const form = archiveForm();  // made once: what the person typed survives every refresh and every outage
  const notice = h("div", { class: "cluster-notice", role: "status" });
  const list = h("div", { class: "runs-list" });
  show(holder, h("h2", {}, "Cluster jobs"), form, notice, list);
  const refresh = oneAtATime(async () => {
    if (stale(gen)) return;
    clearTimeout(timer);
    let data;
    try {
      data = await api("/api/runs");
    } catch (err) {
      if (stale(gen)) return;
      failures += 1;
      const delay = retryDelay(failures);
      retryNotice(notice, err, failures, delay, refresh);
      Object.assign(holder.dataset, { failures: String(failures), retryMs: String(delay) });
      timer = setTimeout(refresh, delay);
      return;
    }
    if (stale(gen)) return;
    failures = 0;
    show(notice);
    Object.assign(holder.dataset, { failures: "0", retryMs: "" });
    show(list, data.jobs.length ? h("table", { class: "runs" },
      h("tr", {}, ["kind", "location", "started by", "status", "progress", "started", ""].map((t) => h("th", {}, t))),
      data.jobs.map((run) => runRow(run, refresh)))
      : h("p", { class: "muted" }, "No jobs started from here yet."));
    holder.dataset.updated = String(Date.now());
    const running = new Set(data.jobs.filter((run) => !run.finished).map((run) => run.id));
    if (unfinished && [...unfinished].some((id) => !running.has(id)) && onFinished) onFinished();
    unfinished = running;
    if (running.size) timer = setTimeout(refresh, REFRESH_MS);
  });
  await refresh();
}
