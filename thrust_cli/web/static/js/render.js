// Canvas2D drawing of each game from the module's render()/grid buffers (see thrust_cli/web/wasm/*_demo.c).
// cartpole and asteroids: a grid of thumbnails of the first agents; snake: the one shared board, every snake.

export const MAX_THUMBNAILS = 16;

/** Columns x rows of the thumbnail grid for `count` agents (1, 2x2, 3x3, 4x4). */
function layout(count) {
  const cols = Math.ceil(Math.sqrt(count));
  return { cols, rows: Math.ceil(count / cols) };
}

function forEachCell(ctx, count, draw) {
  const { cols, rows } = layout(count);
  const w = ctx.canvas.width / cols;
  const h = ctx.canvas.height / rows;
  for (let i = 0; i < count; i++) {
    const x0 = (i % cols) * w;
    const y0 = Math.floor(i / cols) * h;
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y0, w, h);
    ctx.clip();
    ctx.translate(x0, y0);
    draw(i, w, h);
    ctx.restore();
  }
  if (count > 1) {
    ctx.strokeStyle = "#2a313b";
    ctx.lineWidth = 1;
    for (let c = 1; c < cols; c++) line(ctx, c * w, 0, c * w, ctx.canvas.height);
    for (let r = 1; r < rows; r++) line(ctx, 0, r * h, ctx.canvas.width, r * h);
  }
}

function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

// CartPole: render() = [x, theta, episode_step]. Drawn as Gymnasium draws it: the track spans x in [-2.4, 2.4] m
// (plus a margin), a 1 m pole (twice the core's half length) leaning right for theta > 0, a bar for the step.
const CART_X_LIMIT = 2.4;
const CART_X_RANGE = 1.15 * CART_X_LIMIT;
const CART_MAX_STEPS = 500;

function drawCartPole(sim, ctx) {
  ctx.fillStyle = "#12161c";
  ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  const count = Math.min(sim.agents, MAX_THUMBNAILS);
  forEachCell(ctx, count, (i, w, h) => {
    const [x, theta, step] = sim.render(i);
    const scale = Math.min(w / (2 * CART_X_RANGE), h / 1.9);
    const trackY = h * 0.75;
    const mid = w / 2;
    ctx.strokeStyle = "#55606e";
    ctx.lineWidth = Math.max(1, scale / 40);
    line(ctx, mid - CART_X_LIMIT * scale, trackY, mid + CART_X_LIMIT * scale, trackY);
    const cx = mid + x * scale;
    const cartW = 0.4 * scale;
    const cartH = 0.24 * scale;
    ctx.fillStyle = "#c9d1dc";
    ctx.fillRect(cx - cartW / 2, trackY - cartH / 2, cartW, cartH);
    ctx.strokeStyle = "#e8a75d";
    ctx.lineWidth = Math.max(2, 0.08 * scale);
    ctx.lineCap = "round";
    const py = trackY - cartH / 2;
    line(ctx, cx, py, cx + Math.sin(theta) * scale, py - Math.cos(theta) * scale);
    ctx.lineCap = "butt";
    ctx.fillStyle = "#5ab0ff";
    const bar = Math.max(2, h / 60);
    ctx.fillRect(0, h - bar, (w * Math.min(step, CART_MAX_STEPS)) / CART_MAX_STEPS, bar);
    ctx.fillStyle = "#98a2b0";
    const size = Math.max(11, Math.round(h / 13));
    ctx.font = `${size}px system-ui, sans-serif`;
    ctx.fillText(`step ${step | 0}`, 8, 6 + size);
  });
}

// Asteroids: render() = [ship_x, ship_y, heading_rad, thrusting, invulnerable, lives, score, wave, num_rocks,
// (x, y, radius, shape, angle) per rock, num_bullets, (x, y) per bullet], already in canvas coordinates (the
// module flips the core's y-up field): 256 x 192, y down, the nose along (cos, sin) of heading_rad. Rock outlines
// are the shapes envs_cython/asteroids/__init__.py draws (11 radii per shape, spread evenly around the circle).
const FIELD_W = 256;
const FIELD_H = 192;
const ROCK_SHAPES = [
  [1.0, 0.82, 1.05, 0.9, 0.7, 1.0, 0.95, 0.75, 1.05, 0.85, 0.92],
  [0.9, 1.05, 0.75, 0.95, 1.0, 0.8, 1.05, 0.9, 0.7, 1.0, 0.88],
  [1.05, 0.9, 0.95, 0.72, 1.0, 1.05, 0.8, 0.95, 0.9, 0.75, 1.0],
  [0.8, 1.0, 0.9, 1.05, 0.78, 0.95, 1.0, 0.7, 0.92, 1.05, 0.9],
];
const SHIP = [[1.6, 0], [-1.0, 0.9], [-0.5, 0], [-1.0, -0.9]];
const SHIP_RADIUS = 5;

function wrapCopies(x, y, reach) {
  const xs = [0];
  const ys = [0];
  if (x < reach) xs.push(FIELD_W);
  if (x > FIELD_W - reach) xs.push(-FIELD_W);
  if (y < reach) ys.push(FIELD_H);
  if (y > FIELD_H - reach) ys.push(-FIELD_H);
  const out = [];
  for (const dx of xs) for (const dy of ys) out.push([dx, dy]);
  return out;
}

