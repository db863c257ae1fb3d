// Casework tools in the inbox (templates/casework/*): a canned answer goes into the reply box in one
// tap (never sent: the worker reads it, completes what is left in {braces}, then presses Envoyer);
// a referral's text is copied to the clipboard. No inline script (Content-Security-Policy).
(function () {
  "use strict";
  if (window.__allerversCasework) return;
  window.__allerversCasework = true;

  function say(selector, text) {
    const status = document.querySelector(selector);
    if (status) status.textContent = text;
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-canned-insert]");
    if (button) {
      const box = document.getElementById("reply-text");
      if (!box) return;
      const text = button.dataset.text || "";
      const start = box.selectionStart || 0, end = box.selectionEnd || 0;
      const before = box.value.slice(0, start), after = box.value.slice(end);
      const glue = before && !before.endsWith("\n") ? "\n" : "";
      box.value = before + glue + text + after;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      const details = button.closest("details");
      if (details) details.open = false;
      box.focus();
      const from = before.length + glue.length;
      const left = box.value.slice(from, from + text.length).match(/\{[^{}\s]{1,30}\}/);
      if (left) {
        box.setSelectionRange(from + left.index, from + left.index + left[0].length);
        say("[data-canned-status]", "Réponse insérée. Complétez " + left[0] + ", relisez, puis envoyez.");
      } else {
        box.setSelectionRange(from + text.length, from + text.length);
        say("[data-canned-status]", "Réponse insérée. Relisez-la, puis envoyez.");
      }
      return;
    }
    const copy = event.target.closest("[data-copy-referral]");
    if (copy) {
      const box = copy.closest("[data-referral-done]").querySelector("[data-referral-text]");
      copyText(box, copy.closest("[data-referral-done]"));
    }
  });

  function copyText(box, root) {
    const done = function () { root.querySelector("[data-copy-result]").textContent = "✅ Copié. Collez-le où vous voulez."; };
    const fallback = function () {
      box.focus();
      box.select();
      try { document.execCommand("copy"); done(); } catch (e) {
        root.querySelector("[data-copy-result]").textContent = "Sélectionnez le texte et copiez-le.";
      }
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(box.value).then(done, fallback);
    } else {
      fallback();
    }
  }

  // A reply still holding a {variable} is not sent at the first press: the worker is told what is
  // left to complete; pressing Envoyer again sends the text as it is (their choice, never silent).
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form || form.id !== "reply-form") return;
    const box = document.getElementById("reply-text");
    const left = box && box.value.match(/\{[^{}\s]{1,30}\}/);
    if (!left || form.dataset.warned === box.value) return;
    form.dataset.warned = box.value;
    event.preventDefault();
    event.stopImmediatePropagation();
    say("[data-canned-status]", "⚠️ Il reste " + left[0] + " à compléter. Corrigez, ou appuyez encore sur Envoyer pour envoyer tel quel.");
    box.focus();
    const at = box.value.indexOf(left[0]);
    box.setSelectionRange(at, at + left[0].length);
  }, true);

  // After « Copier » / « Envoyer par e-mail »: copy at once, or open the e-mail.
  document.addEventListener("htmx:afterSwap", function (event) {
    const root = event.target && event.target.querySelector ? (event.target.matches("[data-referral-done]")
      ? event.target : event.target.querySelector("[data-referral-done]")) : null;
    const done = root || document.querySelector("[data-referral-done]:not([data-handled])");
    if (!done || done.dataset.handled) return;
    done.dataset.handled = "1";
    if (done.dataset.method === "copy") {
      copyText(done.querySelector("[data-referral-text]"), done);
    } else if (done.dataset.method === "email") {
      const link = done.querySelector("[data-referral-mailto]");
      if (link) link.focus();
    }
  });
})();
