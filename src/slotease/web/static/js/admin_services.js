import { dayKey, formatDateTime, wallClockToIso } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed, say } from "./status.js";

const { orgId } = dataset();
const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const NUMBERS = ["duration_minutes", "capacity", "buffer_minutes", "min_notice_minutes", "max_advance_days"];
let org = null;
let editing = null;

function hoursRow(hours = { weekday: 0, start: "09:00", end: "17:00" }) {
  const row = $("hours-row").content.firstElementChild.cloneNode(true);
  row.querySelector(".weekday").value = String(hours.weekday);
  row.querySelector(".start").value = hours.start;
  row.querySelector(".end").value = hours.end;
  row.querySelector(".remove-hours").addEventListener("click", () => row.remove());
  return row;
}

function hoursText(service) {
  return service.working_hours.map((h) => `${WEEKDAYS[h.weekday]} ${h.start}–${h.end}`).join(", ") || "None";
}

async function loadServices() {
  const services = await api(`/v1/organizations/${orgId}/services?limit=200`);
  $("services").replaceChildren(
    ...services.items.map((service) =>
      el(
        "tr",
        {},
        el("td", { text: service.name }),
        el("td", { text: `${service.duration_minutes} min` }),
        el("td", { text: String(service.capacity) }),
        el("td", { text: hoursText(service) }),
        el("td", {}, el("button", { type: "button", class: "secondary small", "aria-label": `Edit ${service.name}`, text: "Edit", onclick: () => edit(service) })),
      ),
    ),
  );
}

function resetForm() {
  editing = null;
  $("service-form").reset();
  $("hours").replaceChildren();
  $("form-title").textContent = "New service";
  $("save").textContent = "Create service";
  $("active-field").hidden = true;
  $("cancel-edit").hidden = true;
  $("closures-section").hidden = true;
}

function edit(service) {
  editing = service;
  const form = $("service-form");
  form.elements.name.value = service.name;
  for (const field of [...NUMBERS, "slot_interval_minutes"]) form.elements[field].value = String(service[field]);
  form.elements.is_active.checked = service.is_active;
  $("hours").replaceChildren(...service.working_hours.map(hoursRow));
  $("form-title").textContent = `Edit ${service.name}`;
  $("save").textContent = "Save service";
  $("active-field").hidden = false;
  $("cancel-edit").hidden = false;
  $("closures-section").hidden = false;
  $("closures-service").textContent = service.name;
  form.elements.name.focus();
  loadClosures().catch(failed);
}

function formBody() {
  const form = $("service-form");
  const body = { name: form.elements.name.value };
  for (const field of NUMBERS) body[field] = Number(form.elements[field].value);
  const interval = form.elements.slot_interval_minutes.value;
  if (interval) body.slot_interval_minutes = Number(interval);
  body.working_hours = [...$("hours").children].map((row) => ({
    weekday: Number(row.querySelector(".weekday").value),
    start: row.querySelector(".start").value,
    end: row.querySelector(".end").value,
  }));
  if (editing) body.is_active = form.elements.is_active.checked;
  return body;
}

async function save(event) {
  event.preventDefault();
  const body = formBody();
  const service = editing
    ? await api(`/v1/services/${editing.id}`, { method: "PATCH", body })
    : await api(`/v1/organizations/${orgId}/services`, { method: "POST", body });
  say(`${editing ? "Saved" : "Created"} ${service.name}.`, "success");
  resetForm();
  await loadServices();
}

async function loadClosures() {
  const from = dayKey(new Date(), org.timezone);
  const closures = await api(`/v1/services/${editing.id}/closures?from=${from}&limit=200`);
  $("closures").replaceChildren(
    ...(closures.items.length
      ? closures.items.map((closure) => {
          const label = `${formatDateTime(closure.starts_at, org.timezone)} – ${formatDateTime(closure.ends_at, org.timezone)}`;
          return el(
            "li",
            { class: "closure" },
            el("span", { text: closure.reason ? `${label} · ${closure.reason}` : label }),
            " ",
            el("button", { type: "button", class: "danger small", "aria-label": `Delete closure ${label}`, text: "Delete", onclick: () => removeClosure(closure).catch(failed) }),
          );
        })
      : [el("li", { class: "muted", text: "No upcoming closure." })]),
  );
}

async function addClosure(event) {
  event.preventDefault();
  const body = {
    starts_at: wallClockToIso($("closure-start").value, org.timezone),
    ends_at: wallClockToIso($("closure-end").value, org.timezone),
  };
  const reason = $("closure-reason").value.trim();
  if (reason) body.reason = reason;
  await api(`/v1/services/${editing.id}/closures`, { method: "POST", body });
  $("closure-form").reset();
  say("Closure added.", "success");
  await loadClosures();
}

async function removeClosure(closure) {
  await api(`/v1/services/${editing.id}/closures/${closure.id}`, { method: "DELETE" });
  say("Closure deleted.", "success");
  await loadClosures();
}

async function start() {
  org = await api(`/v1/organizations/${orgId}`);
  $("org-name").textContent = org.name;
  $("closure-tz").textContent = org.timezone;
  $("service-form").addEventListener("submit", (event) => save(event).catch(failed));
  $("closure-form").addEventListener("submit", (event) => addClosure(event).catch(failed));
  $("add-hours").addEventListener("click", () => {
    const row = hoursRow();
    $("hours").append(row);
    row.querySelector(".weekday").focus();
  });
  $("cancel-edit").addEventListener("click", resetForm);
  await loadServices();
}

start().catch(failed);
