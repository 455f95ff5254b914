// freek4a viewer: shows the captures the server reads, one unit or a rig side by side at the
// same device time, or the live preview of a running recorder. No dependencies.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const errors = [];
function reportError(msg) {
  errors.push(String(msg));
  const ul = $("#errors");
  const li = document.createElement("li");
  li.textContent = String(msg);
  ul.appendChild(li);
  ul.hidden = false;
  document.body.dataset.errors = String(errors.length);
}
window.addEventListener("error", (e) => reportError(e.message));
window.addEventListener("unhandledrejection", (e) => reportError(e.reason));

const state = {
  live: false,
  units: [],          // {name, meta, el, frame, raw, rawId, imu}
  start: 0,           // device µs of the timeline's start and end
  end: 0,
  t: 0,               // device time asked for
  playing: false,
  speed: 1,
  busy: false,
  framesShown: 0,
  cloud: null,
};

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmtUsec(usec) {
  if (usec === null || usec === undefined) return "–";
  return (usec / 1e6).toFixed(6) + " s";
}

function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function hashParams() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { t: p.get("t"), play: p.get("play"), cloud: p.get("cloud"), speed: p.get("speed"), step: p.get("step") };
}

// ---- info panel ----------------------------------------------------------------------------

function infoRows(meta) {
  const rows = [];
  const c = meta.color;
  rows.push(["Colour", c ? `${c.mode || ""} ${c.format || ""} ${c.width}×${c.height}`.trim() : "off"]);
  rows.push(["Depth", meta.depth_mode || "–"]);
  rows.push(["Frame rate", meta.fps ? meta.fps + " fps" : "–"]);
  rows.push(["IMU", meta.imu ? "on" : "off"]);
  rows.push(["Sync", meta.sync || "–"]);
  if (meta.depth_delay_usec) rows.push(["Depth delay", meta.depth_delay_usec + " µs"]);
  rows.push(["Serial", meta.serial || "–"]);
  rows.push(["Firmware", `colour ${meta.color_firmware || "–"}, depth ${meta.depth_firmware || "–"}`]);
  if (meta.length_usec !== undefined) rows.push(["Length", fmtUsec(meta.length_usec)]);
  if (meta.start_offset_usec !== undefined) rows.push(["Start offset", fmtUsec(meta.start_offset_usec)]);
  rows.push(["Host start", meta.host_start_time || "not recorded"]);
  if (meta.captures !== undefined && meta.captures !== null) rows.push(["Captures", String(meta.captures)]);
  if (meta.writing_app) rows.push(["Written by", meta.writing_app]);
  if (meta.output) rows.push(["Recording to", meta.output]);
  const tags = meta.dropped_tags || [];
  rows.push(["Dropped (file tags)", tags.length
    ? tags.map(([k, v]) => `${k.toLowerCase()} ${v}`).join(", ")
    : (state.live ? "see counters" : "no FREEK4A_DROPPED_* tags")]);
  const gaps = meta.gaps || {};
  const gapText = ["color", "depth", "ir"].filter((k) => gaps[k] && gaps[k].length).map((k) =>
    `${k} ${gaps[k].reduce((a, g) => a + g[1], 0)} in ${gaps[k].length} gap(s)`);
  if (!state.live) rows.push(["Missing frames (timestamp gaps, on the timeline)", gapText.length ? gapText.join(", ") : "none"]);
  if (meta.live) {
    const l = meta.live;
    rows.push(["Recording", `${l.elapsed_sec.toFixed(1)} s, ${l.captures} captures, ${fmtBytes(l.bytes)}`]);
    rows.push(["Dropped", `colour ${l.dropped.color}, depth ${l.dropped.depth}, IMU ${l.dropped.imu}`]);
    rows.push(["Preview frames", String(l.preview_frames)]);
  }
  const problems = meta.problems || [];
  rows.push(["Problems", problems.length ? problems : "none"]);
  return rows;
}

function renderInfo(u) {
  const dl = $(".info", u.el);
  dl.textContent = "";
  for (const [k, v] of infoRows(u.meta)) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    dl.appendChild(dt);
    for (const line of Array.isArray(v) ? v : [v]) {
      const dd = document.createElement("dd");
      dd.textContent = line;
      if (k === "Problems" && line !== "none") dd.className = "problem";
      dl.appendChild(dd);
      if (Array.isArray(v) && line !== v[v.length - 1]) dl.appendChild(document.createElement("dt"));
    }
  }
}

