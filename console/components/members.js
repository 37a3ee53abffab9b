// Members (GET /orgs/{orgId}/members, coordinators and administrators): each member's name,
// role, active or inactive and last sync, paged by the API's cursor; for peer mentors their
// website visibility (GET /functions/v1/website-sync/{mentorId}/status) and a link to the
// mentor's own view (`?mentor=<profileId>`: hide, restore, pause, the certificate, retry and
// the history); and every failed delivery of the organisation retried at once (POST
// /functions/v1/website-sync/retry-failed), confirmed first.
import {
  Screen,
  confirmation,
  errorNotice,
  focusPager,
  pager,
  panel,
  timeElement,
} from "./common.js";
import { MENTOR_ROLE, memberName, rememberMember, visibilityBadges } from "./mentor-visibility.js";
import { segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { formatDateTime, has, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";

const PAGE_SIZE = 25;
// After "Retry all failed deliveries", the page is read again this often while a mentor on it
// is being delivered, up to FOLLOW_LIMIT times (then "Refresh").
const FOLLOW_MS = 1000;
const FOLLOW_LIMIT = 20;

class Members extends Screen {
  async start() {
    const mentorId = this.context.params.get("mentor");
    if (mentorId) {
      // One mentor's website visibility: its own element, ready when it has loaded.
      const view = document.createElement("ps-mentor-visibility");
      view.context = { ...this.context, mentorId };
      const ready = new Promise((resolve) =>
        view.addEventListener("screen-ready", resolve, { once: true }),
      );
      fill(this, view);
      await ready;
      return;
    }
    // The cursors of the pages before the one shown: "Previous page" goes back one.
    this.cursors = [];
    this.cursor = null;
    this.following = 0;
    this.listOutput = h("div", { class: "members-list" });
    this.retryOutput = h("div", { class: "retry-result" });
    this.dialog = confirmation();
    if (!(await this.opened(t("members.title"), () => this.loadPage()))) return;
    fill(
      this,
      this.heading(t("members.title")),
      this.lead("members.intro"),
      panel({
        id: "members-heading",
        title: t("members.list_heading"),
        action: { label: t("members.refresh"), onclick: () => this.refresh() },
        children: [this.listOutput],
      }),
      panel({
        id: "deliveries-heading",
        title: t("members.deliveries_heading"),
        children: [
          h("p", { class: "hint" }, t("members.retry_failed_hint")),
          this.retryOutput,
          h(
            "div",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "button button-primary",
                onclick: (event) => this.retryFailed(event.currentTarget),
              },
              t("members.retry_failed"),
            ),
          ),
        ],
      }),
      this.dialog.element,
    );
  }

  /** Every failed mentor of the organisation delivered again now, once confirmed. */
  async retryFailed(opener) {
    const confirmed = await this.dialog.ask(
      {
        heading: t("members.retry_failed.confirm_title"),
        text: t("members.retry_failed.confirm_body", {
          organization: this.context.organizationName,
        }),
        confirm: t("members.retry_failed.confirm"),
      },
      opener,
    );
    if (!confirmed) return;
    this.following += 1;
    const follow = this.following;
    let notice;
    let retried = 0;
    try {
      const result = await this.context.api.websiteSync("POST", "/retry-failed", {
        query: { organization_id: this.context.orgId },
      });
      retried = result.retried;
      notice = h(
        "div",
        { class: "notice notice-success", role: "status", tabindex: "-1" },
        h(
          "p",
          { class: "notice-title" },
          retried
            ? t("members.retry_failed.done", { count: retried })
            : t("members.retry_failed.none"),
        ),
        retried ? h("p", {}, t("members.retry_failed.following")) : null,
      );
    } catch (error) {
      notice = errorNotice(error, { headingLevel: "h3" });
      notice.tabIndex = -1;
    }
    fill(this.retryOutput, notice);
    notice.focus();
    if (!retried) return;
    // The page shows the deliveries as they go, until none on it is under way.
    for (let round = 0; round < FOLLOW_LIMIT; round += 1) {
      await this.show(() => this.loadPage());
      if (!this.isConnected || follow !== this.following) return;
      if (!this.statuses?.some((status) => status?.state === "pending")) break;
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
      if (!this.isConnected || follow !== this.following) return;
    }
    this.context.announce(t("members.refreshed"));
  }

  /** Loads and shows the page at `this.cursor`; raises what the member list's call raised. */
  async loadPage() {
    const page = await this.context.api.admin(
      "GET",
      `/orgs/${segment(this.context.orgId)}/members`,
      { query: { limit: PAGE_SIZE, cursor: this.cursor } },
    );
    this.page = page;
    // Each peer mentor's visibility, asked at once; one that fails is shown as not known.
    const statuses = await Promise.all(
      page.items.map((member) =>
        member.role === MENTOR_ROLE ? this.mentorStatus(member) : Promise.resolve(null),
      ),
    );
    for (const member of page.items) rememberMember(this.context.orgId, member);
    this.statuses = statuses;
    fill(this.listOutput, this.table(page.items, statuses), this.pager());
  }

  async mentorStatus(member) {
    try {
      return await this.context.api.websiteSync("GET", `/${segment(member.profile_id)}/status`, {
        query: { organization_id: this.context.orgId },
      });
    } catch (error) {
      return { failure: error };
    }
  }

  async refresh() {
    await this.show(() => this.loadPage());
    this.context.announce(t("members.refreshed"));
  }

  /** Runs a page load, showing its failure in place of the list. */
  async show(load) {
    try {
      await load();
    } catch (error) {
      fill(this.listOutput, errorNotice(error, { headingLevel: "h3" }));
    }
  }

  table(items, statuses) {
    if (!items.length) return h("p", { class: "empty" }, t("members.empty"));
    const columns = [
      "members.col.name",
      "members.col.role",
      "members.col.status",
      "members.col.last_sync",
      "members.col.website",
    ];
    return h(
      "table",
      { class: "log-table members-table" },
      h("caption", {}, t("members.caption")),
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
        items.map((member, index) => this.row(member, statuses[index])),
      ),
    );
  }

  row(member, status) {
    const name = memberName(member);
    const contact = [member.email, member.phone].filter(Boolean).join(" · ");
    return h(
      "tr",
      { "data-profile-id": member.profile_id },
      h(
        "td",
        { "data-label": t("members.col.name") },
        h("span", { class: "member-name" }, name),
        contact ? h("span", { class: "source" }, contact) : null,
      ),
      h("td", { "data-label": t("members.col.role") }, roleName(member.role)),
      h(
        "td",
        { "data-label": t("members.col.status") },
        h(
          "span",
          { class: member.status === "active" ? "badge badge-success" : "badge badge-skipped" },
          statusName(member.status),
        ),
      ),
      h(
        "td",
        { "data-label": t("members.col.last_sync") },
        timeElement(member.last_synced_at, formatDateTime),
      ),
      h(
        "td",
        { "data-label": t("members.col.website") },
        member.role === MENTOR_ROLE
          ? this.website(member, name, status)
          : h("span", { class: "hint" }, t("members.not_a_mentor")),
      ),
    );
  }

  website(member, name, status) {
    const href = routeHref(["orgs", this.context.orgId, "members"], {
      mentor: member.profile_id,
    });
    return h(
      "div",
      { class: "website-cell" },
      status?.failure
        ? h(
            "span",
            { class: "field-error" },
            status.failure.apiMessage ?? t("members.visibility_unknown"),
          )
        : visibilityBadges(status),
      h(
        "a",
        { href, "aria-label": t("members.visibility_of", { name }) },
        t("members.visibility_link"),
      ),
    );
  }

  pager() {
    return pager({
      label: t("members.pages"),
      page: t("members.page", { number: this.cursors.length + 1 }),
      back: {
        label: t("members.previous"),
        enabled: this.cursors.length > 0,
        onclick: () => this.turn(() => (this.cursor = this.cursors.pop() ?? null)),
      },
      forward: {
        label: t("members.next"),
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
    await this.show(() => this.loadPage());
    this.context.announce(t("members.page", { number: this.cursors.length + 1 }));
    this.querySelector(".members-table caption, .members-list")?.scrollIntoView();
    focusPager(this);
  }
}

function roleName(role) {
  const key = `members.role.${role}`;
  return has(key) ? t(key) : role;
}

function statusName(status) {
  const key = `members.status.${status}`;
  return has(key) ? t(key) : status;
}

customElements.define("ps-members", Members);
