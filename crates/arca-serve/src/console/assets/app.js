// Arca's console: small enhancements over server-rendered pages. Every page
// works without this file; with it, times read in the browser's zone, job
// progress moves live, and destructive buttons ask first.
"use strict";

(function () {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });

  // Times in the browser's zone, the zone named.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      const d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.textContent = fmt.format(d);
        t.title = t.getAttribute("datetime");
      }
    });
  }

  // A datetime-local value (the browser's zone) for an RFC 3339 time.
  function localInput(iso) {
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) +
      "T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + " B" : n.toFixed(1) + " " + u[i];
  }

  function showProgress(j) {
    document.querySelectorAll('.progress[data-job="' + j.id + '"]').forEach(function (el) {
      const bar = el.querySelector("progress");
      const text = el.querySelector(".progress-text");
      const p = j.progress || {};
      if (p.bytes_total > 0) {
        bar.max = p.bytes_total;
        bar.value = Math.min(p.bytes_done, p.bytes_total);
        text.textContent = Math.round(100 * p.bytes_done / p.bytes_total) + "% · " +
          bytes(p.bytes_done) + " of " + bytes(p.bytes_total);
      } else {
        text.textContent = j.phase;
      }
    });
    document.querySelectorAll('[data-phase="' + j.id + '"]').forEach(function (el) {
      el.textContent = j.phase;
    });
    document.querySelectorAll('[data-rate="' + j.id + '"]').forEach(function (el) {
      const p = j.progress || {};
      if (p.rate) {
        el.textContent = bytes(p.rate) + "/s" +
          (p.eta_seconds != null ? " · " + p.eta_seconds + " s left" : "");
      }
    });
  }

  // Live progress from the daemon's job stream (server-sent events).
  function follow() {
    const one = document.querySelector("[data-job-id]");
    const list = document.querySelector("[data-live-jobs]");
    if (!one && !list) return;
    const es = new EventSource("/jobs/stream");
    es.addEventListener("progress", function (e) {
      const live = JSON.parse(e.data);
      live.forEach(showProgress);
      // A job that ended before the stream opened: no longer live.
      if (one && ["queued", "running"].indexOf(one.dataset.state) >= 0 &&
          !live.some(function (j) { return j.id === one.dataset.jobId; })) {
        es.close();
        location.reload();
      }
    });
    es.addEventListener("job", function (e) {
      const j = JSON.parse(e.data);
      showProgress(j);
      const ended = ["succeeded", "failed", "cancelled", "interrupted"].indexOf(j.state) >= 0;
      if (one && one.dataset.jobId === j.id && j.state !== one.dataset.state) {
        if (ended) {
          // The finished job: its outcome, error and details as the server renders them.
          es.close();
          location.reload();
        } else {
          one.dataset.state = j.state;
          const s = document.querySelector("#job-state .state");
          if (s) { s.textContent = j.state; s.className = "state state-" + j.state; }
        }
      } else if (list && (ended || !document.getElementById("live-" + j.id))) {
        es.close();
        location.reload();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("input[data-tz]").forEach(function (i) { i.value = zone; });
    document.querySelectorAll("[data-tz-name]").forEach(function (s) { s.textContent = zone; });

    // The restore time: limited to the recoverable window, in local time.
    document.querySelectorAll("input[data-min]").forEach(function (i) {
      i.min = localInput(i.dataset.min);
      i.max = localInput(i.dataset.max);
    });

    document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });

    // Destructive buttons ask first (restores and removals ask for a typed name).
    document.querySelectorAll('form[action$="/cancel"]').forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!confirm("Cancel this job? What it has done so far is discarded.")) e.preventDefault();
      });
    });

    // Sorting the rows of the page shown, by a column's values.
    document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th, _, all) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "sort";
      b.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(b);
      b.addEventListener("click", function () {
        const table = th.closest("table");
        const idx = Array.prototype.indexOf.call(th.parentNode.children, th);
        const asc = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th[aria-sort]").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        const rows = Array.from(table.tBodies[0].rows);
        const key = function (r) {
          const v = r.cells[idx] && r.cells[idx].dataset.value;
          return th.dataset.sort === "num" ? Number(v) : v || "";
        };
        rows.sort(function (a, b2) {
          const x = key(a), y = key(b2);
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
      });
    });

    follow();
  });

  document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
})();
