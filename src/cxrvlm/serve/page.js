// The page's batch reader (served inline, nothing from elsewhere): several films are read one after another through
// POST /interpret, each with a row that says where it is (waiting, reading, its verdict or its error); a row shows
// its reading below; the batch downloads as CSV. Without JavaScript the form posts one film to the reading frame.
(function () {
  const form = document.querySelector("form");
  const rows = document.querySelector("#batch tbody");
  const detail = document.getElementById("detail");
  const frame = document.querySelector("iframe");
  const readings = [];
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const cell = (tr, text) => { const td = tr.insertCell(); td.textContent = text; return td; };

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
      if (r.report) html += `<h3>Report</h3><p class="report">${esc(r.report)}</p><p><small>${esc(r.report_source)}</small></p>`;
      if (r.overlay_png) html += `<img id="overlay" alt="the film with boxes, masks and the TB map" src="data:image/png;base64,${r.overlay_png}">`;
    }
    const blob = URL.createObjectURL(new Blob([JSON.stringify(r, null, 1)], {type: "application/json"}));
    html += `<p><a download="${esc(r.image)}.json" href="${blob}">download the reading (JSON)</a>` +
      (r.overlay_png ? ` · <a download="${esc(r.image)}.overlay.png" href="data:image/png;base64,${r.overlay_png}">the overlay (PNG)</a>` : "") + "</p>";
    detail.innerHTML = html;
  }

  async function readOne(file, tr) {
    tr.cells[1].textContent = "reading…";
    const data = new FormData(form);
    data.set("file", file);
    data.set("overlay", "true");
    let r;
    try {
      const response = await fetch("/interpret?format=json", {method: "POST", body: data});
      r = await response.json();
    } catch (e) { r = {image: file.name, error: String(e)}; }
    r.image = file.name;
    readings.push(r);
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

  document.getElementById("csv").addEventListener("click", () => {
    const quote = (s) => '"' + String(s ?? "").replace(/"/g, '""') + '"';
    const lines = [["file", "verdict", "tb_probability", "tb_label", "findings_called", "quality", "error"].join(",")];
    for (const r of readings) {
      const q = r.quality || {}, v = r.verdict || {}, tb = r.tb || {};
      lines.push([r.image, v.label, tb.probability, tb.label, (v.called || []).join("; "),
        r.error ? "" : q.assessable ? "assessable" : "not assessable: " + (q.reasons || []).join("; "), r.error].map(quote).join(","));
    }
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], {type: "text/csv"}));
    a.download = "readings.csv";
    document.body.appendChild(a); a.click(); a.remove();
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
