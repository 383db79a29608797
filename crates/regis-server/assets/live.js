// The register home's live feed: each checkpoint the register signs, as it
// arrives on B/events (Server-Sent Events), without reloading the page.
// Without JavaScript the page shows the checkpoint it was served with.
"use strict";

(function () {
  const section = document.getElementById("live");
  const status = document.getElementById("live-status");
  const feed = document.getElementById("live-feed");
  if (!section || !status || !feed || !window.EventSource) {
    return;
  }
  section.hidden = false;
  const checkpointText = document.getElementById("checkpoint-text");
  const totalEntries = document.getElementById("total-entries");
  const shown = 20;

  const source = new EventSource(section.dataset.eventsUrl);
  source.addEventListener("open", () => {
    status.textContent = "Connected: checkpoints appear here as the register signs them.";
  });
  source.addEventListener("error", () => {
    status.textContent = "Disconnected; reconnecting\u2026";
  });
  source.addEventListener("checkpoint", (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    if (typeof data.size !== "number" || typeof data.log !== "string") {
      return;
    }
    if (data.log === "user") {
      if (checkpointText && typeof data.checkpoint === "string") {
        checkpointText.textContent = data.checkpoint;
      }
      if (totalEntries) {
        totalEntries.textContent = String(data.size);
      }
    }
    const item = document.createElement("li");
    const time = new Date().toISOString().slice(11, 19);
    item.textContent =
      time + " UTC: " + (data.log === "user" ? "entries" : "system entries") +
      " signed up to size " + data.size;
    feed.prepend(item);
    while (feed.children.length > shown) {
      feed.lastElementChild.remove();
    }
  });
})();
