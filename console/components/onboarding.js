// Onboarding (POST /orgs, global administrators): a new organisation from the platform
// default template (GET /onboarding-template, which serves what POST /orgs applies), shown
// before it is created; its name, source id, Dynamics environment id
// and, optionally, its Dynamics connection (then its members are imported at once). A 422's
// field errors are shown at their fields and summed up at the top; a source id in use (409) at
// its field. Not an organisation's screen: it is reached from the Organisations page.
import { Screen, choiceGroup, errorNotice, errorSummary, facts, field } from "./common.js";
import { ApiError } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { has, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";
import { currentSession, rememberOrganization } from "../lib/session.js";

const AUTH_TYPES = ["oauth_client_credentials", "api_key"];

// The form's fields by the API's error path (POST /orgs), for errors shown at their field.
const FIELD_IDS = {
  name: "onboarding-name",
  source_id: "onboarding-source-id",
  dataverse_organization_id: "onboarding-dataverse-id",
  dynamics: "onboarding-dynamics-base-url",
  "dynamics.base_url": "onboarding-dynamics-base-url",
  "dynamics.auth_type": "onboarding-auth-oauth_client_credentials",
  "dynamics.tenant_id": "onboarding-dynamics-tenant",
  "dynamics.client_id": "onboarding-dynamics-client",
  "dynamics.client_secret": "onboarding-dynamics-client-secret",
  "dynamics.api_key": "onboarding-dynamics-api-key",
  "dynamics.api_key_header": "onboarding-dynamics-api-key-header",
};

class Onboarding extends Screen {
  async start() {
    this.draft = emptyDraft();
    this.errors = new Map();
    this.failure = null;
    this.created = null;
    this.refusal = null;
    try {
      this.template = await this.context.api.admin("GET", "/onboarding-template");
    } catch (error) {
      // Not a global administrator (403), say: nothing to fill in, the API's answer instead.
      this.refusal = error;
    }
    this.render();
  }

  render() {
    fill(
      this,
      this.heading(t("onboarding.title")),
      h("p", { class: "lead" }, t("onboarding.intro")),
      this.refusal
        ? errorNotice(this.refusal)
        : this.created
          ? this.createdNotice(this.created)
          : this.form(),
    );
  }

  form() {
    return h(
      "form",
      { novalidate: true, onsubmit: (event) => this.save(event) },
      this.failure ? errorNotice(this.failure) : null,
      this.errors.size ? this.summary() : null,
      this.organizationSection(),
      this.templateSection(),
      this.dynamicsSection(),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "button button-primary" }, t("onboarding.create")),
        h("a", { href: "#/", class: "button button-secondary" }, t("common.cancel")),
      ),
    );
  }

  text(name, attributes = {}) {
    return h("input", {
      type: "text",
      name,
      value: this.draft[name] ?? "",
      autocomplete: "off",
      spellcheck: "false",
      oninput: (event) => (this.draft[name] = event.target.value),
      ...attributes,
    });
  }

  organizationSection() {
    return h(
      "section",
      { class: "panel", "aria-labelledby": "onboarding-organization-heading" },
      h("h2", { id: "onboarding-organization-heading" }, t("onboarding.organization")),
      field({
        id: FIELD_IDS.name,
        label: t("onboarding.name"),
        hint: t("onboarding.name_hint"),
        error: this.errors.get("name"),
        input: this.text("name", { autocomplete: "organization", spellcheck: "true" }),
      }),
      field({
        id: FIELD_IDS.source_id,
        label: t("onboarding.source_id"),
        hint: t("onboarding.source_id_hint"),
        error: this.errors.get("source_id"),
        input: this.text("source_id", { class: "input-wide" }),
      }),
      field({
        id: FIELD_IDS.dataverse_organization_id,
        label: t("onboarding.dataverse_id"),
        hint: t("onboarding.dataverse_id_hint"),
        error: this.errors.get("dataverse_organization_id"),
        input: this.text("dataverse_organization_id", { class: "input-wide" }),
      }),
    );
  }

  templateSection() {
    const template = this.template;
    const features = Object.keys(template.feature_ownership).sort();
    return h(
      "section",
      { class: "panel", "aria-labelledby": "onboarding-template-heading" },
      h("h2", { id: "onboarding-template-heading" }, t("onboarding.template")),
      h("p", { class: "hint" }, t("onboarding.template_intro")),
      facts([
        [
          t("onboarding.template.enabled"),
          template.enabled ? t("onboarding.template.on") : t("onboarding.template.off"),
        ],
        [t("integration.signature_mode"), t(`integration.mode.${template.signature_mode}`)],
        [t("onboarding.template.secret"), t("onboarding.template.no_secret")],
        [
          t("onboarding.template.mapping"),
          template.field_mapping_is_default
            ? t("onboarding.template.mapping_default")
            : t("onboarding.template.mapping_custom"),
        ],
      ]),
      h(
        "table",
        { class: "log-table template-table" },
        h("caption", {}, t("onboarding.template.features")),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["onboarding.col.feature", "onboarding.col.owner", "onboarding.col.deep_link"].map(
              (key) => h("th", { scope: "col" }, t(key)),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          features.map((feature) => {
            const link = template.deep_links[feature];
            return h(
              "tr",
              { "data-feature": feature },
              h("td", { "data-label": t("onboarding.col.feature") }, featureLabel(feature)),
              h(
                "td",
                { "data-label": t("onboarding.col.owner") },
                t(`integration.owner.${template.feature_ownership[feature]}`),
              ),
              h(
                "td",
                { "data-label": t("onboarding.col.deep_link") },
                link ? h("code", { class: "break" }, link) : t("onboarding.no_link"),
              ),
            );
          }),
        ),
      ),
      mappingTable(template.field_mapping),
    );
  }

  dynamicsSection() {
    const draft = this.draft;
    const connect = h("input", {
      type: "checkbox",
      name: "connect",
      id: "onboarding-connect",
      checked: draft.connect,
      "aria-describedby": "onboarding-connect-hint",
      "aria-controls": "onboarding-dynamics-fields",
      "aria-expanded": String(draft.connect),
      onchange: (event) => {
        draft.connect = event.target.checked;
        connect.setAttribute("aria-expanded", String(draft.connect));
        fields.hidden = !draft.connect;
      },
    });
    const fields = h(
      "div",
      { id: "onboarding-dynamics-fields" },
      this.errors.get("dynamics")
        ? h("p", { class: "field-error" }, this.errors.get("dynamics"))
        : null,
      field({
        id: FIELD_IDS["dynamics.base_url"],
        label: t("onboarding.dynamics.base_url"),
        hint: t("onboarding.dynamics.base_url_hint"),
        error: this.errors.get("dynamics.base_url"),
        input: this.text("base_url", {
          type: "url",
          inputmode: "url",
          placeholder: "https://",
          class: "input-wide",
        }),
      }),
      this.authChoice(),
      this.credentialFields(),
    );
    fields.hidden = !draft.connect;
    return h(
      "section",
      { class: "panel", "aria-labelledby": "onboarding-dynamics-heading" },
      h("h2", { id: "onboarding-dynamics-heading" }, t("onboarding.dynamics")),
      h(
        "div",
        { class: "field choice" },
        connect,
        h("label", { for: "onboarding-connect" }, t("onboarding.dynamics.connect")),
        h("p", { class: "hint", id: "onboarding-connect-hint" }, t("onboarding.dynamics.hint")),
      ),
      fields,
    );
  }

  authChoice() {
    return choiceGroup({
      legend: t("integration.dynamics.auth_type"),
      error: this.errors.get("dynamics.auth_type"),
      name: "auth_type",
      idPrefix: "onboarding-auth",
      values: AUTH_TYPES,
      checked: this.draft.auth_type,
      label: (authType) => t(`integration.auth.${authType}`),
      // Only the credentials' fields are drawn again: focus stays on the radio button.
      onchange: (authType) => {
        this.draft.auth_type = authType;
        this.querySelector("#onboarding-credentials")?.replaceWith(this.credentialFields());
      },
    });
  }

  credentialFields() {
    const secret = (name) =>
      this.text(name, { type: "password", autocomplete: "new-password", class: "input-wide" });
    const fields =
      this.draft.auth_type === "api_key"
        ? [
            field({
              id: FIELD_IDS["dynamics.api_key"],
              label: t("onboarding.dynamics.api_key"),
              hint: t("onboarding.dynamics.write_only"),
              error: this.errors.get("dynamics.api_key"),
              input: secret("api_key"),
            }),
            field({
              id: FIELD_IDS["dynamics.api_key_header"],
              label: t("onboarding.dynamics.api_key_header"),
              hint: t("onboarding.dynamics.api_key_header_hint"),
              error: this.errors.get("dynamics.api_key_header"),
              input: this.text("api_key_header"),
            }),
          ]
        : [
            field({
              id: FIELD_IDS["dynamics.tenant_id"],
              label: t("onboarding.dynamics.tenant_id"),
              hint: t("onboarding.dynamics.tenant_id_hint"),
              error: this.errors.get("dynamics.tenant_id"),
              input: this.text("tenant_id", { class: "input-wide" }),
            }),
            field({
              id: FIELD_IDS["dynamics.client_id"],
              label: t("onboarding.dynamics.client_id"),
              error: this.errors.get("dynamics.client_id"),
              input: this.text("client_id", { class: "input-wide" }),
            }),
            field({
              id: FIELD_IDS["dynamics.client_secret"],
              label: t("onboarding.dynamics.client_secret"),
              hint: t("onboarding.dynamics.write_only"),
              error: this.errors.get("dynamics.client_secret"),
              input: secret("client_secret"),
            }),
          ];
    return h("div", { id: "onboarding-credentials" }, fields);
  }

  summary() {
    const items = [...this.errors].map(([path, message]) => ({
      target: FIELD_IDS[path] ?? null,
      text: `${pathLabel(path)}: ${message}`,
    }));
    return errorSummary(t("onboarding.not_created"), items);
  }

  async save(event) {
    event.preventDefault();
    this.errors = new Map();
    this.failure = null;
    try {
      this.created = await this.context.api.admin("POST", "/orgs", { body: bodyOf(this.draft) });
    } catch (error) {
      if (error instanceof ApiError && error.status === 422 && error.errors.length) {
        this.errors = error.fieldErrors();
      } else if (error instanceof ApiError && error.status === 409) {
        // The one conflict onboarding answers: the source id is another organisation's.
        this.errors = new Map([["source_id", error.apiMessage ?? t("error.conflict")]]);
      } else {
        this.failure = error;
      }
    }
    if (this.created) {
      // Its screens are titled with its name for the rest of the session.
      const session = currentSession();
      if (session) rememberOrganization(session, this.created.id, this.created.name);
      this.draft = emptyDraft();
    }
    this.render();
    this.querySelector(".created, .error-summary, .notice-error")?.focus();
  }

  createdNotice(created) {
    const integration = created.integration;
    const orgId = created.id;
    const dynamics = integration.dynamics;
    const link = (screen, text) =>
      h("li", {}, h("a", { href: routeHref(["orgs", orgId, screen]) }, text));
    return h(
      "div",
      {},
      h(
        "div",
        {
          class: "notice notice-success created",
          role: "region",
          "aria-labelledby": "onboarding-created-heading",
          tabindex: "-1",
        },
        h(
          "h2",
          { id: "onboarding-created-heading", class: "notice-title" },
          t("onboarding.created", { name: created.name }),
        ),
        facts([
          [t("onboarding.created.id"), h("code", { class: "break" }, orgId)],
          [t("integration.source_id"), h("code", { class: "break" }, integration.source_id)],
          [t("secret.endpoint"), h("code", { class: "break" }, integration.webhook_url)],
          [
            t("onboarding.template.secret"),
            integration.webhook_secret?.configured
              ? t("secret.configured", { fingerprint: integration.webhook_secret.fingerprint })
              : t("onboarding.created.no_secret"),
          ],
          [
            t("integration.dynamics"),
            dynamics
              ? t("onboarding.created.dynamics", { url: dynamics.base_url })
              : t("onboarding.created.no_dynamics"),
          ],
        ]),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "onboarding-next-heading" },
        h("h2", { id: "onboarding-next-heading" }, t("onboarding.next")),
        h(
          "ul",
          { class: "next-steps" },
          link("secret", t("onboarding.next.secret")),
          link("integration", t("onboarding.next.integration")),
          dynamics ? link("sync", t("onboarding.next.import")) : null,
        ),
        h(
          "button",
          { type: "button", class: "button button-secondary", onclick: () => this.another() },
          t("onboarding.another"),
        ),
      ),
    );
  }

  another() {
    this.created = null;
    this.render();
    this.querySelector(`#${FIELD_IDS.name}`)?.focus();
  }
}

