// The field mapping editor of the integration settings (docs/dataverse-mapping.md): each
// table with what it holds and its columns, the role column's values, tables added and
// removed, and the platform's default chosen again (shown, for global administrators, from
// the onboarding template). The mapping as the PUT body, and a 422's error paths under
// `field_mapping.` as the fields they name.
import { field } from "./common.js";
import { h } from "../lib/dom.js";
import { has, t } from "../lib/i18n.js";

// The field mapping (docs/dataverse-mapping.md): what a table holds, and the columns of each
// kind, in the order shown. Every TableMapping field has its place in the draft.
const KINDS = ["member", "membership", "course_enrollment"];
const ROLES = ["member", "peer_mentor", "coordinator", "admin"];
const PROFILE_FIELDS = ["first_name", "last_name", "email", "phone"];
const COLUMNS = [
  "contact_column",
  "role_column",
  "course_column",
  "course_name_column",
  "state_column",
  "modified_on_column",
  "entity_set",
];
const KIND_COLUMNS = {
  member: ["state_column", "modified_on_column", "entity_set"],
  membership: ["contact_column", "role_column", "state_column", "modified_on_column", "entity_set"],
  course_enrollment: [
    "contact_column",
    "course_column",
    "course_name_column",
    "state_column",
    "modified_on_column",
    "entity_set",
  ],
};
const STATE_LISTS = ["active_states", "inactive_states"];

/**
 * The field mapping's section of the settings form. `screen` is the integration settings
 * screen: it holds the draft (`screen.draft.mapping`), the last save's errors and the saved
 * notice, and renders again after each change.
 */
export function mappingSection(screen, view, draft) {
  const mapping = draft.mapping;
  const general = screen.errorAt("field-mapping");
  return h(
    "section",
    { class: "panel mapping", "aria-labelledby": "mapping-heading" },
    h("h2", { id: "mapping-heading" }, t("mapping.heading")),
    h("p", { class: "hint" }, t("mapping.intro")),
    h(
      "p",
      { class: "mapping-state" },
      h(
        "span",
        { class: view.field_mapping_is_default ? "badge badge-success" : "badge badge-pending" },
        view.field_mapping_is_default ? t("mapping.is_default") : t("mapping.is_custom"),
      ),
    ),
    general ? h("p", { class: "field-error", id: "field-mapping", tabindex: "-1" }, general) : null,
    mapping.useDefault
      ? h(
          "div",
          { class: "notice" },
          h("p", {}, t("mapping.default_on_save")),
          mapping.preview ? mappingPreview(mapping.preview) : null,
          h(
            "button",
            {
              type: "button",
              class: "button button-secondary",
              onclick: () => editMapping(screen),
            },
            t("mapping.edit_current"),
          ),
        )
      : [
          h(
            "div",
            { class: "mapping-tables" },
            mapping.tables.map((table, index) => tableEditor(screen, table, index)),
          ),
          addTable(screen),
          h(
            "div",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "button button-secondary",
                onclick: () => useDefaultMapping(screen),
              },
              t("mapping.use_default"),
            ),
          ),
        ],
  );
}

