// fieldvision flow dashboard: plain JS, hand-drawn SVG charts, no libraries, no network
// access beyond this server. Untrusted strings (camera, line, zone ids come from producers)
// only ever go through textContent / setAttribute, never innerHTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2554c7", "#1f8a5b", "#c2410c", "#7c3aed", "#0e7490", "#ca8a04",
  "#be185d", "#4d7c0f", "#475569", "#dc2626"];
const NICE_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];

const $ = (id) => document.getElementById(id);
const state = { generation: 0, timer: null, loads: 0 };

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function setNumber(testid, value) {
  const node = document.querySelector(`[data-testid="${testid}"]`);
  node.textContent = value === null || value === undefined ? "–" : String(value);
}

function utc(ts, withDate = false) {
  const iso = new Date(ts * 1000).toISOString();
  return withDate ? iso.slice(0, 19).replace("T", " ") : iso.slice(11, 16);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function getJSON(path, params) {
  const resp = await fetch(path + query(params), { cache: "no-store" });
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

// ---- charts ---------------------------------------------------------------------------

function ticks(lo, hi, n = 5) {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(t);
  return out;
}

function frame(container, width, height) {
  container.replaceChildren();
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  container.appendChild(svg);
  return svg;
}

function emptyChart(container, message) {
  const svg = frame(container, 600, 60);
  svg.appendChild(svgEl("text", { x: 300, y: 35, "text-anchor": "middle", class: "empty" },
    message));
}

function legend(container, series) {
  const box = el("div", { class: "legend" });
  series.forEach((s) => {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = s.color;
    item.append(swatch, document.createTextNode(s.name));
    box.appendChild(item);
  });
  container.appendChild(box);
}

// axes + grid for x in [x0, x1], y in [0, yMax]; returns the coordinate mappers.
function axes(svg, plot, x0, x1, yMax, xLabel) {
  const { left, top, width, height } = plot;
  const sx = (x) => left + ((x - x0) / Math.max(x1 - x0, 1e-9)) * width;
  const sy = (y) => top + height - (y / Math.max(yMax, 1e-9)) * height;
  for (const t of ticks(0, yMax, 4)) {
    svg.appendChild(svgEl("line", { x1: left, x2: left + width, y1: sy(t), y2: sy(t),
      class: "grid-line" }));
    svg.appendChild(svgEl("text", { x: left - 6, y: sy(t) + 4, "text-anchor": "end" },
      Number.isInteger(t) ? t : t.toFixed(1)));
  }
  svg.appendChild(svgEl("line", { x1: left, x2: left + width, y1: top + height,
    y2: top + height, class: "axis" }));
  svg.appendChild(svgEl("line", { x1: left, x2: left, y1: top, y2: top + height,
    class: "axis" }));
  for (const t of xLabel.ticks) {
    svg.appendChild(svgEl("text", { x: sx(t), y: top + height + 16, "text-anchor": "middle" },
      xLabel.format(t)));
  }
  return { sx, sy };
}

// Drawn at the container's own pixel width, so text keeps its CSS size in narrow panels.
function box(container) {
  const width = Math.max(container.clientWidth || 960, 320);
  return { width, height: 230, plot: { left: 44, top: 10, width: width - 60, height: 190 } };
}

function lineChart(container, series, xFormat) {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  if (!xs.length) return emptyChart(container, "no data in this window");
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  const yMax = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const size = box(container);
  const svg = frame(container, size.width, size.height);
  const xTicks = { ticks: ticks(x0, x1, Math.round(size.width / 150)), format: xFormat };
  const { sx, sy } = axes(svg, size.plot, x0, x1, yMax, xTicks);
  series.forEach((s) => {
    // a step line: occupancy holds its value until the next bucket
    let d = "";
    s.points.forEach(([x, y], i) => {
      d += i === 0 ? `M${sx(x)},${sy(y)}` : `H${sx(x)}V${sy(y)}`;
    });
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 2 }));
  });
  legend(container, series);
}

function barChart(container, edges, series, xFormat) {
  if (!edges.length) return emptyChart(container, "no data in this window");
  const yMax = Math.max(1, ...series.flatMap((s) => s.values));
  const size = box(container);
  const svg = frame(container, size.width, size.height);
  const x0 = edges[0], x1 = edges[edges.length - 1];
  const xTicks = { ticks: ticks(x0, x1, Math.round(size.width / 150)), format: xFormat };
  const { sx, sy } = axes(svg, size.plot, x0, x1, yMax, xTicks);
  const n = edges.length - 1;
  series.forEach((s, k) => {
    s.values.forEach((v, i) => {
      const a = sx(edges[i]), b = sx(edges[i + 1]);
      const w = Math.max((b - a) / series.length - 1, 0.5);
      if (v > 0) {
        svg.appendChild(svgEl("rect", { x: a + k * (w + 1) + 0.5, y: sy(v), width: w,
          height: sy(0) - sy(v), fill: s.color }));
      }
    });
  });
  if (n && series.length > 1) legend(container, series);
}

// ---- panels ---------------------------------------------------------------------------

function fillLines(rows) {
  const body = $("lines").tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr");
    tr.append(el("td", {}, r.camera_id), el("td", {}, r.line));
    for (const key of ["in", "out", "net"]) {
      tr.appendChild(el("td", { class: "num",
        "data-testid": `line-${key}:${r.camera_id}:${r.line}` }, String(r[key])));
    }
    body.appendChild(tr);
  }
}

function fillZones(rows) {
  const body = $("zones").tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr");
    tr.append(el("td", {}, r.camera_id), el("td", {}, r.zone),
      el("td", { class: "num", "data-testid": `zone-occupancy:${r.camera_id}:${r.zone}` },
        String(r.occupancy)));
    body.appendChild(tr);
  }
}

