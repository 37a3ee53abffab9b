// Integration settings (GET/PUT /orgs/{orgId}/integration): enabled, source id, signature
// mode, per feature its owner (app or portal) with its deep link beside it, the reconcile
// interval, visibility column and application users, the field mapping (its editor in
// field-mapping-editor.js), and, in a form of its own, the Dynamics connection (in
// dynamics-connection.js). The screen holds both forms' drafts, saves them and shows a 422's
// field errors at their fields and summed up at the top.
import { Screen, choiceGroup, choices, errorNotice, errorSummary, field } from "./common.js";
import {
  connectionDraftOf,
  connectionFieldId,
  connectionPathLabel,
  connectionUpdate,
  dynamicsSection,
} from "./dynamics-connection.js";
import {
  mappingBody,
  mappingDraftOf,
  mappingFieldId,
  mappingPathLabel,
  mappingSection,
  splitPath,
} from "./field-mapping-editor.js";
import { ApiError, segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { has, t } from "../lib/i18n.js";
import { routeHref } from "../lib/router.js";

const FEATURE_NAME = /^[a-z][a-z0-9_]{1,49}$/;
const MODES = ["standard-webhooks", "header-key"];
const OWNERS = ["app", "portal"];

// The settings form's further fields by the API's error path.
const SYNC_FIELDS = {
  reconcile_interval_minutes: "integration-reconcile-interval",
  website_visibility_column: "integration-visibility-column",
  application_user_ids: "integration-application-users",
};

class IntegrationSettings extends Screen {
  async start() {
    this.errors = new Map();
    this.failure = null;
    this.saved = null;
    this.newFeatureError = null;
    try {
      this.view = await this.context.api.admin(
        "GET",
        `/orgs/${segment(this.context.orgId)}/integration`,
      );
    } catch (error) {
      fill(this, this.heading(t("integration.title")), errorNotice(error));
      return;
    }
    this.draft = draftOf(this.view);
    this.connection = connectionDraftOf(this.view);
    // Which form the errors shown are of: "settings" or "connection".
    this.errorsOf = "settings";
    this.render();
  }

  render() {
    const { view, draft } = this;
    const form = h(
      "form",
      { novalidate: true, onsubmit: (event) => this.save(event) },
      this.webhookSection(view, draft),
      this.featureSection(draft),
      this.syncSection(view, draft),
      mappingSection(this, view, draft),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "button button-primary" }, t("integration.save")),
        h(
          "button",
          { type: "button", class: "button button-secondary", onclick: () => this.discard() },
          t("integration.discard"),
        ),
      ),
    );
    fill(
      this,
      this.heading(t("integration.title")),
      h(
        "p",
        { class: "lead" },
        t("integration.intro", { organization: this.context.organizationName }),
      ),
      this.saved
        ? h("div", { class: "notice notice-success", role: "status", tabindex: "-1" }, this.saved)
        : null,
      this.failure ? errorNotice(this.failure) : null,
      this.errors.size ? this.summary() : null,
      form,
      dynamicsSection(this, view),
    );
  }

  /** The message the last save's 422 has for a field (by its element id). */
  errorAt(id) {
    const messages = [...this.errors]
      .filter(([path]) => this.fieldIdFor(path) === id)
      .map(([path, message]) => lineOf(path, message));
    return messages.length ? messages.join(" ") : null;
  }

  /** The field an API error path names, to show it there and link the summary to it. */
  fieldIdFor(path) {
    if (this.errorsOf === "connection") return connectionFieldId(path);
    const [head, rest] = splitPath(path);
    if (head in SYNC_FIELDS) return SYNC_FIELDS[head];
    if (head === "field_mapping") return mappingFieldId(this.draft.mapping, rest);
    return fieldIdFor(path);
  }

  syncSection(view, draft) {
    const interval = h("input", {
      type: "number",
      name: "reconcile_interval_minutes",
      min: "5",
      max: "1440",
      step: "1",
      inputmode: "numeric",
      class: "input-short",
      value: draft.reconcile_interval,
      oninput: (event) => (draft.reconcile_interval = event.target.value),
    });
    const column = draftInput(draft, "visibility_column", "website_visibility_column");
    const users = h("textarea", {
      name: "application_user_ids",
      rows: "3",
      autocomplete: "off",
      spellcheck: "false",
      class: "input-wide",
      oninput: (event) => (draft.application_users = event.target.value),
    });
    users.value = draft.application_users;
    const learned = view.dynamics?.application_user_id;
    return h(
      "section",
      { class: "panel", "aria-labelledby": "sync-settings-heading" },
      h("h2", { id: "sync-settings-heading" }, t("integration.sync_settings")),
      field({
        id: SYNC_FIELDS.reconcile_interval_minutes,
        label: t("integration.reconcile_interval"),
        hint: t("integration.reconcile_interval_hint"),
        error: this.errorAt(SYNC_FIELDS.reconcile_interval_minutes),
        input: interval,
      }),
      field({
        id: SYNC_FIELDS.website_visibility_column,
        label: t("integration.visibility_column"),
        hint: t("integration.visibility_column_hint"),
        error: this.errorAt(SYNC_FIELDS.website_visibility_column),
        input: column,
      }),
      field({
        id: SYNC_FIELDS.application_user_ids,
        label: t("integration.application_users"),
        hint: learned
          ? t("integration.application_users_hint_learned", { id: learned })
          : t("integration.application_users_hint"),
        error: this.errorAt(SYNC_FIELDS.application_user_ids),
        input: users,
      }),
    );
  }

  webhookSection(view, draft) {
    const enabled = h("input", {
      type: "checkbox",
      name: "enabled",
      checked: draft.enabled,
      onchange: (event) => (draft.enabled = event.target.checked),
    });
    const enabledError = this.errors.get("enabled");
    enabled.setAttribute(
      "aria-describedby",
      enabledError
        ? "integration-enabled-hint integration-enabled-error"
        : "integration-enabled-hint",
    );
    if (enabledError) enabled.setAttribute("aria-invalid", "true");
    const sourceId = draftInput(draft, "source_id", "source_id", { class: "input-wide" });
    const headerName = draftInput(draft, "header_name", "header_name");
    const headerField = field({
      id: "integration-header-name",
      label: t("integration.header_name"),
      hint: t("integration.header_name_hint"),
      error: this.errors.get("header_name"),
      input: headerName,
    });
    headerField.hidden = draft.signature_mode !== "header-key";
    const modes = choiceGroup({
      legend: t("integration.signature_mode"),
      error: this.errors.get("signature_mode"),
      name: "signature_mode",
      idPrefix: "signature-mode",
      values: MODES,
      checked: draft.signature_mode,
      label: (mode) => t(`integration.mode.${mode}`),
      hint: (mode) => t(`integration.mode.${mode}.hint`),
      onchange: (mode) => {
        draft.signature_mode = mode;
        headerField.hidden = mode !== "header-key";
      },
    });
    return h(
      "section",
      { class: "panel", "aria-labelledby": "webhooks-heading" },
      h("h2", { id: "webhooks-heading" }, t("integration.webhooks")),
      h(
        "div",
        { class: enabledError ? "field field-invalid choice" : "field choice" },
        Object.assign(enabled, { id: "integration-enabled" }),
        h("label", { for: "integration-enabled" }, t("integration.enabled")),
        h("p", { class: "hint", id: "integration-enabled-hint" }, t("integration.enabled_hint")),
        enabledError
          ? h("p", { class: "field-error", id: "integration-enabled-error" }, enabledError)
          : null,
      ),
      field({
        id: "integration-source-id",
        label: t("integration.source_id"),
        hint: t("integration.source_id_hint", { url: view.webhook_url }),
        error: this.errors.get("source_id"),
        input: sourceId,
      }),
      modes,
      headerField,
    );
  }

  featureSection(draft) {
    const features = Object.keys({ ...draft.owners, ...draft.links }).sort();
    const name = h("input", {
      type: "text",
      name: "new_feature",
      autocomplete: "off",
      spellcheck: "false",
    });
    return h(
      "section",
      { class: "panel", "aria-labelledby": "features-heading" },
      h("h2", { id: "features-heading" }, t("integration.features")),
      h("p", { class: "hint" }, t("integration.features_hint")),
      this.errors.get("feature_ownership")
        ? h("p", { class: "field-error" }, this.errors.get("feature_ownership"))
        : null,
      this.errors.get("deep_links")
        ? h("p", { class: "field-error" }, this.errors.get("deep_links"))
        : null,
      h(
        "div",
        { class: "features" },
        features.map((feature) => this.featureRow(feature, draft)),
      ),
      h(
        "div",
        { class: "add-feature" },
        field({
          id: "new-feature-name",
          label: t("integration.new_feature"),
          hint: t("integration.new_feature_hint"),
          error: this.newFeatureError,
          input: name,
        }),
        h(
          "button",
          {
            type: "button",
            class: "button button-secondary",
            onclick: () => this.addFeature(name.value),
          },
          t("integration.add_feature"),
        ),
      ),
    );
  }

  featureRow(feature, draft) {
    const label = featureLabel(feature);
    const ownerError = this.errors.get(`feature_ownership.${feature}`);
    const linkError = this.errors.get(`deep_links.${feature}`);
    const link = draftInput(draft.links, feature, `deep_link_${feature}`, {
      type: "url",
      inputmode: "url",
      placeholder: "https://",
    });
    return h(
      "fieldset",
      { class: ownerError || linkError ? "feature feature-invalid" : "feature" },
      h("legend", { class: "feature-name" }, label),
      h(
        "div",
        {
          class: "owner",
          role: "radiogroup",
          "aria-label": t("integration.owner_of", { feature: label }),
          "aria-describedby": ownerError ? `owner-${feature}-error` : null,
        },
        ownerError
          ? h("p", { class: "field-error", id: `owner-${feature}-error` }, ownerError)
          : null,
        choices({
          name: `owner_${feature}`,
          idPrefix: `owner-${feature}`,
          values: OWNERS,
          checked: draft.owners[feature],
          label: (owner) => t(`integration.owner.${owner}`),
          onchange: (owner) => (draft.owners[feature] = owner),
          inline: true,
        }),
      ),
      field({
        id: `deep-link-${feature}`,
        label: t("integration.deep_link_for", { feature: label }),
        error: linkError,
        input: link,
      }),
    );
  }

  summary() {
    const connection = this.errorsOf === "connection";
    const items = [...this.errors].map(([path, message]) => ({
      target: this.fieldIdFor(path),
      text: `${connection ? connectionPathLabel(path) : this.pathLabel(path)}: ${lineOf(path, message)}`,
    }));
    return errorSummary(connection ? t("connection.not_saved") : t("integration.not_saved"), items);
  }

  pathLabel(path) {
    const [head, rest] = splitPath(path);
    if (head === "field_mapping") return mappingPathLabel(this.draft.mapping, rest);
    return pathLabel(path);
  }

  addFeature(value) {
    const feature = value.trim();
    if (!FEATURE_NAME.test(feature)) {
      this.newFeatureError = t("integration.new_feature_invalid");
    } else if (feature in this.draft.owners || feature in this.draft.links) {
      this.newFeatureError = t("integration.new_feature_exists");
    } else {
      this.newFeatureError = null;
      this.draft.owners[feature] = "app";
    }
    this.saved = null;
    this.render();
    const target = this.newFeatureError ? "new-feature-name" : `owner-${feature}-app`;
    this.querySelector(`#${target}`)?.focus();
  }

  discard() {
    this.draft = draftOf(this.view);
    this.connection = connectionDraftOf(this.view);
    this.newTableError = null;
    this.errors = new Map();
    this.failure = null;
    this.saved = null;
    this.newFeatureError = null;
    this.render();
    this.context.announce(t("integration.discarded"));
  }

  async save(event) {
    event.preventDefault();
    const update = changes(this.view, this.draft);
    await this.submit({
      form: "settings",
      body: Object.keys(update).length ? update : null,
      nothing: t("integration.nothing_to_save"),
      done: () => {
        this.draft = draftOf(this.view);
        this.saved = t("integration.saved");
      },
    });
  }

  /** Saves the Dynamics connection alone: `dynamics` is sent whole, the secret only if typed. */
  async saveConnection(event) {
    event.preventDefault();
    const dynamics = connectionUpdate(this.view, this.connection);
    const before = this.view.dynamics?.base_url ?? null;
    await this.submit({
      form: "connection",
      body: dynamics ? { dynamics } : null,
      nothing: t("connection.nothing_to_save"),
      done: () => {
        // The secret is gone from the page once sent; the settings' own edits are kept.
        this.connection = connectionDraftOf(this.view);
        const moved = this.view.dynamics?.base_url !== before && this.view.enabled;
        this.saved = [
          t("connection.saved"),
          moved
            ? [
                " ",
                t("connection.import_started"),
                " ",
                h(
                  "a",
                  { href: routeHref(["orgs", this.context.orgId, "sync"]) },
                  t("connection.follow_import"),
                ),
              ]
            : null,
        ];
      },
    });
  }

  /**
   * Sends one of the two forms (`form`, whose errors are then shown) as the PUT's `body`, or
   * says `nothing` when it is null; `done()` takes in the saved view (in `this.view`). A 422
   * shows its field errors, any other refusal the API's answer; focus moves to the outcome.
   */
  async submit({ form, body, nothing, done }) {
    this.errorsOf = form;
    this.errors = new Map();
    this.failure = null;
    this.saved = null;
    if (!body) {
      this.saved = nothing;
      this.render();
      this.querySelector(".notice-success")?.focus();
      return;
    }
    try {
      this.view = await this.context.api.admin(
        "PUT",
        `/orgs/${segment(this.context.orgId)}/integration`,
        { body },
      );
      done();
    } catch (error) {
      if (error instanceof ApiError && error.status === 422 && error.errors.length) {
        this.errors = error.fieldErrors();
      } else {
        this.failure = error;
      }
    }
    this.render();
    this.querySelector(".error-summary, .notice-error, .notice-success")?.focus();
  }
}

