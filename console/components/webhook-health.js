// Webhook health (GET /orgs/{orgId}/webhook-health, global administrators): the API's alerts as
// banners, the endpoint with a copy button, the last 24 hours' counts, and two charts drawn as
// inline SVG with DOM APIs (the CSP allows no library and no inline style): rejections by
// reason, and the rejection rate against the 10 % alert line. Each chart has a <title>/<desc>
// and a data table a button shows.
import { Screen, errorNotice, facts, timeElement } from "./common.js";
import { ApiError, segment } from "../lib/api.js";
import { fill, h, uid } from "../lib/dom.js";
import { formatDateTime, formatNumber, has, locale, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";

// The API's alert threshold (docs/admin-api.md, "Webhook health"): the line on the rate chart.
const RATE_THRESHOLD_PERCENT = 10;
const SVG_NS = "http://www.w3.org/2000/svg";

class WebhookHealth extends Screen {
  async start() {
    this.observers = [];
    let health;
    try {
      health = await this.fetchHealth();
    } catch (error) {
      fill(this, this.heading(t("health.title")), ...this.refusal(error));
      return;
    }
    this.render(health);
  }

  disconnectedCallback() {
    this.stopObserving();
  }

  fetchHealth() {
    return this.context.api.admin("GET", `/orgs/${segment(this.context.orgId)}/webhook-health`);
  }

  /** The API's refusal; a 403 here means the caller is not a global administrator. */
  refusal(error) {
    const notice = errorNotice(error);
    if (!(error instanceof ApiError) || error.status !== 403) return [notice];
    return [
      notice,
      h("p", {}, t("health.refused_explained")),
      h(
        "p",
        {},
        h(
          "a",
          { href: routeHref(["orgs", this.context.orgId, "sync"]) },
          t("health.refused_sync_link"),
        ),
      ),
    ];
  }

  async refresh(button) {
    button.disabled = true;
    try {
      this.render(await this.fetchHealth());
      this.context.announce(t("health.refreshed"));
      this.querySelector(".health-refresh")?.focus();
    } catch (error) {
      button.disabled = false;
      fill(this.refreshProblem, errorNotice(error, { headingLevel: "h2" }));
    }
  }

  render(health) {
    this.stopObserving();
    this.refreshProblem = h("div", {});
    const refresh = h(
      "button",
      {
        type: "button",
        class: "button button-secondary health-refresh",
        onclick: () => this.refresh(refresh),
      },
      t("health.refresh"),
    );
    fill(
      this,
      this.heading(t("health.title")),
      alerts(health),
      h(
        "div",
        { class: "panel-heading health-intro" },
        h(
          "p",
          { class: "lead" },
          t("health.intro", { organization: this.context.organizationName }),
        ),
        refresh,
      ),
      this.refreshProblem,
      this.endpointPanel(health),
      dayPanel(health),
      h(
        "section",
        { class: "panel", "aria-labelledby": "reasons-heading" },
        h("h2", { id: "reasons-heading" }, t("health.reasons_heading")),
        this.reasonsChart(health),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "rate-heading" },
        h("h2", { id: "rate-heading" }, t("health.rate_heading")),
        h(
          "p",
          { class: "hint" },
          t("health.rate_hint", {
            threshold: formatPercent(RATE_THRESHOLD_PERCENT),
            minimum: health.last_hour.minimum_volume,
          }),
        ),
        this.rateChart(health),
      ),
    );
  }

  endpointPanel(health) {
    const url = h("input", {
      type: "text",
      readonly: true,
      value: health.endpoint_url,
      class: "input-wide endpoint-url",
      spellcheck: "false",
      autocomplete: "off",
      id: "endpoint-url",
    });
    const copied = h("p", { class: "copied", role: "status", "aria-live": "polite" });
    return h(
      "section",
      { class: "panel", "aria-labelledby": "endpoint-heading" },
      h("h2", { id: "endpoint-heading" }, t("health.endpoint_heading")),
      h(
        "div",
        { class: "field" },
        h("label", { for: "endpoint-url" }, t("health.endpoint_label")),
        h("div", { class: "copy-row" }, url, copyButton(health.endpoint_url, url, copied)),
      ),
      copied,
      facts([
        [t("health.signature_mode"), t(`integration.mode.${health.signature_mode}`)],
        [
          t("health.replay_protection"),
          health.replay_protection ? t("health.replay_yes") : t("health.replay_no"),
        ],
      ]),
    );
  }

  reasonsChart(health) {
    const reasons = Object.entries(health.rejected_by_reason_24h ?? {})
      .map(([code, count]) => ({ code, count, label: reasonName(code) }))
      .sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
    if (!reasons.length) return h("p", { class: "empty" }, t("health.reasons_none"));
    const description = reasons
      .map((reason) => t("health.reasons_desc_item", reason))
      .join(t("health.list_separator"));
    return this.chart({
      name: "reasons",
      title: t("health.reasons_chart_title"),
      description,
      draw: (width) => reasonBars(reasons, width),
      table: () =>
        dataTable(
          t("health.reasons_table_caption"),
          ["health.col.reason", "health.col.code", "health.col.rejections"],
          reasons.map((reason) => ({
            data: { reason: reason.code },
            cells: [reason.label, h("code", {}, reason.code), formatNumber(reason.count)],
          })),
        ),
    });
  }

  rateChart(health) {
    const points = ratePoints(health);
    const description = [
      ...points.map((point) =>
        t("health.rate_desc_item", {
          label: point.label,
          rate: formatPercent(point.rate),
          rejected: point.rejected,
          received: point.received,
        }),
      ),
      t("health.rate_desc_threshold", { threshold: formatPercent(RATE_THRESHOLD_PERCENT) }),
    ].join(t("health.list_separator"));
    return this.chart({
      name: "rate",
      title: t("health.rate_chart_title"),
      description,
      draw: (width) => rateBars(points, width),
      table: () =>
        dataTable(
          t("health.rate_table_caption"),
          ["health.col.period", "health.col.received", "health.col.rejected", "health.col.rate"],
          points.map((point) => ({
            data: { period: point.key },
            cells: [
              point.label,
              formatNumber(point.received),
              formatNumber(point.rejected),
              formatPercent(point.rate),
            ],
          })),
        ),
    });
  }

  /**
   * A chart drawn for its container's width (text stays its real size at a phone's width and a
   * laptop's), its name and description from <title> and <desc>, and its figures as a table
   * behind a toggle.
   */
  chart({ name, title, description, draw, table }) {
    const titleId = uid(`${name}-chart-title`);
    const descId = uid(`${name}-chart-desc`);
    const canvas = h("div", { class: "chart-canvas" });
    let drawnWidth = 0;
    const redraw = () => {
      // 640 until the canvas is laid out; the observer draws it again at its width.
      const width = Math.max(260, Math.floor(canvas.clientWidth || 640));
      if (width === drawnWidth) return;
      drawnWidth = width;
      const { svg, height } = draw(width);
      svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
      svg.setAttribute("width", String(width));
      svg.setAttribute("height", String(height));
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-labelledby", `${titleId} ${descId}`);
      svg.setAttribute("class", `chart-svg chart-${name}`);
      svg.prepend(s("title", { id: titleId }, title), s("desc", { id: descId }, description));
      canvas.replaceChildren(svg);
    };
    redraw();
    // Drawn again in the next frame, not inside the observer's callback: a new height there
    // would be a resize loop.
    const observer = new ResizeObserver(() => requestAnimationFrame(redraw));
    observer.observe(canvas);
    this.observers.push(observer);

    const tableId = uid(`${name}-table`);
    const tableHolder = h("div", { id: tableId, class: "chart-table", hidden: true }, table());
    const toggle = h(
      "button",
      {
        type: "button",
        class: "button button-secondary chart-toggle",
        "aria-expanded": "false",
        "aria-controls": tableId,
        onclick: () => {
          const open = toggle.getAttribute("aria-expanded") !== "true";
          toggle.setAttribute("aria-expanded", String(open));
          toggle.textContent = open ? t("health.hide_table") : t("health.show_table");
          tableHolder.hidden = !open;
        },
      },
      t("health.show_table"),
    );
    return h("figure", { class: `chart chart-figure-${name}` }, canvas, toggle, tableHolder);
  }

  stopObserving() {
    for (const observer of this.observers ?? []) observer.disconnect();
    this.observers = [];
  }
}

