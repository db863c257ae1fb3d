// Allervers inbox service worker (served as /inbox/sw.js, scope /inbox: the list page /inbox and everything under it): shows Web Push
// notifications (handoff/push.py sends them: a title, a sentence, the conversation's address; no
// personal data) and opens the conversation when one is tapped.
"use strict";

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  var url = typeof data.url === "string" && data.url.indexOf("/inbox/") === 0 ? data.url : "/inbox";
  event.waitUntil(self.registration.showNotification(data.title || "Allervers", {
    body: data.body || "", tag: data.tag || undefined, data: { url: url },
    icon: "/static/icon-192.png", badge: "/static/icon-192.png"
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || "/inbox";
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (clients) {
    for (var i = 0; i < clients.length; i++) {
      var client = clients[i];
      if (new URL(client.url).pathname === url && "focus" in client) return client.focus();
    }
    for (var j = 0; j < clients.length; j++) {
      if ("navigate" in clients[j] && new URL(clients[j].url).pathname.indexOf("/inbox") === 0) {
        return clients[j].navigate(url).then(function (c) { return c && c.focus(); });
      }
    }
    return self.clients.openWindow(url);
  }));
});
