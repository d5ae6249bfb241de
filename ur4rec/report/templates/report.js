// The report page's script. Every string from the data (LLM texts, titles, ids) is written with textContent,
// never as HTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);

  // A plot shows one item at a time (the first at load); a plot of several has a button per item.
  function embed(div, itemId) {
    div.replaceChildren();
    div.dataset.item = itemId;
    if (window.Bokeh && data.plots[itemId]) { Bokeh.embed.embed_item(data.plots[itemId], div.id); }
  }
  document.querySelectorAll("div.plot").forEach(function (div) { embed(div, div.dataset.item); });
  document.querySelectorAll("button.choice").forEach(function (b) {
    b.addEventListener("click", function () {
      embed(document.getElementById(b.dataset.plot), b.dataset.item);
      b.parentNode.querySelectorAll("button").forEach(function (o) { o.classList.toggle("active", o === b); });
    });
  });

  var drill = data.drill;
  if (!drill) { return; }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function title(id) {
    var t = drill.titles[String(id)];
    return t === undefined ? "item " + id : t;
  }
  function rankClass(r) {
    if (r === null || r === undefined) { return ""; }
    return r === 1 ? "rank-1" : (r <= 10 ? "rank-top10" : (r > drill.n_candidates / 2 ? "rank-low" : ""));
  }

  var backbones = [], arms = [];
  drill.runs.forEach(function (r) {
    if (backbones.indexOf(r.backbone) < 0) { backbones.push(r.backbone); }
    if (arms.indexOf(r.arm) < 0) { arms.push(r.arm); }
  });

  function rankTable(list) {
    var table = el("table", {"class": "ranks"});
    var head = el("tr");
    head.appendChild(el("th", {}, "backbone \\ arm"));
    arms.forEach(function (a) { head.appendChild(el("th", {}, a)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    backbones.forEach(function (b) {
      var tr = el("tr");
      tr.appendChild(el("th", {}, b));
      arms.forEach(function (a) {
        var ranks = [], tops = [], best = null;
        drill.runs.forEach(function (r, j) {
          if (r.backbone !== b || r.arm !== a) { return; }
          var rank = list.rank[j];
          ranks.push(rank === null ? "–" : String(rank));
          if (rank !== null && (best === null || rank < best)) { best = rank; }
          if (list.top[j] !== null) { tops.push("seed " + r.seed + " top: " + title(list.top[j])); }
        });
        var td = el("td", {"class": "num " + rankClass(best), "title": tops.join("\n")}, ranks.length ? ranks.join(" / ") : "");
        td.dataset.arm = a;
        td.dataset.backbone = b;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    return table;
  }

  function attentionTable(list, j) {
    var a = list.att[String(j)], run = drill.runs[j];
    var wrap = el("div", {"class": "attention"});
    wrap.appendChild(el("h5", {}, "Retriever attention over Z: " + run.backbone + " / " + run.arm + " / seed " + run.seed
      + " (mean over layers and heads)"));
    var table = el("table");
    var head = el("tr");
    head.appendChild(el("th", {}, "key of Z"));
    head.appendChild(el("th", {}, "target: " + title(list.target)));
    head.appendChild(el("th", {}, "top-ranked: " + title(a.top)));
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    a.z.forEach(function (id, k) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, id === 0 ? "LLM preference of the user" : title(id)));
      [[a.target_w[k], ""], [a.top_w[k], " top"]].forEach(function (pair) {
        var td = el("td", {"class": "num"});
        var bar = el("span", {"class": "bar" + pair[1]});
        bar.style.width = Math.round(pair[0] * 120) + "px";
        td.appendChild(bar);
        td.appendChild(document.createTextNode(pair[0].toFixed(3)));
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    if (a.rest > 0) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, "the other " + a.rest + " history keys (sum)"));
      tr.appendChild(el("td", {"class": "num"}, a.rest_target.toFixed(3)));
      tr.appendChild(el("td", {"class": "num"}, a.rest_top.toFixed(3)));
      body.appendChild(tr);
    }
    wrap.appendChild(table);
    return wrap;
  }

  function show(user) {
    var view = document.getElementById("drill-view");
    view.replaceChildren();
    var box = el("div", {"id": "user-" + user.id, "class": "user-view"});
    box.appendChild(el("h3", {}, "User " + user.id + (user.raw ? " (raw id " + user.raw + ")" : "")));
    box.appendChild(el("h4", {}, "What the LLM saw: the user's history (oldest first)"));
    var ol = el("ol", {"class": "history"});
    user.history.forEach(function (id) { ol.appendChild(el("li", {}, title(id))); });
    if (!user.history.length) { ol.appendChild(el("li", {}, "(none recorded)")); }
    box.appendChild(ol);
    box.appendChild(el("h4", {}, "What the LLM wrote" + (user.status ? " (status: " + user.status + ")" : "")));
    box.appendChild(el("div", {"class": "pref"}, user.pref === null ? "(no preference text)" : user.pref));
    box.appendChild(el("h4", {}, user.lists.length + " test lists: the target's rank under every run (seeds separated by /; hover a cell for the top-ranked candidate)"));
    user.lists.forEach(function (list, i) {
      var d = el("details", {"class": "list"});
      if (i === 0) { d.open = true; }
      d.appendChild(el("summary", {}, "list " + list.sample + ": target " + title(list.target)));
      d.appendChild(rankTable(list));
      var atts = el("div", {"class": "attentions"});
      Object.keys(list.att).forEach(function (j) { atts.appendChild(attentionTable(list, Number(j))); });
      if (atts.childNodes.length) { d.appendChild(atts); }
      var cands = el("details");
      cands.appendChild(el("summary", {}, list.candidates.length + " candidates, in the list's stored order"));
      var co = el("ol", {"class": "cands"});
      list.candidates.forEach(function (id) {
        co.appendChild(el("li", id === list.target ? {"class": "target"} : {}, title(id)));
      });
      cands.appendChild(co);
      d.appendChild(cands);
      box.appendChild(d);
    });
    view.appendChild(box);
    document.querySelectorAll("#drill-users button").forEach(function (b) {
      b.classList.toggle("active", b.dataset.user === String(user.id));
    });
  }

  var usersBox = document.getElementById("drill-users");
  drill.users.forEach(function (user) {
    var b = el("button", {"type": "button", "id": "open-user-" + user.id}, "user " + user.id + " · " + user.lists.length + " lists");
    b.dataset.user = String(user.id);
    b.addEventListener("click", function () { show(user); history.replaceState(null, "", "#user-" + user.id); });
    usersBox.appendChild(b);
  });
  document.getElementById("drill-filter").addEventListener("input", function (e) {
    var q = e.target.value.trim();
    usersBox.querySelectorAll("button").forEach(function (b) { b.hidden = q !== "" && b.dataset.user.indexOf(q) < 0; });
  });
  var wanted = /^#user-(\d+)$/.exec(location.hash);
  var first = wanted && drill.users.filter(function (u) { return String(u.id) === wanted[1]; })[0];
  if (first) { show(first); }
  document.body.dataset.ready = "1";
})();
