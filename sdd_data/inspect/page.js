// The row list of an sdd-data inspect page: filters, search, a windowed list and one expanded row.
// Only the rows in view are in the DOM; the state lives in the URL fragment (#decision=original&row=<id>).
(function () {
  "use strict";
  var started = performance.now();
  var root = document.documentElement;
  var page = JSON.parse(document.getElementById("page-data").textContent);
  root.dataset.parseMs = (performance.now() - started).toFixed(1);
  var R = page.rows;
  if (!R) {
    root.dataset.firstScreenMs = performance.now().toFixed(1);
    root.dataset.ready = "1";
    return;
  }
  var C = R.columns, N = R.n, ROW_H = 28, OVERSCAN = 8;
  var listBox = document.getElementById("list");
  var spacer = document.getElementById("list-spacer");
  var windowBox = document.getElementById("list-window");
  var shownBox = document.getElementById("shown");
  var detailBox = document.getElementById("detail");
  var searchBox = document.getElementById("search");
  var filterBox = document.getElementById("filters");
  var state = { filters: {}, q: "", row: null };
  var visible = new Int32Array(0);
  var idIndex = null;

  function value(name, i) {
    var c = C[name];
    if (!c) return null;
    if (c.codes) return c.labels[c.codes[i]];
    return c[i];
  }
  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"]/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[ch];
    });
  }
  function indexOfId(id) {
    if (!idIndex) {
      idIndex = new Map();
      for (var i = 0; i < N; i++) idIndex.set(C.id[i], i);
    }
    return idIndex.has(id) ? idIndex.get(id) : -1;
  }

  // Filters: one select per categorical column, options with their row counts.
  R.filters.forEach(function (name) {
    var c = C[name], counts = new Array(c.labels.length).fill(0);
    for (var i = 0; i < N; i++) counts[c.codes[i]]++;
    var label = document.createElement("label");
    label.textContent = name + " ";
    var select = document.createElement("select");
    select.id = "filter-" + name;
    select.dataset.filter = name;
    select.add(new Option("all (" + N.toLocaleString() + ")", ""));
    c.labels.forEach(function (text, code) {
      select.add(new Option((text || "(none)") + " (" + counts[code].toLocaleString() + ")", text));
    });
    select.addEventListener("change", function () {
      state.filters[name] = select.value;
      state.row = null;
      update(true);
    });
    label.appendChild(select);
    filterBox.insertBefore(label, shownBox);
  });
  var searchTimer = null;
  searchBox.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      state.q = searchBox.value;
      state.row = null;
      update(true);
    }, 200);
  });

  function applyFilters() {
    var wanted = [];
    for (var name in state.filters) {
      var text = state.filters[name];
      if (!text) continue;
      wanted.push([C[name].codes, C[name].labels.indexOf(text)]);
    }
    var q = state.q.trim().toLowerCase();
    var searched = q ? R.search.map(function (name) { return C[name]; }) : [];
    var out = new Int32Array(N), count = 0;
    rows: for (var i = 0; i < N; i++) {
      for (var f = 0; f < wanted.length; f++) if (wanted[f][0][i] !== wanted[f][1]) continue rows;
      if (q) {
        var hit = false;
        for (var s = 0; s < searched.length && !hit; s++) {
          var column = searched[s];
          var text = column.codes ? column.labels[column.codes[i]] : column[i];
          if (text && String(text).toLowerCase().indexOf(q) !== -1) hit = true;
        }
        if (!hit) continue;
      }
      out[count++] = i;
    }
    visible = out.subarray(0, count);
  }

  function renderWindow() {
    var first = Math.max(0, Math.floor(listBox.scrollTop / ROW_H) - OVERSCAN);
    var last = Math.min(visible.length, first + Math.ceil(listBox.clientHeight / ROW_H) + 2 * OVERSCAN);
    var html = [];
    for (var k = first; k < last; k++) {
      var i = visible[k], id = C.id[i];
      var cells = R.list.map(function (name) {
        var text = value(name, i);
        if (text != null && typeof text === "string" && text.length > 160) text = text.slice(0, 160);
        return '<span class="c c-' + name + (C[name] && C[name].codes ? " v-" + esc(text) : "") + '">' + esc(text) + "</span>";
      });
      html.push(
        '<div class="row' + (id === state.row ? " current" : "") + '" data-index="' + i + '" data-id="' + esc(id) +
          '" style="top:' + k * ROW_H + 'px">' + cells.join("") + "</div>"
      );
    }
    windowBox.innerHTML = html.join("");
  }

  // Word-level diff, computed here for the one row shown (the page carries no diff data): longest common
  // subsequence of the words after the common start and end are set apart.
  function tokens(text) { return text.match(/\s+|[^\s]+/g) || []; }
  function diffWords(a, b) {
    var aw = [], bw = [], ta = tokens(a), tb = tokens(b);
    ta.forEach(function (t, i) { if (!/^\s/.test(t)) aw.push(i); });
    tb.forEach(function (t, i) { if (!/^\s/.test(t)) bw.push(i); });
    var n = aw.length, m = bw.length, changedA = new Uint8Array(ta.length), changedB = new Uint8Array(tb.length);
    var start = 0;
    while (start < n && start < m && ta[aw[start]] === tb[bw[start]]) start++;
    var endA = n, endB = m;
    while (endA > start && endB > start && ta[aw[endA - 1]] === tb[bw[endB - 1]]) { endA--; endB--; }
    var rowsA = endA - start, rowsB = endB - start, exact = true;
    if (rowsA * rowsB > 4000000) {
      exact = false;
      for (var x = start; x < endA; x++) changedA[aw[x]] = 1;
      for (var y = start; y < endB; y++) changedB[bw[y]] = 1;
    } else {
      var width = rowsB + 1, table = new Uint16Array((rowsA + 1) * width);
      for (var i = rowsA - 1; i >= 0; i--)
        for (var j = rowsB - 1; j >= 0; j--)
          table[i * width + j] = ta[aw[start + i]] === tb[bw[start + j]]
            ? table[(i + 1) * width + j + 1] + 1
            : Math.max(table[(i + 1) * width + j], table[i * width + j + 1]);
      var p = 0, q = 0;
      while (p < rowsA && q < rowsB) {
        if (ta[aw[start + p]] === tb[bw[start + q]]) { p++; q++; }
        else if (table[(p + 1) * width + q] >= table[p * width + q + 1]) changedA[aw[start + p++]] = 1;
        else changedB[bw[start + q++]] = 1;
      }
      for (; p < rowsA; p++) changedA[aw[start + p]] = 1;
      for (; q < rowsB; q++) changedB[bw[start + q]] = 1;
    }
    function render(parts, changed, tag) {
      return parts.map(function (t, i) { return changed[i] ? "<" + tag + ">" + esc(t) + "</" + tag + ">" : esc(t); }).join("");
    }
    return { a: render(ta, changedA, "del"), b: render(tb, changedB, "ins"), exact: exact };
  }

  function text(name, i) {
    var t = value(name, i) || "";
    var cut = R.texts_cut && t.length === R.text_limit + 1 && t.charAt(t.length - 1) === "\u2026";
    return { text: t, cut: cut };
  }
  function block(title, name, i, css) {
    var t = text(name, i);
    if (!t.text) return "";
    return '<div class="text ' + (css || "") + '"><h4>' + esc(title) + (t.cut ? ' <span class="cut">cut</span>' : "") +
      '</h4><div class="body" data-field="' + name + '">' + esc(t.text) + "</div></div>";
  }
  function fact(label, v) {
    return v == null || v === "" ? "" : "<tr><th>" + esc(label) + "</th><td>" + esc(v) + "</td></tr>";
  }

  function detailDistill(i) {
    var html = "<table class=\"facts\">" + fact("decision", value("decision", i)) + fact("reason", value("reason", i)) +
      fact("task", value("task", i)) + fact("finish reason", value("finish_reason", i)) +
      fact("prompt tokens", value("prompt_tokens", i)) + fact("teacher tokens", value("teacher_tokens", i)) +
      fact("words: source / teacher", value("source_words", i) + " / " + value("teacher_words", i)) + "</table>";
    html += block("Conversation so far", "context", i) + block("Instruction", "instruction", i) + block("Input", "input", i);
    var source = text("response", i), teacher = text("teacher_response", i);
    if (teacher.text) {
      var diff = diffWords(source.text, teacher.text);
      html += '<div class="pair"><div class="text"><h4>Source response' + (source.cut ? ' <span class="cut">cut</span>' : "") +
        '</h4><div class="body diff" data-field="response">' + diff.a + '</div></div><div class="text"><h4>Teacher rewrite' +
        (teacher.cut ? ' <span class="cut">cut</span>' : "") + '</h4><div class="body diff" data-field="teacher_response">' +
        diff.b + "</div></div></div>";
      html += '<p class="hint">Words only in the source are <span class="sample-del">struck</span>, words only in the rewrite are ' +
        '<span class="sample-ins">marked</span>' +
        (diff.exact ? "" : " (too long to align word by word: the differing middle is marked whole)") + ".</p>";
    } else {
      html += block("Source response", "response", i) + '<p class="hint">The teacher did not write a rewrite for this row.</p>';
    }
    html += block("Teacher thinking", "teacher_reasoning", i);
    html += '<table class="facts answers">' + fact("extracted answer", value("extracted_answer", i) || "(none)") +
      fact("reference answer", value("reference_answer", i) || "(none)") + "</table>";
    return html;
  }
  function detailSelect(i) {
    var html = "<table class=\"facts\">" + fact("outcome", value("outcome", i)) + fact("reason", value("reason", i)) +
      fact("conflicts with", value("conflict", i)) + fact("cluster", value("cluster", i)) +
      fact("IES rank in cluster", value("rank", i)) + fact("IES", value("ies", i)) +
      fact("degradation", value("degradation", i)) + fact("prompt tokens", value("prompt_tokens", i)) +
      fact("response tokens", value("response_tokens", i)) + fact("explanation", value("selection_reason", i)) + "</table>";
    html += block("User turn", "instruction", i) + block("Response", "response", i);
    if (!value("instruction", i)) html += '<p class="hint">The row\'s text is not in this folder (only selected rows are).</p>';
    return html;
  }

  function renderDetail() {
    var i = state.row == null ? -1 : indexOfId(state.row);
    if (i < 0) {
      detailBox.innerHTML = '<p class="hint">' + (visible.length ? "Choose a row." : "No row matches.") + "</p>";
      detailBox.removeAttribute("data-id");
      return;
    }
    var link = "#" + fragment(true);
    detailBox.dataset.id = C.id[i];
    detailBox.innerHTML = '<h3>Row <code>' + esc(C.id[i]) + '</code> <a class="link" href="' + esc(link) +
      '" title="a link to this row">link</a></h3>' + (R.detail === "select" ? detailSelect(i) : detailDistill(i));
  }

  function fragment(withRow) {
    var params = new URLSearchParams();
    R.filters.forEach(function (name) { if (state.filters[name]) params.set(name, state.filters[name]); });
    if (state.q) params.set("q", state.q);
    if (withRow && state.row != null) params.set("row", state.row);
    return params.toString();
  }

  function update(refilter) {
    if (refilter) applyFilters();
    if (state.row == null && visible.length) state.row = C.id[visible[0]];
    spacer.style.height = visible.length * ROW_H + "px";
    shownBox.textContent = visible.length.toLocaleString() + " of " + N.toLocaleString() + " rows";
    shownBox.dataset.shown = visible.length;
    var hash = fragment(true);
    if (location.hash.slice(1) !== hash) history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
    renderWindow();
    renderDetail();
  }

  function readFragment() {
    var params = new URLSearchParams(location.hash.slice(1));
    state.filters = {};
    R.filters.forEach(function (name) {
      var wanted = params.get(name) || "";
      state.filters[name] = wanted;
      var select = document.getElementById("filter-" + name);
      if (wanted && ![].some.call(select.options, function (o) { return o.value === wanted; })) {
        select.add(new Option(wanted + " (0)", wanted));
      }
      select.value = wanted;
    });
    state.q = params.get("q") || "";
    searchBox.value = state.q;
    state.row = params.get("row");
    applyFilters();
    if (state.row != null) {
      var i = indexOfId(state.row), k = -1;
      for (var x = 0; x < visible.length; x++) if (visible[x] === i) { k = x; break; }
      if (k >= 0) listBox.scrollTop = Math.max(0, k * ROW_H - listBox.clientHeight / 2);
    }
    update(false);
  }

  listBox.addEventListener("scroll", function () { requestAnimationFrame(renderWindow); });
  windowBox.addEventListener("click", function (event) {
    var row = event.target.closest(".row");
    if (!row) return;
    state.row = C.id[+row.dataset.index];
    update(false);
  });
  listBox.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    var i = indexOfId(state.row), k = 0;
    for (var x = 0; x < visible.length; x++) if (visible[x] === i) { k = x; break; }
    k = Math.max(0, Math.min(visible.length - 1, k + (event.key === "ArrowDown" ? 1 : -1)));
    if (!visible.length) return;
    state.row = C.id[visible[k]];
    if (k * ROW_H < listBox.scrollTop) listBox.scrollTop = k * ROW_H;
    else if ((k + 1) * ROW_H > listBox.scrollTop + listBox.clientHeight) listBox.scrollTop = (k + 1) * ROW_H - listBox.clientHeight;
    update(false);
  });
  window.addEventListener("hashchange", function () {
    if (location.hash.slice(1) !== fragment(true)) readFragment();
  });
  readFragment();
  root.dataset.firstScreenMs = performance.now().toFixed(1);
  root.dataset.ready = "1";
})();
