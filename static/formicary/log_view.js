/* Formicary log view: a virtualised task log. Only the rows in sight (plus a margin) are in the
   DOM, so a 200,000-line log opens and scrolls without freezing the page. Lines render ANSI SGR
   colours and bold as spans (other escapes are dropped), show the last state of a carriage-return
   progress line, style stderr and system lines apart, and can be searched, time-stamped, linked
   (#L123), and shown full screen. Plain browser JavaScript, no libraries. */
"use strict";

(function () {
  var ROW = 18; // px; request.css gives every row this height (no wrapping)
  var MARGIN = 30; // rows drawn above and below the visible ones

  function esc(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  // -- text clean-up ----------------------------------------------------------------------------
  // A progress bar rewrites its line with \r: what a terminal shows at the end is the last part.
  function collapseCR(line) {
    if (line.indexOf("\r") < 0) return line;
    var parts = line.replace(/\r+$/, "").split("\r");
    for (var i = parts.length - 1; i >= 0; i--) if (parts[i] !== "") return parts[i];
    return "";
  }
  // SGR sequences are kept for colouring; every other CSI / OSC / lone escape is dropped.
  var OTHER_ESC = /\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b\[[0-9;?]*[A-Za-ln-z@`]|\x1b[^\[\]]/g;
  var SGR = /\x1b\[([0-9;]*)m/g;

  // Segments [{text, cls}] of a line whose other escapes were dropped.
  function segments(line) {
    var out = [], fg = null, bg = null, bold = false, dim = false, italic = false, under = false, last = 0, m;
    function cls() {
      var c = [];
      if (fg !== null) c.push("fg" + fg);
      if (bg !== null) c.push("bg" + bg);
      if (bold) c.push("b");
      if (dim) c.push("dim");
      if (italic) c.push("i");
      if (under) c.push("u");
      return c.join(" ");
    }
    SGR.lastIndex = 0;
    while ((m = SGR.exec(line))) {
      if (m.index > last) out.push({ text: line.slice(last, m.index), cls: cls() });
      last = SGR.lastIndex;
      var codes = m[1] === "" ? [0] : m[1].split(";").map(Number);
      for (var i = 0; i < codes.length; i++) {
        var c = codes[i];
        if (c === 0) { fg = bg = null; bold = dim = italic = under = false; }
        else if (c === 1) bold = true;
        else if (c === 2) dim = true;
        else if (c === 3) italic = true;
        else if (c === 4) under = true;
        else if (c === 22) bold = dim = false;
        else if (c === 23) italic = false;
        else if (c === 24) under = false;
        else if (c >= 30 && c <= 37) fg = c - 30;
        else if (c >= 90 && c <= 97) fg = c - 90 + 8;
        else if (c === 39) fg = null;
        else if (c >= 40 && c <= 47) bg = c - 40;
        else if (c >= 100 && c <= 107) bg = c - 100 + 8;
        else if (c === 49) bg = null;
        else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
          // 256 colours: the 16 basic ones keep their class, others fall back to the default
          var n = codes[i + 2];
          if (n < 16) { if (c === 38) fg = n; else bg = n; }
          i += 2;
        } else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4;
      }
    }
    if (last < line.length) out.push({ text: line.slice(last), cls: cls() });
    return out;
  }

  function Line(raw, stream, ts, attempt) {
    var clean = collapseCR(raw).replace(OTHER_ESC, "");
    this.ansi = clean; // with SGR, for colours
    this.plain = clean.indexOf("\x1b") >= 0 ? clean.replace(SGR, "") : clean;
    this.stream = stream || "";
    this.ts = ts || null;
    this.attempt = attempt;
  }

  function pad(n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; }
  function clock(ts) {
    var d = new Date(ts * 1000);
    return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) + "." + pad(d.getMilliseconds(), 3);
  }

  function markText(text, q) {
    if (!q) return esc(text);
    var lower = text.toLowerCase(), out = "", at = 0, i;
    while ((i = lower.indexOf(q, at)) >= 0) {
      out += esc(text.slice(at, i)) + "<mark>" + esc(text.slice(i, i + q.length)) + "</mark>";
      at = i + q.length;
    }
    return out + esc(text.slice(at));
  }

  function lineHtml(line, q) {
    if (line.ansi.indexOf("\x1b") < 0) return markText(line.plain, q);
    var segs = segments(line.ansi);
    // a match that spans colours: highlight it on the plain text instead
    if (q && line.plain.toLowerCase().indexOf(q) >= 0 &&
        !segs.some(function (s) { return s.text.toLowerCase().indexOf(q) >= 0; })) return markText(line.plain, q);
    return segs.map(function (s) {
      var t = markText(s.text, q);
      return s.cls ? '<span class="' + s.cls + '">' + t + "</span>" : t;
    }).join("");
  }

  // -- the view ---------------------------------------------------------------------------------
  function LogView(pre, options) {
    options = options || {};
    this.pre = pre;
    this.linkFor = options.linkFor || function (n) { return "#L" + n; };
    this.onLink = options.onLink || null;
    this.lines = [];
    this.query = "";
    this.matches = [];
    this.matchAt = -1;
    this.target = 0; // the line a #L link points at
    this.drawn = null;
    pre.classList.add("virtual");
    pre.innerHTML = '<div class="log-spacer"></div><div class="log-rows"></div><div class="log-note"></div>';
    this.spacer = pre.firstChild;
    this.rows = this.spacer.nextSibling;
    this.noteEl = this.rows.nextSibling;
    var self = this;
    this.frame = 0;
    pre.addEventListener("scroll", function () { self.schedule(); });
    window.addEventListener("resize", function () { self.schedule(true); });
    pre.addEventListener("click", function (ev) {
      var a = ev.target.closest ? ev.target.closest("a.n") : null;
      if (!a) return;
      ev.preventDefault();
      var n = Number(a.getAttribute("data-n"));
      self.target = n;
      if (self.onLink) self.onLink(n);
      self.schedule(true);
    });
  }
  LogView.prototype.clear = function () {
    this.lines = [];
    this.matches = [];
    this.matchAt = -1;
    this.noteEl.textContent = "";
    this.pre.scrollTop = 0;
    this.update(false);
  };
  LogView.prototype.note = function (text) {
    this.noteEl.textContent = text;
    this.noteEl.style.top = this.lines.length * ROW + "px";
  };
  // lines: [{line, stream, ts, attempt}] as the log socket sends them, or plain strings
  LogView.prototype.append = function (lines) {
    var pinned = this.pinned();
    var start = this.lines.length;
    for (var i = 0; i < lines.length; i++) {
      var l = lines[i];
      if (typeof l === "string") this.lines.push(new Line(l, "", null, null));
      else this.lines.push(new Line(l.line, l.stream, l.ts, l.attempt));
    }
    if (this.query) {
      for (var j = start; j < this.lines.length; j++) if (this.lines[j].plain.toLowerCase().indexOf(this.query) >= 0) this.matches.push(j);
      this.onSearch && this.onSearch();
    }
    this.update(pinned);
  };
  LogView.prototype.appendText = function (text) {
    this.append(text === "" ? [] : text.split("\n"));
  };
  LogView.prototype.pinned = function () {
    var p = this.pre;
    return p.scrollTop + p.clientHeight >= p.scrollHeight - ROW * 2;
  };
  LogView.prototype.update = function (stickToEnd) {
    this.spacer.style.height = this.lines.length * ROW + "px";
    this.noteEl.style.top = this.lines.length * ROW + "px";
    if (stickToEnd) this.pre.scrollTop = this.pre.scrollHeight;
    this.schedule(true);
  };
  LogView.prototype.schedule = function (force) {
    if (force) this.drawn = null;
    if (this.frame) return;
    var self = this;
    this.frame = requestAnimationFrame(function () { self.frame = 0; self.render(); });
  };
  LogView.prototype.render = function () {
    var top = this.pre.scrollTop, height = this.pre.clientHeight || 400;
    var first = Math.max(0, Math.floor(top / ROW) - MARGIN);
    var last = Math.min(this.lines.length, Math.ceil((top + height) / ROW) + MARGIN);
    var key = first + ":" + last + ":" + this.lines.length;
    if (this.drawn === key) return;
    this.drawn = key;
    var current = this.matchAt >= 0 ? this.matches[this.matchAt] : -1;
    var html = [];
    for (var i = first; i < last; i++) {
      var l = this.lines[i], n = i + 1;
      var q = this.query && l.plain.toLowerCase().indexOf(this.query) >= 0 ? this.query : "";
      var cls = "ln" + (l.stream === "stderr" ? " stderr" : l.stream === "system" ? " system" : "") +
        (q ? " hit" : "") + (i === current ? " current" : "") + (n === this.target ? " target" : "");
      html.push('<span class="' + cls + '" id="L' + n + '" data-n="' + n + '">' +
        // number and time are drawn from attributes, so a row's text (and a copy) is the line alone
        '<a class="n" href="' + esc(this.linkFor(n)) + '" data-n="' + n + '" tabindex="-1" aria-label="line ' + n + '"></a>' +
        '<span class="ts" data-ts="' + (l.ts ? clock(l.ts) : "") + '"></span>' + lineHtml(l, q) + "</span>");
    }
    this.rows.style.top = first * ROW + "px";
    this.rows.innerHTML = html.join("");
    if (this.onRender) this.onRender();
  };
  LogView.prototype.scrollToLine = function (n) {
    var y = (n - 1) * ROW - this.pre.clientHeight / 2 + ROW / 2;
    this.pre.scrollTop = Math.max(0, y);
    this.schedule(true);
  };
  LogView.prototype.search = function (query) {
    this.query = (query || "").toLowerCase();
    this.matches = [];
    this.matchAt = -1;
    if (this.query) {
      for (var i = 0; i < this.lines.length; i++) if (this.lines[i].plain.toLowerCase().indexOf(this.query) >= 0) this.matches.push(i);
    }
    if (this.matches.length) this.step(1);
    else this.schedule(true);
  };
  LogView.prototype.step = function (dir) {
    if (!this.matches.length) return;
    this.matchAt = (this.matchAt + dir + this.matches.length) % this.matches.length;
    this.scrollToLine(this.matches[this.matchAt] + 1);
  };
  LogView.prototype.showTimestamps = function (on) {
    this.pre.classList.toggle("with-ts", !!on);
  };
  LogView.prototype.domRows = function () {
    return this.rows.childElementCount;
  };

  window.FormicaryLogView = LogView;
  window.FormicaryLogText = { collapseCR: collapseCR, segments: segments };
})();
