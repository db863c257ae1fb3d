// Allervers inbox: small behaviours that templates would otherwise write inline (the
// Content-Security-Policy allows no inline script or handler): the reply form's reset, the actions
// sheet, the conversation opened at its newest message, older messages kept in place, and the
// alerts (page title, a sound, browser notifications, Web Push through static/sw.js).
(function () {
  "use strict";
  var SOUND_KEY = "allervers.inbox.sound";
  var baseTitle = document.title;
  var unseen = 0;
  var audio = null;
  var registration = null;

  // A form marked data-reset-after-send (the reply form) is emptied once htmx has sent it.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (form && form.matches && form.matches("form[data-reset-after-send]") && event.detail.successful) form.reset();
  });

  // The actions sheet (a <dialog>): opened by its button, closed by ✕, Escape or a tap outside.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
      if (dialog && !dialog.open) dialog.showModal();
      return;
    }
    var closer = event.target.closest && event.target.closest("[data-close-dialog]");
    if (closer) { closer.closest("dialog").close(); return; }
    if (event.target.tagName === "DIALOG" && event.target.open) {
      var box = event.target.getBoundingClientRect();
      var inside = event.clientY >= box.top && event.clientY <= box.bottom && event.clientX >= box.left && event.clientX <= box.right;
      if (!inside) event.target.close();
    }
  });

  // A conversation opens at its newest message; a live update keeps the newest in view when the
  // worker was reading it; a page of older messages does not move what is on screen.
  function scroller() { return document.scrollingElement || document.documentElement; }
  function nearBottom() { var s = scroller(); return s.scrollHeight - s.scrollTop - window.innerHeight < 160; }
  function toBottom() { var s = scroller(); s.scrollTop = s.scrollHeight; }
  var keepFromBottom = null;
  var followNewest = true;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.matches && elt.matches("[data-keep-scroll]")) {
      var s = scroller();
      keepFromBottom = s.scrollHeight - s.scrollTop;
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "conversation") followNewest = nearBottom();
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (keepFromBottom !== null && !(target && target.id === "conversation")) {
      var s = scroller();
      s.scrollTop = s.scrollHeight - keepFromBottom;
      keepFromBottom = null;
    } else if (target && target.id === "conversation" && followNewest) {
      toBottom();
    }
  });

  // Alerts ------------------------------------------------------------------------------------
  function showCount() { document.title = (unseen > 0 ? "(" + unseen + ") " : "") + baseTitle; }
  function seen() { if (unseen) { unseen = 0; showCount(); } }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) seen(); });
  document.addEventListener("pointerdown", seen, true);
  document.addEventListener("keydown", seen, true);

  function soundOn() { try { return localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; } }
  function beep() {
    if (!soundOn()) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator(), gain = audio.createGain();
      osc.type = "sine"; osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + 0.35);
      window.__allerversBeeps = (window.__allerversBeeps || 0) + 1;
    } catch (e) { /* no audio: the title and the notification remain */ }
  }
  function showSoundButton(button) {
    var on = soundOn();
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "🔔 Son activé" : "🔕 Son coupé";
  }

  function words() {
    var bar = document.querySelector("[data-inbox]");
    return bar ? bar.dataset : {};
  }
  function browserNotification(kind, conversation) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    var w = words();
    var title = kind === "waiting" ? w.notifyWaiting : w.notifyMessage;
    var options = { body: (w.notifyBody || "") + conversation, tag: "conversation-" + conversation,
                    data: { url: "/inbox/conversations/" + conversation } };
    if (registration && registration.showNotification) registration.showNotification(title, options);
    else { try { new Notification(title, options); } catch (e) { /* phones: only the service worker can */ } }
  }

  document.addEventListener("htmx:sseMessage", function (event) {
    var detail = event.detail || {};
    // once per message: other elements listening to sse:notify (the lists) raise it too
    if (detail.type !== "notify" || !event.target || event.target.id !== "notify-feed") return;
    var data = {};
    try { data = JSON.parse(detail.data); } catch (e) { return; }
    unseen += 1;
    showCount();
    beep();
    browserNotification(data.kind, data.conversation);
  });

  function urlKey(base64) {
    var padded = (base64 + "===".slice((base64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }
  function subscribePush() {
    var bar = document.querySelector("[data-inbox]");
    if (!bar || !bar.dataset.push || !registration || !registration.pushManager) return Promise.resolve(null);
    return fetch("/inbox/push/key", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer) return null;
        return registration.pushManager.getSubscription().then(function (existing) {
          return existing || registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: urlKey(answer.key) });
        });
      })
      .then(function (subscription) {
        if (!subscription) return null;
        return fetch("/inbox/push/subscribe", { method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": bar.dataset.csrf },
          body: JSON.stringify(subscription) });
      })
      .catch(function () { return null; });
  }

  function ready() {
    var bar = document.getElementById("reply-bar");
    if (bar) {  // the page keeps room for the fixed reply box, whatever its height
      var fit = function () {
        var follow = nearBottom();
        document.documentElement.style.setProperty("--reply-h", bar.offsetHeight + "px");
        if (follow) toBottom();
      };
      fit();
      if ("ResizeObserver" in window) new ResizeObserver(fit).observe(bar);
    }
    if (document.querySelector("[data-conversation-page]")) {
      toBottom();
      window.addEventListener("load", function () { toBottom(); });
    }
    var sound = document.querySelector("[data-sound-toggle]");
    if (sound) {
      showSoundButton(sound);
      sound.addEventListener("click", function () {
        try { localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on"); } catch (e) { /* private mode */ }
        showSoundButton(sound);
        if (soundOn()) { audio = audio || new (window.AudioContext || window.webkitAudioContext)(); }
      });
    }
    var enable = document.querySelector("[data-notify-enable]");
    if (enable && "Notification" in window && Notification.permission !== "denied") {
      if (Notification.permission !== "granted") enable.hidden = false;
      enable.addEventListener("click", function () {
        Notification.requestPermission().then(function (answer) {
          if (answer === "granted") { enable.hidden = true; subscribePush(); }
        });
      });
    }
    if ("serviceWorker" in navigator && document.querySelector("[data-inbox]")) {
      navigator.serviceWorker.register("/inbox/sw.js", { scope: "/inbox" }).then(function (reg) {
        registration = reg;
        if ("Notification" in window && Notification.permission === "granted") subscribePush();
      }).catch(function () { /* no service worker: alerts while the page is open still work */ });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready); else ready();
})();
