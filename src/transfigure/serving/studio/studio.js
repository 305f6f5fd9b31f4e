// The transfigure studio: calls the service's own /info, /translate and /verify (same origin, relative URLs)
// and shows what they answer, errors included ({"error", "detail"}, as the service words them).
"use strict";

const $ = (id) => document.getElementById(id);
const SERVICE = new URL("../", document.baseURI); // the page lives at <service>/studio/
const state = { info: null, models: {}, file: null, output: null, urls: {} };

// -- talking to the service ----------------------------------------------------------------------------
class ServiceError extends Error {
  constructor(status, error, detail) {
    super(`${error}: ${detail}`);
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

async function call(path, init) {
  let reply;
  try {
    reply = await fetch(new URL(path, SERVICE), init);
  } catch (exc) {
    throw new ServiceError(0, "service unreachable", `${exc.message}; is bentoml serve still running?`);
  }
  if (reply.ok) return reply;
  const text = await reply.text();
  let doc = null;
  try { doc = JSON.parse(text); } catch (_) { /* not JSON: shown as text */ }
  if (doc && typeof doc.error === "string") throw new ServiceError(reply.status, doc.error, doc.detail || "");
  throw new ServiceError(reply.status, reply.statusText || "error", text.slice(0, 500));
}

function showError(box, err) {
  box.replaceChildren();
  const head = document.createElement("strong");
  head.className = "error-title";
  head.textContent = err instanceof ServiceError ? err.error : "error";
  const detail = document.createElement("span");
  detail.className = "error-detail";
  detail.textContent = err instanceof ServiceError ? err.detail : String(err);
  box.append(head, document.createTextNode(" "), detail);
  if (err instanceof ServiceError && err.status) {
    const code = document.createElement("span");
    code.className = "muted";
    code.textContent = ` (HTTP ${err.status})`;
    box.append(code);
  }
  box.hidden = false;
}

function objectURL(key, blob) {
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = URL.createObjectURL(blob);
  return state.urls[key];
}

function facts(dl, rows) {
  dl.replaceChildren();
  for (const [name, value] of rows) {
    if (value === undefined || value === null || value === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dl.append(dt, dd);
  }
}

const bytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(0)} kB` : `${n} B`);

// -- views -----------------------------------------------------------------------------------------------
function showView(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
    $(`view-${tab.dataset.view}`).hidden = !on;
  }
  if (name === "models") loadModels();
}

function dropzone(zone, input, onFile) {
  input.addEventListener("change", () => input.files.length && onFile(input.files[0]));
  zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    if (ev.dataTransfer.files.length) onFile(ev.dataTransfer.files[0]);
  });
}

// -- translate -----------------------------------------------------------------------------------------------
function currentModel() {
  return state.models[$("translate-model").value] || null;
}

function modelChanged() {
  const m = currentModel();
  if (!m) return;
  const dirs = m.directions || [];
  const select = $("translate-direction");
  select.replaceChildren(...dirs.map((d) => new Option(d, d)));
  $("direction-field").hidden = dirs.length < 2;
  $("spade-fields").hidden = !m.takes_label_maps;
  $("instance-field").hidden = !m.takes_instance_maps;
  $("style-field").hidden = !m.takes_style;
  const nc = m.label_nc ? Math.max(...Object.values(m.label_nc)) : null;
  $("spade-classes").textContent = nc ? `0-${nc - 1}` : "";
  $("translate-hint").textContent = m.takes_label_maps
    ? `${m.model} (${m.variant}) turns a label map into a photo: a single-channel PNG of class ids.`
    : `${m.model} (${m.variant}) translates a photo: PNG, JPEG, WebP, BMP, TIFF or GIF.`;
  if (state.file) preview(state.file);
}

// a label map is near-black as a picture: shown in false colour (its class ids are what the model reads)
const PALETTE = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];

async function preview(file) {
  const img = $("input-preview");
  const m = currentModel();
  if (!(m && m.takes_label_maps)) {
    img.src = objectURL("input", file);
    return;
  }
  try {
    const bitmap = await createImageBitmap(file);
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < px.data.length; i += 4) {
      const c = PALETTE[px.data[i] % PALETTE.length];
      px.data[i] = c[0]; px.data[i + 1] = c[1]; px.data[i + 2] = c[2];
    }
    ctx.putImageData(px, 0, 0);
    canvas.toBlob((blob) => { img.src = objectURL("input", blob); });
  } catch (_) {
    img.src = objectURL("input", file); // not decodable here: the service will say what is wrong with it
  }
}

function fileChosen(file) {
  state.file = file;
  $("input-meta").textContent = `${file.name}, ${bytes(file.size)}`;
  $("translate-submit").disabled = false;
  $("translate-error").hidden = true;
  preview(file);
}

async function translate(ev) {
  ev.preventDefault();
  if (!state.file) return;
  const m = currentModel();
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("model", m.model);
  if (!$("direction-field").hidden) form.append("direction", $("translate-direction").value);
  for (const key of ["width", "height"]) {
    const v = $(`translate-${key}`).value.trim();
    if (v) form.append(key, v);
  }
  const fmt = $("translate-format").value;
  form.append("format", fmt);
  if (!$("quality-field").hidden && $("translate-quality").value.trim()) form.append("quality", $("translate-quality").value.trim());
  if (m.takes_label_maps) {
    for (const key of ["instance", "style"]) {
      const input = $(`translate-${key}`);
      if (!$(`${key}-field`).hidden && input.files.length) form.append(key, input.files[0], input.files[0].name);
    }
    if ($("translate-seed").value.trim()) form.append("seed", $("translate-seed").value.trim());
  }
  $("translate-error").hidden = true;
  $("translate-busy").hidden = false;
  $("translate-submit").disabled = true;
  try {
    const reply = await call("translate", { method: "POST", body: form });
    const blob = await reply.blob();
    const h = (k) => reply.headers.get(k);
    const disposition = h("content-disposition") || "";
    const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || `transfigure-${h("x-provenance-id")}.${fmt}`;
    state.output = new File([blob], name, { type: blob.type });
    const url = objectURL("output", blob);
    const out = $("output-image");
    out.src = url;
    await out.decode().catch(() => {});
    const link = $("output-download");
    link.href = url;
    link.download = name;
    link.hidden = false;
    $("output-verify").hidden = false;
    $("output-meta").textContent = `${out.naturalWidth}x${out.naturalHeight} ${blob.type}, ${bytes(blob.size)}`;
    facts($("output-provenance"), [
      ["Provenance id", h("x-provenance-id")],
      ["Model", `${h("x-model-name")} v${h("x-model-version")}${h("x-model-variant") ? ` (${h("x-model-variant")})` : ""}`],
      ["Training run", h("x-model-run-id")],
      ["Marked", "invisible watermark, signed C2PA manifest, ledger record"],
    ]);
  } catch (err) {
    showError($("translate-error"), err);
  } finally {
    $("translate-busy").hidden = true;
    $("translate-submit").disabled = false;
  }
}

// -- verify ------------------------------------------------------------------------------------------------------
const VERDICTS = {
  verified: ["ok", "made by this service: watermark, signed manifest and ledger record agree"],
  traced: ["ok", "made by this service: the watermark leads to its ledger record (the manifest did not survive)"],
  watermarked: ["warn", "carries a watermark of this key, but this service's ledger has no record of it"],
  "manifest-only": ["warn", "a valid transfigure manifest, but no watermark was read (edited pixels?)"],
  conflict: ["bad", "the watermark and the manifest name different images"],
  "not-found": ["bad", "no transfigure watermark and no valid manifest"],
};

async function verify(file) {
  $("verify-error").hidden = true;
  $("verify-result").hidden = true;
  $("verify-busy").hidden = false;
  $("verify-preview").src = objectURL("verify", file);
  const form = new FormData();
  form.append("file", file, file.name || "image");
  try {
    const report = await (await call("verify", { method: "POST", body: form })).json();
    const [tone, explain] = VERDICTS[report.verdict] || ["warn", ""];
    const verdict = $("verify-verdict");
    verdict.textContent = report.verdict;
    verdict.className = `verdict ${tone}`;
    $("verify-explain").textContent = explain;
    const wm = report.watermark || {};
    const mf = report.manifest || {};
    const led = report.ledger || null;
    const model = (led && led.model_name) ? led : null;
    const claimed = mf.model || {};
    const survived = [
      wm.detected ? `watermark (confidence ${Number(wm.confidence).toFixed(3)})` : null,
      mf.status === "valid" ? "signed manifest" : null,
      led ? "ledger record" : null,
      led && led.exact_copy ? "the exact bytes" : null,
    ].filter(Boolean);
    facts($("verify-facts"), [
      ["Provenance id", (led && led.id) || wm.provenance_id || mf.provenance_id],
      ["Model", model ? model.model_name : claimed.name],
      ["Version", model ? model.model_version : claimed.version],
      ["Variant", model ? model.model_variant : claimed.variant],
      ["Created", (led && led.created_at) || mf.created_at],
      ["Survived", survived.length ? survived.join(", ") : "nothing"],
      ["Watermark", wm.detected ? "detected" : `not detected${wm.reason ? `: ${wm.reason}` : ""}`],
      ["Manifest", `${mf.status || "?"}${mf.reason ? `: ${mf.reason}` : ""}`],
      ["Pixels match the manifest", mf.pixels_match === undefined ? null : mf.pixels_match ? "yes" : "no (edited or re-encoded)"],
      ["Image", report.image ? `${report.image.width}x${report.image.height} ${report.image.media_type}, ${bytes(report.image.bytes)}` : null],
    ]);
    $("verify-json").textContent = JSON.stringify(report, null, 2);
    $("verify-result").hidden = false;
  } catch (err) {
    showError($("verify-error"), err);
  } finally {
    $("verify-busy").hidden = true;
  }
}

// -- models ---------------------------------------------------------------------------------------------------
function fmtMetric(v) {
  const n = Number(v);
  return Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(1) : n.toPrecision(4)) : String(v);
}

function versionCard(entry, v) {
  const card = document.createElement("article");
  card.className = "version";
  const title = document.createElement("h3");
  title.textContent = `${entry.model} v${v.version}`;
  for (const role of v.roles || []) {
    const badge = document.createElement("span");
    badge.className = `badge ${role}`;
    badge.textContent = role;
    title.append(" ", badge);
  }
  card.append(title);
  if (v.description) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = v.description.replace(/\*\*|`/g, ""); // the registry's Markdown, as plain text
    card.append(p);
  }
  const body = document.createElement("div");
  body.className = "body";
  card.append(body);
  // the held-out evaluation (metric.* tags) and the training's final losses and FID first; the rest folded
  const metrics = v.metrics || {};
  const all = Object.keys(metrics).sort();
  const evaluated = new Set(all.filter((k) => k.startsWith("metric.")).map((k) => k.slice(7)));
  const main = [...all.filter((k) => k.startsWith("metric.")), ...all.filter((k) => k === "fid" || k.startsWith("loss_"))];
  const rest = all.filter((k) => !main.includes(k) && !evaluated.has(k.replace(/^eval_/, "")));
  const table = (keys) => {
    const t = document.createElement("table");
    t.className = "metrics";
    for (const k of keys) {
      const row = t.insertRow();
      row.insertCell().textContent = k.startsWith("metric.") ? `held-out ${k.slice(7)}` : k;
      row.insertCell().textContent = fmtMetric(metrics[k]);
    }
    return t;
  };
  const column = document.createElement("div");
  if (main.length) column.append(table(main));
  if (rest.length) {
    const more = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = `${main.length ? "other " : ""}run metrics (${rest.length})`;
    more.append(summary, table(rest));
    column.append(more);
  }
  body.append(column);
  if (v.grid) {
    const img = document.createElement("img");
    img.className = "grid";
    img.src = v.grid;
    img.alt = `sample grid of ${entry.model} v${v.version}`;
    body.append(img);
  }
  return card;
}

