/* Formicary request page: the graph and tasks table move with lifecycle events, a live clock, the
   timeline (Gantt) tab, every attempt of a task selectable with its own log, and the failed task
   opened first. The log itself is log_view.js. Plain browser JavaScript, no libraries. */
"use strict";

(function () {
  var TERMINAL = ["COMPLETED", "FAILED", "CANCELLED", "FILTERED"];
  var RUNNING = ["STARTED", "EXECUTING"];

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  // the same wording as the server: 0.4 s, 11.2 s, 2 min 5 s, 1 h 3 min
  function duration(secs) {
    secs = Math.max(0, secs);
    if (secs < 60) return secs.toFixed(1) + " s";
    var whole = Math.floor(secs);
    if (whole < 3600) return Math.floor(whole / 60) + " min " + (whole % 60) + " s";
    return Math.floor(whole / 3600) + " h " + Math.floor((whole % 3600) / 60) + " min";
  }
  function t(iso) { return iso ? Date.parse(iso) : null; }
  // Puts html into el keeping the elements that are still there: the timeline is redrawn every
  // second while a job runs, and replacing its nodes would drop a click or hover landing mid-redraw.
  function patch(el, html) {
    var fresh = document.createElement("template");
    fresh.innerHTML = html;
    patchChildren(el, fresh.content);
  }
  function patchChildren(old, fresh) {
    var a = old.childNodes, b = fresh.childNodes;
    if (a.length !== b.length) { old.replaceChildren.apply(old, Array.prototype.slice.call(b)); return; }
    for (var i = b.length - 1; i >= 0; i--) {
      var x = a[i], y = b[i];
      if (x.nodeType !== y.nodeType || x.nodeName !== y.nodeName) { old.replaceChild(y, x); continue; }
      if (x.nodeType !== 1) { if (x.nodeValue !== y.nodeValue) x.nodeValue = y.nodeValue; continue; }
      Array.prototype.slice.call(x.attributes).forEach(function (at) { if (!y.hasAttribute(at.name)) x.removeAttribute(at.name); });
      Array.prototype.forEach.call(y.attributes, function (at) { if (x.getAttribute(at.name) !== at.value) x.setAttribute(at.name, at.value); });
      patchChildren(x, y);
    }
  }

  // -- the task graph: an inline Graphviz SVG whose nodes are found by their <title> -------------
  function Graph(container, onPick) {
    this.nodes = {};
    if (!container) return;
    var self = this;
    container.querySelectorAll("g.node").forEach(function (g) {
      var title = g.querySelector("title");
      if (!title) return;
      var name = title.textContent;
      self.nodes[name] = g;
      g.removeAttribute("fill");
      if (name.indexOf("__") !== 0) g.addEventListener("click", function () { onPick(name); });
    });
  }
  Graph.prototype.setState = function (type, state) {
    var g = this.nodes[type];
    if (!g) return;
    g.setAttribute("class", g.getAttribute("class").replace(/\s*st-\w+/g, "") + " st-" + state);
    g.setAttribute("data-state", state);
  };
  Graph.prototype.select = function (type) {
    Object.keys(this.nodes).forEach(function (k) {
      var g = this.nodes[k];
      g.setAttribute("class", g.getAttribute("class").replace(/\s*selected/g, "") + (k === type ? " selected" : ""));
    }, this);
  };

  // Arrival times of lines, read by the browser tests to measure print-to-screen latency.
  window.formicaryLogArrivals = [];

  function RequestPage(root) {
    this.root = root;
    this.requestId = root.getAttribute("data-request-page");
    this.state = JSON.parse(document.getElementById("page-state").textContent);
    this.finished = TERMINAL.indexOf(root.getAttribute("data-job-state")) >= 0;
    this.awaiting = root.getAttribute("data-job-state") === "MANUAL_APPROVAL_REQUIRED";
    this.picked = null; // a task the user chose; otherwise the log follows the failed / running task
    this.current = null; // {type, attempt (1-based over all runs)}
    this.socket = null;
    var self = this;
    var params = new URLSearchParams(location.search);
    var wanted = params.get("task"), wantedAttempt = Number(params.get("attempt")) || null;
    var line = /^#L(\d+)$/.exec(location.hash);
    this.log = new window.FormicaryLogView(root.querySelector("pre.log"), {
      linkFor: function (n) { return self.lineLink(n); },
      onLink: function (n) { history.replaceState(null, "", self.lineLink(n)); },
    });
    this.log.onSearch = function () { self.showCount(); };
    this.graph = new Graph(root.querySelector(".graph"), function (type) { self.pick(type, null, true); });
    root.querySelectorAll("tr[data-task]").forEach(function (tr) {
      tr.addEventListener("click", function () { self.pick(tr.getAttribute("data-task"), null, true); });
    });
    root.querySelectorAll(".log-tabs button").forEach(function (b) {
      b.addEventListener("click", function () { self.pick(b.getAttribute("data-task"), null, true); });
    });
    root.querySelectorAll("[data-open-task]").forEach(function (a) {
      a.addEventListener("click", function (ev) { ev.preventDefault(); self.pick(a.getAttribute("data-open-task"), null, true); root.querySelector("#log-panel").scrollIntoView(); });
    });
    root.addEventListener("click", function (ev) {
      // an instance's chip or timeline lane opens its log
      var chip = ev.target.closest && ev.target.closest(".fo-chip, .tl-lane");
      if (chip) self.pick(chip.getAttribute("data-task"), null, true);
    });
    this.wireToolbar();
    this.wireTabs();
    this.applyState(this.state);
    if (wanted && this.task(wanted)) {
      this.pick(wanted, wantedAttempt, true);
      if (line) { this.log.target = Number(line[1]); this.pendingLine = Number(line[1]); }
    } else {
      this.follow();
    }
    setInterval(function () { self.tick(); }, 1000);
    this.tick();
    this.connect(0);
  }

  // a task of the graph, or an instance of a fan-out step (its chip opens its log the same way)
  RequestPage.prototype.task = function (type) {
    var found = this.state.tasks.filter(function (x) { return x.task_type === type; })[0];
    (this.state.fan_outs || []).forEach(function (f) {
      if (!found) found = f.instances.filter(function (x) { return x.task_type === type; })[0];
    });
    return found || null;
  };
  RequestPage.prototype.lineLink = function (n) {
    var c = this.current;
    var q = c ? "?task=" + encodeURIComponent(c.type) + "&attempt=" + c.attempt : "";
    return location.pathname + q + "#L" + n;
  };

  // -- events ------------------------------------------------------------------------------------
  RequestPage.prototype.connect = function (retry) {
    var self = this;
    var socket = new WebSocket(wsUrl("/ws/jobs/requests/" + this.requestId + "/events"));
    socket.onopen = function () { retry = 0; self.setLive(true); };
    socket.onmessage = function (ev) { self.event(JSON.parse(ev.data)); };
    socket.onclose = function (ev) {
      self.setLive(false);
      if (ev.code === 4403 || self.finished) return;
      setTimeout(function () { self.connect(retry + 1); }, Math.min(500 * Math.pow(2, retry), 8000));
    };
  };
  // A finished request is never "live", even while its socket is open (a restart makes it live again).
  RequestPage.prototype.setLive = function (open) {
    this.socketOpen = open;
    var el = this.root.querySelector(".live-indicator");
    if (!el) return;
    var live = open && !this.finished;
    el.querySelector(".dot").className = "dot" + (live ? " live" : "");
    el.querySelector(".txt").textContent = this.finished ? "finished" : (open ? "live" : "reconnecting…");
  };
  RequestPage.prototype.event = function (msg) {
    if (msg.kind === "snapshot") {
      msg.tasks.forEach(function (x) { this.graphState(x.task_type, x.task_state, x.exit_code); }, this);
      this.setJob(msg.job_state);
      this.refresh();
    } else if (msg.kind === "task_state") {
      if (msg.task_type) this.graphState(msg.task_type, msg.task_state, msg.exit_code);
      this.refresh();
    } else if (msg.kind === "job_state") {
      this.setJob(msg.job_state);
      this.refresh();
    }
  };
  RequestPage.prototype.graphState = function (type, state, exitCode) {
    var x = this.task(type);
    var routed = x && x.state_class === "ROUTED" && x.exit_code === exitCode && state === x.state;
    this.graph.setState(type, routed ? "ROUTED" : state);
  };
  // page.json carries the attempts, durations and timeline; events only say that something moved.
  RequestPage.prototype.refresh = function () {
    var self = this;
    if (this.refreshing) { this.again = true; return; }
    this.refreshing = true;
    fetch("/jobs/requests/" + this.requestId + "/page.json", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) { self.applyState(s); })
      .finally(function () {
        self.refreshing = false;
        if (self.again) { self.again = false; setTimeout(function () { self.refresh(); }, 200); }
      });
  };
  RequestPage.prototype.setJob = function (state) {
    var badge = this.root.querySelector(".job-state");
    if (badge) { badge.textContent = state; badge.className = "badge job-state " + state; }
    this.root.setAttribute("data-job-state", state);
    var was = this.finished;
    this.finished = TERMINAL.indexOf(state) >= 0;
    this.setLive(!!this.socketOpen);
    if (this.finished && !was) this.refreshPanels();
    if (!this.finished && was) { this.root.setAttribute("data-terminal", "false"); }
    // the approval panel (templates/jobs/_approvals.html) comes and goes with the wait
    if ((state === "MANUAL_APPROVAL_REQUIRED") !== (this.awaiting || false)) this.refreshApprovals();
    this.awaiting = state === "MANUAL_APPROVAL_REQUIRED";
  };
  RequestPage.prototype.refreshApprovals = function () {
    var self = this;
    fetch(location.pathname, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("#request-approvals");
      var old = self.root.querySelector("#request-approvals");
      if (fresh && old) old.innerHTML = fresh.innerHTML;
    });
  };

  RequestPage.prototype.applyState = function (s) {
    var prev = this.state;
    this.state = s;
    s.tasks.forEach(function (x) {
      if (x.state) this.graph.setState(x.task_type, x.state_class === "ROUTED" ? "ROUTED" : x.state);
      var row = this.root.querySelector('tr[data-task="' + CSS.escape(x.task_type) + '"]');
      if (row) {
        var badge = row.querySelector(".task-state");
        badge.textContent = x.state_label;
        badge.className = "badge task-state " + x.state_class;
        row.querySelector(".exit-code").textContent = x.exit_code || "";
        row.querySelector(".attempts").textContent = x.attempts.length > 1 ? x.attempts.length : (x.reused ? "reused" : "");
        var started = row.querySelector(".started");
        if (x.started_at) started.textContent = new Date(x.started_at).toTimeString().slice(0, 8);
        var d = row.querySelector(".duration");
        if (x.ended_at || !x.started_at) { d.textContent = x.duration; d.removeAttribute("data-since"); }
        else d.setAttribute("data-since", x.started_at);
      }
      var tab = this.root.querySelector('.log-tabs button[data-task="' + CSS.escape(x.task_type) + '"]');
      if (tab) tab.disabled = !x.attempts.length;
    }, this);
    var clocks = this.root.querySelectorAll(".request-clock, .request-duration");
    clocks.forEach(function (el) {
      if (s.running_since && !TERMINAL.includes(s.job_state)) el.setAttribute("data-since", s.running_since);
      else { el.removeAttribute("data-since"); if (s.duration) el.textContent = (el.classList.contains("request-clock") ? "ran " : "") + s.duration; }
    });
    this.drawFanOuts();
    this.drawTimeline();
    // the log follows new attempts of the task it shows, and the running task while nobody picked one
    if (this.current) {
      var cur = this.task(this.current.type);
      var before = prev && prev.tasks.filter(function (x) { return x.task_type === this.current.type; }, this)[0];
      var grew = cur && before && cur.attempts.length > before.attempts.length;
      if (grew && this.current.latest) this.pick(this.current.type, null, !!this.picked);
      else if (cur && this.current.latest && cur.task_execution_id && this.current.id !== cur.attempts[cur.attempts.length - 1].task_execution_id) this.pick(this.current.type, null, !!this.picked);
      else this.fillAttempts();
    }
    if (!this.picked && prev !== s) this.follow();
  };
  // the failed task first, else a running one, else the last that ran
  RequestPage.prototype.follow = function () {
    if (this.picked) return;
    var s = this.state, target = null;
    if (s.failed_task && this.task(s.failed_task) && this.task(s.failed_task).attempts.length) target = s.failed_task;
    if (!target) {
      var running = s.tasks.filter(function (x) { return RUNNING.indexOf(x.state) >= 0 && x.attempts.length; });
      var ran = s.tasks.filter(function (x) { return x.attempts.length; });
      target = running.length ? running[0].task_type : (ran.length ? ran[ran.length - 1].task_type : null);
    }
    if (target && (!this.current || this.current.type !== target)) this.pick(target, null, false);
  };

  // -- log of one attempt --------------------------------------------------------------------------
  RequestPage.prototype.pick = function (type, attemptNo, byUser) {
    var x = this.task(type);
    if (!x || !x.attempts.length) return;
    if (byUser) this.picked = type;
    var a = attemptNo ? x.attempts.filter(function (y) { return y.number === attemptNo; })[0] : null;
    a = a || x.attempts[x.attempts.length - 1];
    var latest = a === x.attempts[x.attempts.length - 1];
    var key = type + "/" + a.task_execution_id + "/" + a.row_attempt;
    if (this.current && this.current.key === key) return;
    this.current = { type: type, attempt: a.number, id: a.task_execution_id, row: a.row_attempt, latest: latest, key: key };
    this.graph.select(type);
    this.root.querySelectorAll(".fo-chip").forEach(function (c) { c.classList.toggle("selected", c.getAttribute("data-task") === type); });
    this.root.querySelectorAll("tr[data-task]").forEach(function (tr) { tr.classList.toggle("selected", tr.getAttribute("data-task") === type); });
    this.root.querySelectorAll(".log-tabs button").forEach(function (b) { b.classList.toggle("active", b.getAttribute("data-task") === type); });
    this.root.querySelector(".log-title").textContent = type;
    this.fillAttempts();
    var base = "/jobs/requests/" + this.requestId + "/tasks/" + a.task_execution_id + "/log.txt?attempt=" + a.row_attempt;
    this.root.querySelector("#log-raw").href = base;
    this.root.querySelector("#log-download").href = base + "&download=1";
    this.load(a, latest && !TERMINAL.includes(a.state));
  };
  RequestPage.prototype.fillAttempts = function () {
    var c = this.current, x = c && this.task(c.type);
    if (!x) return;
    var n = x.attempts.length;
    var a = x.attempts.filter(function (y) { return y.number === c.attempt; })[0];
    var label = this.root.querySelector(".attempt-label");
    label.textContent = n > 1 ? "attempt " + c.attempt + " of " + n + (a && a.duration ? " · " + a.duration : "") : (a && a.duration ? a.duration : "");
    var pickEl = this.root.querySelector(".attempt-pick"), sel = this.root.querySelector("#attempt-select");
    pickEl.hidden = n < 2;
    sel.innerHTML = x.attempts.map(function (y) {
      var when = y.started_at ? " · " + new Date(y.started_at).toTimeString().slice(0, 8) : "";
      return '<option value="' + y.number + '"' + (y.number === c.attempt ? " selected" : "") + ">" +
        esc("attempt " + y.number + " of " + n + " (run " + y.run + ", " + y.state + (y.exit_code ? " exit " + y.exit_code : "") + when + (y.duration ? ", " + y.duration : "") + ")") + "</option>";
    }).join("");
  };
  RequestPage.prototype.load = function (a, live) {
    var self = this, log = this.log, key = this.current.key;
    if (this.socket) { var old = this.socket; this.socket = null; old.close(); }
    log.clear();
    var started = performance.now();
    var done = function () {
      window.formicaryLogLoaded = { key: key, lines: log.lines.length, ms: performance.now() - started };
      if (self.pendingLine) { log.scrollToLine(self.pendingLine); self.pendingLine = null; }
      if (self.searchText) self.log.search(self.searchText);
      self.showCount();
    };
    var stored = function () {
      fetch(self.root.querySelector("#log-raw").href, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (text) { if (self.current && self.current.key === key) { log.appendText(text); log.note("end of output"); done(); } });
    };
    if (!this.isLatestOfRow(a)) {
      stored(); // an earlier attempt of the same row: only its stored text is kept
      return;
    }
    var socket = new WebSocket(wsUrl("/ws/jobs/tasks/" + a.task_execution_id + "/logs"));
    var first = true;
    this.socket = socket;
    socket.onmessage = function (ev) {
      if (self.socket !== socket) return;
      var msg = JSON.parse(ev.data);
      if (msg.kind === "lines" && first && !live && !msg.stored && msg.lines.length && msg.lines[0].seq > 1) {
        // the live stream keeps a task's last lines only: a long finished log comes whole from storage
        self.socket = null;
        socket.close();
        stored();
        return;
      }
      first = false;
      if (msg.kind === "lines") {
        var now = Date.now();
        // the stream of a row holds every attempt; this view shows one
        var lines = msg.lines.filter(function (l) { return !l.attempt || l.attempt === a.row_attempt; });
        lines.forEach(function (l) { if (window.formicaryLogArrivals.length < 20000) window.formicaryLogArrivals.push({ line: l.line, at: now }); });
        log.append(lines);
        if (!self.firstLines) { self.firstLines = true; }
        if (self.pendingLine && log.lines.length >= self.pendingLine) { log.scrollToLine(self.pendingLine); self.pendingLine = null; }
      } else if (msg.kind === "end") {
        log.note("end of output");
        socket.close();
        done();
      }
    };
    socket.onclose = function (ev) {
      if (self.socket === socket && ev.code === 4403) log.note("not allowed");
    };
  };
  RequestPage.prototype.isLatestOfRow = function (a) {
    var x = this.task(this.current.type);
    return !x.attempts.some(function (y) { return y.task_execution_id === a.task_execution_id && y.row_attempt > a.row_attempt; });
  };

  // -- toolbar -------------------------------------------------------------------------------------
  RequestPage.prototype.showCount = function () {
    var el = this.root.querySelector(".search-count"), log = this.log;
    if (!log.query) { el.textContent = ""; return; }
    el.textContent = log.matches.length ? (log.matchAt + 1) + " of " + log.matches.length : "no match";
  };
  RequestPage.prototype.wireToolbar = function () {
    var self = this, root = this.root, log = this.log;
    var search = root.querySelector("#log-search"), timer = 0;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { self.searchText = search.value; log.search(search.value); self.showCount(); }, 150);
    });
    search.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); clearTimeout(timer); if (log.query !== search.value.toLowerCase()) { self.searchText = search.value; log.search(search.value); } else log.step(ev.shiftKey ? -1 : 1); self.showCount(); }
    });
    root.querySelector("#search-next").addEventListener("click", function () { log.step(1); self.showCount(); });
    root.querySelector("#search-prev").addEventListener("click", function () { log.step(-1); self.showCount(); });
    root.querySelector("#log-timestamps").addEventListener("change", function (ev) { log.showTimestamps(ev.target.checked); });
    root.querySelector("#attempt-select").addEventListener("change", function (ev) {
      self.pick(self.current.type, Number(ev.target.value), true);
    });
    var full = root.querySelector("#log-fullscreen"), panel = root.querySelector("#log-panel");
    full.addEventListener("click", function () {
      var on = !panel.classList.contains("fullscreen");
      panel.classList.toggle("fullscreen", on);
      document.body.classList.toggle("log-fullscreen", on);
      full.setAttribute("aria-pressed", on ? "true" : "false");
      full.textContent = on ? "Exit full screen" : "Full screen";
      log.schedule(true);
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && panel.classList.contains("fullscreen")) full.click();
    });
    var toggle = root.querySelector("#rerun-params-toggle"), form = root.querySelector("#rerun-params");
    if (toggle && form) toggle.addEventListener("click", function () {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", form.hidden ? "false" : "true");
      if (!form.hidden) form.scrollIntoView({ block: "nearest" });
    });
  };
  RequestPage.prototype.wireTabs = function () {
    var root = this.root, self = this;
    root.querySelectorAll(".view-tabs button").forEach(function (b) {
      b.addEventListener("click", function () {
        var view = b.getAttribute("data-view");
        root.querySelectorAll(".view-tabs button").forEach(function (o) {
          o.classList.toggle("active", o === b);
          o.setAttribute("aria-selected", o === b ? "true" : "false");
        });
        root.querySelectorAll("[data-view-pane]").forEach(function (p) { p.hidden = p.getAttribute("data-view-pane") !== view; });
        // the timeline has its own address (/jobs/requests/<id>/timeline), kept in the bar
        var base = "/jobs/requests/" + self.requestId;
        history.replaceState(null, "", (view === "timeline" ? base + "/timeline" : base) + location.search + location.hash);
        if (view === "timeline") self.drawTimeline();
      });
    });
  };

  // -- time ----------------------------------------------------------------------------------------
  RequestPage.prototype.tick = function () {
    var now = Date.now();
    this.root.querySelectorAll("[data-since]").forEach(function (el) {
      var secs = (now - Date.parse(el.getAttribute("data-since"))) / 1000;
      el.textContent = (el.classList.contains("request-clock") ? "running " : "") + duration(secs);
    });
    var tl = this.state.timeline;
    if (tl && tl.origin && !tl.ended_at && !this.finished) this.drawTimeline();
  };
  RequestPage.prototype.drawFanOuts = function () {
    var fanOuts = this.state.fan_outs || [];
    if (!fanOuts.length || !window.FormicaryFanOut) return;
    window.FormicaryFanOut.drawPanel(this.root.querySelector("#fan-outs"), fanOuts, this.current && this.current.type);
    window.FormicaryFanOut.nodeCounts(this.graph.nodes, fanOuts);
  };
  // Queue wait (hatched) and run time per task on one time axis: overlap shows as parallel bars.
  // Earlier attempts of the run sit faded before the latest; a fan-out step's instances get lanes.
  RequestPage.prototype.drawTimeline = function () {
    var el = this.root.querySelector("#timeline");
    if (!el) return;
    var tl = this.state.timeline;
    if (!tl || !tl.origin || !tl.bars.length) { patch(el, '<p class="muted">No task has started yet.</p>'); return; }
    var origin = t(tl.origin), now = Date.now();
    var end = t(tl.ended_at) || Math.max(now, origin + 1000);
    tl.bars.forEach(function (b) {
      end = Math.max(end, t(b.ended_at) || now);
      if (b.instances) b.instances.bars.forEach(function (i) { end = Math.max(end, t(i.ended_at) || now); });
    });
    var span = Math.max(end - origin, 1);
    function pct(ms) { return (100 * (ms - origin) / span).toFixed(3) + "%"; }
    function w(a, b) { return (100 * Math.max(b - a, 0) / span).toFixed(3) + "%"; }
    var ticks = "";
    for (var i = 0; i <= 4; i++) ticks += '<span class="tl-tick" style="left:' + (i * 25) + '%">' + duration(span * i / 4000) + "</span>";
    patch(el, '<div class="tl-axis">' + ticks + "</div>" + tl.bars.map(function (b) {
      var ready = t(b.ready), start = t(b.started_at), stop = t(b.ended_at) || now;
      var runText = b.ended_at ? b.duration : duration((now - start) / 1000) + " so far";
      var earlier = (b.attempts || []).map(function (a) {
        var s = t(a.started_at), e = t(a.ended_at) || s;
        return '<span class="tl-run tl-earlier ' + esc(a.state) + '" style="left:' + pct(s) + ";width:" + w(s, e) + '" title="' + esc(a.label + (a.duration ? ", ran " + a.duration : "")) + '"></span>';
      }).join("");
      var lanes = b.instances && window.FormicaryFanOut ? window.FormicaryFanOut.timelineLanes(b.instances, pct, w, now, duration) : "";
      return '<div class="tl-row" data-task="' + esc(b.task_type) + '"><span class="tl-name mono" title="' + esc(b.task_type) + '">' + esc(b.task_type) + "</span>" +
        '<span class="tl-track"><span class="tl-wait" style="left:' + pct(ready) + ";width:" + w(ready, start) + '" title="waited ' + esc(b.wait) + '"></span>' + earlier +
        '<span class="tl-run ' + esc(b.state) + '" style="left:' + pct(start) + ";width:" + w(start, stop) + '" title="' + esc(b.label + ", ran " + runText) + '"></span></span>' +
        '<span class="tl-text small">' + (b.wait && b.wait !== "0.0 s" ? "waited " + esc(b.wait) + " · " : "") + "ran " + esc(runText) + "</span></div>" + lanes;
    }).join(""));
  };

  // After the job ends, buttons, timings, the failure and artifacts come from the server once more.
  RequestPage.prototype.refreshPanels = function () {
    var self = this;
    setTimeout(function () {
      fetch(location.pathname, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["#request-actions", "#request-artifacts", "#request-timings"].forEach(function (sel) {
          var fresh = doc.querySelector(sel), old = self.root.querySelector(sel);
          if (fresh && old) old.innerHTML = fresh.innerHTML;
        });
        var fail = doc.querySelector("#failure-summary");
        if (fail && !self.root.querySelector("#failure-summary")) {
          self.root.querySelector(".grid.two").insertAdjacentElement("beforebegin", fail);
          fail.querySelectorAll("[data-open-task]").forEach(function (a) {
            a.addEventListener("click", function (ev) { ev.preventDefault(); self.pick(a.getAttribute("data-open-task"), null, true); });
          });
        }
        self.root.querySelectorAll("#request-actions form[data-confirm]").forEach(function (f) {
          f.addEventListener("submit", function (ev) { if (!confirm(f.getAttribute("data-confirm"))) ev.preventDefault(); });
        });
        self.root.setAttribute("data-terminal", "true");
        self.setLive(!!self.socketOpen);
        self.refresh();
      });
    }, 300);
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-request-page]");
    if (root) window.formicaryPage = new RequestPage(root);
  });
})();
