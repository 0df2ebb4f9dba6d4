"""The HTML report's one script: sortable and filterable tables, a zoomable time chart.

Hand-written and small (a few kilobytes) rather than a charting library inlined: the page
stays one offline file, the script has nothing to fetch, and there is nothing to upgrade.
The page allows this script only, by its hash (``script_hash``), so text from a capture
could not run as script even if it escaped the escaping. Without JavaScript the page is
complete: tables in report order, a still chart with hover titles.
"""

from __future__ import annotations

import base64
import hashlib

SCRIPT = r"""
(function () {
  "use strict";
  var steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400, 172800, 604800];
  var NS = "http://www.w3.org/2000/svg";

  function cellValue(row, i, numeric) {
    var cell = row.cells[i], text = cell ? cell.textContent.trim() : "";
    if (!numeric) return text.toLowerCase();
    var n = parseFloat(text.replace(/[^0-9.\-]/g, ""));
    return isNaN(n) ? -Infinity : n;
  }

  function sortable(table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, i) {
      th.tabIndex = 0;
      th.title = "Sort by " + th.textContent;
      function sort() {
        var numeric = th.classList.contains("n");
        var ascending = th.getAttribute("aria-sort") !== (numeric ? "descending" : "ascending");
        var up = numeric ? !ascending : ascending;
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.forEach(function (r, k) { if (!r.dataset.order) r.dataset.order = k; });
        rows.sort(function (a, b) {
          var x = cellValue(a, i, numeric), y = cellValue(b, i, numeric);
          if (x < y) return up ? -1 : 1;
          if (x > y) return up ? 1 : -1;
          return a.dataset.order - b.dataset.order;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  }

  function filterable(table) {
    var box = document.createElement("input");
    box.type = "search";
    box.className = "filter";
    box.placeholder = "Filter rows";
    box.setAttribute("aria-label", "Filter the rows of this table");
    var count = document.createElement("span");
    count.className = "muted count";
    var wrap = table.parentNode.classList.contains("scroll") ? table.parentNode : table;
    wrap.parentNode.insertBefore(box, wrap);
    wrap.parentNode.insertBefore(count, wrap);
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
      var rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (r) {
        var text = r.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        r.hidden = !keep;
        if (keep) shown++;
      });
      count.textContent = words.length ? " " + shown + " of " + rows.length + " rows" : "";
    });
  }

  function label(t, step) {
    var iso = new Date(t * 1000).toISOString();
    if (step >= 86400) return iso.slice(5, 10);
    return step >= 60 ? iso.slice(11, 16) : iso.slice(11, 19);
  }

  function zoomable(chart) {
    var plot = chart.querySelector("svg.plot"), ticks = chart.querySelector("g.xticks");
    var select = chart.querySelector("rect.selection");
    var start = +chart.dataset.start, stepS = +chart.dataset.step;
    var n = +chart.dataset.buckets, peak = +chart.dataset.peak;
    var left = +chart.dataset.left, width = +chart.dataset.plotWidth;
    var axisY = +plot.getAttribute("y") + +plot.getAttribute("height");
    var view = [0, n], drag = null;

    function draw() {
      plot.setAttribute("viewBox", view[0] + " 0 " + (view[1] - view[0]) + " " + peak);
      chart.dataset.view = view[0].toFixed(3) + " " + view[1].toFixed(3);
      var t0 = start + view[0] * stepS, t1 = start + view[1] * stepS;
      var step = steps.filter(function (s) { return (t1 - t0) / s <= 8; })[0] ||
          steps[steps.length - 1];
      while (ticks.firstChild) ticks.removeChild(ticks.firstChild);
      for (var t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
        var x = left + (t - t0) / (t1 - t0) * width;
        var line = document.createElementNS(NS, "line");
        line.setAttribute("x1", x); line.setAttribute("x2", x);
        line.setAttribute("y1", axisY); line.setAttribute("y2", axisY + 4);
        line.setAttribute("class", "axis");
        var text = document.createElementNS(NS, "text");
        text.setAttribute("x", x); text.setAttribute("y", +chart.viewBox.baseVal.height - 8);
        text.setAttribute("text-anchor", "middle"); text.setAttribute("class", "value");
        text.textContent = label(t, step);
        ticks.appendChild(line); ticks.appendChild(text);
      }
    }

    function setView(a, b) {
      var span = Math.max(2, Math.min(n, b - a));
      a = Math.max(0, Math.min(n - span, a));
      view = [a, a + span];
      draw();
    }

    function bucketAt(clientX) {
      var box = plot.getBoundingClientRect();
      var f = Math.max(0, Math.min(1, (clientX - box.left) / box.width));
      return view[0] + f * (view[1] - view[0]);
    }

    function zoom(factor, centre) {
      var c = centre === undefined ? (view[0] + view[1]) / 2 : centre;
      setView(c - (c - view[0]) * factor, c + (view[1] - c) * factor);
    }

    plot.addEventListener("wheel", function (e) {
      e.preventDefault();
      zoom(e.deltaY < 0 ? 0.8 : 1.25, bucketAt(e.clientX));
    }, { passive: false });
    plot.addEventListener("mousedown", function (e) {
      drag = bucketAt(e.clientX);
      e.preventDefault();
    });
    window.addEventListener("mousemove", function (e) {
      if (drag === null) return;
      var here = bucketAt(e.clientX);
      select.setAttribute("x", Math.min(drag, here));
      select.setAttribute("width", Math.abs(here - drag));
    });
    window.addEventListener("mouseup", function (e) {
      if (drag === null) return;
      var here = bucketAt(e.clientX), a = Math.min(drag, here), b = Math.max(drag, here);
      drag = null;
      select.setAttribute("width", 0);
      if (b - a >= 0.5) setView(a, b);
    });
    plot.addEventListener("dblclick", function () { setView(0, n); });

    var bar = document.createElement("div");
    bar.className = "zoom";
    [["Zoom in", function () { zoom(0.5); }], ["Zoom out", function () { zoom(2); }],
     ["Whole capture", function () { setView(0, n); }]].forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = b[0];
      button.addEventListener("click", b[1]);
      bar.appendChild(button);
    });
    var hint = document.createElement("span");
    hint.className = "muted";
    hint.textContent = " or drag across the chart to zoom in, scroll to zoom, " +
        "double-click to reset";
    bar.appendChild(hint);
    chart.parentNode.insertBefore(bar, chart);

    var legend = chart.parentNode.querySelector("ul.legend");
    if (legend) {
      legend.addEventListener("change", function (e) {
        var code = e.target.dataset.code;
        var line = plot.querySelector('polyline[data-code="' + code + '"]');
        if (line) line.style.display = e.target.checked ? "" : "none";
      });
      Array.prototype.forEach.call(legend.querySelectorAll("input"), function (box) {
        box.hidden = false;
      });
    }
    draw();
  }

  Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
    if (table.tBodies.length && table.tBodies[0].rows.length > 1) {
      sortable(table);
      filterable(table);
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("svg.timechart"), zoomable);
  document.documentElement.classList.add("js");
})();
"""


def script_hash() -> str:
    """Return the CSP source that allows exactly ``SCRIPT`` (``'sha256-...'``)."""
    digest = hashlib.sha256(SCRIPT.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
