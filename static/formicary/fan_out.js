/* Fan-out steps on the request page: each step's instances counted per state (a stacked bar and
   the numbers), the first ones as chips coloured by state that open their log, the count line of
   the step's node in the graph, and the instances' lanes in the timeline. Data: page.json's
   "fan_outs" and the timeline bars' "instances" (jobs/ui/request_page.py). Plain JavaScript. */
"use strict";

(function () {
  // the order states are counted and stacked in: finished work first, then running, then waiting
  var ORDER = ["COMPLETED", "FAILED", "CANCELLED", "SKIPPED", "EXECUTING", "STARTED", "READY", "MANUAL_APPROVAL_REQUIRED"];

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function states(counts) {
    var known = ORDER.filter(function (s) { return counts[s]; });
    Object.keys(counts).sort().forEach(function (s) { if (known.indexOf(s) < 0 && counts[s]) known.push(s); });
    return known;
  }
  function chipTitle(i) {
    return "[" + i.index + "] " + i.state + (i.exit_code ? " exit " + i.exit_code : "") +
      (i.duration ? " · " + i.duration : "") + (i.ant_id ? " · " + i.ant_id : "") + (i.error ? " · " + i.error : "");
  }

  // One block per fan-out step; ``selected`` is the task type whose log is open.
  function drawPanel(el, fanOuts, selected) {
    if (!el) return;
    el.innerHTML = fanOuts.map(function (f) {
      var total = f.total, counts = f.counts || {};
      var bar = states(counts).map(function (s) {
        return '<span class="fo-seg st-' + esc(s) + '" style="width:' + (100 * counts[s] / Math.max(total, 1)).toFixed(3) + '%" title="' + counts[s] + " " + esc(s) + '"></span>';
      }).join("");
      var numbers = states(counts).map(function (s) {
        return '<span class="fo-count st-' + esc(s) + '" data-state="' + esc(s) + '"><i></i>' + counts[s] + " " + esc(s.toLowerCase()) + "</span>";
      }).join("");
      var chips = f.instances.map(function (i) {
        return '<button type="button" class="fo-chip st-' + esc(i.state_class) + (i.task_type === selected ? " selected" : "") +
          '" data-task="' + esc(i.task_type) + '" data-state="' + esc(i.state) + '" data-index="' + i.index + '"' +
          (i.attempts.length ? "" : " disabled") + ' title="' + esc(chipTitle(i)) + '" aria-label="' + esc(f.step + " item " + i.index + ": " + i.state) + '">' + i.index + "</button>";
      }).join("");
      return '<section class="fan-out" data-step="' + esc(f.step) + '">' +
        '<div class="fo-head"><strong class="mono">' + esc(f.step) + '</strong> <span class="muted small">' + esc(f.label) + "</span>" +
        ' <span class="fo-total">' + (total ? total + " item" + (total === 1 ? "" : "s") : "no items yet") + "</span></div>" +
        (total ? '<div class="fo-bar" aria-hidden="true">' + bar + "</div>" : "") +
        '<div class="fo-counts">' + numbers + "</div>" +
        '<div class="fo-chips">' + chips + (f.more ? '<span class="fo-more">+' + f.more + " more</span>" : "") + "</div></section>";
    }).join("");
  }

  // The third line of a fan-out step's node (views.graph_svg(counted=True)) says how far it got.
  function nodeCounts(nodes, fanOuts) {
    fanOuts.forEach(function (f) {
      var g = nodes[f.step];
      if (!g) return;
      var texts = g.querySelectorAll("text");
      if (texts.length < 3) return;
      var c = f.counts || {}, running = (c.EXECUTING || 0) + (c.STARTED || 0) + (c.READY || 0);
      var bad = (c.FAILED || 0) + (c.CANCELLED || 0);
      var line = f.total + " item" + (f.total === 1 ? "" : "s");
      if (f.total) line += ": " + (c.COMPLETED || 0) + " done" + (running ? ", " + running + " running" : "") + (bad ? ", " + bad + " failed" : "");
      texts[texts.length - 1].textContent = line;
      texts[texts.length - 1].setAttribute("class", "fo-node-count");
      g.setAttribute("data-fan-out", line);
    });
  }

  // Thin lanes, one per instance, under the step's row of the timeline: overlap shows parallelism.
  function timelineLanes(group, pct, width, now, duration) {
    if (!group || !group.total) return "";
    var caption = '<span class="tl-lanes-name small muted">' + group.total + " instance" + (group.total === 1 ? "" : "s") + "</span>";
    if (!group.bars.length) return '<div class="tl-lanes">' + caption + '<span class="small muted">none started</span></div>';
    var t = function (iso) { return iso ? Date.parse(iso) : null; };
    return '<div class="tl-lanes">' + caption + "<div>" + group.bars.map(function (b) {
      var start = t(b.started_at), stop = t(b.ended_at) || now;
      var earlier = b.attempts.map(function (a) {
        var s = t(a.started_at), e = t(a.ended_at) || s;
        return '<span class="tl-run tl-earlier ' + esc(a.state) + '" style="left:' + pct(s) + ";width:" + width(s, e) + '" title="' + esc(a.label + (a.duration ? ", ran " + a.duration : "")) + '"></span>';
      }).join("");
      var ran = b.ended_at ? b.duration : duration((now - start) / 1000) + " so far";
      return '<div class="tl-lane" data-task="' + esc(b.task_type) + '" data-index="' + b.index + '"><span class="tl-track">' + earlier +
        '<span class="tl-run ' + esc(b.state) + '" style="left:' + pct(start) + ";width:" + width(start, stop) + '" title="' + esc(b.label + ", ran " + ran) + '"></span></span></div>';
    }).join("") + "</div>" + (group.more > 0 ? '<span class="tl-more small muted">+' + group.more + " more</span>" : "") + "</div>";
  }

  window.FormicaryFanOut = { drawPanel: drawPanel, nodeCounts: nodeCounts, timelineLanes: timelineLanes };
})();