function drawAsteroids(sim, ctx) {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
  const count = Math.min(sim.agents, MAX_THUMBNAILS);
  forEachCell(ctx, count, (i, w, h) => {
    const r = sim.render(i);
    const s = Math.min(w / FIELD_W, h / FIELD_H);
    ctx.translate((w - FIELD_W * s) / 2, (h - FIELD_H * s) / 2);
    ctx.scale(s, s);
    ctx.lineWidth = 1 / Math.max(s, 0.5);
    const [shipX, shipY, heading, thrusting, invulnerable, lives, score, wave, numRocks] = r;
    let k = 9;
    ctx.strokeStyle = "#c8c8c8";
    for (let j = 0; j < numRocks; j++, k += 5) {
      const [x, y, radius, shape, angle] = [r[k], r[k + 1], r[k + 2], r[k + 3] & 3, r[k + 4]];
      const radii = ROCK_SHAPES[shape];
      for (const [dx, dy] of wrapCopies(x, y, 1.1 * radius)) {
        ctx.beginPath();
        for (let v = 0; v < radii.length; v++) {
          const a = angle + (2 * Math.PI * v) / radii.length;
          const px = x + dx + radius * radii[v] * Math.cos(a);
          const py = y + dy + radius * radii[v] * Math.sin(a);
          if (v === 0) ctx.moveTo(px, py);
          else ctx.lineTo(px, py);
        }
        ctx.closePath();
        ctx.stroke();
      }
    }
    const numBullets = r[k++] | 0;
    ctx.fillStyle = "#fff";
    for (let j = 0; j < numBullets; j++, k += 2) ctx.fillRect(r[k] - 1, r[k + 1] - 1, 2, 2);
    const c = Math.cos(heading);
    const sn = Math.sin(heading);
    for (const [dx, dy] of wrapCopies(shipX, shipY, 2 * SHIP_RADIUS)) {
      const pts = SHIP.map(([px, py]) => [
        shipX + dx + SHIP_RADIUS * (px * c - py * sn),
        shipY + dy + SHIP_RADIUS * (px * sn + py * c),
      ]);
      if (thrusting) {
        ctx.strokeStyle = "#ff9b3d";
        ctx.beginPath();
        ctx.moveTo(pts[1][0] * 0.4 + pts[2][0] * 0.6, pts[1][1] * 0.4 + pts[2][1] * 0.6);
        ctx.lineTo(shipX + dx - 2.6 * SHIP_RADIUS * c, shipY + dy - 2.6 * SHIP_RADIUS * sn);
        ctx.lineTo(pts[3][0] * 0.4 + pts[2][0] * 0.6, pts[3][1] * 0.4 + pts[2][1] * 0.6);
        ctx.stroke();
      }
      ctx.strokeStyle = invulnerable ? "#5a8ca0" : "#ffffff";
      ctx.beginPath();
      ctx.moveTo(pts[0][0], pts[0][1]);
      for (let v = 1; v < pts.length; v++) ctx.lineTo(pts[v][0], pts[v][1]);
      ctx.closePath();
      ctx.stroke();
    }
    // text in screen orientation
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const { cols } = layout(count);
    const x0 = (i % cols) * w;
    const y0 = Math.floor(i / cols) * h;
    ctx.fillStyle = "#98a2b0";
    const size = Math.max(11, Math.round(h / 13));
    ctx.font = `${size}px system-ui, sans-serif`;
    ctx.fillText(`${Math.round(score)}`, x0 + 6, y0 + 4 + size);
    ctx.textAlign = "right";
    ctx.fillText(`${"▲".repeat(Math.max(0, lives | 0))} wave ${wave | 0}`, x0 + w - 6, y0 + 4 + size);
    ctx.textAlign = "left";
  });
}

// Snake: the padded board from grid_ptr (int8 cell codes EMPTY 0, WALL 1, FOOD 2, BODY 3, HEAD 4), one pixel
// per cell in an ImageData, scaled up without smoothing. Unknown codes draw magenta.
const SNAKE_COLORS = [
  [16, 20, 26], // empty
  [58, 66, 78], // wall
  [255, 99, 99], // food
  [70, 170, 110], // body
  [210, 255, 120], // head
];

let snakeImage = null;
let snakeCanvas = null;
let snakeLut = null;

function drawSnake(sim, ctx) {
  const { width, height, pad, cells } = sim.grid();
  if (!snakeImage || snakeImage.width !== width || snakeImage.height !== height) {
    snakeImage = new ImageData(width, height);
    snakeCanvas = makeCanvas(width, height);
    snakeLut = new Uint32Array(256);
    const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    for (let code = 0; code < 256; code++) {
      const [r, g, b] = SNAKE_COLORS[code] || [255, 0, 255];
      snakeLut[code] = little ? (255 << 24) | (b << 16) | (g << 8) | r : (r << 24) | (g << 16) | (b << 8) | 255;
    }
  }
  const pixels = new Uint32Array(snakeImage.data.buffer);
  for (let i = 0; i < cells.length; i++) pixels[i] = snakeLut[cells[i] & 255];
  snakeCanvas.getContext("2d").putImageData(snakeImage, 0, 0);
  const cw = ctx.canvas.width;
  const ch = ctx.canvas.height;
  ctx.fillStyle = "#0f1216";
  ctx.fillRect(0, 0, cw, ch);
  // the padding is `pad` wall cells; one ring of them shows the board's edge
  const crop = Math.max(0, pad - 1);
  const sw = width - 2 * crop;
  const sh = height - 2 * crop;
  const s = Math.min(cw / sw, ch / sh);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(snakeCanvas, crop, crop, sw, sh, (cw - sw * s) / 2, (ch - sh * s) / 2, sw * s, sh * s);
}

function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

export const DRAWERS = { cartpole: drawCartPole, asteroids: drawAsteroids, snake: drawSnake };

/** Canvas size (pixels) per game: the snake board is square, the others 4:3. */
export const CANVAS_SIZE = { cartpole: [960, 720], asteroids: [960, 720], snake: [720, 720] };
