// Choosing the organisation to work in: those sign-in named (or the token's roles list), or
// one opened by its id (a global administrator's, until the API lists organisations:
// docs/console.md, "What the API lacks").
import { field } from "./common.js";
import { fill, h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { navigate, routeHref } from "../lib/router.js";
import { rememberOrganization } from "../lib/session.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

class Organizations extends HTMLElement {
  connectedCallback() {
    this.error = null;
    this.render();
  }

  render() {
    const { organizations } = this.context;
    const input = h("input", {
      type: "text",
      name: "organization",
      autocomplete: "off",
      spellcheck: "false",
      class: "input-wide",
    });
    fill(
      this,
      h("h1", { tabindex: "-1" }, t("orgs.title")),
      organizations.length
        ? h(
            "ul",
            { class: "organization-list" },
            organizations.map((organization) =>
              h(
                "li",
                {},
                h(
                  "a",
                  { href: routeHref(["orgs", organization.id, "integration"]) },
                  organization.name ?? organization.id,
                ),
              ),
            ),
          )
        : h("p", {}, t("orgs.none")),
      // Onboarding is offered unless the sign-in says the role cannot do it (the API decides).
      ["org_admin", "coordinator"].includes(this.context.session.role)
        ? null
        : h(
            "p",
            { class: "new-organization" },
            h("a", { href: routeHref(["new-organization"]) }, t("orgs.new")),
            " ",
            h("span", { class: "hint" }, t("orgs.new_hint")),
          ),
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

  open(event, input) {
    event.preventDefault();
    const id = input.value.trim().toLowerCase();
    if (!UUID.test(id)) {
      this.error = t("orgs.open_invalid");
      this.render();
      this.querySelector("#open-organization-id")?.focus();
      return;
    }
    rememberOrganization(this.context.session, id);
    navigate(["orgs", id, "integration"]);
  }
}

customElements.define("ps-organizations", Organizations);
