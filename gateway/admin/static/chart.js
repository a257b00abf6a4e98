// The usage chart: hourly buckets as stacked bars (allowed below, denied above),
// drawn as inline SVG at the width of its container.

import { formatNumber, svg } from "./dom.js";

const HEIGHT = 190;
const MARGIN = { top: 12, right: 8, bottom: 26, left: 40 };

const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric" });
const dayOnly = new Intl.DateTimeFormat(undefined, { day: "numeric" });
const hourLabel = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
});

/** Totals over all buckets, and the busiest hour. */
export function usageTotals(buckets) {
  let allowed = 0;
  let denied = 0;
  let peak = null;
  for (const bucket of buckets) {
    allowed += bucket.allowed;
    denied += bucket.denied;
    const total = bucket.allowed + bucket.denied;
    if (total > 0 && (peak === null || total > peak.allowed + peak.denied)) peak = bucket;
  }
  return { allowed, denied, peak };
}

/** The summary a screen reader gets instead of the bars. */
export function usageSummary(buckets) {
  const { allowed, denied } = usageTotals(buckets);
  return `${formatNumber(allowed)} allowed, ${formatNumber(denied)} denied in the last 7 days`;
}

function niceScale(max) {
  if (max <= 0) return { top: 4, step: 1 };
  const rough = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  const whole = Math.max(1, step);
  return { top: Math.ceil(max / whole) * whole, step: whole };
}

/** Draw `buckets` into `container`, replacing what was there. */
export function drawUsage(container, buckets, summary) {
  const width = Math.max(280, Math.floor(container.clientWidth || 720));
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const max = Math.max(0, ...buckets.map((b) => b.allowed + b.denied));
  const { top, step } = niceScale(max);
  const y = (n) => MARGIN.top + plotH - (n / top) * plotH;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, slot > 4 ? slot - 1.5 : slot);

  const chart = svg("svg", {
    width,
    height: HEIGHT,
    viewBox: `0 0 ${width} ${HEIGHT}`,
    role: "img",
    "aria-label": summary,
    class: "usage-svg",
  });

  const grid = svg("g", { class: "chart-grid" });
  for (let tick = 0; tick <= top; tick += step) {
    const ty = Math.round(y(tick)) + 0.5;
    grid.append(
      svg("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: ty, y2: ty }),
      svg("text", {
        x: MARGIN.left - 6,
        y: ty,
        class: "chart-label chart-label-y",
        text: formatNumber(tick),
      }),
    );
  }
  chart.append(grid);

  const days = svg("g", { class: "chart-days" });
  const compact = slot * 24 < 46;
  buckets.forEach((bucket, index) => {
    const start = new Date(bucket.start);
    if (start.getHours() !== 0 || index === 0) return;
    const x = Math.round(MARGIN.left + index * slot) + 0.5;
    days.append(
      svg("line", { x1: x, x2: x, y1: MARGIN.top, y2: MARGIN.top + plotH + 4 }),
      svg("text", {
        x: x + 3,
        y: HEIGHT - 8,
        class: "chart-label chart-label-x",
        text: (compact ? dayOnly : weekday).format(start),
      }),
    );
  });
  chart.append(days);

  const bars = svg("g", { class: "chart-bars" });
  buckets.forEach((bucket, index) => {
    const x = MARGIN.left + index * slot;
    const group = svg("g", { class: "chart-slot" });
    const title = `${hourLabel.format(new Date(bucket.start))}: ${bucket.allowed} allowed, ${
      bucket.denied
    } denied`;
    group.append(
      svg("title", { text: title }),
      svg("rect", { x, y: MARGIN.top, width: slot, height: plotH, class: "chart-hit" }),
    );
    if (bucket.allowed > 0) {
      group.append(
        svg("rect", {
          x: x + (slot - barW) / 2,
          y: y(bucket.allowed),
          width: barW,
          height: y(0) - y(bucket.allowed),
          class: "bar-allowed",
        }),
      );
    }
    if (bucket.denied > 0) {
      group.append(
        svg("rect", {
          x: x + (slot - barW) / 2,
          y: y(bucket.allowed + bucket.denied),
          width: barW,
          height: y(bucket.allowed) - y(bucket.allowed + bucket.denied),
          class: "bar-denied",
        }),
      );
    }
    bars.append(group);
  });
  chart.append(bars);

  const base = Math.round(y(0)) + 0.5;
  chart.append(
    svg("line", {
      x1: MARGIN.left,
      x2: width - MARGIN.right,
      y1: base,
      y2: base,
      class: "chart-axis",
    }),
  );
  if (max === 0) {
    chart.append(
      svg("text", {
        x: MARGIN.left + plotW / 2,
        y: MARGIN.top + plotH / 2,
        class: "chart-empty",
        text: "No requests in the last 7 days",
      }),
    );
  }
  container.replaceChildren(chart);
}

export const peakText = (peak) =>
  peak
    ? `Busiest hour: ${hourLabel.format(new Date(peak.start))}, ${formatNumber(
        peak.allowed + peak.denied,
      )} requests.`
    : "";
