// Integration settings (GET/PUT /orgs/{orgId}/integration): enabled, source id, signature
// mode, and per feature its owner (app or portal) with its deep link beside it. A 422's field
// errors are shown at their fields and summed up at the top of the form.
import { Screen, errorNotice, errorSummary, facts, field, timeElement } from "./common.js";
import { ApiError, segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { formatDateTime, has, t } from "../lib/i18n.js";

const FEATURE_NAME = /^[a-z][a-z0-9_]{1,49}$/;
const MODES = ["standard-webhooks", "header-key"];
const OWNERS = ["app", "portal"];

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
    this.render();
  }

  render() {
    const { view, draft } = this;
    const form = h(
      "form",
      { novalidate: true, onsubmit: (event) => this.save(event) },
      this.webhookSection(view, draft),
      this.featureSection(draft),
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
      this.dynamicsSection(view),
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
    const sourceId = h("input", {
      type: "text",
      name: "source_id",
      value: draft.source_id,
      autocomplete: "off",
      spellcheck: "false",
      class: "input-wide",
      oninput: (event) => (draft.source_id = event.target.value),
    });
    const headerName = h("input", {
      type: "text",
      name: "header_name",
      value: draft.header_name,
      autocomplete: "off",
      spellcheck: "false",
      oninput: (event) => (draft.header_name = event.target.value),
    });
    const headerField = field({
      id: "integration-header-name",
      label: t("integration.header_name"),
      hint: t("integration.header_name_hint"),
      error: this.errors.get("header_name"),
      input: headerName,
    });
    headerField.hidden = draft.signature_mode !== "header-key";
    const modeError = this.errors.get("signature_mode");
    const modes = h(
      "fieldset",
      {
        class: modeError ? "field field-invalid" : "field",
        "aria-describedby": modeError ? "signature-mode-error" : null,
      },
      h("legend", {}, t("integration.signature_mode")),
      modeError ? h("p", { class: "field-error", id: "signature-mode-error" }, modeError) : null,
      MODES.map((mode) =>
        h(
          "div",
          { class: "choice" },
          h("input", {
            type: "radio",
            name: "signature_mode",
            id: `signature-mode-${mode}`,
            value: mode,
            checked: draft.signature_mode === mode,
            "aria-describedby": `signature-mode-${mode}-hint`,
            onchange: () => {
              draft.signature_mode = mode;
              headerField.hidden = mode !== "header-key";
            },
          }),
          h("label", { for: `signature-mode-${mode}` }, t(`integration.mode.${mode}`)),
          h(
            "p",
            { class: "hint", id: `signature-mode-${mode}-hint` },
            t(`integration.mode.${mode}.hint`),
          ),
        ),
      ),
    );
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
    const link = h("input", {
      type: "url",
      name: `deep_link_${feature}`,
      value: draft.links[feature] ?? "",
      inputmode: "url",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "https://",
      oninput: (event) => (draft.links[feature] = event.target.value),
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
        OWNERS.map((owner) =>
          h(
            "div",
            { class: "choice choice-inline" },
            h("input", {
              type: "radio",
              name: `owner_${feature}`,
              id: `owner-${feature}-${owner}`,
              value: owner,
              checked: draft.owners[feature] === owner,
              onchange: () => (draft.owners[feature] = owner),
            }),
            h("label", { for: `owner-${feature}-${owner}` }, t(`integration.owner.${owner}`)),
          ),
        ),
      ),
      field({
        id: `deep-link-${feature}`,
        label: t("integration.deep_link_for", { feature: label }),
        error: linkError,
        input: link,
      }),
    );
  }

  dynamicsSection(view) {
    const dynamics = view.dynamics;
    const credentials = dynamics?.credentials;
    return h(
      "section",
      { class: "panel", "aria-labelledby": "dynamics-heading" },
      h("h2", { id: "dynamics-heading" }, t("integration.dynamics")),
      dynamics
        ? facts([
            [t("integration.dynamics.base_url"), h("code", {}, dynamics.base_url)],
            [t("integration.dynamics.auth_type"), t(`integration.auth.${dynamics.auth_type}`)],
            [
              t("integration.dynamics.credentials"),
              credentials?.configured
                ? t("integration.dynamics.configured", {
                    fingerprint: credentials.fingerprint ?? "",
                  })
                : t("integration.dynamics.not_configured"),
            ],
            [t("integration.updated_at"), timeElement(view.updated_at, formatDateTime)],
          ])
        : h("p", {}, t("integration.dynamics.none")),
    );
  }

  summary() {
    const items = [...this.errors].map(([path, message]) => ({
      target: fieldIdFor(path),
      text: `${pathLabel(path)}: ${message}`,
    }));
    return errorSummary(t("integration.not_saved"), items);
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
    this.errors = new Map();
    this.failure = null;
    this.saved = null;
    if (!Object.keys(update).length) {
      this.saved = t("integration.nothing_to_save");
      this.render();
      this.querySelector(".notice-success")?.focus();
      return;
    }
    try {
      this.view = await this.context.api.admin(
        "PUT",
        `/orgs/${segment(this.context.orgId)}/integration`,
        { body: update },
      );
      this.draft = draftOf(this.view);
      this.saved = t("integration.saved");
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

function draftOf(view) {
  return {
    enabled: view.enabled,
    source_id: view.source_id,
    signature_mode: view.signature_mode,
    header_name: view.header_name ?? "",
    owners: { ...view.feature_ownership },
    links: { ...view.deep_links },
  };
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

function splitPath(path) {
  const dot = path.indexOf(".");
  return dot < 0 ? [path, ""] : [path.slice(0, dot), path.slice(dot + 1)];
}

customElements.define("ps-integration-settings", IntegrationSettings);
