import { addDays, dayKey, formatDay } from "./dates.js";
import { $, dataset, el } from "./dom.js";
import { api } from "./http.js";
import { failed } from "./status.js";
import { lineChart } from "./charts.js";

const { orgId } = dataset();
const HISTORY_DAYS = 42;

function figure(value, suffix = "") {
  return value === null || value === undefined ? "–" : `${Number.isInteger(value) ? value : value.toFixed(1)}${suffix}`;
}

function kpis(day) {
  const rate = day.appointments_total ? (100 * day.no_shows) / day.appointments_total : null;
  const items = [
    ["Appointments", figure(day.appointments_total)],
    ["Completed", figure(day.completed)],
    ["Cancelled", figure(day.cancelled)],
    ["No-show rate", figure(rate, " %")],
    ["Waiting now", figure(day.waiting_now)],
    ["Average wait", figure(day.avg_wait_minutes, " min")],
    ["Average service", figure(day.avg_service_minutes, " min")],
    ["Utilization", day.utilization == null ? "–" : `${Math.round(day.utilization * 100)} %`],
    ["Rating", figure(day.rating_avg, " / 5")],
  ];
  $("kpis").replaceChildren(...items.map(([label, value]) => el("div", { class: "kpi" }, el("dt", { text: label }), el("dd", { text: value }))));
}

async function chart(metric, from, to, forecastDays) {
  const box = $(`chart-${metric}`);
  try {
    const trend = await api(`/v1/analytics/organization/${orgId}/trends?${new URLSearchParams({ metric, from, to, forecast_days: String(forecastDays) })}`);
    box.append(lineChart(trend.series, trend.forecast ?? [], { label: box.querySelector("figcaption").textContent, formatX: formatDay }));
  } catch (error) {
    box.append(el("p", { class: "muted", text: error.status === 403 ? "Only the organization's admins see trends." : error.message }));
  }
}

async function start() {
  const org = await api(`/v1/organizations/${orgId}`);
  $("org-name").textContent = org.name;
  $("timezone").textContent = org.timezone;
  const today = dayKey(new Date(), org.timezone);
  $("today").textContent = formatDay(today, { weekday: "long", day: "numeric", month: "long", year: "numeric" });
  const from = addDays(today, -HISTORY_DAYS);
  const yesterday = addDays(today, -1);
  await Promise.all([
    api(`/v1/analytics/organization/${orgId}/dashboard?date=${today}`).then(kpis),
    chart("appointments", from, today, 14),
    chart("no_shows", from, yesterday, 0),
    chart("avg_wait_minutes", from, yesterday, 0),
    chart("tickets_served", from, yesterday, 0),
  ]);
}

start().catch(failed);
