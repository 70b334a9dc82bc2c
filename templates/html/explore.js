/* symcnn: every number with a data-path opens a panel: symbol = general form = substituted form, value.
   Panels are built from the page's data (templates printed by symcnn's MathML printer, numbers as symcnn
   wrote them); no network, no eval. Click or Enter opens, Escape closes, #path opens one on load. */
(function () {
  "use strict";
  var NS = parse("").namespaceURI, MINUS = "\u2212", TIMES = "\u2062", DOT = "\u00b7";
  var data = null, open = null;

  function load() {
    if (data === null) {
      var source = document.getElementById("symcnn-data");
      data = source ? JSON.parse(source.textContent) : { panels: {} };
    }
    return data;
  }
  function el(tag, children, text) {
    var node = document.createElementNS(NS, tag);
    if (text !== undefined) node.textContent = text;
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function mo(text) { return el("mo", [], text); }
  function parse(markup) {
    var t = document.createElement("template");
    t.innerHTML = "<math>" + markup + "</math>";
    return t.content.firstChild;
  }
  /* a number the reader can open: focusable, a button announcing its path */
  function enable(node) {
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", node.getAttribute("data-path"));
  }
  function explorable(node, path) {
    var row = el("mrow", [node]);
    row.setAttribute("data-path", path);
    enable(row);
    return row;
  }
  /* a number's MathML, as SymcnnMathMLPrinter.number writes it */
  function number(text) {
    var m, neg, node;
    if ((m = /^(-?)\\frac\{(\d+)\}\{(\d+)\}$/.exec(text))) {
      neg = !!m[1];
      node = el("mfrac", [el("mn", [], m[2]), el("mn", [], m[3])]);
    } else if ((m = /^(-?)([\d.]+) \\times 10\^\{(-?\d+)\}$/.exec(text))) {
      neg = !!m[1];
      node = el("mrow", [el("mn", [], m[2]), mo("\u00d7"), el("msup", [el("mn", [], "10"), el("mn", [], m[3].replace("-", MINUS))])]);
    } else {
      neg = text.charAt(0) === "-";
      node = el("mn", [], neg ? text.slice(1) : text);
    }
    return { neg: neg, bare: node, signed: neg ? el("mrow", [mo(MINUS), node]) : node };
  }
  function isMo(node, texts) { return node !== null && node.localName === "mo" && texts.indexOf(node.textContent) >= 0; }
  function fenced(node) {
    var tall = node.querySelector && node.querySelector("mfrac, munder, munderover, mtable") !== null;
    var open = mo("("), close = mo(")");
    if (!tall) { open.setAttribute("stretchy", "false"); close.setAttribute("stretchy", "false"); }
    return el("mrow", [open, node, close]);
  }
  /* a slot filled with its number, signs and brackets as the printer writes substituted forms */
  function fillNumber(slot, text) {
    var n = number(text), prev = slot.previousElementSibling, next = slot.nextElementSibling;
    var product = isMo(prev, [TIMES, DOT]) || isMo(next, [TIMES, DOT]), out = n.signed;
    if (n.neg && product) out = fenced(n.signed);
    else if (n.neg && isMo(prev, ["+"])) { prev.textContent = MINUS; out = n.bare; }
    else if (n.neg && isMo(prev, [MINUS, "-"]) && prev.previousElementSibling !== null) out = fenced(n.signed);
    slot.parentNode.replaceChild(out, slot);
  }
  function form(template, atoms, substitute) {
    var d = load(), math = parse(d.templates[template]);
    math.querySelectorAll("[data-slot]").forEach(function (slot) {
      var atom = d.atoms[atoms[+slot.getAttribute("data-slot")]];
      if (substitute) { fillNumber(slot, d.numbers[atom[1]]); return; }
      var symbol = parse(d.symbols[atom[0]]).firstChild;
      slot.parentNode.replaceChild(atom[2] ? explorable(symbol, atom[2]) : symbol, slot);
    });
    if (substitute) math.querySelectorAll("mo").forEach(function (m) { if (m.textContent === TIMES) m.textContent = DOT; });
    return Array.prototype.slice.call(math.childNodes);
  }
  function line(children) {
    var wrap = document.createElement("div");
    wrap.className = "scroll";
    var math = el("math", [el("mrow", children)]);
    math.setAttribute("display", "block");
    wrap.appendChild(math);
    return wrap;
  }
  function text(tag, className, content) {
    var node = document.createElement(tag);
    node.className = className;
    node.textContent = content;
    return node;
  }
  /* the panel of a path, built from the data; null when the page has none */
  function build(path) {
    var d = load(), p = d.panels[path];
    if (!p) return null;
    var panel = document.createElement("div");
    panel.className = "explain";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "Where " + path + " comes from");
    panel.setAttribute("data-panel-for", path);
    panel.setAttribute("data-value", p[0]);
    panel.setAttribute("tabindex", "-1");
    var head = text("p", "explain-path", "");
    head.appendChild(text("code", "", path));
    var close = text("button", "explain-close", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    head.appendChild(close);
    panel.appendChild(head);
    var symbol = parse(d.symbols[p[1]]).firstChild;
    panel.appendChild(line([symbol, mo("=")].concat(form(p[2], p[3], false))));
    panel.appendChild(line([mo("=")].concat(form(p[2], p[3], true))));
    panel.appendChild(line([mo(p[5]), number(d.numbers[p[4]]).signed]));
    panel.lastChild.classList.add("explain-value");
    panel.appendChild(text("p", "note", "Value: " + p[0]));
    if (p[6]) panel.appendChild(text("p", "note", "Chain rule: each factor with a path opens its own panel."));
    return panel;
  }
  function inPanel(node) { return node.closest(".explain") !== null; }
  function onPage(path) {
    var found = document.querySelectorAll('[data-path="' + CSS.escape(path) + '"]');
    for (var i = 0; i < found.length; i++) if (!inPanel(found[i]) && found[i].closest(".symcnn")) return found[i];
    return null;
  }
  function light(on) {
    document.querySelectorAll(".lit, .source").forEach(function (n) { n.classList.remove("lit", "source"); });
    if (!on) return;
    var p = load().panels[on];
    document.querySelectorAll('[data-path="' + CSS.escape(on) + '"]').forEach(function (n) { n.classList.add("source"); });
    p[3].forEach(function (a) {
      var path = load().atoms[a][2];
      if (path) document.querySelectorAll('[data-path="' + CSS.escape(path) + '"]').forEach(function (n) {
        if (!inPanel(n)) n.classList.add("lit");
      });
    });
  }
  function closePanel(refocus) {
    if (open === null) return;
    var was = open;
    open = null;
    was.panel.remove();
    light(null);
    if (refocus && was.opener && was.opener.isConnected) was.opener.focus();
  }
  function show(path, opener, scroll) {
    var at = onPage(path) || (open && open.anchor) || null;
    var panel = build(path);
    if (panel === null || at === null) return false;
    var anchor = at.closest(".explain") ? open.anchor : at;
    closePanel(false);
    var block = anchor.closest("div.scroll, figure.figure, table, p") || anchor;
    block.parentNode.insertBefore(panel, block.nextSibling);
    for (var d = panel.closest("details"); d; d = d.parentElement.closest("details")) d.open = true;
    open = { panel: panel, opener: opener || anchor, anchor: anchor };
    light(path);
    if (scroll) panel.scrollIntoView({ block: "center" });
    panel.focus({ preventScroll: !scroll });
    return true;
  }
  document.addEventListener("click", function (e) {
    if (e.target.closest(".explain-close")) { closePanel(true); return; }
    var node = e.target.closest("[data-path]");
    if (node) show(node.getAttribute("data-path"), node, inPanel(node));
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { closePanel(true); return; }
    var node = e.target.closest && e.target.closest("[data-path]");
    if (node && (e.key === "Enter" || e.key === " ")) {
      e.preventDefault();
      show(node.getAttribute("data-path"), node, inPanel(node));
    }
  });
  function fromHash() {
    var path = decodeURIComponent(location.hash.slice(1));
    if (path) show(path, null, true);
  }
  document.querySelectorAll("[data-path]").forEach(enable);
  window.addEventListener("hashchange", fromHash);
  fromHash();
  /* printing shows every part, folded or not */
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
