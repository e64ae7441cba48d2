// The page's batch reader (served inline, nothing from elsewhere): several films are read one after another through
// POST /interpret, each with a row that says where it is (waiting, reading, its verdict or its error); a row shows
// its reading below, the overlay as its layers stacked (the film, then masks, heatmap and boxes, each with a checkbox
// to hide it); the batch downloads as the CSV of `cxrvlm interpret --csv`, which POST /readings.csv makes from the
// readings kept here (without their pictures). Without JavaScript the form posts one film to the reading frame.
(function () {
  const form = document.querySelector("form");
  const rows = document.querySelector("#batch tbody");
  const detail = document.getElementById("detail");
  const frame = document.querySelector("iframe");
  const readings = [];  // {reading, ms} per film, in the order read: the body of POST /readings.csv
  let heatmaps = {};  // the shown reading's maps by label (base64 PNG layers)
  // the layers over the film, their checkboxes in this order, and why one can be empty (null from the server)
  const EMPTY = {boxes: "no boxes in this reading: detect found none, or was not asked for",
                 masks: "no masks in this reading: segment found none, or was not asked for",
                 heatmap: "a heatmap is drawn only for TB or a finding the reading calls (by a model with a label head)"};
  const ALT = {film: "the film, with the TB probability and the legend above it", masks: "the masks",
               heatmap: "the heatmap of TB or the finding chosen", boxes: "the boxes"};
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const cell = (tr, text) => { const td = tr.insertCell(); td.textContent = text; return td; };
  const withoutPictures = ({overlay_png, overlay_layers, ...reading}) => reading;

  // the heatmap layer shows one map at a time: TB's when TB is called, else the first called finding's (the
  // overlay's); a select swaps in any other call's (`heatmaps`, the shown one first)
  function overlay(layers) {
    heatmaps = layers.heatmaps || {};
    const pictures = ["film", "masks", "heatmap", "boxes"].filter((n) => layers[n]).map((n) =>
      `<img data-layer="${n}" alt="${ALT[n]}" src="data:image/png;base64,${layers[n]}">`).join("");
    const checks = Object.entries(EMPTY).map(([n, why]) => layers[n]
      ? `<label><input type="checkbox" data-layer="${n}" checked>${n}</label>`
      : `<label title="${esc(why)}"><input type="checkbox" data-layer="${n}" disabled title="${esc(why)}">${n}</label>`);
    const names = Object.keys(heatmaps);
    const choose = names.length > 1 ? `<label>heatmap of <select id="heatmap-of">${names.map((n) =>
      `<option>${esc(n)}</option>`).join("")}</select></label>` : names.length ? `<span>heatmap of ${esc(names[0])}</span>` : "";
    return `<fieldset class="toggles"><legend>show on the film</legend>${checks.join("")}${choose}</fieldset>` +
      `<div id="overlay">${pictures}</div>`;
  }

  // each closed answer with how its question type fared on validation (`validation`), beside one fixed answer
  function answers(list) {
    const record = (v) => !v ? "" : `${v.accuracy.toFixed(2)} right of ${v.n}` +
      (v.constant_accuracy == null ? "" : ` (one fixed answer: ${v.constant_accuracy.toFixed(2)})`) +
      (v.no_better_than_constant ? " — no better than a fixed answer: do not rely on it" : "");
    return `<h3>Questions</h3><table id="answers"><tr><th>question</th><th>answer</th><th>probability</th><th>on validation</th></tr>` +
      list.map((a) => `<tr><td>${esc(a.question)}</td><td>${esc(a.answer)}</td><td>${a.probability == null ? "" : a.probability.toFixed(3)}</td>` +
        `<td${a.validation && a.validation.no_better_than_constant ? ' class="error"' : ""}>${esc(record(a.validation))}</td></tr>`).join("") + "</table>";
  }

  function show(r) {
    if (r.error) { detail.innerHTML = `<h2>${esc(r.image)}: not read</h2><p class="error">${esc(r.error)}</p>`; return; }
    const q = r.quality || {};
    let html = `<h2>${esc(r.image)}</h2><p class="notice">${esc(r.notice)}</p>`;
    if (!q.assessable) {
      html += `<h3>Not assessable</h3><ul>${(q.reasons || []).map((x) => `<li>${esc(x)}</li>`).join("")}</ul>`;
    } else {
      const v = r.verdict || {};
      html += `<h3 id="verdict">Verdict: ${esc(v.label)}${v.called && v.called.length ? " (" + esc(v.called.join(", ")) + ")" : ""}</h3>`;
      if (r.tb) html += `<p>TB probability ${r.tb.probability.toFixed(3)} (called at ${r.tb.threshold.toFixed(3)}, ${esc(r.tb.threshold_source)})</p>`;
      html += `<table><tr><th>finding</th><th>probability</th></tr>${(r.findings || []).slice(0, 8).map((f) => `<tr><td>${esc(f.label)}</td><td>${f.probability.toFixed(3)}</td></tr>`).join("")}</table>`;
      html += `<p class="legend">A probability is the model's estimate that the finding is on the film (a label head's are checked for calibration on validation patients); the verdict calls TB at the threshold above and other findings at 0.5.</p>`;
      const replaced = ((r.consistency || {}).contradictions || []);
      if (r.report) html += `<h3>Report</h3><p class="report">${esc(r.report)}</p><p><small>${esc(r.report_source)}` +
        (replaced.length ? `: the generated report was replaced: ${esc(replaced.join("; "))}` : "") + "</small></p>";
      if ((r.answers || []).length) html += answers(r.answers);
      if (r.overlay_layers) html += overlay(r.overlay_layers);
    }
    if ((r.warnings || []).length) html += `<h3>Warnings</h3><ul class="warn">${r.warnings.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>`;
    const blob = URL.createObjectURL(new Blob([JSON.stringify(withoutPictures(r), null, 1)], {type: "application/json"}));
    html += `<p><a download="${esc(r.image)}.json" href="${blob}">download the reading (JSON)</a>` +
      (r.overlay_png ? ` · <a download="${esc(r.image)}.overlay.png" href="data:image/png;base64,${r.overlay_png}">the overlay (PNG)</a>` : "") + "</p>";
    detail.innerHTML = html;
  }

  async function readOne(file, tr) {
    tr.cells[1].textContent = "reading…";
    const data = new FormData(form);
    data.set("file", file);
    data.set("overlay", "true");
    data.set("overlay_layers", "true");
    const start = performance.now();
    let r;
    try {
      const response = await fetch("/interpret?format=json", {method: "POST", body: data});
      r = await response.json();
      if (!response.ok && !r.error) r = {error: `the server answered ${response.status}: ${JSON.stringify(r)}`};
    } catch (e) { r = {error: String(e)}; }
    r.image = file.name;
    readings.push({reading: withoutPictures(r), ms: performance.now() - start});
    const q = r.quality || {};
    tr.cells[1].textContent = r.error ? "error: " + r.error : !q.assessable ? "not assessable" : (r.verdict || {}).label || "read";
    tr.cells[2].textContent = r.tb ? r.tb.probability.toFixed(3) : "";
    tr.className = r.error ? "failed" : "done";
    tr.tabIndex = 0;
    tr.onclick = tr.onkeydown = (e) => { if (!e.key || e.key === "Enter") show(r); };
    show(r);
  }

  form.addEventListener("submit", async (event) => {
    const files = [...form.querySelector("input[name=file]").files];
    if (!files.length) return;
    event.preventDefault();
    frame.hidden = true;
    for (const file of files) {
      const tr = rows.insertRow();
      cell(tr, file.name); cell(tr, "waiting"); cell(tr, "");
    }
    const pending = [...rows.rows].slice(-files.length);
    for (let i = 0; i < files.length; i++) await readOne(files[i], pending[i]);
  });

  detail.addEventListener("change", (e) => {  // a layer's checkbox shows or hides it; the select picks the map
    if (e.target.id === "heatmap-of") {
      detail.querySelector('#overlay img[data-layer="heatmap"]').src = "data:image/png;base64," + heatmaps[e.target.value];
      return;
    }
    const layer = e.target.dataset.layer;
    const picture = layer && detail.querySelector(`#overlay img[data-layer="${layer}"]`);
    if (picture) picture.hidden = !e.target.checked;
  });

  // the server tables the batch (infer.batch, as `cxrvlm interpret --csv` does): the columns are its, not the page's
  document.getElementById("csv").addEventListener("click", async () => {
    const status = document.getElementById("csv-status");
    status.textContent = "";
    try {
      const response = await fetch("/readings.csv", {method: "POST", headers: {"Content-Type": "application/json"},
                                                     body: JSON.stringify(readings)});
      if (!response.ok) throw new Error((await response.json()).error || response.statusText);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(await response.blob());
      a.download = "readings.csv";
      document.body.appendChild(a); a.click(); a.remove();
    } catch (e) { status.textContent = "the CSV could not be made: " + e.message; }
  });

  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    form.querySelector("input[name=file]").files = e.dataTransfer.files;
    form.requestSubmit();
  });
})();
