// Choosing the organisation to work in: those the API lists for the signed-in administrator
// (GET /orgs: every organisation for a global administrator, by name and a page at a time;
// those they administer or coordinate for anyone else, with their role from GET /me), or one
// opened by its id. Onboarding is offered to global administrators, as GET /me says.
import { Screen, errorNotice, field } from "./common.js";
import { fill, h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { navigate, routeHref } from "../lib/router.js";
import { rememberOrganization } from "../lib/session.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_SIZE = 50;

class Organizations extends Screen {
  async start() {
    this.error = null;
    this.failure = null;
    this.caller = null;
    this.items = [];
    this.nextCursor = null;
    try {
      this.caller = await this.context.who();
      await this.loadPage(null);
    } catch (error) {
      this.failure = error;
    }
    this.render();
  }

  async loadPage(cursor) {
    const page = await this.context.api.admin("GET", "/orgs", {
      query: { limit: PAGE_SIZE, cursor },
    });
    this.items = [...this.items, ...page.items];
    this.nextCursor = page.next_cursor;
  }

  async more() {
    const first = this.items.length;
    this.failure = null;
    try {
      await this.loadPage(this.nextCursor);
    } catch (error) {
      this.failure = error;
    }
    this.render();
    // Focus goes to the first organisation of the new page (a failure is an alert).
    this.querySelectorAll(".organization-list a")[first]?.focus();
  }

  render() {
    const caller = this.caller;
    const roles = new Map((caller?.organizations ?? []).map((o) => [o.id, o.role]));
    const input = h("input", {
      type: "text",
      name: "organization",
      autocomplete: "off",
      spellcheck: "false",
      class: "input-wide",
    });
    fill(
      this,
      this.heading(t("orgs.title")),
      this.failure ? errorNotice(this.failure) : null,
      caller
        ? h("p", { class: "lead" }, t(caller.is_global_admin ? "orgs.intro_global" : "orgs.intro"))
        : null,
      caller && !this.items.length && !this.failure ? h("p", {}, t("orgs.none")) : null,
      this.items.length
        ? h(
            "ul",
            { class: "organization-list" },
            this.items.map((organization) => this.item(organization, roles.get(organization.id))),
          )
        : null,
      this.nextCursor
        ? h(
            "button",
            { type: "button", class: "button button-secondary", onclick: () => this.more() },
            t("orgs.more"),
          )
        : null,
      // Onboarding is for global administrators (POST /orgs refuses anyone else).
      caller?.is_global_admin
        ? h(
            "p",
            { class: "new-organization" },
            h("a", { href: routeHref(["new-organization"]) }, t("orgs.new")),
            " ",
            h("span", { class: "hint" }, t("orgs.new_hint")),
          )
        : null,
      h(
        "form",
        { class: "panel", novalidate: true, onsubmit: (event) => this.open(event, input) },
        h("h2", {}, t("orgs.open_heading")),
        field({
          id: "open-organization-id",
          label: t("orgs.open_label"),
          hint: t("orgs.open_hint"),
          error: this.error,
          input,
        }),
        h("button", { type: "submit", class: "button button-primary" }, t("orgs.open_button")),
      ),
    );
  }

  item(organization, role) {
    const details = [
      role ? t("orgs.role", { role: t(`members.role.${role}`) }) : null,
      organization.source_id ? t("orgs.source", { source: organization.source_id }) : null,
      organization.enabled ? null : t("orgs.disabled"),
    ].filter(Boolean);
    return h(
      "li",
      { "data-organization-id": organization.id },
      h(
        "a",
        {
          href: routeHref([
            "orgs",
            organization.id,
            role === "coordinator" ? "members" : "integration",
          ]),
          // Its screens are titled with its name for the rest of the session.
          onclick: () =>
            rememberOrganization(this.context.session, organization.id, organization.name),
        },
        organization.name,
      ),
      " ",
      details.length ? h("span", { class: "hint" }, details.join(" · ")) : null,
    );
  }

  open(event, input) {
    event.preventDefault();
    const id = input.value.trim().toLowerCase();
    if (!UUID.test(id)) {
      this.error = t("orgs.open_invalid");
      this.render();
      this.querySelector("#open-organization-id")?.focus();
      return;
    }
    navigate(["orgs", id, "integration"]);
  }
}

customElements.define("ps-organizations", Organizations);
