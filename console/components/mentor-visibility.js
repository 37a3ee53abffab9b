// A peer mentor's website visibility (the website-sync API, docs/website-visibility.md):
// what the website should show and what Dynamics shows, the delivery's state and error; hide,
// restore, pause, resume, the certificate's expiry and retry, each confirmed first and
// followed until Dynamics answered; and the mentor's visibility history, newest first. Shown
// by the members screen at `#/orgs/<id>/members?mentor=<profileId>`.
import { Screen, confirmation, errorNotice, facts, field, panel, timeElement } from "./common.js";
import { ApiError, segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { formatDateTime, formatNumber, has, locale, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";
import { currentSession, tokenClaims } from "../lib/session.js";

export const MENTOR_ROLE = "peer_mentor";
const HISTORY_PAGE = 20;
// After a change, the status is read again this often while its delivery is under way, up to
// FOLLOW_LIMIT times (locally Dynamics answers within seconds; after that, "Refresh").
const FOLLOW_MS = 1000;
const FOLLOW_LIMIT = 20;
// Members seen on the list, by organisation and profile id, so the mentor's view names them.
const seen = new Map();

export function rememberMember(orgId, member) {
  seen.set(`${orgId}/${member.profile_id}`, member);
}

/** A member's name as the list shows it: first and last name, else the email address. */
export function memberName(member) {
  const name = [member?.first_name, member?.last_name].filter(Boolean).join(" ");
  return name || member?.email || t("members.no_name");
}

/** What the website shows of a mentor, and the delivery's state when it is not in sync. */
export function visibilityBadges(status) {
  if (!status) return h("span", { class: "hint" }, t("members.visibility_unknown"));
  return h(
    "span",
    { class: "visibility" },
    h(
      "span",
      { class: status.desired ? "badge badge-success" : "badge badge-skipped" },
      status.desired ? t("mentor.shown") : t("mentor.hidden"),
    ),
    status.state === "in_sync" ? null : " ",
    status.state === "in_sync" ? null : deliveryBadge(status.state),
  );
}

function deliveryBadge(state) {
  const classes = { in_sync: "badge-success", pending: "badge-pending", failed: "badge-error" };
  const key = `mentor.state.${state}`;
  return h(
    "span",
    { class: `badge ${classes[state] ?? "badge-skipped"}` },
    has(key) ? t(key) : state,
  );
}

// What each button does (POST /<mentorId>/<name>), and when it is offered.
const ACTIONS = {
  hide: { offered: (status) => !status.hidden_manually, danger: true },
  restore: { offered: (status) => status.hidden_manually, danger: false },
  pause: { offered: (status) => !status.paused, danger: true },
  resume: { offered: (status) => status.paused, danger: false },
  retry: { offered: (status) => status.state === "failed", danger: false },
};
const CERTIFICATE_FIELD = "mentor-certificate-date";

class MentorVisibility extends Screen {
  async start() {
    const { mentorId } = this.context;
    this.history = [];
    this.historyCursor = null;
    this.historyFailure = null;
    this.result = null;
    this.following = 0;
    this.certificateError = null;
    this.shownCertificate = undefined;
    this.dialog = confirmation();
    let member;
    const opened = await this.opened(
      t("mentor.title_unknown"),
      async () => {
        [this.status, member] = await Promise.all([this.fetchStatus(), this.findMember(mentorId)]);
      },
      [this.backLink()],
    );
    if (!opened) return;
    this.name = member ? memberName(member) : t("mentor.unknown_name");
    this.statusOutput = h("div", { class: "mentor-status" });
    this.actionsOutput = h("div", { class: "mentor-actions" });
    this.certificateOutput = h("div", { class: "mentor-certificate" });
    this.resultOutput = h("div", { class: "mentor-result" });
    this.historyOutput = h("div", { class: "mentor-history" });
    fill(
      this,
      this.backLink(),
      this.heading(t("mentor.title", { name: this.name })),
      this.lead("mentor.intro", { name: this.name }),
      panel({
        id: "mentor-status-heading",
        title: t("mentor.status_heading"),
        action: { label: t("mentor.refresh"), onclick: () => this.refresh() },
        children: [this.statusOutput],
      }),
      panel({
        id: "mentor-actions-heading",
        title: t("mentor.actions_heading"),
        children: [
          h("p", { class: "hint" }, t("mentor.actions_intro")),
          this.resultOutput,
          this.actionsOutput,
          this.certificateOutput,
        ],
      }),
      panel({
        id: "mentor-history-heading",
        title: t("mentor.history_heading"),
        children: [this.historyOutput],
      }),
      this.dialog.element,
    );
    this.renderStatus();
    await this.loadHistory();
  }

  get base() {
    return `/${segment(this.context.mentorId)}`;
  }

  get query() {
    // The organisation named, for a mentor who is a member of several of the caller's.
    return { organization_id: this.context.orgId };
  }

  fetchStatus() {
    return this.context.api.websiteSync("GET", `${this.base}/status`, { query: this.query });
  }

  /** The mentor as the member list shows them: from the list just seen, else asked for. */
  async findMember(mentorId) {
    const known = seen.get(`${this.context.orgId}/${mentorId}`);
    if (known) return known;
    try {
      return await this.context.api.admin(
        "GET",
        `/orgs/${segment(this.context.orgId)}/members/${segment(mentorId)}`,
      );
    } catch {
      // The status call says whether the mentor may be seen; without the member it is unnamed.
      return null;
    }
  }

  backLink() {
    return h(
      "p",
      { class: "back" },
      h("a", { href: routeHref(["orgs", this.context.orgId, "members"]) }, t("mentor.back")),
    );
  }

  renderStatus() {
    const status = this.status;
    fill(
      this.statusOutput,
      facts([
        [t("mentor.website"), status.desired ? t("mentor.shown") : t("mentor.hidden")],
        [
          t("mentor.dynamics_shows"),
          status.applied === null || status.applied === undefined
            ? t("mentor.applied_unknown")
            : status.applied
              ? t("mentor.shown")
              : t("mentor.hidden"),
        ],
        [t("mentor.delivery"), deliveryBadge(status.state)],
        status.reasons_hidden?.length
          ? [
              t("mentor.reasons"),
              h(
                "ul",
                { class: "reasons" },
                status.reasons_hidden.map((reason) => h("li", {}, reason)),
              ),
            ]
          : null,
        status.last_error
          ? [t("mentor.last_error"), h("span", { class: "field-error" }, status.last_error)]
          : null,
        status.next_attempt_at
          ? [t("mentor.next_attempt"), timeElement(status.next_attempt_at, formatDateTime)]
          : null,
        [t("mentor.last_synced"), timeElement(status.last_synced_at, formatDateTime)],
        [t("mentor.attempts"), formatNumber(status.attempts)],
        [t("mentor.paused"), status.paused ? t("mentor.yes") : t("mentor.no")],
        [
          t("mentor.certified_until"),
          status.certified_until ? formatDate(status.certified_until) : t("mentor.no_certificate"),
        ],
      ]),
    );
    // Not while a delivery is followed: a date being typed would be lost at each reading.
    if (this.shownCertificate !== status.certified_until) this.renderCertificate();
    fill(
      this.actionsOutput,
      h(
        "div",
        { class: "actions" },
        Object.entries(ACTIONS)
          .filter(([, action]) => action.offered(status))
          .map(([name, action]) =>
            h(
              "button",
              {
                type: "button",
                class: action.danger ? "button button-danger" : "button button-primary",
                "data-action": name,
                onclick: (event) => this.confirm(name, event.currentTarget),
              },
              t(`mentor.${name}`),
            ),
          ),
      ),
    );
  }

  /** The certificate's expiry: a date to set (a renewal reinstates), or none at all. */
  renderCertificate() {
    const status = this.status;
    this.shownCertificate = status.certified_until;
    const date = h("input", {
      type: "date",
      name: "certified_until",
      value: status.certified_until ?? "",
      required: true,
    });
    const form = h(
      "form",
      {
        class: "certificate-form",
        novalidate: true,
        "aria-labelledby": "mentor-certificate-heading",
        onsubmit: (event) => {
          event.preventDefault();
          this.confirmCertificate(date.value, event.submitter ?? date);
        },
      },
      h("h3", { id: "mentor-certificate-heading" }, t("mentor.certificate_heading")),
      field({
        id: CERTIFICATE_FIELD,
        label: t("mentor.certificate_label"),
        hint: t("mentor.certificate_hint"),
        error: this.certificateError,
        input: date,
      }),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          { type: "submit", class: "button button-primary" },
          t("mentor.certificate_save"),
        ),
        status.certified_until
          ? h(
              "button",
              {
                type: "button",
                class: "button button-danger",
                onclick: (event) => this.confirmCertificate(null, event.currentTarget),
              },
              t("mentor.certificate_remove"),
            )
          : null,
      ),
    );
    fill(this.certificateOutput, form);
  }

  async confirmCertificate(value, opener) {
    if (value === "") {
      // A date input holds "" until a whole date is entered: nothing to send yet.
      this.certificateError = t("mentor.certificate_missing");
      this.renderCertificate();
      this.querySelector(`#${CERTIFICATE_FIELD}`)?.focus();
      return;
    }
    const words = { name: this.name, date: value ? formatDate(value) : "" };
    const which = value ? "set" : "remove";
    const confirmed = await this.dialog.ask(
      {
        heading: t(`mentor.certificate.${which}.confirm_title`, words),
        text: t(`mentor.certificate.${which}.confirm_body`, words),
        confirm: t(`mentor.certificate.${which}.confirm`),
        danger: !value,
      },
      opener,
    );
    if (!confirmed) return;
    this.certificateError = null;
    await this.act(`certificate.${which}`, {
      method: "PUT",
      route: "certificate",
      body: { certified_until: value },
      words,
    });
  }

  /** Says what the action will do, and does it only once the reader confirms. */
  async confirm(name, opener) {
    const words = {
      name: this.name,
      state: this.status.desired ? t("mentor.word.visible") : t("mentor.word.hidden"),
    };
    const confirmed = await this.dialog.ask(
      {
        heading: t(`mentor.${name}.confirm_title`, words),
        text: t(`mentor.${name}.confirm_body`, words),
        confirm: t(`mentor.${name}.confirm`),
        danger: ACTIONS[name].danger,
      },
      opener,
    );
    if (confirmed) await this.act(name);
  }

  /** Makes the change (`name`'s route, unless told), shows the answer, follows its delivery. */
  async act(name, { method = "POST", route = name, body, words = { name: this.name } } = {}) {
    this.following += 1;
    const follow = this.following;
    let notice;
    try {
      this.status = await this.context.api.websiteSync(method, `${this.base}/${route}`, {
        query: this.query,
        body,
      });
      notice = h(
        "div",
        { class: noticeClass(this.status), role: "status", tabindex: "-1" },
        h("p", { class: "notice-title" }, t(`mentor.${name}.done`, words)),
        h("p", { class: "delivery-news" }, deliveryNews(this.status)),
      );
    } catch (error) {
      const invalid =
        error instanceof ApiError && error.status === 422 ? error.fieldErrors() : null;
      if (invalid && route === "certificate") {
        // The API's word on the date, at the field (and in the notice).
        this.certificateError = [...invalid.values()].join(" ");
      }
      notice = errorNotice(error, { headingLevel: "h3" });
      if (invalid?.size) {
        notice.append(
          h(
            "ul",
            {},
            [...invalid.values()].map((message) => h("li", {}, message)),
          ),
        );
      }
      notice.tabIndex = -1;
    }
    fill(this.resultOutput, notice);
    this.renderStatus();
    if (route === "certificate") this.renderCertificate();
    notice.focus();
    await this.loadHistory();
    await this.followDelivery(follow);
  }

  /** While the change is on its way to Dynamics, the status is read again until it arrives. */
  async followDelivery(follow) {
    for (let round = 0; round < FOLLOW_LIMIT && this.status.state === "pending"; round += 1) {
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
      // Left, or another change was made meanwhile: that one is followed instead.
      if (!this.isConnected || follow !== this.following) return;
      try {
        this.status = await this.fetchStatus();
      } catch {
        return;
      }
      this.renderStatus();
    }
    if (!this.isConnected || follow !== this.following) return;
    const news = this.resultOutput.querySelector(".delivery-news");
    if (news) {
      news.textContent = deliveryNews(this.status);
      news.parentElement.className = noticeClass(this.status);
    }
    if (this.status.state !== "pending") {
      this.context.announce(deliveryNews(this.status));
      await this.loadHistory();
    }
  }

  async refresh() {
    try {
      this.status = await this.fetchStatus();
      this.renderStatus();
    } catch (error) {
      fill(this.statusOutput, errorNotice(error, { headingLevel: "h3" }));
    }
    await this.loadHistory();
    this.context.announce(t("mentor.refreshed"));
  }

  /** The history's first page again, or (more) the next older page below the rows shown. */
  async loadHistory({ more = false } = {}) {
    this.historyFailure = null;
    try {
      const page = await this.context.api.websiteSync("GET", `${this.base}/history`, {
        query: { ...this.query, limit: HISTORY_PAGE, cursor: more ? this.historyCursor : null },
      });
      this.history = more ? [...this.history, ...page.items] : page.items;
      this.historyCursor = page.next_cursor;
    } catch (error) {
      this.historyFailure = error;
    }
    this.renderHistory();
  }

  renderHistory() {
    if (this.historyFailure) {
      fill(this.historyOutput, errorNotice(this.historyFailure, { headingLevel: "h3" }));
      return;
    }
    if (!this.history.length) {
      fill(this.historyOutput, h("p", { class: "empty" }, t("mentor.history_empty")));
      return;
    }
    const me = tokenClaims(currentSession()?.token ?? "")?.sub;
    const columns = [
      "mentor.col.at",
      "mentor.col.operation",
      "mentor.col.actor",
      "mentor.col.outcome",
      "mentor.col.message",
    ];
    fill(
      this.historyOutput,
      h(
        "table",
        { class: "log-table history-table" },
        h("caption", {}, t("mentor.history_caption")),
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
          this.history.map((entry) =>
            h(
              "tr",
              { "data-operation": entry.operation, "data-outcome": entry.outcome },
              h("td", { "data-label": t("mentor.col.at") }, timeElement(entry.at, formatDateTime)),
              h(
                "td",
                { "data-label": t("mentor.col.operation") },
                named("mentor.operation", entry.operation),
              ),
              h("td", { "data-label": t("mentor.col.actor") }, actorName(entry.actor, me)),
              h(
                "td",
                { "data-label": t("mentor.col.outcome") },
                h("span", { class: `badge ${outcomeClass(entry.outcome)}` }, outcomeName(entry)),
              ),
              h(
                "td",
                { "data-label": t("mentor.col.message") },
                h("span", { class: "message" }, entry.message),
              ),
            ),
          ),
        ),
      ),
      this.historyCursor
        ? h(
            "button",
            {
              type: "button",
              class: "button button-secondary",
              onclick: async () => {
                const shown = this.history.length;
                await this.loadHistory({ more: true });
                // Focus goes to the first row the button added, where reading continues.
                const row = this.historyOutput.querySelectorAll("tbody tr")[shown];
                row?.querySelector("td")?.setAttribute("tabindex", "-1");
                row?.querySelector("td")?.focus();
              },
            },
            t("mentor.history_more"),
          )
        : null,
    );
  }
}