async function loadModels() {
  const list = $("models-list");
  try {
    const data = await (await call("studio/api/models")).json();
    const served = state.info ? state.info.models : [];
    list.replaceChildren();
    for (const entry of data.models) {
      const section = document.createElement("section");
      section.className = "model";
      const h = document.createElement("h2");
      const live = served.find((m) => m.model === entry.model) || {};
      h.textContent = `${entry.model}: ${entry.variant || live.variant || ""}, serving v${entry.version} (${entry.ref}, from the ${entry.source})`;
      section.append(h);
      if (live.directions) {
        const p = document.createElement("p");
        p.className = "muted";
        p.textContent = `directions ${live.directions.join(", ")} · step ${live.step ?? "?"} · ${live.device || ""}`;
        section.append(p);
      }
      const row = document.createElement("div");
      row.className = "versions";
      row.append(...entry.versions.map((v) => versionCard(entry, v)));
      section.append(row);
      list.append(section);
    }
    $("models-error").hidden = true;
  } catch (err) {
    showError($("models-error"), err);
  }
}

// -- start -------------------------------------------------------------------------------------------------------
async function loadInfo() {
  try {
    const info = await (await call("info", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).json();
    state.info = info;
    const select = $("translate-model");
    select.replaceChildren();
    for (const m of info.models) {
      state.models[m.model] = m;
      select.append(new Option(`${m.model} v${m.version} (${m.variant})`, m.model));
    }
    modelChanged();
    const lim = info.limits || {};
    $("service-status").textContent = `serving ${info.models.map((m) => `${m.model} v${m.version}`).join(", ")} · uploads up to ${bytes(lim.max_body_bytes || 0)}`;
    facts($("models-limits"), Object.entries(lim));
  } catch (err) {
    $("service-status").textContent = "";
    showError($("translate-error"), err);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => showView(tab.dataset.view));
  dropzone($("translate-drop"), $("translate-file"), fileChosen);
  dropzone($("verify-drop"), $("verify-file"), verify);
  $("translate-model").addEventListener("change", modelChanged);
  $("translate-format").addEventListener("change", () => { $("quality-field").hidden = $("translate-format").value === "png"; });
  $("translate-form").addEventListener("submit", translate);
  $("output-verify").addEventListener("click", () => { showView("verify"); verify(state.output); });
  loadInfo();
});