function drawCounts(data) {
  const b = data.bucket_s;
  $("counts-bucket").textContent = b >= 60 ? `${b / 60} min` : `${b} s`;
  const byBucket = new Map();
  for (const r of data.rows) {
    const cell = byBucket.get(r.bucket_start) || { in: 0, out: 0 };
    cell[r.direction] += r.count;
    byBucket.set(r.bucket_start, cell);
  }
  const starts = [...byBucket.keys()].sort((p, q) => p - q);
  if (!starts.length) return emptyChart($("counts-chart"), "no crossings in this window");
  const first = starts[0], last = starts[starts.length - 1];
  const edges = [], ins = [], outs = [];
  for (let t = first; t <= last + 1e-6; t += b) {
    const cell = byBucket.get(t) || { in: 0, out: 0 };
    edges.push(t);
    ins.push(cell.in);
    outs.push(cell.out);
  }
  edges.push(last + b);
  barChart($("counts-chart"), edges, [
    { name: "in", values: ins, color: "#1f8a5b" },
    { name: "out", values: outs, color: "#c2410c" },
  ], (t) => utc(t));
}

function drawOccupancy(data) {
  const series = new Map();
  for (const r of data.rows) {
    const key = `${r.camera_id} / ${r.zone}`;
    if (!series.has(key)) {
      series.set(key, { name: key, points: [], color: PALETTE[series.size % PALETTE.length] });
    }
    series.get(key).points.push([r.bucket_end, r.occupancy]);
  }
  lineChart($("occupancy-chart"), [...series.values()], (t) => utc(t));
}

function drawDwell(data) {
  setNumber("dwell-count", data.count);
  setNumber("dwell-median", data.median_s === null ? null : data.median_s.toFixed(1));
  setNumber("dwell-mean", data.mean_s === null ? null : data.mean_s.toFixed(1));
  barChart($("dwell-chart"), data.edges, [
    { name: "visits", values: data.counts, color: "#2554c7" },
  ], (t) => `${Math.round(t)} s`);
}

function drawHeatmaps(cameras, params) {
  const box = $("heatmaps");
  box.replaceChildren();
  const loads = cameras.slice(0, 12).map((camera) => new Promise((resolve) => {
    const img = el("img", { alt: `heatmap of ${camera}`, "data-testid": `heatmap:${camera}` });
    img.addEventListener("load", resolve);
    img.addEventListener("error", resolve);
    img.src = "/api/heatmap.png" + query({ camera, ...params, t: Date.now() });
    box.appendChild(img);
  }));
  return Promise.all(loads);
}

// ---- refresh loop ---------------------------------------------------------------------

function bucketFor(span) {
  const target = Math.max(span / 80, 1);
  return NICE_BUCKETS.find((b) => b >= target) || NICE_BUCKETS[NICE_BUCKETS.length - 1];
}

function fillCameras(cameras) {
  const select = $("camera");
  const current = select.value;
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join("\n") !== cameras.join("\n")) {
    select.replaceChildren(el("option", { value: "" }, "All cameras"));
    for (const c of cameras) select.appendChild(el("option", { value: c }, c));
    select.value = cameras.includes(current) ? current : "";
  }
}

async function refresh() {
  const generation = ++state.generation;
  const camera = $("camera").value || null;
  document.body.dataset.state = "loading";
  $("status").textContent = "loading…";
  try {
    const summary = await getJSON("/api/summary", { camera });
    if (generation !== state.generation) return;
    fillCameras(summary.cameras);
    setNumber("total-in", summary.totals.in);
    setNumber("total-out", summary.totals.out);
    setNumber("occupancy-total", summary.occupancy_total);
    setNumber("people-global-ids", summary.people.global_ids);
    setNumber("people-tracks", summary.people.tracks);
    setNumber("event-count", summary.events);
    const range = summary.time_range;
    setNumber("time-start", range ? utc(range.start, true) : null);
    setNumber("time-end", range ? utc(range.end, true) : null);
    fillLines(summary.lines);
    fillZones(summary.occupancy);

    const windowS = Number($("window").value);
    const end = range ? range.end : 0;
    // A window never starts before the data does: no empty stretch at the left of charts.
    const start = range ? Math.max(range.start, windowS ? end - windowS : range.start) : 0;
    const window = { camera, from: range && start > range.start ? start : null };
    const bucket = bucketFor(Math.max(end - start, 1));
    const [counts, occupancy, dwell] = await Promise.all([
      getJSON("/api/counts", { ...window, bucket }),
      getJSON("/api/occupancy", { ...window, bucket }),
      getJSON("/api/dwell", { ...window, bins: 24 }),
    ]);
    if (generation !== state.generation) return;
    drawCounts(counts);
    drawOccupancy(occupancy);
    drawDwell(dwell);
    const shown = camera ? [camera] : summary.cameras;
    await drawHeatmaps(shown, { from: window.from });
    if (generation !== state.generation) return;
    state.loads += 1;
    document.body.dataset.loads = String(state.loads);
    document.body.dataset.camera = camera || "";
    document.body.dataset.state = "ready";
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (generation !== state.generation) return;
    document.body.dataset.state = "error";
    $("status").textContent = `error: ${err.message}`;
  }
}

function schedule() {
  if (state.timer) clearInterval(state.timer);
  const seconds = Number($("interval").value);
  state.timer = seconds ? setInterval(refresh, seconds * 1000) : null;
}

document.addEventListener("DOMContentLoaded", () => {
  $("camera").addEventListener("change", refresh);
  $("window").addEventListener("change", refresh);
  $("refresh").addEventListener("click", refresh);
  $("interval").addEventListener("change", schedule);
  schedule();
  refresh();
});
