// A tiny canvas line chart: several series against one x key, linear axes with "nice" ticks, a legend.
// Redraws at most once per animation frame; sharp on high-DPI screens.

const COLORS = ["#5ab0ff", "#ffc857", "#6fdc8c", "#ff6b6b", "#c792ea"];
const MAX_POINTS = 1500; // per series drawn; longer series are thinned evenly (the last point always kept)

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{x: string, series: {key: string, label?: string}[], format?: (v: number) => string}} options
   */
  constructor(canvas, { x, series, format }) {
    this.canvas = canvas;
    this.x = x;
    this.series = series.map((s, i) => ({ color: COLORS[i % COLORS.length], label: s.key, ...s }));
    this.format = format || compact;
    this.rows = [];
    this._pending = false;
    new ResizeObserver(() => this.redraw()).observe(canvas);
  }

  setRows(rows) {
    this.rows = rows;
    this.redraw();
  }

  redraw() {
    if (this._pending) return;
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 400;
    const cssH = canvas.clientHeight || 200;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.font = "11px system-ui, sans-serif";

    const lines = this.series.map((s) => ({ ...s, points: points(this.rows, this.x, s.key) }));
    const all = lines.flatMap((l) => l.points);
    if (all.length === 0) {
      ctx.fillStyle = "#98a2b0";
      ctx.fillText("no data yet", 10, cssH / 2);
      return;
    }
    let [x0, x1] = extent(all.map((p) => p[0]));
    let [y0, y1] = extent(all.map((p) => p[1]));
    if (x0 === x1) x1 = x0 + 1;
    if (y0 === y1) {
      y0 -= Math.abs(y0) * 0.1 || 1;
      y1 += Math.abs(y1) * 0.1 || 1;
    }
    const yTicks = niceTicks(y0, y1, 4);
    y0 = Math.min(y0, yTicks[0]);
    y1 = Math.max(y1, yTicks[yTicks.length - 1]);
    const left = 8 + Math.max(...yTicks.map((t) => ctx.measureText(this.format(t)).width));
    const pad = { left, right: 10, top: 22, bottom: 20 };
    const w = cssW - pad.left - pad.right;
    const h = cssH - pad.top - pad.bottom;
    const sx = (v) => pad.left + ((v - x0) / (x1 - x0)) * w;
    const sy = (v) => pad.top + h - ((v - y0) / (y1 - y0)) * h;

    ctx.strokeStyle = "#2a313b";
    ctx.fillStyle = "#98a2b0";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of yTicks) {
      const y = Math.round(sy(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + w, y);
      ctx.stroke();
      ctx.fillText(this.format(t), pad.left - 4, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(x0, x1, 5)) {
      const label = compact(t);
      const half = ctx.measureText(label).width / 2;
      if (t < x0 || t > x1 || sx(t) + half > cssW || sx(t) - half < pad.left) continue;
      ctx.fillText(label, sx(t), pad.top + h + 5);
    }

    ctx.lineWidth = 1.6;
    ctx.lineJoin = "round";
    for (const l of lines) {
      if (l.points.length === 0) continue;
      ctx.strokeStyle = l.color;
      ctx.beginPath();
      l.points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(sx(x), sy(y)) : ctx.lineTo(sx(x), sy(y))));
      ctx.stroke();
      if (l.points.length === 1) {
        ctx.fillStyle = l.color;
        ctx.fillRect(sx(l.points[0][0]) - 2, sy(l.points[0][1]) - 2, 4, 4);
      }
    }

    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    let lx = pad.left;
    for (const l of lines) {
      const last = l.points.length ? l.points[l.points.length - 1][1] : null;
      const text = `${l.label}${last === null ? "" : ` ${this.format(last)}`}`;
      ctx.fillStyle = l.color;
      ctx.fillRect(lx, 8, 10, 3);
      ctx.fillStyle = "#c9d1dc";
      ctx.fillText(text, lx + 14, 10);
      lx += 26 + ctx.measureText(text).width;
    }
  }
}

function points(rows, xKey, yKey) {
  const out = [];
  for (const r of rows) {
    const x = r[xKey];
    const y = r[yKey];
    if (Number.isFinite(x) && Number.isFinite(y)) out.push([x, y]);
  }
  if (out.length <= MAX_POINTS) return out;
  const stride = out.length / MAX_POINTS;
  const thin = [];
  for (let i = 0; i < MAX_POINTS - 1; i++) thin.push(out[Math.floor(i * stride)]);
  thin.push(out[out.length - 1]);
  return thin;
}

function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const ticks = [];
  // integer multiples of step (no accumulated rounding: 0 is 0, not -5.6e-17)
  const tick = (k) => (k === 0 ? 0 : Number((k * step).toPrecision(12)));
  let k = Math.floor(lo / step);
  for (; k * step <= hi + step * 1e-9; k++) ticks.push(tick(k));
  if (ticks[ticks.length - 1] < hi) ticks.push(tick(k));
  return ticks;
}

/** 1234567 -> "1.23M", 0.000123 -> "1.23e-4". */
export function compact(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9) return `${(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a >= 0.01) return `${Number(v.toPrecision(3))}`;
  return v.toExponential(1);
}
