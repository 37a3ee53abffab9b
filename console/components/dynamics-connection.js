// The Dynamics connection form of the integration settings: what is stored (address,
// authentication, the credentials' fingerprint, the application user) and, in a form of its
// own, the address and the OAuth client or API key to connect with (secrets write-only: never
// filled from the API, sent only when typed). Its PUT body and its error paths' fields.
import { choiceGroup, facts, field, timeElement } from "./common.js";
import { h } from "../lib/dom.js";
import { formatDateTime, has, t } from "../lib/i18n.js";

const AUTH_TYPES = ["oauth_client_credentials", "api_key"];
const DEFAULT_KEY_HEADER = "Ocp-Apim-Subscription-Key";

// The connection form's fields by the API's error path.
const CONNECTION_FIELDS = {
  // The connection as a whole (OAuth without its tenant, say): above its fields.
  dynamics: "connection-general",
  "dynamics.base_url": "connection-base-url",
  "dynamics.auth_type": "connection-auth-oauth_client_credentials",
  "dynamics.tenant_id": "connection-tenant",
  "dynamics.client_id": "connection-client",
  "dynamics.client_secret": "connection-client-secret",
  "dynamics.api_key": "connection-api-key",
  "dynamics.api_key_header": "connection-api-key-header",
};

/**
 * The Dynamics connection: its own form, so that a change of it is saved on its own.
 * `screen` is the integration settings screen: it holds the draft (`screen.connection`) and
 * the last save's errors, saves the form (`saveConnection`) and renders again.
 */
export function dynamicsSection(screen, view) {
  const dynamics = view.dynamics;
  const credentials = dynamics?.credentials;
  const draft = screen.connection;
  const general = screen.errorAt(CONNECTION_FIELDS.dynamics);
  const text = (name, options = {}) =>
    h("input", {
      type: "text",
      name,
      value: draft[name],
      autocomplete: "off",
      spellcheck: "false",
      oninput: (event) => (draft[name] = event.target.value),
      ...options,
    });
  const form = h(
    "form",
    {
      novalidate: true,
      class: "connection-form",
      "aria-labelledby": "dynamics-heading",
      onsubmit: (event) => screen.saveConnection(event),
    },
    general
      ? h("p", { class: "field-error", id: CONNECTION_FIELDS.dynamics, tabindex: "-1" }, general)
      : null,
    field({
      id: CONNECTION_FIELDS["dynamics.base_url"],
      label: t("connection.base_url"),
      hint: t("connection.base_url_hint"),
      error: screen.errorAt(CONNECTION_FIELDS["dynamics.base_url"]),
      input: text("base_url", {
        type: "url",
        inputmode: "url",
        placeholder: "https://",
        class: "input-wide",
      }),
    }),
    authChoice(screen),
    credentialFields(screen, text),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        { type: "submit", class: "button button-primary" },
        dynamics ? t("connection.save") : t("connection.connect"),
      ),
    ),
  );
  return h(
    "section",
    { class: "panel", "aria-labelledby": "dynamics-heading" },
    h("h2", { id: "dynamics-heading" }, t("integration.dynamics")),
    h("p", { class: "hint" }, t("connection.intro")),
    dynamics
      ? facts([
          [t("integration.dynamics.base_url"), h("code", { class: "break" }, dynamics.base_url)],
          [t("integration.dynamics.auth_type"), t(`integration.auth.${dynamics.auth_type}`)],
          [
            t("integration.dynamics.credentials"),
            credentials?.configured
              ? t("integration.dynamics.configured", {
                  fingerprint: credentials.fingerprint ?? "",
                })
              : t("integration.dynamics.not_configured"),
          ],
          credentials?.updated_at
            ? [
                t("connection.credentials_updated"),
                timeElement(credentials.updated_at, formatDateTime),
              ]
            : null,
          [
            t("connection.application_user"),
            dynamics.application_user_id
              ? h("code", { class: "break" }, dynamics.application_user_id)
              : t("connection.application_user_unknown"),
          ],
          [t("integration.updated_at"), timeElement(view.updated_at, formatDateTime)],
        ])
      : h("p", {}, t("integration.dynamics.none")),
    form,
  );
}

function authChoice(screen) {
  return choiceGroup({
    legend: t("integration.dynamics.auth_type"),
    error: screen.errorAt(CONNECTION_FIELDS["dynamics.auth_type"]),
    name: "auth_type",
    idPrefix: "connection-auth",
    values: AUTH_TYPES,
    checked: screen.connection.auth_type,
    label: (authType) => t(`integration.auth.${authType}`),
    hint: (authType) => t(`connection.auth.${authType}.hint`),
    // The form is drawn again with this type's credentials' fields: focus goes back here.
    onchange: (authType) => {
      screen.connection.auth_type = authType;
      screen.render();
      screen.querySelector(`#connection-auth-${authType}`)?.focus();
    },
  });
}

