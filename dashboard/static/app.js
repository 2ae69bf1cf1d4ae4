/* DataCat dashboard: draws the charts a page describes and keeps live pages calm.
 *
 * A chart is a <canvas data-chart="ID"> next to <script type="application/json" id="ID">
 * holding its spec (see dashboard/_charts.py). No inline script runs anywhere, so a
 * strict Content-Security-Policy can be added. Works after every htmx swap too.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  var rootStyle = null;
  function cssVar(name, fallback) {
    rootStyle = rootStyle || getComputedStyle(document.documentElement);
    var value = rootStyle.getPropertyValue(name).trim();
    return value || fallback;
  }

  function utcText(ms, seconds) {
    var date = new Date(ms);
    if (isNaN(date.getTime())) return String(ms);
    return date.toISOString().slice(0, seconds ? 19 : 16).replace("T", " ");
  }

  /* A time tick: as much of the date and time as the axis' span needs. */
  function timeTick(ms, span) {
    var date = new Date(ms);
    if (isNaN(date.getTime())) return String(ms);
    var text = date.toISOString().replace("T", " ");
    if (span < 5 * 1000) return text.slice(11, 23);
    if (span < 10 * 60 * 1000) return text.slice(11, 19);
    if (span < 24 * 3600 * 1000) return text.slice(11, 16);
    if (span < 60 * 24 * 3600 * 1000) return text.slice(5, 16);
    return text.slice(0, 10);
  }

  /* Bounds for an axis whose points all sit on one value (Chart.js would spread it). */
  function pad(values, amount) {
    var finite = values.filter(function (v) { return typeof v === "number" && isFinite(v); });
    if (!finite.length) return {};
    var lo = Math.min.apply(null, finite), hi = Math.max.apply(null, finite);
    return lo === hi ? { min: lo - amount, max: hi + amount } : {};
  }

  function valueText(value, unit) {
    if (typeof value !== "number") return String(value);
    var text = Number.isInteger(value)
      ? value.toLocaleString("en")
      : String(Number(value.toPrecision(4)));
    return unit ? text + " " + unit : text;
  }

  function buildChart(canvas) {
    if (typeof Chart === "undefined" || Chart.getChart(canvas)) return;
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) return;
    var spec;
    try {
      spec = JSON.parse(source.textContent);
    } catch (error) {
      return;
    }
    if (spec.type === "bar") return buildBars(canvas, spec);
    var coloured = 0;
    var datasets = spec.datasets.map(function (d) {
      // A dataset may name its colour ("series"), so that one branch keeps its colour
      // from chart to chart; the others take the next one in turn.
      var index = typeof d.series === "number" ? d.series : coloured++;
      var color = d.muted ? cssVar("--line-muted", "#9aa5b1") : cssVar("--series-" + (index % 8), "#3b6ea5");
      var dataset = {
        label: d.label,
        data: d.points,
        showLine: d.showLine !== false,
        borderColor: color,
        backgroundColor: color,
        borderWidth: 1.5,
        pointRadius: d.points.length > 300 ? 1.5 : 3,
        pointHoverRadius: 5,
        tension: 0
      };
      if (d.outcomes) {
        var colors = d.outcomes.map(function (o) { return cssVar("--o-" + o, "#888"); });
        dataset.pointBackgroundColor = colors;
        dataset.pointBorderColor = colors;
        dataset.pointRadius = d.points.length > 300 ? 2 : 4;
        dataset.borderColor = cssVar("--line-muted", "#9aa5b1");
      }
      return dataset;
    });
    var hasLinks = spec.datasets.some(function (d) { return d.links; });
    var xs = [];
    spec.datasets.forEach(function (d) { d.points.forEach(function (p) { xs.push(p.x); }); });
    var xBounds = pad(xs, spec.x.time ? 60 * 1000 : 1);
    function linkAt(elements) {
      if (!elements.length) return null;
      var d = spec.datasets[elements[0].datasetIndex];
      return d && d.links ? d.links[elements[0].index] : null;
    }
    new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        normalized: true,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: {
            type: "linear",
            min: spec.x.min !== undefined ? spec.x.min : xBounds.min,
            max: spec.x.max !== undefined ? spec.x.max : xBounds.max,
            title: { display: true, text: spec.x.title },
            ticks: {
              maxRotation: 0,
              autoSkipPadding: 24,
              precision: spec.x.time ? undefined : 0,
              callback: function (v) { return spec.x.time ? timeTick(v, this.max - this.min) : valueText(v, ""); }
            }
          },
          y: {
            type: "linear",
            min: spec.y.min,
            max: spec.y.max,
            title: { display: true, text: spec.y.title },
            ticks: { stepSize: spec.y.step, callback: function (v) { return valueText(v, ""); } }
          }
        },
        plugins: {
          legend: { display: datasets.length > 1 },
          tooltip: {
            callbacks: {
              title: function (items) {
                return items.length && spec.x.time ? utcText(items[0].parsed.x, true) + " UTC" : "";
              },
              label: function (item) {
                return item.dataset.label + ": " + valueText(item.parsed.y, spec.y.unit);
              },
              afterLabel: function (item) {
                var d = spec.datasets[item.datasetIndex];
                return d.tips ? d.tips[item.dataIndex] || "" : "";
              }
            }
          }
        },
        onHover: function (event, elements) {
          if (hasLinks) event.native.target.style.cursor = linkAt(elements) ? "pointer" : "default";
        },
        onClick: function (event, elements) {
          var link = linkAt(elements);
          if (link) window.location.assign(link);
        }
      }
    });
    foldTable(canvas);
  }

  /* The table beside a drawn chart folds (a reader opened it: it stays open). */
  function foldTable(canvas) {
    var figure = canvas.closest("figure");
    var table = figure && figure.querySelector("details.chart-data");
    if (table && !table.hasAttribute("data-kept")) table.open = false;
  }

  /* A bar per category (a session): `spec.x.labels` name them, each dataset's
   * `values` are their heights. Nothing joins one bar to the next. */
  function buildBars(canvas, spec) {
    var datasets = spec.datasets.map(function (d, i) {
      var color = cssVar("--series-" + (i % 8), "#3b6ea5");
      return { label: d.label, data: d.values, backgroundColor: color, borderColor: color, maxBarThickness: 48 };
    });
    function linkAt(elements) {
      if (!elements.length) return null;
      var d = spec.datasets[elements[0].datasetIndex];
      return d && d.links ? d.links[elements[0].index] : null;
    }
    new Chart(canvas, {
      type: "bar",
      data: { labels: spec.x.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: {
            type: "category",
            title: { display: true, text: spec.x.title },
            ticks: { maxRotation: 0, autoSkipPadding: 12 }
          },
          y: {
            type: "linear",
            beginAtZero: true,
            title: { display: true, text: spec.y.title },
            ticks: { callback: function (v) { return valueText(v, ""); } }
          }
        },
        plugins: {
          legend: { display: datasets.length > 1 },
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + ": " + valueText(item.parsed.y, spec.y.unit);
              },
              afterLabel: function (item) {
                var d = spec.datasets[item.datasetIndex];
                return d.tips ? d.tips[item.dataIndex] || "" : "";
              }
            }
          }
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = linkAt(elements) ? "pointer" : "default";
        },
        onClick: function (event, elements) {
          var link = linkAt(elements);
          if (link) window.location.assign(link);
        }
      }
    });
    foldTable(canvas);
  }

  /* A traceback opens on what matters: pytest's E lines (the assertion and its
   * explanation) with a few lines above them; a traceback without them (Python's own
   * format) on its end, where the exception is. */
  function showExplanation(pre) {
    if (pre.scrollHeight <= pre.clientHeight) return;
    var first = pre.querySelector(".tb-e");
    if (!first) {
      pre.scrollTop = pre.scrollHeight;
      return;
    }
    var line = parseFloat(getComputedStyle(pre).lineHeight) || 16;
    var top = first.getBoundingClientRect().top - pre.getBoundingClientRect().top + pre.scrollTop;
    pre.scrollTop = Math.max(0, top - 4 * line);
  }

  /* Each traceback once, when it arrives open: a refresh elsewhere on the page must
   * not move one a reader scrolled. */
  function showExplanations(root) {
    root.querySelectorAll("details.tb[open] > pre.tb-text:not([data-shown])").forEach(function (pre) {
      pre.setAttribute("data-shown", "");
      showExplanation(pre);
    });
  }

  document.addEventListener("toggle", function (e) {
    var details = e.target;
    if (details.open && details.matches && details.matches("details.tb")) {
      var pre = details.querySelector(":scope > pre.tb-text");
      if (pre) showExplanation(pre);
    }
  }, true);

  /* What was open or folded before a live part refreshed, by data-key. */
  var kept = {};

  function remember(root) {
    root.querySelectorAll("details[data-key]").forEach(function (d) {
      kept[d.getAttribute("data-key")] = d.open;
    });
    root.querySelectorAll("canvas[data-chart]").forEach(function (c) {
      var chart = typeof Chart === "undefined" ? null : Chart.getChart(c);
      if (chart) chart.destroy();
    });
  }

  function refresh() {
    document.querySelectorAll("details[data-key]").forEach(function (d) {
      var key = d.getAttribute("data-key");
      if (Object.prototype.hasOwnProperty.call(kept, key)) {
        d.open = kept[key];
        d.setAttribute("data-kept", "");
      }
    });
    kept = {};
    document.querySelectorAll("canvas[data-chart]").forEach(buildChart);
    showExplanations(document);
  }

  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:beforeSwap", function (e) { remember(e.detail.target); });
  document.addEventListener("htmx:oobBeforeSwap", function (e) { remember(e.detail.target); });
  document.addEventListener("htmx:afterSettle", refresh);
  document.addEventListener("htmx:historyRestore", refresh);

  /* Forms marked data-autosubmit submit when a field changes (no inline handlers). */
  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });

  /* SQL console: an example fills the editor and clears the result of the statement
   * run before (and the address bar, which named that statement); Ctrl+Enter runs it.
   * Running puts /sql?q=... in the address bar (the server's HX-Push-Url). */
  document.addEventListener("click", function (e) {
    var link = e.target.closest && e.target.closest("a[data-sql-example]");
    var editor = document.getElementById("sql-text");
    if (!link || !editor) return;
    e.preventDefault();
    editor.value = link.getAttribute("data-sql-example");
    var result = document.getElementById("sql-result");
    if (result) result.replaceChildren();
    if (window.location.search) window.history.replaceState(window.history.state, "", "/sql");
    editor.focus();
  });
  document.addEventListener("keydown", function (e) {
    if (e.target.id === "sql-text" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.target.form.requestSubmit();
    }
  });
})();
