// Allervers web chat: bubbles, buttons, live replies (server-sent events), no reload.
// Its words come from the page (templates/webchat.html: JSON in data-words, webchat/words/): none here.
(function () {
  "use strict";
  const thread = document.getElementById("thread");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const hint = document.getElementById("hint");
  const seen = new Set();
  let recorder = null;  // the voice recorder, when the browser can record (below)
  const LEGACY_KEY = "allervers-uid";
  const DRAFT_KEY = "allervers-draft";
  const page = JSON.parse(document.body.dataset.words);
  const LOCALE = page.locale, DIR = page.dir, WORDS = page.words;

  // A page word, its {placeholders} filled.
  function say(key, values) {
    let text = WORDS[key] || key;
    Object.keys(values || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(values[name])); });
    return text;
  }
  // An element in the page's language (the words around the messages).
  function pageWords(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    element.lang = LOCALE;
    element.dir = DIR;
    element.textContent = text;
    return element;
  }

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

  // The draft: kept in this browser while it is typed, so that an expired session, a failed send or
  // a reload never loses it; forgotten once sent. Live updates never touch the input.
  function keepDraft(value) {
    try { if (value) localStorage.setItem(DRAFT_KEY, value); else localStorage.removeItem(DRAFT_KEY); } catch (e) { /* storage disabled */ }
  }
  try { const draft = localStorage.getItem(DRAFT_KEY); if (draft && !input.value) input.value = draft; } catch (e) { /* storage disabled */ }
  input.addEventListener("input", function () { keepDraft(input.value); });

  // A question answered (a tap, a typed answer) or followed by a newer one: its buttons stop working.
  function retire(chosen) {
    thread.querySelectorAll(".choices:not(.answered)").forEach(function (group) {
      group.classList.add("answered");
      group.querySelectorAll("button").forEach(function (button) {
        button.disabled = true;
        if (chosen && button.textContent === chosen) button.classList.add("chosen");
      });
    });
  }

  // A new message while the tab is hidden: "(2) Nouveau message — …" until the person comes back.
  const baseTitle = document.title;
  let unseen = 0;
  function notice() {
    if (!document.hidden) return;
    unseen += 1;
    document.title = say("title_new", { count: unseen, title: baseTitle });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });

  function speaker(message) {
    if (message.from === "me") return say("speaker.me");
    if (message.speaker) return say("speaker.worker", { name: message.speaker });
    return say("speaker.bot");
  }

  function link(title, url) {
    if (!/^(https:\/\/|tel:)/.test(url)) return null;  // the server keeps only these; checked again
    const a = document.createElement("a");
    a.className = "link-button";
    a.href = url;
    a.textContent = title;
    if (url.indexOf("https://") === 0) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.appendChild(pageWords("span", "visually-hidden", " " + say("new_tab")));
    }
    return a;
  }

  // One message: a bubble that starts with who speaks (read by screen readers only), in the
  // message's language and direction; its links and place as words; its buttons below.
  function bubble(message, live) {
    if (message.id && seen.has(message.id)) return;
    if (message.id) seen.add(message.id);
    const me = message.from === "me";
    const row = document.createElement("div");
    row.className = "bubble " + (me ? "me" : "them");
    if (message.id) { row.dataset.id = message.id; row.id = "m-" + message.id; }
    if (message.locale) { row.lang = message.locale; row.dir = message.dir || "auto"; }
    else row.dir = "auto";  // what the person typed, in whatever language
    row.appendChild(pageWords("span", "visually-hidden speaker", speaker(message) + " "));
    const text = document.createElement("span");
    text.className = "text";
    // A position, a voice note or a file sent earlier, in the history: the page words it.
    const KINDS = { location: "my_position", voice: "voice_note", file: "file" };
    text.textContent = message.text || (KINDS[message.kind] ? say(KINDS[message.kind]) : "");
    row.appendChild(text);
    const links = (message.links || []).map(l => Array.isArray(l) && l.length === 2 ? link(String(l[0]), String(l[1])) : null).filter(Boolean);
    if (links.length) {
      const list = document.createElement("span");
      list.className = "links";
      links.forEach(a => list.appendChild(a));
      row.appendChild(list);
    }
    if (message.venue && message.venue.url) {
      const place = document.createElement("span");
      place.className = "venue";
      const map = link(say("map"), message.venue.url);
      if (map) { map.lang = LOCALE; map.dir = DIR; place.appendChild(map); }
      const where = [message.venue.title, message.venue.address].filter(Boolean).join(" — ");
      if (where) {
        const address = document.createElement("span");
        address.className = "address";
        address.textContent = where;
        place.appendChild(address);
      }
      row.appendChild(place);
    }
    if (message.audio || message.audioUrl) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "metadata";
      audio.src = message.audioUrl || ("/chat/api/media/" + encodeURIComponent(message.audio));
      row.appendChild(audio);
    }
    const question = message.choices && message.choices.length;
    if (me) retire(message.text);  // the person answered: by a tap, or in words
    else if (question) retire(null);  // a newer question
    thread.appendChild(row);
    if (question) {
      const group = document.createElement("div");
      group.className = "choices";
      group.setAttribute("role", "group");
      if (row.id) group.setAttribute("aria-labelledby", row.id);
      message.choices.forEach(function (choice) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "choice";
        // The buttons flow the conversation's way; each one's words read in the message's language.
        if (message.locale) { button.lang = message.locale; button.dir = message.dir || "auto"; }
        button.textContent = choice[1];
        button.addEventListener("click", function () {
          if (button.disabled) return;
          send({ choice: choice[0] }, choice[1]);
        });
        group.appendChild(button);
      });
      thread.appendChild(group);
    }
    thread.scrollTop = thread.scrollHeight;
    if (live && !me) {
      notice();
      // Buttons appeared: the question takes the focus, so that it is read and its buttons come
      // next; never while the person is typing or recording.
      const busy = document.activeElement === input || (recorder && recorder.recording());
      if (question && !busy) { row.tabIndex = -1; row.focus({ preventScroll: true }); }
    }
  }
  function problem(key) { bubble({ from: "bot", text: say(key), locale: LOCALE, dir: DIR }, false); }

  // The source the page was opened from (a flyer's QR code: /chat?src=<code>), sent with each message.
  const source = new URLSearchParams(window.location.search).get("src");

  async function send(body, shownText) {
    bubble({ from: "me", text: shownText });
    body.client_id = newId();
    body.locale = LOCALE;  // a hint: the language the page opened in
    if (source && /^[A-Za-z0-9]{4,16}$/.test(source)) body.src = source;
    let response = null;
    try {
      response = await call("/chat/api/messages", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
      });
    } catch (error) { /* network down: said below */ }
    if (!response || !response.ok) { problem("not_sent"); return false; }
    return true;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const sent = await send({ text: text }, text);
    if (!sent && !input.value) input.value = text;  // not sent: the words come back, to try again
    keepDraft(input.value);
  });

  document.getElementById("locate").addEventListener("click", function () {
    if (!navigator.geolocation) { problem("no_geolocation"); return; }
    navigator.geolocation.getCurrentPosition(function (position) {
      send({ location: [position.coords.latitude, position.coords.longitude] }, say("my_position"));
    }, function () { problem("position_refused"); });
  });

  // Voice notes: 🎤 starts recording, ⏹️ stops and sends (limit from the page, 5 minutes by default).
  // The hint sits above the composer, on as many lines as it needs (never cut off on a phone).
  const record = document.getElementById("record");
  function recordLabel(key, glyph) {
    record.textContent = glyph;
    record.title = say(key);
    record.setAttribute("aria-label", say(key));
  }
  if (record && window.AllerversVoice && window.AllerversVoice.supported()) {
    const maxSeconds = Number(document.body.dataset.maxVoice || 300);
    const clock = document.createElement("span");
    clock.className = "clock";
    clock.setAttribute("aria-hidden", "true");  // announced once, not every second
    recorder = new window.AllerversVoice.Recorder(maxSeconds,
      function (seconds) {
        if (hint.hidden) {
          recordLabel("record_stop", "⏹️");
          hint.textContent = say("recording") + " ";
          hint.appendChild(clock);
          hint.hidden = false;
        }
        clock.textContent = window.AllerversVoice.clock(seconds);
      },
      async function (blob, filename) {
        recordLabel("record", "🎤");
        hint.hidden = true;
        hint.textContent = "";
        bubble({ from: "me", text: say("voice_note"), audioUrl: URL.createObjectURL(blob) });
        const upload = new FormData();
        upload.append("client_id", newId());
        upload.append("audio", blob, filename);
        try {
          const response = await call("/chat/api/voice", { method: "POST", body: upload });
          if (!response.ok) {
            let text = say("voice_not_sent");
            try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
            bubble({ from: "bot", text: text, locale: "fr", dir: "ltr" }, false);  // the server's words are French
          }
        } catch (error) {
          problem("voice_offline");
        }
      },
      function (text, code) { problem(code === "denied" ? "voice_denied" : "voice_unsupported"); });
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
        data.messages.filter(m => m.from !== "me").forEach(m => bubble(m, true));
        return;
      }
      started = true;
      data.messages.forEach(m => bubble(m, false));
      if (!data.messages.length) send({ text: "/start" }, say("hello"));
    }).catch(function () { /* the next (re)connection of the stream loads it again */ });
  }

  let retries = 0;
  function connect() {
    const stream = new EventSource("/chat/api/stream", { withCredentials: true });
    stream.addEventListener("message", function (event) { bubble(JSON.parse(event.data), true); });
    stream.addEventListener("open", function () { retries = 0; load(); });
    stream.onerror = function () {
      // EventSource reconnects by itself after a network error, but not after a refusal (no
      // identity any more): then ask for one and open the stream again, a little later each time.
      if (stream.readyState !== EventSource.CLOSED) return;
      retries += 1;
      setTimeout(function () { identity = identify(); identity.then(connect, connect); },
                 Math.min(30000, 1000 * retries));
    };
  }

  identity.then(connect, function () { problem("start_failed"); });
  setTimeout(function () { if (!started) load(); }, 5000);  // no live stream (a proxy?): still start
})();