/** What became of the change, in words: delivered, on its way, or failed and why. */
function deliveryNews(status) {
  if (status.state === "in_sync") {
    return status.applied ? t("mentor.news.shown") : t("mentor.news.hidden");
  }
  if (status.state === "failed") {
    return t("mentor.news.failed", { error: status.last_error ?? "" });
  }
  return status.last_error
    ? t("mentor.news.waiting", { error: status.last_error })
    : t("mentor.news.pending");
}

/** The change was recorded either way; the notice's colour says how its delivery went. */
function noticeClass(status) {
  const kinds = { in_sync: "notice-success", failed: "notice-error" };
  return `notice ${kinds[status.state] ?? ""}`.trim();
}

function named(prefix, value) {
  const key = `${prefix}.${value}`;
  return has(key) ? t(key) : value;
}

function outcomeName(entry) {
  return named("mentor.outcome", entry.outcome);
}

function outcomeClass(outcome) {
  return (
    {
      applied: "badge-success",
      failed: "badge-error",
      attempt_failed: "badge-pending",
    }[outcome] ?? "badge-skipped"
  );
}

/** Who acted: the reader, the system (which part of it), or another user by id. */
function actorName(actor, me) {
  if (me && actor === me) return t("mentor.actor.you");
  if (actor.startsWith("system:")) {
    return t("mentor.actor.system", { part: actor.slice("system:".length) });
  }
  return t("mentor.actor.user", { id: actor });
}

/** A calendar date from the API ("2027-06-30"), in the reader's words, whatever their zone. */
function formatDate(value) {
  const moment = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(moment.getTime())) return value;
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeZone: "UTC" }).format(moment);
}

customElements.define("ps-mentor-visibility", MentorVisibility);