/** The API's alerts, first on the screen: an outage, a high rejection rate, or none. */
function alerts(health) {
  const banners = [];
  if (health.outage.alert) {
    banners.push(
      h(
        "div",
        { class: "notice notice-error alert-banner", role: "alert", "data-alert": "outage" },
        h("h2", { class: "notice-title" }, t("health.outage_title")),
        health.outage.reason ? h("p", { class: "api-message" }, health.outage.reason) : null,
        h(
          "p",
          {},
          health.outage.last_healthy_at
            ? t("health.last_healthy", { time: formatDateTime(health.outage.last_healthy_at) })
            : t("health.never_healthy"),
        ),
      ),
    );
  }
  const hour = health.last_hour;
  if (hour.alert) {
    banners.push(
      h(
        "div",
        {
          class: "notice notice-error alert-banner",
          role: "alert",
          "data-alert": "rejection-rate",
        },
        h("h2", { class: "notice-title" }, t("health.rate_alert_title")),
        h(
          "p",
          {},
          t("health.rate_alert_body", {
            rate: formatPercent(hour.rate_percent),
            rejected: hour.rejected,
            received: hour.received,
            threshold: formatPercent(RATE_THRESHOLD_PERCENT),
          }),
        ),
        h("p", {}, t("health.rate_alert_action")),
      ),
    );
  }
  if (!banners.length) {
    banners.push(
      h(
        "div",
        { class: "notice notice-success", role: "status", "data-alert": "none" },
        h("p", {}, t("health.no_alerts")),
      ),
    );
  }
  if (health.note) {
    // Not an alert: a standing property of the signature mode, in the API's words.
    banners.push(
      h(
        "div",
        { class: "notice notice-warning", "data-alert": "note" },
        h("h2", { class: "notice-title" }, t("health.note_title")),
        h("p", { class: "api-message" }, health.note),
      ),
    );
  }
  return h("div", { class: "health-alerts" }, banners);
}