/** An input for `draft[key]`, kept in step as it is typed; ids and names: no spell check. */
function draftInput(draft, key, name, attributes = {}) {
  return h("input", {
    type: "text",
    name,
    value: draft[key] ?? "",
    autocomplete: "off",
    spellcheck: "false",
    oninput: (event) => (draft[key] = event.target.value),
    ...attributes,
  });
}

function draftOf(view) {
  return {
    enabled: view.enabled,
    source_id: view.source_id,
    signature_mode: view.signature_mode,
    header_name: view.header_name ?? "",
    owners: { ...view.feature_ownership },
    links: { ...view.deep_links },
    reconcile_interval: String(view.reconcile_interval_minutes ?? ""),
    visibility_column: view.website_visibility_column ?? "",
    application_users: (view.application_user_ids ?? []).join("\n"),
    mapping: mappingDraftOf(view),
  };
}

/** An error of one of the application users' lines says which line. */
function lineOf(path, message) {
  const match = /^application_user_ids\.(\d+)$/.exec(path);
  return match
    ? t("integration.application_users_line", { number: Number(match[1]) + 1, message })
    : message;
}

/** What the form changed, as the PUT body: a field left out keeps its value. */
function changes(view, draft) {
  const update = {};
  if (draft.enabled !== view.enabled) update.enabled = draft.enabled;
  if (draft.source_id.trim() !== view.source_id) update.source_id = draft.source_id.trim();
  if (draft.signature_mode !== view.signature_mode) update.signature_mode = draft.signature_mode;
  if (
    draft.signature_mode === "header-key" &&
    draft.header_name.trim() !== (view.header_name ?? "")
  ) {
    update.header_name = draft.header_name.trim();
  }
  const ownership = Object.fromEntries(
    Object.entries(draft.owners).filter(([, owner]) => OWNERS.includes(owner)),
  );
  if (!sameEntries(ownership, view.feature_ownership)) update.feature_ownership = ownership;
  const links = Object.fromEntries(
    Object.entries(draft.links)
      .map(([feature, link]) => [feature, String(link).trim()])
      .filter(([, link]) => link),
  );
  if (!sameEntries(links, view.deep_links)) update.deep_links = links;
  const interval = draft.reconcile_interval.trim();
  if (interval !== String(view.reconcile_interval_minutes)) {
    // Not a whole number: sent as typed, and the API's 422 says what it needs.
    update.reconcile_interval_minutes = /^\d+$/.test(interval) ? Number(interval) : interval;
  }
  const column = draft.visibility_column.trim();
  if (column !== view.website_visibility_column) update.website_visibility_column = column;
  const users = draft.application_users
    .split(/[\s,;]+/)
    .map((line) => line.trim())
    .filter(Boolean);
  if (users.join("\n") !== (view.application_user_ids ?? []).join("\n")) {
    update.application_user_ids = users;
  }
  if (draft.mapping.useDefault) {
    // null: the platform's default mapping again.
    if (!view.field_mapping_is_default) update.field_mapping = null;
  } else {
    const mapping = mappingBody(draft.mapping);
    if (JSON.stringify(mapping) !== JSON.stringify(mappingBody(mappingDraftOf(view)))) {
      update.field_mapping = mapping;
    }
  }
  return update;
}