// ---- IMU plots -----------------------------------------------------------------------------

function drawImu(u) {
  const cv = $(".imu-plot", u.el);
  const w = cv.width = cv.clientWidth || 600;
  const h = cv.height;
  const g = cv.getContext("2d");
  g.clearRect(0, 0, w, h);
  const imu = u.imu;
  if (!imu || !imu.t.length) {
    g.fillStyle = "#888";
    g.fillText("no IMU samples", 8, 16);
    cv.dataset.samples = "0";
    return;
  }
  cv.dataset.samples = String(imu.t.length);
  const t0 = state.live ? imu.t[0] : state.start;
  const t1 = state.live ? imu.t[imu.t.length - 1] : state.end;
  const span = Math.max(1, t1 - t0);
  const x = (t) => ((t - t0) / span) * (w - 1);
  const panels = [["accelerometer m/s²", imu.acc, 0], ["gyroscope rad/s", imu.gyro, h / 2]];
  const colours = ["#f66", "#6d6", "#69f"];
  for (const [label, data, top] of panels) {
    let lo = Infinity, hi = -Infinity;
    for (const v of data) for (const c of v) { lo = Math.min(lo, c); hi = Math.max(hi, c); }
    if (hi - lo < 1e-6) { hi += 1; lo -= 1; }
    const ph = h / 2 - 14;
    const y = (v) => top + 12 + (1 - (v - lo) / (hi - lo)) * ph;
    g.fillStyle = "#aaa";
    g.fillText(`${label}  [${lo.toFixed(2)} … ${hi.toFixed(2)}]  x y z`, 4, top + 10);
    for (let c = 0; c < 3; c++) {
      g.strokeStyle = colours[c];
      g.beginPath();
      data.forEach((v, i) => (i ? g.lineTo(x(imu.t[i]), y(v[c])) : g.moveTo(x(imu.t[i]), y(v[c]))));
      g.stroke();
    }
  }
  const cur = state.live ? t1 : (u.frame && u.frame.device_usec);
  if (cur !== undefined && cur !== null) {
    g.strokeStyle = "#fff";
    g.beginPath();
    g.moveTo(x(cur), 0);
    g.lineTo(x(cur), h);
    g.stroke();
    cv.dataset.cursorUsec = String(cur);
  }
}

// ---- timeline ------------------------------------------------------------------------------

function drawMarks() {
  const cv = $("#marks");
  const w = cv.width = cv.clientWidth || 800;
  const g = cv.getContext("2d");
  g.clearRect(0, 0, w, cv.height);
  const span = Math.max(1, state.end - state.start);
  const colours = { color: "#f44", depth: "#fa0", ir: "#c6f" };
  let n = 0;
  for (const u of state.units) {
    const gaps = (u.meta && u.meta.gaps) || {};
    for (const k of Object.keys(colours)) {
      for (const [t, missing] of gaps[k] || []) {
        g.fillStyle = colours[k];
        const x = ((t - state.start) / span) * w;
        g.fillRect(Math.floor(x), 0, Math.max(2, (missing * 1e6 / (u.meta.fps || 30)) / span * w), cv.height);
        n++;
      }
    }
  }
  cv.dataset.marks = String(n);
}

// ---- frames --------------------------------------------------------------------------------

function loadImage(img, url) {
  return new Promise((resolve) => {
    if (!url) { img.removeAttribute("src"); img.hidden = true; resolve(false); return; }
    img.hidden = false;
    img.onload = () => resolve(true);
    img.onerror = () => resolve(false);
    img.src = url;
  });
}

