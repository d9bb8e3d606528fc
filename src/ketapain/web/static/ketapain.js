// ketapain pages: the live part of the chair view and focus on form errors.
// Everything works without this script; it only refreshes and points.
(function () {
  "use strict";

  // Move focus to the first error summary so that keyboard and screen-reader users land on it.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector(".error-summary");
    if (summary) { summary.focus(); }
    markOverdue();
    var live = document.getElementById("live");
    if (live && live.dataset.src) {
      setInterval(function () { refresh(live); }, 30000);
      setInterval(markOverdue, 15000);
    }
  });

  // The reminder turns red when the next vital signs are due.
  function markOverdue() {
    document.querySelectorAll(".reminder[data-due]").forEach(function (el) {
      if (Date.now() >= Date.parse(el.dataset.due) && !el.classList.contains("overdue")) {
        el.classList.add("overdue");
        el.innerHTML = "<strong>Vital signs are due now</strong>";
      }
    });
  }

  // Replace the live block (chart, pump state, reminder) with a fresh one from the server.
  function refresh(live) {
    fetch(live.dataset.src, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { live.innerHTML = html; markOverdue(); } })
      .catch(function () { /* offline for a moment: keep what is shown */ });
  }
})();