function sameEntries(left, right) {
  const sorted = (object) => JSON.stringify(Object.entries(object ?? {}).sort());
  return sorted(left) === sorted(right);
}

function featureLabel(feature) {
  const key = `feature.${feature}`;
  return has(key) ? t(key) : feature;
}

/** The form field an API error path names, to link the summary to it. */
function fieldIdFor(path) {
  const [head, rest] = splitPath(path);
  if (head === "enabled") return "integration-enabled";
  if (head === "source_id") return "integration-source-id";
  if (head === "signature_mode") return "signature-mode-standard-webhooks";
  if (head === "header_name") return "integration-header-name";
  if (head === "deep_links" && FEATURE_NAME.test(rest)) return `deep-link-${rest}`;
  if (head === "feature_ownership" && FEATURE_NAME.test(rest)) return `owner-${rest}-app`;
  return null;
}

function pathLabel(path) {
  const [head, rest] = splitPath(path);
  if (head === "deep_links" && rest)
    return t("integration.deep_link_for", { feature: featureLabel(rest) });
  if (head === "feature_ownership" && rest)
    return t("integration.owner_of", { feature: featureLabel(rest) });
  const key = `integration.path.${head}`;
  return has(key) ? t(key) : path;
}

customElements.define("ps-integration-settings", IntegrationSettings);
