// The Metrics page's time-series charts, drawn with uPlot (MIT, ~50 KB minified, no
// dependencies; canvas, so thousands of points stay cheap). Its stylesheet is bundled by
// esbuild into console/app.css. uPlot sets element styles through the CSSOM only, which the
// console's Content-Security-Policy (style-src 'self') allows.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// Distinguishable on white, then repeated a shade darker.
const PALETTE = ["#2e90fa", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#06aed4", "#66c61c", "#d92d20",
  "#4e5ba6", "#e0a100", "#0e9384", "#9e77ed"];
export const color = (i) => PALETTE[i % PALETTE.length];

const HEIGHT = 220;
const width = (el) => Math.max(320, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 640));

// Draws a time-series chart into `el` (replacing one drawn before) and keeps the uPlot instance on
// `el.uplot`, so the browser test reads the very arrays that were plotted.
// series: [{ label, values, color, bars?: size factor (0..1), points?: bool }]
export function timeChart(el, { times, series, yLabel, yMin = 0 }) {
  el.uplot?.destroy();
  el.replaceChildren();
  const opts = {
    width: width(el),
    height: HEIGHT,
    scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(yMin, min ?? 0), Math.max(1, max ?? 1) * 1.1] } },
    axes: [{ stroke: "#5b6573", grid: { stroke: "#eef1f5" } },
      { label: yLabel, size: 56, stroke: "#5b6573", grid: { stroke: "#eef1f5" } }],
    cursor: { drag: { x: false, y: false } },
    series: [{}, ...series.map((s) => ({
      label: s.label,
      stroke: s.color,
      fill: s.bars ? s.color : undefined,
      width: s.bars ? 0 : 1.5,
      paths: s.bars ? uPlot.paths.bars({ size: [s.bars, 24] }) : undefined,
      points: { show: s.points ?? !s.bars, size: 5, fill: s.color },
      spanGaps: false,
    }))],
  };
  el.uplot = new uPlot(opts, [times, ...series.map((s) => s.values)], el);
  return el.uplot;
}

// What a chart plots, for the page's data attributes and the browser test: per series, how many
// points hold a value, how many are above zero, and their sum.
export function summary(u) {
  return Object.fromEntries(u.series.slice(1).map((s, i) => {
    const values = u.data[i + 1].filter((v) => v != null);
    return [s.label, { points: values.length, nonzero: values.filter((v) => v > 0).length,
      sum: Math.round(values.reduce((a, b) => a + b, 0) * 1000) / 1000 }];
  }));
}

export function resizeAll(root) {
  root.querySelectorAll(".plot").forEach((el) => el.uplot?.setSize({ width: width(el), height: HEIGHT }));
}
