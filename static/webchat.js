// Allervers web chat: bubbles, buttons, live replies (server-sent events), no reload.
(function () {
  "use strict";
  const thread = document.getElementById("thread");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const seen = new Set();
  let uid = localStorage.getItem("allervers-uid");
  if (!uid) {
    uid = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2)).replace(/-/g, "");
    localStorage.setItem("allervers-uid", uid);
  }
  const newId = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/-/g, "").slice(0, 32);

  function bubble(message) {
    if (message.id && seen.has(message.id)) return;
    if (message.id) seen.add(message.id);
    const row = document.createElement("div");
    row.className = "bubble " + (message.from === "me" ? "me" : "them");
    row.textContent = message.text || "";
    if (message.id) row.dataset.id = message.id;
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

  async function send(body, shownText) {
    bubble({ from: "me", text: shownText });
    body.uid = uid;
    body.client_id = newId();
    const response = await fetch("/chat/api/messages", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    });
    if (!response.ok) bubble({ from: "bot", text: "⚠️ Le message n'est pas parti. Réessayez dans un instant." });
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

  function connect() {
    const source = new EventSource("/chat/api/stream?uid=" + encodeURIComponent(uid));
    source.addEventListener("message", function (event) { bubble(JSON.parse(event.data)); });
    source.onerror = function () { /* EventSource reconnects by itself */ };
  }

  fetch("/chat/api/history?uid=" + encodeURIComponent(uid)).then(r => r.json()).then(function (data) {
    data.messages.forEach(bubble);
    connect();
    if (!data.messages.length) send({ text: "/start" }, "👋 Bonjour");
  });
})();