async function showFrame(u, frame) {
  const base = `/api/unit/${u.index}/image/${frame.id}/`;
  const same = u.frame && u.frame.device_usec === frame.device_usec && !state.live;
  if (!same) {
    await Promise.all([
      loadImage($("img.color", u.el), frame.color && base + "color.jpg"),
      loadImage($("img.depth", u.el), frame.depth && base + "depth.png"),
      loadImage($("img.ir", u.el), frame.ir && base + "ir.png"),
    ]);
  }
  u.frame = frame;
  u.raw = null;
  for (const k of ["color", "depth", "ir"]) {
    const span = $(`.${k}-ts`, u.el);
    span.textContent = frame[k] ? fmtUsec(frame[k].device_usec) : "none";
    span.dataset.deviceUsec = frame[k] ? String(frame[k].device_usec) : "";
  }
  u.el.dataset.deviceUsec = String(frame.device_usec);
  u.el.dataset.frameId = String(frame.id);
  for (const k of ["color", "depth", "ir"]) {
    const r = $(`img.${k}`, u.el).getBoundingClientRect();
    u.el.dataset[k + "Rect"] = [r.left, r.top, r.width, r.height].map(Math.round).join(",");
  }
  state.framesShown++;
  document.body.dataset.framesShown = String(state.framesShown);
  if (!document.body.dataset.firstUsec) document.body.dataset.firstUsec = String(frame.device_usec);
  drawImu(u);
}

async function fetchFrames(t, step) {
  const q = (t === null ? "" : `t=${t}&`) + `step=${step}`;
  const frames = await Promise.all(state.units.map((u) =>
    getJSON(`/api/unit/${u.index}/frame?${q}`).catch((e) => ({ error: e.message }))));
  await Promise.all(frames.map((f, i) => f.error ? Promise.resolve(noteFrameError(state.units[i], f.error)) : showFrame(state.units[i], f)));
  const shown = state.units.map((u) => u.frame && u.frame.device_usec).filter((v) => v !== undefined && v !== null);
  if (shown.length) {
    const cur = Math.min(...shown);
    const time = $("#time");
    time.dataset.deviceUsec = String(cur);
    time.textContent = `${fmtUsec(cur)} (+${fmtUsec(cur - state.start)})`;
    if (!state.live) $("#seek").value = String(cur);
  }
  if (state.cloud && !$("#cloud-panel").hidden) updateCloud().catch(reportError);
  return shown;
}

function noteFrameError(u, message) {
  $(".mm", u.el).textContent = "";
  const s = $(".depth-ts", u.el);
  s.textContent = "(" + message + ")";
  u.el.dataset.frameError = message;
}

async function goTo(t, step = 0) {
  if (state.busy) return;
  state.busy = true;
  try {
    state.t = t;
    await fetchFrames(t, step);
    document.body.dataset.state = "ready";
  } finally {
    state.busy = false;
  }
}

function step(dir) {
  pause();
  const cur = Number($("#time").dataset.deviceUsec || state.start);
  goTo(cur, dir).catch(reportError);
}

// ---- playback ------------------------------------------------------------------------------

function pause() {
  state.playing = false;
  $("#play").textContent = "Play";
}

async function play() {
  if (state.playing) return;
  state.playing = true;
  $("#play").textContent = "Pause";
  let from = Number($("#time").dataset.deviceUsec || state.start);
  if (from >= state.end) from = state.start;
  const wall0 = performance.now();
  while (state.playing) {
    const t = Math.round(from + (performance.now() - wall0) * 1000 * state.speed);
    if (t > state.end) { pause(); break; }
    const before = performance.now();
    await goTo(t, 0);
    // Never ask faster than about 60 times a second.
    const spent = performance.now() - before;
    if (spent < 16) await new Promise((r) => setTimeout(r, 16 - spent));
  }
}

// The live preview asks for at most this many frames a second: enough to aim a camera, and
// little work taken from the recorder on the same machine.
const LIVE_FPS = 5;

