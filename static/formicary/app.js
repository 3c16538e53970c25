/* Formicary web UI: YAML highlighting, the task graph, and live request pages over websockets.
   Plain browser JavaScript, no libraries: the product works offline. */
"use strict";

(function () {
  // -- YAML highlighting (keys, strings, numbers, comments, {{ template }} actions) ---------------
  function esc(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function highlightValue(v) {
    var out = esc(v).replace(/\{\{.*?\}\}/g, function (m) { return '<span class="t">' + m + "</span>"; });
    if (/^\s*(["']).*\1\s*$/.test(v)) return '<span class="s">' + out + "</span>";
    if (/^\s*(-?\d+(\.\d+)?|true|false|null|~)\s*$/.test(v)) return '<span class="n">' + out + "</span>";
    return out;
  }
  function highlightYamlLine(line) {
    var m = line.match(/^(\s*)(#.*)$/);
    if (m) return m[1] + '<span class="c">' + esc(m[2]) + "</span>";
    var comment = "";
    var hash = line.search(/\s#\s/);
    if (hash >= 0 && line.slice(0, hash).split('"').length % 2 === 1) {
      comment = '<span class="c">' + esc(line.slice(hash)) + "</span>";
      line = line.slice(0, hash);
    }
    m = line.match(/^(\s*)(- )?([A-Za-z0-9_.\-]+)(:)(\s.*|$)/);
    if (m) {
      return m[1] + (m[2] ? '<span class="p">- </span>' : "") + '<span class="k">' + esc(m[3]) + "</span>" +
        '<span class="p">:</span>' + highlightValue(m[5]) + comment;
    }
    m = line.match(/^(\s*)(- )(.*)$/);
    if (m) return m[1] + '<span class="p">- </span>' + highlightValue(m[3]) + comment;
    return highlightValue(line) + comment;
  }
  function highlightYaml(pre) {
    pre.innerHTML = pre.textContent.split("\n").map(highlightYamlLine).join("\n");
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
      if (onPick && name.indexOf("__") !== 0) {
        g.addEventListener("click", function () { onPick(name); });
      }
    });
  }
  Graph.prototype.setState = function (taskType, state) {
    var g = this.nodes[taskType];
    if (!g) return;
    g.setAttribute("class", g.getAttribute("class").replace(/\s*st-\w+/g, "") + " st-" + state);
    g.setAttribute("data-state", state);
  };
  Graph.prototype.select = function (taskType) {
    Object.keys(this.nodes).forEach(function (k) {
      var g = this.nodes[k];
      g.setAttribute("class", g.getAttribute("class").replace(/\s*selected/g, "") + (k === taskType ? " selected" : ""));
    }, this);
  };

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  // request states that never change again (the live lists stop watching them)
  var TERMINAL = ["COMPLETED", "FAILED", "CANCELLED", "FILTERED"];


  // -- shared page behaviour: menu button, copy buttons, live lists, the definition editor -------
  function setupMenu() {
    var button = document.getElementById("menu-toggle");
    if (!button) return;
    function set(open) {
      document.body.classList.toggle("nav-open", open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
      var first = document.querySelector("#sidebar nav a");
      if (open && first) setTimeout(function () { first.focus(); }, 0); // keyboard users land in the menu
      if (!open && document.activeElement && document.activeElement.closest("#sidebar") && button.offsetParent) button.focus();
    }
    button.addEventListener("click", function () { set(!document.body.classList.contains("nav-open")); });
    document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") set(false); });
    document.addEventListener("click", function (ev) {
      if (document.body.classList.contains("nav-open") && !ev.target.closest(".sidebar, #menu-toggle")) set(false);
    });
  }

  function setupCopyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var el = document.getElementById(b.getAttribute("data-copy"));
        var text = el ? el.textContent.trim() : "";
        function done() { b.textContent = "Copied"; window.formicaryCopied = text; }
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, done);
        else {
          var range = document.createRange();
          range.selectNodeContents(el);
          var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
          try { document.execCommand("copy"); } catch (e) { /* the text stays selected */ }
          done();
        }
      });
    });
  }

  // Lists and the dashboard: every unfinished request on the page is watched over its events
  // socket; a state change re-reads the page and swaps its live regions. New requests show
  // up on a slow re-read, since no socket names them before they exist.
  function LiveList() {
    this.sockets = {};
    this.timer = null;
    this.refreshes = 0;
    var self = this;
    this.watch();
    setInterval(function () { if (!document.hidden) self.refresh(); }, 20000);
  }
  LiveList.prototype.watch = function () {
    var self = this, wanted = {};
    document.querySelectorAll("tr[data-live-request]").forEach(function (tr) {
      if (TERMINAL.indexOf(tr.getAttribute("data-state")) < 0) wanted[tr.getAttribute("data-live-request")] = true;
    });
    Object.keys(this.sockets).forEach(function (id) {
      if (!wanted[id]) { var s = self.sockets[id]; delete self.sockets[id]; s.close(); }
    });
    Object.keys(wanted).forEach(function (id) {
      if (self.sockets[id]) return;
      var socket = new WebSocket(wsUrl("/ws/jobs/requests/" + id + "/events"));
      self.sockets[id] = socket;
      socket.onmessage = function (ev) {
        var msg = JSON.parse(ev.data);
        if (msg.kind === "job_state" || msg.kind === "task_state") self.soon();
      };
      socket.onclose = function () { if (self.sockets[id] === socket) delete self.sockets[id]; };
    });
  };
  LiveList.prototype.soon = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.refresh(); }, 250);
  };
  LiveList.prototype.refresh = function () {
    var self = this;
    fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-live-region]").forEach(function (old) {
        var fresh = doc.querySelector('[data-live-region="' + old.getAttribute("data-live-region") + '"]');
        if (fresh && fresh.innerHTML !== old.innerHTML) old.innerHTML = fresh.innerHTML;
      });
      self.refreshes += 1;
      self.watch();
    });
  };

  // The upload editor: a plain textarea with a line-number gutter that scrolls with it; lines
  // the validator named (#error-lines) are marked in the gutter and listed as links.
  function Editor(textarea) {
    var wrap = document.createElement("div");
    wrap.className = "editor";
    var gutter = document.createElement("pre");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");
    textarea.parentNode.insertBefore(wrap, textarea);
    wrap.appendChild(gutter);
    wrap.appendChild(textarea);
    textarea.setAttribute("wrap", "off");
    this.textarea = textarea;
    this.gutter = gutter;
    this.errors = {};
    var cited = document.getElementById("error-lines");
    (cited ? cited.textContent : "").split(",").forEach(function (n) {
      if (n) this.errors[n] = true;
    }, this);
    var self = this;
    textarea.addEventListener("input", function () { self.render(); });
    textarea.addEventListener("scroll", function () { gutter.scrollTop = textarea.scrollTop; });
    this.render();
  }
  Editor.prototype.render = function () {
    var count = this.textarea.value.split("\n").length, html = [];
    for (var i = 1; i <= count; i++) {
      html.push(this.errors[i] ? '<span class="err" data-line="' + i + '">' + i + "</span>" : String(i));
    }
    this.gutter.innerHTML = html.join("\n") + "\n";
    this.gutter.scrollTop = this.textarea.scrollTop;
  };
  Editor.prototype.goTo = function (line) {
    var lines = this.textarea.value.split("\n"), start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    this.textarea.focus();
    this.textarea.setSelectionRange(start, start + (lines[line - 1] || "").length);
    var lh = parseFloat(getComputedStyle(this.textarea).lineHeight) || 18;
    this.textarea.scrollTop = Math.max(0, (line - 3) * lh);
  };

  // A region that scrolls sideways (a wide table on a phone, long YAML) must take keyboard focus
  // so it can be scrolled without a mouse.
  function markScrollable() {
    document.querySelectorAll("pre.yaml, pre.diff, .panel, .table-scroll, .graph").forEach(function (el) {
      var scrolls = el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1;
      if (scrolls && !el.hasAttribute("tabindex")) el.setAttribute("tabindex", "0");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    markScrollable();
    window.addEventListener("resize", markScrollable);
    setupMenu();
    setupCopyButtons();
    // the error pages' Back: the browser's history when the server did not know the previous page
    document.querySelectorAll("a[data-history-back]").forEach(function (a) {
      a.addEventListener("click", function (ev) { if (history.length > 1) { ev.preventDefault(); history.back(); } });
    });
    if (document.querySelector("[data-live-region]")) window.formicaryLive = new LiveList();
    var editorArea = document.querySelector("textarea[data-editor]");
    if (editorArea) {
      var editor = new Editor(editorArea);
      window.formicaryEditor = editor;
      document.querySelectorAll("a[data-goto-line]").forEach(function (a) {
        a.addEventListener("click", function (ev) { ev.preventDefault(); editor.goTo(parseInt(a.getAttribute("data-goto-line"), 10)); });
      });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("pre.yaml").forEach(highlightYaml);
    document.querySelectorAll(".graph[data-static]").forEach(function (g) { new Graph(g, null); });
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) { if (!confirm(f.getAttribute("data-confirm"))) ev.preventDefault(); });
    });
  });
})();
