// offerd console: the only script of our own (the CSP allows no inline script).
// - sends the CSRF token with every htmx request;
// - draws the charts described by <script type="application/json" class="chart-data"> blocks;
// - submits the site picker on change; shows htmx failures in the alert region.
(function () {
  "use strict";
  function token() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = token();
  });
  document.addEventListener("htmx:sendError", function () {
    document.getElementById("toast").textContent = "offerd did not answer: check your connection and retry.";
  });
  document.addEventListener("change", function (e) {
    if (e.target && e.target.matches("select[data-autosubmit]")) { e.target.form.submit(); }
  });

  var palette = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  function draw(root) {
    if (typeof Chart === "undefined") { return; }
    root.querySelectorAll("script.chart-data").forEach(function (node) {
      var canvas = document.getElementById(node.dataset.canvas);
      if (!canvas || canvas.dataset.drawn) { return; }
      canvas.dataset.drawn = "1";
      var spec = JSON.parse(node.textContent);
      var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
      Chart.defaults.color = dark ? "#e5e7eb" : "#111827";
      Chart.defaults.borderColor = dark ? "#374151" : "#d1d5db";
      spec.datasets.forEach(function (d, i) {
        var c = d.color || palette[i % palette.length];
        d.borderColor = c; d.backgroundColor = d.fill ? c + "55" : c;
        d.pointRadius = d.pointRadius === undefined ? 2 : d.pointRadius;
        delete d.color;
      });
      var options = {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } },
        scales: { y: { beginAtZero: true } }
      };
      if (spec.percent) {
        options.scales.y.ticks = { callback: function (v) { return (v * 100).toFixed(0) + "%"; } };
      }
      if (spec.horizontal) { options.indexAxis = "y"; options.scales = { x: { beginAtZero: false } }; }
      new Chart(canvas, { type: spec.type || "line", data: { labels: spec.labels, datasets: spec.datasets }, options: options });
    });
  }
  // the editor: show only the parameters the chosen billing action takes (all without script)
  function actionFields(root) {
    root.querySelectorAll("select[data-action-select]").forEach(function (select) {
      var fieldset = select.closest("fieldset");
      fieldset.querySelectorAll("[data-actions]").forEach(function (field) {
        var kinds = field.dataset.actions.trim().split(/\s+/);
        field.hidden = kinds.indexOf(select.value) < 0;
      });
    });
  }
  document.addEventListener("change", function (e) {
    if (e.target && e.target.matches("select[data-action-select]")) { actionFields(document); }
  });
  document.documentElement.classList.add("js");
  document.addEventListener("DOMContentLoaded", function () { draw(document); actionFields(document); });
  document.addEventListener("htmx:afterSettle", function (e) { draw(e.target); });
})();
