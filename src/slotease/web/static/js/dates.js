// Dates in an organization's timezone: `YYYY-MM-DD` keys and human labels.
export function dayKey(date, timeZone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

export function addDays(key, days) {
  const [y, m, d] = key.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

export function weekdayOf(key) {
  const [y, m, d] = key.split("-").map(Number);
  return (new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7;
}

export function formatDay(key, options = { weekday: "short", day: "numeric", month: "short" }) {
  const [y, m, d] = key.split("-").map(Number);
  return new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d, 12)));
}

export function formatTime(iso, timeZone) {
  return new Intl.DateTimeFormat(undefined, { timeZone, hour: "2-digit", minute: "2-digit" }).format(new Date(iso));
}

export function formatDateTime(iso, timeZone) {
  return new Intl.DateTimeFormat(undefined, { timeZone, dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

// The UTC instant of a wall-clock time (`YYYY-MM-DDTHH:MM`, as a datetime-local input gives
// it) in a timezone, so admins type times as the organization lives them.
export function wallClockToIso(value, timeZone) {
  const [y, m, d, hh, mm] = value.split(/[-T:]/).map(Number);
  const wanted = Date.UTC(y, m - 1, d, hh, mm);
  let instant = wanted;
  // A second pass settles the offset next to a daylight-saving change.
  for (let pass = 0; pass < 2; pass += 1) instant = wanted - (zoneClock(instant, timeZone) - instant);
  return new Date(instant).toISOString();
}

function zoneClock(instant, timeZone) {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
  });
  const parts = Object.fromEntries(format.formatToParts(new Date(instant)).map((part) => [part.type, Number(part.value)]));
  return Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
}
