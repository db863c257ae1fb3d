// Allervers inbox: small behaviours that templates would otherwise write inline (the
// Content-Security-Policy allows no inline script or handler).
(function () {
  "use strict";
  // A form marked data-reset-after-send (the reply form) is emptied once htmx has sent it.
  document.addEventListener("htmx:afterRequest", function (event) {
    const form = event.target;
    if (form && form.matches && form.matches("form[data-reset-after-send]") && event.detail.successful) form.reset();
  });
})();