/** The credentials' fields: secrets in password fields, never filled from the API. */
function credentialFields(screen, text) {
  const draft = screen.connection;
  const credentials = screen.view.dynamics?.credentials;
  const stored = credentials?.configured && screen.view.dynamics.auth_type === draft.auth_type;
  const secretHint = stored
    ? t("connection.secret_keep", { fingerprint: credentials.fingerprint ?? "" })
    : t("connection.secret_needed");
  const secret = (name) => {
    const input = h("input", {
      type: "password",
      name,
      autocomplete: "new-password",
      class: "input-wide",
      oninput: (event) => (draft[name] = event.target.value),
    });
    // A property, not an attribute: what was typed stays out of the page's markup.
    input.value = draft[name];
    return input;
  };
  const at = (path) => CONNECTION_FIELDS[path];
  if (draft.auth_type === "api_key") {
    return h(
      "div",
      { class: "credentials" },
      field({
        id: at("dynamics.api_key"),
        label: t("connection.api_key"),
        hint: secretHint,
        error: screen.errorAt(at("dynamics.api_key")),
        input: secret("api_key"),
      }),
      field({
        id: at("dynamics.api_key_header"),
        label: t("connection.api_key_header"),
        hint: t("connection.api_key_header_hint", { header: DEFAULT_KEY_HEADER }),
        error: screen.errorAt(at("dynamics.api_key_header")),
        input: text("api_key_header"),
      }),
    );
  }
  return h(
    "div",
    { class: "credentials" },
    field({
      id: at("dynamics.tenant_id"),
      label: t("connection.tenant_id"),
      hint: t("connection.tenant_id_hint"),
      error: screen.errorAt(at("dynamics.tenant_id")),
      input: text("tenant_id", { class: "input-wide" }),
    }),
    field({
      id: at("dynamics.client_id"),
      label: t("connection.client_id"),
      error: screen.errorAt(at("dynamics.client_id")),
      input: text("client_id", { class: "input-wide" }),
    }),
    field({
      id: at("dynamics.client_secret"),
      label: t("connection.client_secret"),
      hint: secretHint,
      error: screen.errorAt(at("dynamics.client_secret")),
      input: secret("client_secret"),
    }),
  );
}

export function connectionDraftOf(view) {
  const dynamics = view.dynamics;
  return {
    base_url: dynamics?.base_url ?? "",
    auth_type: dynamics?.auth_type ?? AUTH_TYPES[0],
    tenant_id: dynamics?.tenant_id ?? "",
    client_id: dynamics?.client_id ?? "",
    api_key_header: dynamics?.api_key_header ?? "",
    // Write-only: never from the API, only what is typed here.
    client_secret: "",
    api_key: "",
  };
}

/**
 * The `dynamics` of the PUT body, or null when the form changed nothing. The API needs it
 * whole (address and authentication); a secret left empty keeps the stored one.
 */
export function connectionUpdate(view, draft) {
  const stored = view.dynamics;
  const oauth = draft.auth_type === "oauth_client_credentials";
  const dynamics = { base_url: draft.base_url.trim(), auth_type: draft.auth_type };
  const names = oauth ? ["tenant_id", "client_id", "client_secret"] : ["api_key", "api_key_header"];
  for (const name of names) {
    // Secrets are sent as typed: a space may be part of one.
    const value = name === "client_secret" || name === "api_key" ? draft[name] : draft[name].trim();
    if (value) dynamics[name] = value;
  }
  const typedSecret = Boolean(oauth ? draft.client_secret : draft.api_key);
  const changed =
    typedSecret ||
    dynamics.base_url !== (stored?.base_url ?? "") ||
    dynamics.auth_type !== (stored?.auth_type ?? AUTH_TYPES[0]) ||
    (oauth
      ? (dynamics.tenant_id ?? "") !== (stored?.tenant_id ?? "") ||
        (dynamics.client_id ?? "") !== (stored?.client_id ?? "")
      : (dynamics.api_key_header ?? "") !== (stored?.api_key_header ?? ""));
  if (!stored && !dynamics.base_url && !typedSecret && !dynamics.tenant_id && !dynamics.client_id)
    return null;
  return changed ? dynamics : null;
}

/** The connection form's field an API error path names. */
export function connectionFieldId(path) {
  return CONNECTION_FIELDS[path] ?? null;
}

/** What the error summary calls an error path of the connection. */
export function connectionPathLabel(path) {
  const key = `connection.path.${path}`;
  return has(key) ? t(key) : path;
}