function emptyDraft() {
  return {
    name: "",
    source_id: "",
    dataverse_organization_id: "",
    connect: false,
    base_url: "",
    auth_type: AUTH_TYPES[0],
    tenant_id: "",
    client_id: "",
    client_secret: "",
    api_key: "",
    api_key_header: "",
  };
}

/** The POST /orgs body: what was filled in (an empty optional field is left to the API). */
function bodyOf(draft) {
  const body = { name: draft.name.trim() };
  const optional = (value) => (value.trim() ? value.trim() : undefined);
  body.source_id = optional(draft.source_id);
  body.dataverse_organization_id = optional(draft.dataverse_organization_id);
  if (draft.connect) {
    const dynamics = { base_url: draft.base_url.trim(), auth_type: draft.auth_type };
    const credentials =
      draft.auth_type === "api_key"
        ? ["api_key", "api_key_header"]
        : ["tenant_id", "client_id", "client_secret"];
    for (const name of credentials) {
      // Secrets are sent as typed: a space may be part of one.
      const value =
        name.endsWith("secret") || name === "api_key" ? draft[name] : draft[name].trim();
      if (value) dynamics[name] = value;
    }
    body.dynamics = dynamics;
  }
  return JSON.parse(JSON.stringify(body));
}

/** The field mapping the template starts with: per Dynamics table, what a row is and the
 * columns read from it. */