async function liveLoop() {
  for (;;) {
    const before = performance.now();
    try {
      await fetchFrames(null, 0);
      const spent = performance.now() - before;
      if (spent < 1000 / LIVE_FPS) await new Promise((r) => setTimeout(r, 1000 / LIVE_FPS - spent));
      document.body.dataset.state = "ready";
    } catch (e) {
      $("#status").textContent = "recording ended or unreachable";
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function liveMeta() {
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      const s = await getJSON("/api/session");
      s.units.forEach((m, i) => { state.units[i].meta = m.meta; renderInfo(state.units[i]); });
      for (const u of state.units) { u.imu = await getJSON(`/api/unit/${u.index}/imu`); drawImu(u); }
    } catch (e) {
      $("#status").textContent = "recording ended or unreachable";
    }
  }
}

// ---- depth under the cursor ----------------------------------------------------------------

async function rawDepth(u) {
  if (!u.frame || !u.frame.depth) return null;
  if (u.raw && u.rawId === u.frame.id) return u.raw;
  const id = u.frame.id;
  const r = await fetch(`/api/unit/${u.index}/image/${id}/depth.raw`);
  if (!r.ok) return null;
  u.raw = new Uint16Array(await r.arrayBuffer());
  u.rawId = id;
  return u.raw;
}

// The colour camera's image seen from the depth camera (BGRA per depth pixel, alpha 0 where a
// pixel sees no colour), or null when the capture has no colour or no calibration for it.
async function colorInDepth(u) {
  if (!u.frame || !u.frame.color || !u.frame.depth) return null;
  const id = u.frame.id;
  const r = await fetch(`/api/unit/${u.index}/image/${id}/color_in_depth.raw`);
  if (!r.ok) return null;
  return new Uint8Array(await r.arrayBuffer());
}

function watchCursor(u) {
  const img = $("img.depth", u.el);
  img.addEventListener("mousemove", async (e) => {
    const d = u.frame && u.frame.depth;
    if (!d) return;
    const r = img.getBoundingClientRect();
    const px = Math.floor(((e.clientX - r.left) / r.width) * d.width);
    const py = Math.floor(((e.clientY - r.top) / r.height) * d.height);
    const raw = await rawDepth(u);
    if (!raw || px < 0 || py < 0 || px >= d.width || py >= d.height) return;
    const mm = raw[py * d.width + px];
    $(".mm", u.el).textContent = mm ? `${mm} mm at (${px}, ${py})` : `no depth at (${px}, ${py})`;
  });
  img.addEventListener("mouseleave", () => { $(".mm", u.el).textContent = ""; });
}

// ---- point cloud (WebGL) -------------------------------------------------------------------

function initCloud() {
  const cv = $("#cloud");
  const gl = cv.getContext("webgl");
  if (!gl) {
    $("#cloud-note").textContent = "WebGL is not available in this browser";
    return null;
  }
  const vs = `attribute vec3 p; attribute vec3 c; uniform mat4 m; varying vec3 vc;
    void main() { gl_Position = m * vec4(p, 1.0); gl_PointSize = 2.0; vc = c; }`;
  const fs = `precision mediump float; varying vec3 vc; void main() { gl_FragColor = vec4(vc, 1.0); }`;
  const sh = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    return s;
  };
  const prog = gl.createProgram();
  gl.attachShader(prog, sh(gl.VERTEX_SHADER, vs));
  gl.attachShader(prog, sh(gl.FRAGMENT_SHADER, fs));
  gl.linkProgram(prog);
  const cloud = { gl, prog, pos: gl.createBuffer(), col: gl.createBuffer(), count: 0, yaw: 0.5, pitch: 0.3, dist: 3000, rays: {} };
  let drag = null;
  cv.addEventListener("mousedown", (e) => { drag = [e.clientX, e.clientY]; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    cloud.yaw += (e.clientX - drag[0]) * 0.01;
    cloud.pitch += (e.clientY - drag[1]) * 0.01;
    drag = [e.clientX, e.clientY];
    drawCloud(cloud);
  });
  cv.addEventListener("wheel", (e) => { e.preventDefault(); cloud.dist *= e.deltaY > 0 ? 1.1 : 0.9; drawCloud(cloud); });
  return cloud;
}