function tableEditor(screen, table, index) {
  const prefix = `mapping-${index}`;
  const text = (value, onChange, options = {}) =>
    h("input", {
      type: "text",
      autocomplete: "off",
      spellcheck: "false",
      value,
      oninput: (event) => onChange(event.target.value),
      ...options,
    });
  const column = (name) =>
    field({
      id: `${prefix}-${name}`,
      label: t(`mapping.column.${name}`),
      hint: has(`mapping.column.${name}.hint`) ? t(`mapping.column.${name}.hint`) : null,
      error: screen.errorAt(`${prefix}-${name}`),
      input: text(table.columns[name], (value) => {
        table.columns[name] = value;
      }),
    });
  const kind = h(
    "select",
    {
      name: `${prefix}-kind`,
      onchange: (event) => {
        table.kind = event.target.value;
        screen.render();
        screen.querySelector(`#${prefix}-kind`)?.focus();
      },
    },
    KINDS.map((value) =>
      h("option", { value, selected: table.kind === value }, t(`mapping.kind.${value}`)),
    ),
  );
  const label = table.name.trim() || t("mapping.unnamed");
  const invalid = [...screen.errors.keys()].some((path) =>
    (screen.fieldIdFor(path) ?? "").startsWith(`${prefix}-`),
  );
  return h(
    "fieldset",
    {
      class: invalid ? "mapping-table mapping-table-invalid" : "mapping-table",
      "data-table": table.name,
    },
    h(
      "legend",
      {},
      t("mapping.table_legend", { name: label, kind: t(`mapping.kind.${table.kind}`) }),
    ),
    h(
      "div",
      { class: "mapping-grid" },
      field({
        id: `${prefix}-name`,
        label: t("mapping.table_name"),
        hint: t("mapping.table_name_hint"),
        error: screen.errorAt(`${prefix}-name`),
        input: text(table.name, (value) => (table.name = value)),
      }),
      field({
        id: `${prefix}-kind`,
        label: t("mapping.kind"),
        error: screen.errorAt(`${prefix}-kind`),
        input: kind,
      }),
      table.kind === "member"
        ? PROFILE_FIELDS.map((name) =>
            field({
              id: `${prefix}-profile-${name}`,
              label: t(`mapping.profile.${name}`),
              error: screen.errorAt(`${prefix}-profile-${name}`),
              input: text(table.profile[name], (value) => {
                table.profile[name] = value;
              }),
            }),
          )
        : null,
      KIND_COLUMNS[table.kind].map(column),
      table.kind === "course_enrollment" ? null : defaultRole(screen, table, prefix),
      STATE_LISTS.map((name) =>
        field({
          id: `${prefix}-${name}`,
          label: t(`mapping.${name}`),
          hint: t(`mapping.${name}.hint`),
          error: screen.errorAt(`${prefix}-${name}`),
          input: text(table[name], (value) => (table[name] = value), {
            inputmode: "numeric",
            class: "input-short",
          }),
        }),
      ),
    ),
    table.kind === "membership" ? roleValues(screen, table, prefix) : null,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          class: "button button-secondary",
          onclick: () => removeTable(screen, index),
        },
        t("mapping.remove_table", { name: label }),
      ),
    ),
  );
}

function defaultRole(screen, table, prefix) {
  const roles = ROLES.includes(table.default_role) ? ROLES : [...ROLES, table.default_role];
  return field({
    id: `${prefix}-default_role`,
    label: t("mapping.default_role"),
    hint: t("mapping.default_role_hint"),
    error: screen.errorAt(`${prefix}-default_role`),
    input: h(
      "select",
      { onchange: (event) => (table.default_role = event.target.value) },
      roles.map((role) =>
        h("option", { value: role, selected: table.default_role === role }, roleName(role)),
      ),
    ),
  });
}

/** The role column's choice values and the app's role each one means. */
function roleValues(screen, table, prefix) {
  const error = screen.errorAt(`${prefix}-roles`);
  return h(
    "fieldset",
    {
      class: error ? "field field-invalid role-values" : "field role-values",
      "aria-describedby": error ? `${prefix}-roles-error` : `${prefix}-roles-hint`,
    },
    h("legend", {}, t("mapping.role_values")),
    h("p", { class: "hint", id: `${prefix}-roles-hint` }, t("mapping.role_values_hint")),
    error ? h("p", { class: "field-error", id: `${prefix}-roles-error` }, error) : null,
    table.roles.map((entry, number) => {
      const id = `${prefix}-role-${number}`;
      const roles = ROLES.includes(entry.role) ? ROLES : [...ROLES, entry.role];
      return h(
        "div",
        { class: "role-value" },
        field({
          id: `${id}-value`,
          label: t("mapping.role_value", { number: number + 1 }),
          input: h("input", {
            type: "text",
            inputmode: "numeric",
            autocomplete: "off",
            class: "input-short",
            value: entry.value,
            oninput: (event) => (entry.value = event.target.value),
          }),
        }),
        field({
          id: `${id}-role`,
          label: t("mapping.role_for", { number: number + 1 }),
          input: h(
            "select",
            { onchange: (event) => (entry.role = event.target.value) },
            roles.map((role) =>
              h("option", { value: role, selected: entry.role === role }, roleName(role)),
            ),
          ),
        }),
        h(
          "button",
          {
            type: "button",
            class: "button button-secondary",
            "aria-label": t("mapping.remove_role_named", { number: number + 1 }),
            onclick: () => {
              table.roles.splice(number, 1);
              screen.render();
              screen.querySelector(`#${prefix}-add-role`)?.focus();
            },
          },
          t("mapping.remove_role"),
        ),
      );
    }),
    h(
      "button",
      {
        type: "button",
        class: "button button-secondary",
        id: `${prefix}-add-role`,
        onclick: () => {
          table.roles.push({ value: "", role: "member" });
          screen.render();
          screen.querySelector(`#${prefix}-role-${table.roles.length - 1}-value`)?.focus();
        },
      },
      t("mapping.add_role"),
    ),
  );
}