function dayPanel(health) {
  return h(
    "section",
    { class: "panel", "aria-labelledby": "day-heading" },
    h("h2", { id: "day-heading" }, t("health.day_heading")),
    h(
      "div",
      { class: "figures" },
      figure("received", t("health.received"), health.received_24h),
      figure("accepted", t("health.accepted"), health.accepted_24h),
      figure("duplicate", t("health.duplicates"), health.duplicate_24h),
      figure(
        "rejected",
        t("health.rejected"),
        health.rejected_24h,
        health.rejected_24h ? "figure-error" : "",
      ),
    ),
    facts([
      [t("health.last_healthy_label"), timeElement(health.outage.last_healthy_at, formatDateTime)],
    ]),
  );
}

function figure(name, label, value, modifier = "") {
  return h(
    "div",
    { class: `figure ${modifier}`.trim(), "data-figure": name },
    h("span", { class: "figure-label" }, label),
    h("span", { class: "figure-value" }, formatNumber(value)),
  );
}

/**
 * The rates the API reports: the last 24 hours' (its totals) and the rolling last hour's. The
 * API has no hour-by-hour series yet (docs/console.md, "What the API lacks"); with one, each
 * hour is one more point here.
 */
function ratePoints(health) {
  const day = {
    key: "24h",
    label: t("health.period_24h"),
    received: health.received_24h,
    rejected: health.rejected_24h,
    rate: health.received_24h
      ? Math.round((1000 * health.rejected_24h) / health.received_24h) / 10
      : 0,
  };
  const hour = {
    key: "1h",
    label: t("health.period_1h"),
    received: health.last_hour.received,
    rejected: health.last_hour.rejected,
    rate: health.last_hour.rate_percent,
  };
  return [day, hour];
}

function reasonName(code) {
  const key = `health.reason.${code}`;
  return has(key) ? t(key) : code;
}

// -- drawing ---------------------------------------------------------------------------------

/** An SVG element with presentation attributes (never `style`: the CSP forbids it). */
function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}

/** Horizontal bars, one per reason, its name above it and its count at its end. */
function reasonBars(reasons, width) {
  const rowHeight = 52;
  const barHeight = 20;
  const valueRoom = 64;
  const top = 4;
  const most = Math.max(...reasons.map((reason) => reason.count), 1);
  const room = width - valueRoom;
  const rows = reasons.map((reason, index) => {
    const y = top + index * rowHeight;
    const length = Math.max(2, Math.round((reason.count / most) * room));
    return s(
      "g",
      { class: "chart-row" },
      s("text", { x: 0, y: y + 16, class: "chart-label" }, reason.label),
      s("rect", {
        x: 0,
        y: y + 24,
        width: length,
        height: barHeight,
        rx: 2,
        class: "chart-bar chart-bar-rejected",
        "data-reason": reason.code,
        "data-count": reason.count,
      }),
      s(
        "text",
        { x: length + 8, y: y + 24 + 15, class: "chart-value", "data-reason": reason.code },
        formatNumber(reason.count),
      ),
    );
  });
  const height = top + reasons.length * rowHeight + 4;
  return { svg: s("svg", { xmlns: SVG_NS, focusable: "false" }, rows), height };
}

