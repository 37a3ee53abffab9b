// Sync status and log (GET /orgs/{orgId}/sync/status, GET .../sync/events, POST
// .../sync/events/{id}/reprocess, POST .../sync/import and .../sync/reconcile): the figures,
// an import or reconciliation started (confirmed first) and followed until it ends, the log
// newest first with status and type filters (kept in the address), cursor paging, each
// entry's description, and reprocessing an error.
import {
  Screen,
  confirmation,
  errorNotice,
  facts,
  field,
  focusPager,
  pager,
  panel,
  timeElement,
} from "./common.js";
import { segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { formatDateTime, formatNumber, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";

const STATUSES = ["success", "error", "skipped"];
const PAGE_SIZES = [10, 25, 50, 100];
const DEFAULT_PAGE_SIZE = 25;
// A run is followed by reading sync/status this often: every 2 s for its first minute, then
// every 10 s (an import of a large organisation takes many minutes), until it ends.
const FOLLOW_FAST_MS = 2000;
const FOLLOW_FAST_ROUNDS = 30;
const FOLLOW_SLOW_MS = 10000;
// What each start button asks for (its route), in the order shown.
const RUNS = [
  { kind: "import", route: "sync/import" },
  { kind: "reconcile", route: "sync/reconcile" },
];
// The event types the product logs (docs/inbound.md), offered as suggestions for the filter
// (the API lists none: docs/console.md, "What the API lacks"). Dataverse rows the mapping
// skips are logged as dataverse.<table>.<message>.
const KNOWN_TYPES = [
  "member.updated",
  "membership.created",
  "membership.role_updated",
  "membership.deactivated",
  "membership.reactivated",
  "course.enrolled",
  "course.unenrolled",
  "webhook.test",
];

class SyncLog extends Screen {
  async start() {
    const params = this.context.params;
    const wanted = params.get("status");
    const limit = Number(params.get("limit"));
    this.filters = {
      status: STATUSES.includes(wanted) ? wanted : "",
      type: params.get("type") ?? "",
      limit: Number.isInteger(limit) && limit >= 1 && limit <= 200 ? limit : DEFAULT_PAGE_SIZE,
    };
    // The cursors of the pages before the one shown: "Newer entries" goes back one.
    this.cursors = [];
    this.cursor = null;
    this.reprocessed = new Map();
    this.following = 0;
    this.statusOutput = h("div", { class: "sync-status" });
    // A refusal to start a run, and apart from it the run started here, still followed.
    this.refusalOutput = h("div", { class: "run-refusal" });
    this.runOutput = h("div", { class: "run-result" });
    this.logOutput = h("div", { class: "sync-log" });
    this.dialog = confirmation();
    let status;
    const opened = await this.opened(t("sync.title"), async () => {
      status = await this.fetchStatus();
    });
    if (!opened) return;
    this.statusOutput.replaceChildren(...statusFigures(status));
    fill(
      this,
      this.heading(t("sync.title")),
      this.lead("sync.intro"),
      panel({
        id: "status-heading",
        title: t("sync.status_heading"),
        action: { label: t("sync.refresh"), onclick: () => this.refresh() },
        children: [this.statusOutput, this.runActions(), this.refusalOutput, this.runOutput],
      }),
      panel({
        id: "log-heading",
        title: t("sync.log_heading"),
        children: [this.filterForm(), this.logOutput],
      }),
      this.dialog.element,
    );
    // A run under way when the screen opens (the schedule's, onboarding's) is followed too.
    const running = [status.full_import, status.reconciliation].find(
      (run) => run?.phase === "running",
    );
    if (running) this.follow(running, { notice: false });
    await this.loadPage();
  }

  runActions() {
    return h(
      "div",
      { class: "run-actions" },
      h("p", { class: "hint" }, t("sync.start.hint")),
      h(
        "div",
        { class: "actions" },
        RUNS.map(({ kind, route }) =>
          h(
            "button",
            {
              type: "button",
              class: "button button-primary",
              "data-run": kind,
              onclick: (event) => this.startRun(kind, route, event.currentTarget),
            },
            t(`sync.start.${kind}`),
          ),
        ),
      ),
    );
  }

  /** Asks first; then starts the run, shows it, and follows it until it ends. */
  async startRun(kind, route, opener) {
    const confirmed = await this.dialog.ask(
      {
        heading: t(`sync.start.${kind}.confirm_title`),
        text: t(`sync.start.${kind}.confirm_body`),
        confirm: t(`sync.start.${kind}.confirm`),
      },
      opener,
    );
    if (!confirmed) return;
    let run;
    try {
      run = await this.context.api.admin("POST", `/orgs/${segment(this.context.orgId)}/${route}`);
    } catch (error) {
      // Refused (one is running, the integration is disabled or not connected): the API's words.
      const notice = errorNotice(error, { headingLevel: "h3" });
      notice.tabIndex = -1;
      fill(this.refusalOutput, notice);
      notice.focus();
      return;
    }
    this.refusalOutput.replaceChildren();
    // A reconciliation of an organisation never read is its full import: the run says which.
    fill(this.runOutput, this.runNotice(run, kind));
    this.runOutput.querySelector(".run-notice")?.focus();
    this.context.announce(t(`sync.run_started.${run.kind}`));
    await this.loadStatus();
    await this.follow(run, { notice: true, requested: kind });
  }

  /** Reads sync/status until the run ends, showing its progress as it goes. */
  async follow(run, { notice, requested = run.kind }) {
    this.following += 1;
    const follow = this.following;
    let current = run;
    for (let round = 0; current.phase === "running"; round += 1) {
      const wait = round < FOLLOW_FAST_ROUNDS ? FOLLOW_FAST_MS : FOLLOW_SLOW_MS;
      await new Promise((resolve) => setTimeout(resolve, wait));
      // Left, or another run was started meanwhile: that one is followed instead.
      if (!this.isConnected || follow !== this.following) return;
      let status;
      try {
        status = await this.fetchStatus();
      } catch (error) {
        if (notice) fill(this.runOutput, errorNotice(error, { headingLevel: "h3" }));
        return;
      }
      if (!this.isConnected || follow !== this.following) return;
      fill(this.statusOutput, ...statusFigures(status));
      const latest = [status.full_import, status.reconciliation].find(
        (candidate) => candidate?.id === run.id,
      );
      // No longer the latest of its kind: a newer run replaced it, shown in the status above.
      if (!latest) return;
      current = latest;
      if (notice) fill(this.runOutput, this.runNotice(current, requested));
    }
    if (!notice) return;
    this.context.announce(t(`sync.run_ended.${current.kind}.${current.phase}`));
    // The rows an import applied are in the log now.
    await this.loadPage();
  }

  /** The run this screen started: what it is, how far it got, and how it ended. */
  runNotice(run, requested) {
    const kinds = { succeeded: "notice-success", failed: "notice-error" };
    const headingId = `run-${run.id}-heading`;
    return h(
      "div",
      {
        class: `notice run-notice ${kinds[run.phase] ?? ""}`.trim(),
        role: "region",
        "aria-labelledby": headingId,
        tabindex: "-1",
        "data-run-id": run.id,
        "data-phase": run.phase,
      },
      h("h3", { id: headingId, class: "notice-title" }, t(`sync.run_title.${run.kind}`)),
      requested !== run.kind ? h("p", {}, t("sync.run.import_instead")) : null,
      h("p", {}, runSummary(run)),
      run.phase === "running" ? h("p", { class: "hint" }, t("sync.run.following")) : null,
    );
  }

  async refresh() {
    await Promise.all([this.loadStatus(), this.loadPage()]);
    this.context.announce(t("sync.refreshed"));
  }

  fetchStatus() {
    return this.context.api.admin("GET", `/orgs/${segment(this.context.orgId)}/sync/status`);
  }

  async loadStatus() {
    try {
      const status = await this.fetchStatus();
      fill(this.statusOutput, ...statusFigures(status));
    } catch (error) {
      fill(this.statusOutput, errorNotice(error, { headingLevel: "h3" }));
    }
  }

  async loadPage() {
    this.page = null;
    try {
      this.page = await this.context.api.admin(
        "GET",
        `/orgs/${segment(this.context.orgId)}/sync/events`,
        {
          query: {
            status: this.filters.status,
            type: this.filters.type,
            limit: this.filters.limit,
            cursor: this.cursor,
          },
        },
      );
      fill(this.logOutput, this.table(this.page.items), this.pager());
    } catch (error) {
      fill(this.logOutput, errorNotice(error, { headingLevel: "h3" }));
    }
  }

  filterForm() {
    const status = h(
      "select",
      { name: "status" },
      h("option", { value: "", selected: !this.filters.status }, t("sync.filter.any_status")),
      STATUSES.map((value) =>
        h("option", { value, selected: this.filters.status === value }, t(`sync.status.${value}`)),
      ),
    );
    const type = h("input", {
      type: "text",
      name: "type",
      value: this.filters.type,
      list: "sync-event-types",
      autocomplete: "off",
      spellcheck: "false",
    });
    const sizes = PAGE_SIZES.includes(this.filters.limit)
      ? PAGE_SIZES
      : [...PAGE_SIZES, this.filters.limit].sort((a, b) => a - b);
    const limit = h(
      "select",
      { name: "limit" },
      sizes.map((size) =>
        h(
          "option",
          { value: String(size), selected: this.filters.limit === size },
          formatNumber(size),
        ),
      ),
    );
    return h(
      "form",
      {
        class: "filters",
        role: "search",
        "aria-label": t("sync.filter.label"),
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          this.filter({
            status: status.value,
            type: type.value.trim(),
            limit: Number(limit.value),
          });
        },
      },
      field({ id: "filter-status", label: t("sync.filter.status"), input: status }),
      field({
        id: "filter-type",
        label: t("sync.filter.type"),
        hint: t("sync.filter.type_hint"),
        input: type,
      }),
      h(
        "datalist",
        { id: "sync-event-types" },
        KNOWN_TYPES.map((value) => h("option", { value })),
      ),
      field({ id: "filter-limit", label: t("sync.filter.limit"), input: limit }),
      h(
        "div",
        { class: "filter-actions" },
        h("button", { type: "submit", class: "button button-primary" }, t("sync.filter.apply")),
      ),
    );
  }

  async filter(filters) {
    this.filters = filters;
    this.cursors = [];
    this.cursor = null;
    // The address keeps the filters (a bookmark, a reload) without rebuilding the screen.
    const href = routeHref(["orgs", this.context.orgId, "sync"], {
      status: filters.status,
      type: filters.type,
      limit: filters.limit === DEFAULT_PAGE_SIZE ? "" : filters.limit,
    });
    history.replaceState(null, "", href);
    await this.loadPage();
    if (this.page) this.context.announce(t("sync.shown", { count: this.page.items.length }));
  }

  table(items) {
    if (!items.length) {
      const filtered = this.filters.status || this.filters.type;
      return h("p", { class: "empty" }, filtered ? t("sync.empty_filtered") : t("sync.empty"));
    }
    return h(
      "table",
      { class: "log-table" },
      h("caption", {}, t("sync.caption")),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          [
            "sync.col.received",
            "sync.col.type",
            "sync.col.status",
            "sync.col.description",
            "sync.col.attempts",
            "sync.col.action",
          ].map((key) => h("th", { scope: "col" }, t(key))),
        ),
      ),
      h(
        "tbody",
        {},
        items.map((item) => this.row(item)),
      ),
    );
  }

  row(item) {
    const source = [item.source_message, item.source_table].filter(Boolean).join(" · ");
    return h(
      "tr",
      { "data-event-id": item.event_id, "data-status": item.status },
      h(
        "td",
        { "data-label": t("sync.col.received") },
        timeElement(item.received_at, formatDateTime),
      ),
      h(
        "td",
        { "data-label": t("sync.col.type") },
        h("code", {}, item.event_type),
        source ? h("span", { class: "source" }, t("sync.source", { source })) : null,
      ),
      h(
        "td",
        { "data-label": t("sync.col.status") },
        h("span", { class: `badge badge-${item.status}` }, statusName(item.status)),
      ),
      h(
        "td",
        { "data-label": t("sync.col.description") },
        h("span", { class: "message" }, item.message),
        h(
          "span",
          { class: "hint" },
          t("sync.processed_at", { time: formatDateTime(item.processed_at) }),
        ),
      ),
      h("td", { "data-label": t("sync.col.attempts") }, formatNumber(item.attempts)),
      h("td", { "data-label": t("sync.col.action") }, this.action(item)),
    );
  }

  action(item) {
    const done = this.reprocessed.get(item.id);
    if (done) return h("span", { class: done.ok ? "queued" : "field-error" }, done.text);
    if (!item.can_reprocess) return h("span", { class: "hint" }, t("sync.no_action"));
    const cell = h("div", {});
    const button = h(
      "button",
      {
        type: "button",
        class: "button button-secondary",
        "aria-label": t("sync.reprocess_named", { id: item.event_id }),
        onclick: () => this.reprocess(item, cell, button),
      },
      t("sync.reprocess"),
    );
    cell.append(button);
    return cell;
  }

  async reprocess(item, cell, button) {
    button.disabled = true;
    let outcome;
    try {
      const result = await this.context.api.admin(
        "POST",
        `/orgs/${segment(this.context.orgId)}/sync/events/${segment(item.id)}/reprocess`,
      );
      outcome = { ok: true, text: t("sync.queued", { id: result.event_id }) };
    } catch (error) {
      outcome = {
        ok: false,
        text: error.apiMessage ?? t("error.unexpected", { status: error.status }),
      };
    }
    this.reprocessed.set(item.id, outcome);
    const text = h(
      "span",
      { class: outcome.ok ? "queued" : "field-error", tabindex: "-1" },
      outcome.text,
    );
    cell.replaceChildren(text);
    text.focus();
    this.context.announce(outcome.text);
  }

  pager() {
    return pager({
      label: t("sync.pages"),
      page: t("sync.page", { number: this.cursors.length + 1 }),
      back: {
        label: t("sync.newer"),
        enabled: this.cursors.length > 0,
        onclick: () => this.newer(),
      },
      forward: {
        label: t("sync.older"),
        enabled: Boolean(this.page.next_cursor),
        onclick: () => this.older(),
      },
    });
  }

  async older() {
    this.cursors.push(this.cursor);
    this.cursor = this.page.next_cursor;
    await this.turned();
  }

  async newer() {
    this.cursor = this.cursors.pop() ?? null;
    await this.turned();
  }

  async turned() {
    await this.loadPage();
    this.context.announce(t("sync.page", { number: this.cursors.length + 1 }));
    this.querySelector(".log-table caption, .sync-log")?.scrollIntoView();
    focusPager(this);
  }
}