function drawCloud(cloud) {
  const { gl, prog } = cloud;
  const cv = gl.canvas;
  gl.viewport(0, 0, cv.width, cv.height);
  gl.clearColor(0, 0, 0, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  if (!cloud.count) return;
  gl.enable(gl.DEPTH_TEST);
  gl.useProgram(prog);
  const aspect = cv.width / cv.height;
  const f = 1 / Math.tan(Math.PI / 6), n = 50, far = 20000;
  const cyw = Math.cos(cloud.yaw), syw = Math.sin(cloud.yaw), cp = Math.cos(cloud.pitch), sp = Math.sin(cloud.pitch);
  const c = cloud.centre || [0, 0, 2000];
  // view = T(0,0,-dist) · Rx(pitch) · Ry(yaw) · S(1,-1,-1) · T(-c); column-major for GL.
  const mul = (a, b) => {
    const o = new Array(16).fill(0);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 4; k++) o[j * 4 + i] += a[k * 4 + i] * b[j * 4 + k];
    return o;
  };
  const T = (x, y, z) => [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, x, y, z, 1];
  const S = [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1];
  const Ry = [cyw, 0, -syw, 0, 0, 1, 0, 0, syw, 0, cyw, 0, 0, 0, 0, 1];
  const Rx = [1, 0, 0, 0, 0, cp, sp, 0, 0, -sp, cp, 0, 0, 0, 0, 1];
  const P = [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + n) / (n - far), -1, 0, 0, (2 * far * n) / (n - far), 0];
  const m = mul(P, mul(T(0, 0, -cloud.dist), mul(Rx, mul(Ry, mul(S, T(-c[0], -c[1], -c[2]))))));
  gl.uniformMatrix4fv(gl.getUniformLocation(prog, "m"), false, new Float32Array(m));
  const bind = (buf, name) => {
    const loc = gl.getAttribLocation(prog, name);
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 3, gl.FLOAT, false, 0, 0);
  };
  bind(cloud.pos, "p");
  bind(cloud.col, "c");
  gl.drawArrays(gl.POINTS, 0, cloud.count);
}

async function updateCloud() {
  const cloud = state.cloud;
  const u = state.units[0];
  if (!cloud || !u || !u.frame || !u.frame.depth) return;
  if (!cloud.rays[u.index]) {
    const r = await fetch(`/api/unit/${u.index}/rays`);
    if (!r.ok) { $("#cloud-note").textContent = "no depth calibration in this recording"; return; }
    cloud.rays[u.index] = new Float32Array(await r.arrayBuffer());
  }
  const rays = cloud.rays[u.index];
  const raw = await rawDepth(u);
  if (!raw) return;
  const d = u.frame.depth;
  // Points take the colour camera's colour where it sees them, else the depth scale's colour
  // from the image the page already shows.
  const seen = await colorInDepth(u);
  const img = $("img.depth", u.el);
  const off = document.createElement("canvas");
  off.width = d.width; off.height = d.height;
  const g = off.getContext("2d");
  g.drawImage(img, 0, 0);
  const px = g.getImageData(0, 0, d.width, d.height).data;
  const pos = [], col = [];
  let sx = 0, sy = 0, sz = 0, coloured = 0;
  for (let y = 0; y < d.height; y += 2) {
    for (let x = 0; x < d.width; x += 2) {
      const i = y * d.width + x;
      const z = raw[i];
      if (!z || 2 * i + 1 >= rays.length || Number.isNaN(rays[2 * i])) continue;
      const X = rays[2 * i] * z, Y = rays[2 * i + 1] * z;
      pos.push(X, Y, z);
      if (seen && seen.length >= 4 * (i + 1) && seen[4 * i + 3]) {
        col.push(seen[4 * i + 2] / 255, seen[4 * i + 1] / 255, seen[4 * i] / 255);
        coloured++;
      } else {
        col.push(px[4 * i] / 255, px[4 * i + 1] / 255, px[4 * i + 2] / 255);
      }
      sx += X; sy += Y; sz += z;
    }
  }
  const n = pos.length / 3;
  if (n && !cloud.centre) cloud.centre = [sx / n, sy / n, sz / n];
  const gl = cloud.gl;
  gl.bindBuffer(gl.ARRAY_BUFFER, cloud.pos);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(pos), gl.STATIC_DRAW);
  gl.bindBuffer(gl.ARRAY_BUFFER, cloud.col);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(col), gl.STATIC_DRAW);
  cloud.count = n;
  const cv = $("#cloud");
  cv.dataset.points = String(n);
  cv.dataset.coloured = String(coloured);
  const r = cv.getBoundingClientRect();
  cv.dataset.canvasRect = [r.left, r.top, r.width, r.height].map(Math.round).join(",");
  const how = coloured ? `${coloured} coloured by the colour camera, the rest by depth` : "coloured by depth";
  $("#cloud-note").textContent = `${n} points of ${u.name} (depth camera; every 2nd pixel; ${how})`;
  drawCloud(cloud);
}