/** Vertical bars of rejection rates (percent) with the alert threshold as a dashed line. */
function rateBars(points, width) {
  const height = 260;
  const margin = { top: 28, right: 8, bottom: 44, left: 52 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const highest = Math.max(RATE_THRESHOLD_PERCENT * 2, ...points.map((point) => point.rate));
  const top = Math.min(100, Math.ceil(highest / 10) * 10);
  const step = top <= 50 ? 10 : 20;
  const yOf = (rate) => margin.top + plotHeight - (rate / top) * plotHeight;

  const grid = [];
  for (let tick = 0; tick <= top; tick += step) {
    const y = yOf(tick);
    grid.push(
      s("line", {
        x1: margin.left,
        x2: width - margin.right,
        y1: y,
        y2: y,
        class: tick ? "chart-grid" : "chart-axis",
      }),
      s(
        "text",
        { x: margin.left - 8, y: y + 5, class: "chart-tick", "text-anchor": "end" },
        formatPercent(tick),
      ),
    );
  }

  const slot = plotWidth / points.length;
  const barWidth = Math.min(96, slot * 0.6);
  // With many points (hours), only every n-th is named below its bar.
  const labelEvery = Math.max(1, Math.ceil(points.length / Math.floor(plotWidth / 110)));
  const bars = points.map((point, index) => {
    const x = margin.left + index * slot + (slot - barWidth) / 2;
    const y = yOf(Math.min(point.rate, top));
    const over = point.rate > RATE_THRESHOLD_PERCENT;
    return s(
      "g",
      { class: "chart-column" },
      s("rect", {
        x,
        y,
        width: barWidth,
        height: Math.max(0, margin.top + plotHeight - y),
        class: over ? "chart-bar chart-bar-over" : "chart-bar chart-bar-rate",
        "data-period": point.key,
        "data-rate": point.rate,
      }),
      s(
        "text",
        {
          x: x + barWidth / 2,
          y: y - 6,
          "text-anchor": "middle",
          class: "chart-value",
          "data-period": point.key,
        },
        formatPercent(point.rate),
      ),
      index % labelEvery === 0
        ? s(
            "text",
            {
              x: x + barWidth / 2,
              y: margin.top + plotHeight + 24,
              "text-anchor": "middle",
              class: "chart-label",
            },
            point.label,
          )
        : null,
    );
  });

  const thresholdY = yOf(RATE_THRESHOLD_PERCENT);
  const threshold = s(
    "g",
    { class: "chart-threshold-group" },
    s("line", {
      x1: margin.left,
      x2: width - margin.right,
      y1: thresholdY,
      y2: thresholdY,
      class: "chart-threshold",
      "stroke-dasharray": "8 5",
      "data-threshold": RATE_THRESHOLD_PERCENT,
    }),
    s(
      "text",
      {
        x: width - margin.right,
        y: thresholdY - 6,
        "text-anchor": "end",
        class: "chart-threshold-label",
      },
      t("health.threshold_label", { threshold: formatPercent(RATE_THRESHOLD_PERCENT) }),
    ),
  );
  return {
    svg: s("svg", { xmlns: SVG_NS, focusable: "false" }, grid, bars, threshold),
    height,
  };
}

function dataTable(caption, columns, rows) {
  return h(
    "table",
    { class: "data-table" },
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map((key) => h("th", { scope: "col" }, t(key))),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map(({ data, cells }) =>
        h(
          "tr",
          Object.fromEntries(Object.entries(data).map(([name, value]) => [`data-${name}`, value])),
          cells.map((cell, index) =>
            index === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell),
          ),
        ),
      ),
    ),
  );
}

function copyButton(text, input, status) {
  return h(
    "button",
    {
      type: "button",
      class: "button button-secondary",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          status.textContent = t("health.copied");
        } catch {
          // No clipboard permission: the address is selected for the reader to copy.
          input.focus();
          input.select();
          status.textContent = t("health.copy_manually");
        }
      },
    },
    t("health.copy"),
  );
}

function formatPercent(value) {
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 1 }).format(
    value / 100,
  );
}

customElements.define("ps-webhook-health", WebhookHealth);
