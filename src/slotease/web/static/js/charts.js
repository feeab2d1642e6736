// Small SVG charts: the history as a line with points, the forecast dashed with its interval
// as a band. Sized by viewBox so they scale with their container; styled from app.css.
const NS = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 240;
const PAD = { top: 12, right: 12, bottom: 28, left: 40 };

function svg(tag, attrs = {}) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return Math.ceil(value / step) * step;
}

export function lineChart(series, forecast, { label, formatX }) {
  const points = series.map((p) => ({ date: p.date, value: p.value }));
  const all = [...points, ...forecast];
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label, class: "chart-svg" });
  if (!all.length) return root;
  const max = niceMax(Math.max(...all.map((p) => Math.max(p.value ?? 0, p.upper ?? 0))));
  const x = (i) => PAD.left + (i * (WIDTH - PAD.left - PAD.right)) / Math.max(all.length - 1, 1);
  const y = (v) => HEIGHT - PAD.bottom - (v / max) * (HEIGHT - PAD.top - PAD.bottom);

  for (let t = 0; t <= 4; t += 1) {
    const value = (max * t) / 4;
    root.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value), class: "grid" }));
    const tick = svg("text", { x: PAD.left - 6, y: y(value) + 4, class: "tick", "text-anchor": "end" });
    tick.textContent = Number.isInteger(value) ? value : value.toFixed(1);
    root.append(tick);
  }
  for (const i of [0, Math.floor((all.length - 1) / 2), all.length - 1]) {
    const tick = svg("text", { x: x(i), y: HEIGHT - 8, class: "tick", "text-anchor": "middle" });
    tick.textContent = formatX(all[i].date);
    root.append(tick);
  }

  if (forecast.length) {
    const start = points.length;
    const upper = forecast.map((p, i) => `${x(start + i)},${y(p.upper)}`);
    const lower = forecast.map((p, i) => `${x(start + i)},${y(p.lower)}`).reverse();
    root.append(svg("polygon", { points: [...upper, ...lower].join(" "), class: "band" }));
    const joined = points.length ? [[start - 1, points.at(-1).value]] : [];
    const line = [...joined, ...forecast.map((p, i) => [start + i, p.value])];
    root.append(svg("polyline", { points: line.map(([i, v]) => `${x(i)},${y(v)}`).join(" "), class: "forecast" }));
  }
  // A null (no data that day) breaks the line instead of drawing a misleading zero.
  let run = [];
  const flush = () => {
    if (run.length > 1) root.append(svg("polyline", { points: run.join(" "), class: "history" }));
    run = [];
  };
  points.forEach((p, i) => {
    if (p.value === null || p.value === undefined) {
      flush();
      return;
    }
    run.push(`${x(i)},${y(p.value)}`);
    const dot = svg("circle", { cx: x(i), cy: y(p.value), r: 2.5, class: "dot" });
    const title = svg("title");
    title.textContent = `${formatX(p.date)}: ${p.value}`;
    dot.append(title);
    root.append(dot);
  });
  flush();
  return root;
}