function addTable(screen) {
  const name = h("input", {
    type: "text",
    name: "new_table",
    autocomplete: "off",
    spellcheck: "false",
  });
  const kind = h(
    "select",
    { name: "new_table_kind" },
    KINDS.map((value) => h("option", { value }, t(`mapping.kind.${value}`))),
  );
  return h(
    "div",
    { class: "add-feature add-table" },
    field({
      id: "mapping-new-name",
      label: t("mapping.new_table"),
      hint: t("mapping.table_name_hint"),
      error: screen.newTableError,
      input: name,
    }),
    field({ id: "mapping-new-kind", label: t("mapping.new_table_kind"), input: kind }),
    h(
      "button",
      {
        type: "button",
        class: "button button-secondary",
        onclick: () => addMappingTable(screen, name.value, kind.value),
      },
      t("mapping.add_table"),
    ),
  );
}

function addMappingTable(screen, value, kind) {
  const name = value.trim().toLowerCase();
  const tables = screen.draft.mapping.tables;
  if (!name) {
    screen.newTableError = t("mapping.new_table_missing");
  } else if (tables.some((table) => table.name.trim().toLowerCase() === name)) {
    screen.newTableError = t("mapping.new_table_exists");
  } else {
    screen.newTableError = null;
    tables.push(tableDraft(name, { kind }));
  }
  screen.saved = null;
  screen.render();
  const target = screen.newTableError ? "mapping-new-name" : `mapping-${tables.length - 1}-name`;
  screen.querySelector(`#${target}`)?.focus();
}

function removeTable(screen, index) {
  screen.draft.mapping.tables.splice(index, 1);
  // The errors' fields were numbered by the tables as they were.
  screen.errors = new Map();
  screen.saved = null;
  screen.render();
  screen.querySelector("#mapping-new-name")?.focus();
}

async function useDefaultMapping(screen) {
  if (screen.view.field_mapping_is_default) {
    // The default is what the API holds: going back to it is undoing the edits.
    screen.draft.mapping = mappingDraftOf(screen.view);
  } else {
    screen.draft.mapping = { useDefault: true, tables: [], preview: null };
  }
  screen.saved = null;
  screen.render();
  screen.context.announce(t("mapping.default_chosen"));
  screen.querySelector("#mapping-heading")?.scrollIntoView();
  screen.querySelector(".mapping button")?.focus();
  if (!screen.draft.mapping.useDefault) return;
  // The default spelled out, from the onboarding template: global administrators only (for
  // anyone else the API refuses it, and the words above have to do).
  const chosen = screen.draft.mapping;
  try {
    const template = await screen.context.api.admin("GET", "/onboarding-template");
    if (!template.field_mapping_is_default || screen.draft.mapping !== chosen) return;
    chosen.preview = template.field_mapping;
  } catch {
    return;
  }
  screen.querySelector(".mapping .notice p")?.after(mappingPreview(chosen.preview));
}

function editMapping(screen) {
  screen.draft.mapping = mappingDraftOf(screen.view);
  screen.render();
  screen.querySelector("#mapping-0-name")?.focus();
}

/** The mapping's draft: the API's tables, each with every field in its place. */
export function mappingDraftOf(view) {
  const tables = Object.entries(view.field_mapping?.tables ?? {});
  return { useDefault: false, tables: tables.map(([name, table]) => tableDraft(name, table)) };
}