function statusName(status) {
  return STATUSES.includes(status) ? t(`sync.status.${status}`) : status;
}

function statusFigures(status) {
  const last = status.last_24h ?? {};
  const figures = h(
    "div",
    { class: "figures" },
    figure(t("sync.last_success"), timeElement(status.last_success_at, formatDateTime)),
    figure(t("sync.last_processed"), timeElement(status.last_processed_at, formatDateTime)),
    figure(t("sync.pending"), formatNumber(status.pending), status.pending ? "figure-warning" : ""),
    figure(t("sync.failed"), formatNumber(status.failed), status.failed ? "figure-error" : ""),
  );
  const day = h(
    "p",
    { class: "day-counts" },
    t("sync.last_24h", {
      success: last.success ?? 0,
      error: last.error ?? 0,
      skipped: last.skipped ?? 0,
    }),
  );
  return [
    figures,
    day,
    h("h3", {}, t("sync.runs_heading")),
    facts([
      [t("sync.full_import"), runSummary(status.full_import)],
      [t("sync.reconciliation"), runSummary(status.reconciliation)],
      [
        t("sync.next_reconciliation"),
        status.next_reconciliation_at
          ? timeElement(status.next_reconciliation_at, formatDateTime)
          : t("sync.no_next_reconciliation"),
      ],
    ]),
  ];
}

