// Ember web UI: keeps the page live by re-fetching its server-rendered
// fragment (already escaped by the server), and stops a job after a
// confirmation. No framework, no build step.
(function () {
  "use strict";

  var content = document.getElementById("content");
  var status = document.getElementById("refresh-status");
  var url = content && content.getAttribute("data-fragment");
  var every = Number((content && content.getAttribute("data-refresh-ms")) || 2000);
  var inFlight = false;

  function say(text, cls) {
    if (!status) return;
    status.textContent = text;
    status.className = cls || "";
  }

  function refresh() {
    // Skip while hidden or still waiting: no pile-up on a slow scheduler.
    if (!url || inFlight || document.hidden) return;
    inFlight = true;
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        return r.text().then(function (html) {
          // A 404 body (job gone) is shown too, so the page says why.
          content.innerHTML = html;
          if (!r.ok) throw new Error("HTTP " + r.status);
        });
      })
      .then(function () {
        say("live · " + new Date().toLocaleTimeString(), "ok");
      })
      .catch(function (e) {
        say("not refreshed: " + e.message, "bad");
      })
      .then(function () {
        inFlight = false;
      });
  }

  if (url) {
    setInterval(refresh, every);
    document.addEventListener("visibilitychange", refresh);
    say("live", "ok");
  }

  // Delegated: the button is re-rendered with every refresh.
  document.addEventListener("click", function (ev) {
    var b = ev.target && ev.target.closest ? ev.target.closest("button[data-stop-url]") : null;
    if (!b) return;
    var name = b.getAttribute("data-job") || "";
    // confirm() blocks this page's script, so no refresh lands mid-dialog.
    if (!window.confirm("Stop job " + name + "? It stops after its current batch.")) return;
    b.disabled = true;
    b.textContent = "Stopping…";
    fetch(b.getAttribute("data-stop-url"), { method: "POST", credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) throw new Error(j.error || "HTTP " + r.status);
          return j;
        });
      })
      .then(function (j) {
        say("job " + name + " is " + j.state, "ok");
        refresh();
      })
      .catch(function (e) {
        say("stop failed: " + e.message, "bad");
        b.disabled = false;
        b.textContent = "Stop job";
      });
  });
})();
