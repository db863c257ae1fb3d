// Allervers: the appointment and follow-up sheet (templates/followups/). A refused form (400) comes
// back with its French reason: htmx shows it instead of ignoring the answer.
(function () {
  "use strict";
  if (window.allerversFollowups) return;
  window.allerversFollowups = true;
  document.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (target && target.closest && target.closest("#followups-panel") && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
