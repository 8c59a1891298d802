// Analytics events for POST /api/analytics/events (one JSON event per request; the server validates the schema).
// Failures never break a page: they are logged as warnings, not errors.

const ENDPOINT = "/api/analytics/events";

/** POST one event with fetch (keepalive, so it survives a navigation). */
export function sendEvent(event) {
  return fetch(ENDPOINT, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(event),
    keepalive: true,
  })
    .then((r) => {
      if (!r.ok) console.warn(`analytics: ${event.type} answered HTTP ${r.status}`);
    })
    .catch((err) => console.warn(`analytics: ${event.type} not sent (${err.message})`));
}

/** Queue one event with navigator.sendBeacon (for pagehide / a hidden tab); falls back to sendEvent. */
export function beaconEvent(event) {
  const blob = new Blob([JSON.stringify(event)], { type: "application/json" });
  if (navigator.sendBeacon && navigator.sendBeacon(ENDPOINT, blob)) return;
  sendEvent(event);
}

export function pageView() {
  sendEvent({ type: "page_view", page: location.pathname });
}