function tableDraft(name, table) {
  return {
    name,
    kind: table.kind,
    columns: Object.fromEntries(COLUMNS.map((column) => [column, table[column] ?? ""])),
    profile: Object.fromEntries(
      PROFILE_FIELDS.map((profile) => [profile, table.profile_columns?.[profile] ?? ""]),
    ),
    default_role: table.default_role ?? "member",
    roles: Object.entries(table.role_values ?? {}).map(([value, role]) => ({ value, role })),
    active_states: (table.active_states ?? [0]).join(", "),
    inactive_states: (table.inactive_states ?? [1]).join(", "),
  };
}

/** The field_mapping of the PUT body: an empty field is left to the API's default. */
export function mappingBody(mapping) {
  return {
    tables: Object.fromEntries(
      mapping.tables.map((table) => [table.name.trim(), tableBody(table)]),
    ),
  };
}

function tableBody(table) {
  const body = { kind: table.kind };
  for (const column of COLUMNS) {
    const value = table.columns[column].trim();
    if (value) body[column] = value;
  }
  const profile = Object.entries(table.profile)
    .map(([name, column]) => [name, column.trim()])
    .filter(([, column]) => column);
  if (profile.length) body.profile_columns = Object.fromEntries(profile);
  const roles = table.roles.filter((entry) => String(entry.value).trim());
  if (roles.length) {
    body.role_values = Object.fromEntries(
      roles.map((entry) => [String(entry.value).trim(), entry.role]),
    );
  }
  body.default_role = table.default_role;
  for (const name of STATE_LISTS) {
    // Numbers as numbers; anything else is sent as typed, for the API to say what is wrong.
    const states = table[name]
      .split(/[\s,;]+/)
      .filter(Boolean)
      .map((state) => (/^-?\d+$/.test(state) ? Number(state) : state));
    if (states.length) body[name] = states;
  }
  return body;
}

/** The mapping's field an error path under `field_mapping.` names (else the section). */
export function mappingFieldId(mapping, rest) {
  const [tables, tail] = splitPath(rest);
  if (tables !== "tables" || !tail) return "field-mapping";
  const [name, sub] = splitPath(tail);
  const index = mapping.tables.findIndex((table) => table.name.trim() === name);
  if (index < 0) return "field-mapping";
  const prefix = `mapping-${index}`;
  const [head, detail] = splitPath(sub);
  if (head === "profile_columns" && PROFILE_FIELDS.includes(splitPath(detail)[0])) {
    return `${prefix}-profile-${splitPath(detail)[0]}`;
  }
  if (head === "role_values") return `${prefix}-roles`;
  if (STATE_LISTS.includes(head)) return `${prefix}-${head}`;
  if (COLUMNS.includes(head) || head === "kind" || head === "default_role") {
    return `${prefix}-${head}`;
  }
  // The table as a whole (a membership table without its contact lookup, say).
  return `${prefix}-name`;
}

/** The default mapping, read-only: each table, what it holds and the columns it names. */
function mappingPreview(fieldMapping) {
  return h(
    "ul",
    { class: "mapping-preview" },
    Object.entries(fieldMapping.tables ?? {}).map(([name, table]) => {
      const columns = [
        ...Object.values(table.profile_columns ?? {}),
        ...COLUMNS.map((column) => table[column]),
      ].filter(Boolean);
      return h(
        "li",
        {},
        t("mapping.preview_table", {
          name,
          kind: has(`mapping.kind.${table.kind}`) ? t(`mapping.kind.${table.kind}`) : table.kind,
          columns: columns.join(", "),
        }),
      );
    }),
  );
}

/** What the error summary calls an error path under `field_mapping.`: its table. */
export function mappingPathLabel(mapping, rest) {
  const [, tail] = splitPath(rest);
  const [name] = splitPath(tail ?? "");
  return name ? t("mapping.path.table", { name }) : t("mapping.heading");
}

function roleName(role) {
  const key = `members.role.${role}`;
  return has(key) ? t(key) : role;
}

/** An API error path's first name and the rest (`a.b.c` → `a`, `b.c`). */
export function splitPath(path) {
  const dot = path.indexOf(".");
  return dot < 0 ? [path, ""] : [path.slice(0, dot), path.slice(dot + 1)];
}