function mappingTable(mapping) {
  const columnLabel = t("onboarding.mapping.col.columns");
  return h(
    "table",
    { class: "log-table template-table mapping-table" },
    h("caption", {}, t("onboarding.mapping.caption")),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        [
          "onboarding.mapping.col.table",
          "onboarding.mapping.col.kind",
          "onboarding.mapping.col.columns",
        ].map((key) => h("th", { scope: "col" }, t(key))),
      ),
    ),
    h(
      "tbody",
      {},
      Object.entries(mapping?.tables ?? {}).map(([name, table]) =>
        h(
          "tr",
          { "data-table": name, "data-kind": table.kind },
          h("td", { "data-label": t("onboarding.mapping.col.table") }, h("code", {}, name)),
          h(
            "td",
            { "data-label": t("onboarding.mapping.col.kind") },
            t(`onboarding.mapping.kind.${table.kind}`),
          ),
          h(
            "td",
            { "data-label": columnLabel },
            h(
              "ul",
              { class: "mapping-columns" },
              mappingColumns(table).map((text) => h("li", {}, text)),
            ),
          ),
        ),
      ),
    ),
  );
}

function mappingColumns(table) {
  const lines = [];
  if (table.contact_column) {
    lines.push(t("onboarding.mapping.contact", { column: table.contact_column }));
  }
  for (const [profileField, column] of Object.entries(table.profile_columns ?? {})) {
    const key = `onboarding.mapping.field.${profileField}`;
    lines.push(
      t("onboarding.mapping.profile", { field: has(key) ? t(key) : profileField, column }),
    );
  }
  if (table.role_column) {
    const values = Object.entries(table.role_values ?? {})
      .map(([value, role]) => t("onboarding.mapping.role_value", { value, role: roleLabel(role) }))
      .join(", ");
    lines.push(t("onboarding.mapping.role", { column: table.role_column, values }));
  }
  if (table.course_column) {
    lines.push(t("onboarding.mapping.course", { column: table.course_column }));
  }
  lines.push(
    t("onboarding.mapping.state", {
      column: table.state_column,
      active: (table.active_states ?? []).join(", "),
      inactive: (table.inactive_states ?? []).join(", "),
    }),
  );
  return lines;
}

function roleLabel(role) {
  const key = `members.role.${role}`;
  return has(key) ? t(key) : role;
}

function featureLabel(feature) {
  const key = `feature.${feature}`;
  return has(key) ? t(key) : feature;
}

function pathLabel(path) {
  const key = `onboarding.path.${path}`;
  return has(key) ? t(key) : path;
}

customElements.define("ps-onboarding", Onboarding);
