// The audit log (GET /orgs/{orgId}/audit-log?limit=&cursor=): who changed what and when, newest
// first, paged by the API's cursor. The API offers no filters (docs/console.md, "What the API
// lacks"), so the screen has only the page size, kept in the address.
import { Screen, errorNotice, field, focusPager, pager, panel, timeElement } from "./common.js";
import { segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { formatDateTime, formatNumber, has, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";
import { currentSession, tokenClaims } from "../lib/session.js";

const PAGE_SIZES = [10, 25, 50, 100];
const DEFAULT_PAGE_SIZE = 25;

class AuditLog extends Screen {
  async start() {
    const limit = Number(this.context.params.get("limit"));
    this.limit = Number.isInteger(limit) && limit >= 1 && limit <= 200 ? limit : DEFAULT_PAGE_SIZE;
    // The cursors of the pages before the one shown: "Newer entries" goes back one.
    this.cursors = [];
    this.cursor = null;
    // The audit log names actors by user id; the signed-in administrator's own is "You".
    this.me = tokenClaims(currentSession()?.token ?? "")?.sub ?? null;
    this.output = h("div", { class: "audit-log" });
    const opened = await this.opened(t("audit.title"), async () => {
      this.page = await this.fetchPage();
    });
    if (!opened) return;
    fill(
      this,
      this.heading(t("audit.title")),
      this.lead("audit.intro"),
      panel({
        id: "audit-heading",
        title: t("audit.log_heading"),
        action: { label: t("audit.refresh"), onclick: () => this.refresh() },
        children: [this.sizeForm(), this.output],
      }),
    );
    this.show();
  }

  fetchPage() {
    return this.context.api.admin("GET", `/orgs/${segment(this.context.orgId)}/audit-log`, {
      query: { limit: this.limit, cursor: this.cursor },
    });
  }

  async load() {
    this.page = null;
    try {
      this.page = await this.fetchPage();
      this.show();
    } catch (error) {
      fill(this.output, errorNotice(error, { headingLevel: "h3" }));
    }
  }

  show() {
    fill(this.output, this.table(this.page.items), this.pager());
  }

  async refresh() {
    this.cursors = [];
    this.cursor = null;
    await this.load();
    if (this.page) this.context.announce(t("audit.refreshed"));
  }

  sizeForm() {
    const sizes = PAGE_SIZES.includes(this.limit)
      ? PAGE_SIZES
      : [...PAGE_SIZES, this.limit].sort((a, b) => a - b);
    const limit = h(
      "select",
      { name: "limit" },
      sizes.map((size) =>
        h("option", { value: String(size), selected: this.limit === size }, formatNumber(size)),
      ),
    );
    return h(
      "form",
      {
        class: "filters",
        "aria-label": t("audit.size_label"),
        novalidate: true,
        onsubmit: async (event) => {
          event.preventDefault();
          this.limit = Number(limit.value);
          history.replaceState(
            null,
            "",
            routeHref(["orgs", this.context.orgId, "audit"], {
              limit: this.limit === DEFAULT_PAGE_SIZE ? "" : this.limit,
            }),
          );
          this.cursors = [];
          this.cursor = null;
          await this.load();
          if (this.page) this.context.announce(t("audit.shown", { count: this.page.items.length }));
        },
      },
      field({ id: "audit-limit", label: t("audit.limit"), input: limit }),
      h(
        "div",
        { class: "filter-actions" },
        h("button", { type: "submit", class: "button button-primary" }, t("audit.apply")),
      ),
    );
  }

  table(items) {
    if (!items.length) return h("p", { class: "empty" }, t("audit.empty"));
    return h(
      "table",
      { class: "log-table audit-table" },
      h("caption", {}, t("audit.caption")),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["audit.col.when", "audit.col.who", "audit.col.what", "audit.col.details"].map((key) =>
            h("th", { scope: "col" }, t(key)),
          ),
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
    return h(
      "tr",
      { "data-audit-id": item.id, "data-action": item.action },
      h("td", { "data-label": t("audit.col.when") }, timeElement(item.created_at, formatDateTime)),
      h("td", { "data-label": t("audit.col.who") }, this.actor(item.actor)),
      h(
        "td",
        { "data-label": t("audit.col.what") },
        h("span", { class: "message" }, actionName(item.action)),
        h("code", { class: "source" }, item.action),
      ),
      h("td", { "data-label": t("audit.col.details") }, details(item.details)),
    );
  }

  actor(actor) {
    const id = h("code", { class: "break actor-id" }, actor);
    if (this.me && actor === this.me) {
      return h("span", {}, h("strong", { class: "message" }, t("audit.you")), id);
    }
    return id;
  }

  pager() {
    return pager({
      label: t("audit.pages"),
      page: t("audit.page", { number: this.cursors.length + 1 }),
      back: {
        label: t("audit.newer"),
        enabled: this.cursors.length > 0,
        onclick: () => this.turn(() => (this.cursor = this.cursors.pop() ?? null)),
      },
      forward: {
        label: t("audit.older"),
        enabled: Boolean(this.page.next_cursor),
        onclick: () =>
          this.turn(() => {
            this.cursors.push(this.cursor);
            this.cursor = this.page.next_cursor;
          }),
      },
    });
  }

  async turn(move) {
    move();
    await this.load();
    this.context.announce(t("audit.page", { number: this.cursors.length + 1 }));
    this.querySelector(".audit-table caption, .audit-log")?.scrollIntoView();
    focusPager(this);
  }
}

function actionName(action) {
  const key = `audit.action.${action}`;
  return has(key) ? t(key) : action;
}

/** The entry's details as the API holds them: names as logged, values in words. */
function details(values) {
  const entries = Object.entries(values ?? {});
  if (!entries.length) return h("span", { class: "hint" }, t("audit.no_details"));
  return h(
    "dl",
    { class: "audit-details" },
    entries.map(([name, value]) =>
      h(
        "div",
        {},
        h("dt", {}, h("code", {}, name)),
        h("dd", { class: "break" }, detailValue(value)),
      ),
    ),
  );
}

function detailValue(value) {
  if (value === null || value === undefined) return t("audit.detail_none");
  if (typeof value === "boolean") return value ? t("audit.detail_yes") : t("audit.detail_no");
  if (typeof value === "number") return formatNumber(value);
  if (Array.isArray(value)) return value.map((item) => detailText(item)).join(", ");
  if (typeof value === "object" && "from" in value && "to" in value) {
    return t("audit.detail_from_to", { from: detailText(value.from), to: detailText(value.to) });
  }
  return detailText(value);
}

function detailText(value) {
  if (value === null || value === undefined) return t("audit.detail_none");
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

customElements.define("ps-audit-log", AuditLog);
