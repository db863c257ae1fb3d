// Allervers: record a voice note in the browser (MediaRecorder) and send it. Used by the inbox
// (templates/inbox/_voice.html) and the web chat. Loaded once; works across htmx swaps.
(function () {
  "use strict";
  if (window.AllerversVoice) return;
  const TYPES = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/webm", "audio/mp4"];

  function pickType() {
    if (!window.MediaRecorder) return null;
    return TYPES.find(t => MediaRecorder.isTypeSupported(t)) || "";
  }

  function extension(type) {
    return type.indexOf("ogg") >= 0 ? "ogg" : type.indexOf("mp4") >= 0 ? "m4a" : "webm";
  }

  // One recording at a time. onDone(blob, filename) is called when it stops; onError(text, code)
  // when it cannot start (code "unsupported" or "denied": the web chat says it in its own words).
  function Recorder(maxSeconds, onTick, onDone, onError) {
    let recorder = null, stream = null, chunks = [], timer = null, started = 0;
    this.recording = () => recorder !== null && recorder.state === "recording";
    this.start = async function () {
      const type = pickType();
      if (type === null || !navigator.mediaDevices) { onError("L'enregistrement n'est pas possible dans ce navigateur.", "unsupported"); return; }
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (error) {
        onError("Micro non autorisé. Autorisez le micro pour enregistrer.", "denied"); return;
      }
      chunks = [];
      recorder = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
      recorder.ondataavailable = e => { if (e.data && e.data.size) chunks.push(e.data); };
      recorder.onstop = () => {
        clearInterval(timer);
        stream.getTracks().forEach(t => t.stop());
        const mime = recorder.mimeType || type || "audio/webm";
        recorder = null;
        onDone(new Blob(chunks, { type: mime }), "message-vocal." + extension(mime));
      };
      recorder.start(250);
      started = Date.now();
      onTick(0);
      timer = setInterval(() => {
        const seconds = Math.floor((Date.now() - started) / 1000);
        onTick(seconds);
        if (seconds >= maxSeconds) this.stop();
      }, 250);
    };
    this.stop = function () { if (this.recording()) recorder.stop(); };
  }

  function clock(seconds) {
    return Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
  }

  // The inbox: a record button in the conversation page (re-rendered by htmx: query each time).
  let inboxRecorder = null, shownStatus = "", shownLabel = "";
  function box() { return document.querySelector("[data-voice-url]"); }
  function say(text) { shownStatus = text; const b = box(); if (b) b.querySelector("[data-voice-status]").textContent = text; }
  function label(text) { shownLabel = text; const b = box(); if (b) b.querySelector("[data-voice-record]").textContent = text; }
  // The timeline is re-rendered by htmx on live updates: keep what the worker was told.
  document.addEventListener("htmx:afterSwap", function () {
    if (shownStatus) say(shownStatus);
    if (shownLabel) label(shownLabel);
  });

  async function sendInbox(blob, filename) {
    const b = box();
    if (!b) return;
    say("⏳ Envoi…");
    const form = new FormData();
    form.append("csrf_token", b.dataset.csrf);
    form.append("audio", blob, filename);
    try {
      const response = await fetch(b.dataset.voiceUrl, { method: "POST", body: form, credentials: "same-origin",
                                                         headers: { "HX-Request": "true", "X-CSRF-Token": b.dataset.csrf } });
      if (response.ok) {
        say("✅ Message vocal envoyé.");
        document.body.dispatchEvent(new Event("refresh-timeline"));
      } else {
        let detail = "le message vocal n'est pas parti.";
        try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
        say("⚠️ " + detail);
      }
    } catch (error) {
      say("⚠️ Réseau indisponible : le message vocal n'est pas parti.");
    }
    label("🎤 Enregistrer un message vocal");
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-voice-record]");
    if (!button) return;
    const b = box();
    if (!inboxRecorder) {
      inboxRecorder = new Recorder(Number(b.dataset.maxSeconds || 300),
        s => { label("⏹️ Arrêter et envoyer"); say("🔴 Enregistrement " + clock(s)); },
        sendInbox,
        text => say("⚠️ " + text));
    }
    if (inboxRecorder.recording()) inboxRecorder.stop(); else inboxRecorder.start();
  });

  window.AllerversVoice = { Recorder: Recorder, clock: clock, supported: () => pickType() !== null };
})();