function figure(label, value, modifier = "") {
  return h(
    "div",
    { class: `figure ${modifier}`.trim() },
    h("span", { class: "figure-label" }, label),
    h("span", { class: "figure-value" }, value),
  );
}

/** An import or reconciliation in words: its phase, counts and times, or what failed. */
function runSummary(run) {
  if (!run) return t("sync.run.none");
  const counts = t("sync.run.counts", {
    read: run.rows_read,
    changed: run.rows_changed,
    unchanged: run.rows_unchanged,
    failed: run.rows_failed,
  });
  const parts = [h("strong", {}, t(`sync.run.${run.phase}`)), " ", counts];
  if (run.phase === "running") {
    if (run.current_table) parts.push(" ", t("sync.run.reading", { table: run.current_table }));
    parts.push(" ", h("progress", { "aria-label": t("sync.run.progress") }));
  }
  if (run.pages_read) parts.push(" ", t("sync.run.pages", { count: run.pages_read }));
  if (run.rows_drift) parts.push(" ", t("sync.run.drift", { count: run.rows_drift }));
  if (run.finished_at)
    parts.push(" ", t("sync.run.finished", { time: formatDateTime(run.finished_at) }));
  else if (run.started_at)
    parts.push(" ", t("sync.run.started", { time: formatDateTime(run.started_at) }));
  if (run.error) parts.push(h("span", { class: "field-error run-error" }, run.error));
  return h("span", {}, parts);
}

customElements.define("ps-sync-log", SyncLog);
