// Allervers web chat: bubbles, buttons, live replies (server-sent events), no reload.
(function () {
  "use strict";
  const thread = document.getElementById("thread");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const seen = new Set();
  const LEGACY_KEY = "allervers-uid";
  // Who the person is: an identity the server issues, in an HttpOnly cookie this script never sees
  // (never in a URL or a body). A page of the previous version kept a uid in localStorage: it is
  // exchanged once for the cookie (the conversation continues), then forgotten.
  async function identify() {
    let legacy = null;
    try { legacy = localStorage.getItem(LEGACY_KEY); } catch (e) { /* storage disabled */ }
    const response = await fetch("/chat/api/identity", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(legacy ? { legacy_uid: legacy } : {})
    });
    if (!response.ok) throw new Error("identity " + response.status);
    if (legacy) { try { localStorage.removeItem(LEGACY_KEY); } catch (e) { /* storage disabled */ } }
  }
  let identity = identify();
  // A request refused for want of identity (say it was purged): ask for one once, then retry.
  async function call(url, options) {
    await identity;
    let response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
    if (response.status === 401) {
      identity = identify();
      await identity;
      response = await fetch(url, Object.assign({ credentials: "same-origin" }, options));
    }
    return response;
  }
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/-/g, "").slice(0, 32);

  function bubble(message) {
    if (message.id && seen.has(message.id)) return;
    if (message.id) seen.add(message.id);
    const row = document.createElement("div");
    row.className = "bubble " + (message.from === "me" ? "me" : "them");
    row.textContent = message.text || "";
    if (message.id) row.dataset.id = message.id;
    if (message.audio || message.audioUrl) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "metadata";
      audio.src = message.audioUrl || ("/chat/api/media/" + encodeURIComponent(message.audio));
      row.appendChild(document.createElement("br"));
      row.appendChild(audio);
    }
    thread.appendChild(row);
    if (message.choices && message.choices.length) {
      const group = document.createElement("div");
      group.className = "choices";
      message.choices.forEach(function (choice) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "choice";
        button.textContent = choice[1];
        button.addEventListener("click", function () {
          group.querySelectorAll("button").forEach(b => b.disabled = true);
          send({ choice: choice[0] }, choice[1]);
        });
        group.appendChild(button);
      });
      thread.appendChild(group);
    }
    thread.scrollTop = thread.scrollHeight;
  }

  // The source the page was opened from (a flyer's QR code: /chat?src=<code>), sent with each message.
  const source = new URLSearchParams(window.location.search).get("src");

  async function send(body, shownText) {
    bubble({ from: "me", text: shownText });
    body.client_id = newId();
    if (source && /^[A-Za-z0-9]{4,16}$/.test(source)) body.src = source;
    let response = null;
    try {
      response = await call("/chat/api/messages", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
      });
    } catch (error) { /* network down: said below */ }
    if (!response || !response.ok) bubble({ from: "bot", text: "⚠️ Le message n'est pas parti. Réessayez dans un instant." });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text }, text);
  });

  document.getElementById("locate").addEventListener("click", function () {
    if (!navigator.geolocation) { bubble({ from: "bot", text: "Votre navigateur ne partage pas la position. Écrivez votre code postal." }); return; }
    navigator.geolocation.getCurrentPosition(function (position) {
      send({ location: [position.coords.latitude, position.coords.longitude] }, "📍 Ma position");
    }, function () { bubble({ from: "bot", text: "Position non partagée. Écrivez votre code postal 📍" }); });
  });

  // Voice notes: 🎤 starts recording, ⏹️ stops and sends (limit from the page, 5 minutes by default).
  const record = document.getElementById("record");
  if (record && window.AllerversVoice && window.AllerversVoice.supported()) {
    const maxSeconds = Number(document.body.dataset.maxVoice || 300);
    const recorder = new window.AllerversVoice.Recorder(maxSeconds,
      function (seconds) { record.textContent = "⏹️"; input.placeholder = "🔴 Enregistrement " + window.AllerversVoice.clock(seconds) + " — touchez ⏹️ pour envoyer"; },
      async function (blob, filename) {
        record.textContent = "🎤";
        input.placeholder = "Écrivez ici…";
        bubble({ from: "me", text: "🎤 Message vocal", audioUrl: URL.createObjectURL(blob) });
        const form = new FormData();
        form.append("client_id", newId());
        form.append("audio", blob, filename);
        try {
          const response = await call("/chat/api/voice", { method: "POST", body: form });
          if (!response.ok) {
            let text = "⚠️ Le message vocal n'est pas parti. Réessayez, ou écrivez.";
            try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
            bubble({ from: "bot", text: text });
          }
        } catch (error) {
          bubble({ from: "bot", text: "⚠️ Le message vocal n'est pas parti. Réessayez dans un instant." });
        }
      },
      function (text) { bubble({ from: "bot", text: "⚠️ " + text + " Vous pouvez aussi écrire." }); });
    record.addEventListener("click", function () { if (recorder.recording()) recorder.stop(); else recorder.start(); });
  } else if (record) {
    record.hidden = true;
  }

  // Listen first, then load the history: a reply published before the live stream was open would
  // otherwise be lost (the first /start raced the stream). After a reconnection, the history fills
  // the gap with the bot's messages missed meanwhile (bubbles are deduplicated by id).
  let started = false;
  function load() {
    return call("/chat/api/history").then(r => r.json()).then(function (data) {
      if (started) {
        data.messages.filter(m => m.from !== "me").forEach(bubble);
        return;
      }
      started = true;
      data.messages.forEach(bubble);
      if (!data.messages.length) send({ text: "/start" }, "👋 Bonjour");
    }).catch(function () { /* the next (re)connection of the stream loads it again */ });
  }

  let retries = 0;
  function connect() {
    const source = new EventSource("/chat/api/stream", { withCredentials: true });
    source.addEventListener("message", function (event) { bubble(JSON.parse(event.data)); });
    source.addEventListener("open", function () { retries = 0; load(); });
    source.onerror = function () {
      // EventSource reconnects by itself after a network error, but not after a refusal (no
      // identity any more): then ask for one and open the stream again, a little later each time.
      if (source.readyState !== EventSource.CLOSED) return;
      retries += 1;
      setTimeout(function () { identity = identify(); identity.then(connect, connect); },
                 Math.min(30000, 1000 * retries));
    };
  }

  identity.then(connect, function () {
    bubble({ from: "bot", text: "⚠️ Le chat n'a pas pu démarrer. Rechargez la page dans un instant." });
  });
  setTimeout(function () { if (!started) load(); }, 5000);  // no live stream (a proxy?): still start
})();