function toggleCloud(on) {
  $("#cloud-panel").hidden = !on;
  $("#cloud-toggle").checked = on;
  if (on && !state.cloud) state.cloud = initCloud();
  if (on) updateCloud().catch(reportError);
}

// ---- start ---------------------------------------------------------------------------------

async function main() {
  const session = await getJSON("/api/session");
  state.live = session.live;
  document.body.classList.toggle("live", state.live);
  document.body.classList.toggle("rig", session.units.length > 1);
  $("#mode-label").textContent = state.live ? "live preview" : session.units.length > 1 ? `rig of ${session.units.length}` : "";
  const tpl = $("#unit-template");
  const starts = [], ends = [];
  session.units.forEach((s, index) => {
    const el = tpl.content.firstElementChild.cloneNode(true);
    el.id = `unit-${index}`;
    $(".unit-name", el).textContent = s.name;
    $("#units").appendChild(el);
    const u = { index, name: s.name, meta: s.meta, el, frame: null, raw: null, imu: null };
    state.units.push(u);
    renderInfo(u);
    watchCursor(u);
    const range = s.meta.depth_range;
    if (range) {
      $("img.legend", el).src = `/api/unit/${index}/legend.png`;
      $(".scale-min", el).textContent = range.min_mm + " mm";
      $(".scale-max", el).textContent = range.max_mm + " mm";
    } else {
      $(".scale", el).hidden = true;
    }
    if (s.meta.first_usec !== undefined && s.meta.first_usec !== null) starts.push(s.meta.first_usec);
    if (s.meta.last_usec !== undefined && s.meta.last_usec !== null) ends.push(s.meta.last_usec);
  });
  state.start = starts.length ? Math.min(...starts) : 0;
  state.end = ends.length ? Math.max(...ends) : 0;
  const seek = $("#seek");
  seek.min = String(state.start);
  seek.max = String(state.end);
  await Promise.all(state.units.map(async (u) => { u.imu = await getJSON(`/api/unit/${u.index}/imu`); drawImu(u); }));
  drawMarks();

  $("#play").addEventListener("click", () => (state.playing ? pause() : play().catch(reportError)));
  $("#prev").addEventListener("click", () => step(-1));
  $("#next").addEventListener("click", () => step(1));
  $("#speed").addEventListener("change", (e) => {
    state.speed = Number(e.target.value);
    if (state.playing) { pause(); setTimeout(() => play().catch(reportError), 50); }
  });
  seek.addEventListener("input", () => { pause(); goTo(Number(seek.value)).catch(reportError); });
  $("#cloud-toggle").addEventListener("change", (e) => toggleCloud(e.target.checked));
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === " ") { e.preventDefault(); state.playing ? pause() : play().catch(reportError); }
    if (e.key === "ArrowLeft") step(-1);
    if (e.key === "ArrowRight") step(1);
  });
  window.addEventListener("resize", () => { drawMarks(); state.units.forEach(drawImu); });

  const hp = hashParams();
  if (hp.speed) { state.speed = Number(hp.speed) || 1; $("#speed").value = String(state.speed); }
  if (hp.cloud) toggleCloud(true);
  if (state.live) {
    liveLoop();
    liveMeta();
    return;
  }
  if (state.units.every((u) => u.meta.first_usec === undefined || u.meta.first_usec === null)) {
    $("#status").textContent = "nothing readable to show";
    document.body.dataset.state = "ready";
    return;
  }
  await goTo(hp.t !== null ? Number(hp.t) : state.start);
  // #step=N: N frame steps (negative: back) from there, as the step buttons do.
  const steps = Number(hp.step) || 0;
  for (let i = 0; i < Math.abs(steps); i++) {
    await goTo(Number($("#time").dataset.deviceUsec), Math.sign(steps));
  }
  if (hp.play) play().catch(reportError);
}

main().catch((e) => { reportError(e.message || e); document.body.dataset.state = "failed"; });
