import { $, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";

const results = $("results");

function show(organizations) {
  results.replaceChildren(
    ...organizations.map((org) =>
      el(
        "li",
        {},
        el("a", { href: `/o/${org.id}`, text: org.name }),
        el("span", {
          class: "muted",
          text: ` · ${org.kind}${org.address ? ` · ${org.address}` : ""}${
            org.distance_km != null ? ` · ${org.distance_km.toFixed(1)} km` : ""
          }`,
        }),
      ),
    ),
  );
  say(organizations.length ? `${organizations.length} found.` : "Nothing found.");
}

async function search(query) {
  try {
    show((await api(`/v1/organizations?${new URLSearchParams(query)}`, { auth: false })).items);
  } catch (error) {
    failed(error);
  }
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("q").value.trim();
  search(q ? { q } : {});
});

$("near").addEventListener("click", () => {
  if (!navigator.geolocation) {
    say("This browser cannot share its location.", "error");
    return;
  }
  say("Finding your location…");
  navigator.geolocation.getCurrentPosition(
    ({ coords }) => search({ near: `${coords.latitude},${coords.longitude}`, radius_km: "50" }),
    () => say("Your location is not available; search by name instead.", "error"),
    { timeout: 10000 },
  );
});

search({});
