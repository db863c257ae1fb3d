// The flow editor's live character counts (the channel limits are in data-limit). No inline script:
// the page loads this file; htmx does the rest (live check, simulator).
(function () {
  function update(field) {
    var counter = document.querySelector('[data-count-for="' + field.id + '"]');
    if (!counter) return;
    var limit = parseInt(field.getAttribute("data-limit"), 10);
    var length = Array.from(field.value).length;
    counter.textContent = counter.textContent.replace(/^\d+ \//, length + " /");
    counter.classList.toggle("flow-over", length > limit);
  }
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (field && field.hasAttribute && field.hasAttribute("data-limit")) update(field);
  });
})();
