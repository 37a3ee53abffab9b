// What the screens share: their base class, the API's refusals shown in words, panels and the
// pager of a cursor-paged list, form fields and groups of radio buttons with their hint and
// error beside them, and the summary of a form's errors.
import { ApiError } from "../lib/api.js";
import { fill, h, uid } from "../lib/dom.js";
import { t } from "../lib/i18n.js";

/**
 * A screen of one organisation. The shell sets `context` ({api, orgId, organizationName,
 * params, announce}) before it connects the element; `start()` then loads and renders, and
 * the element announces `screen-ready`.
 */
export class Screen extends HTMLElement {
  async connectedCallback() {
    if (this.started) return;
    this.started = true;
    this.replaceChildren(h("p", { class: "loading", role: "status" }, t("common.loading")));
    await this.start();
    // The shell moves focus to the heading once it is there (after navigation).
    this.dispatchEvent(new CustomEvent("screen-ready"));
  }

  /** The screen's h1, focusable so the shell can move focus to it on navigation. */
  heading(text) {
    return h("h1", { tabindex: "-1", class: "screen-heading" }, text);
  }

  /** The screen's lead paragraph: `key`'s text, about the organisation unless `values` say. */
  lead(key, values = { organization: this.context.organizationName }) {
    return h("p", { class: "lead" }, t(key, values));
  }

  /**
   * Runs the screen's first request (`request` keeps what it needs) and resolves true; when it
   * is refused (or there is no such organisation) the screen is `before`, the heading `title`
   * and the API's answer alone, and it resolves false.
   */
  async opened(title, request, before = []) {
    try {
      await request();
      return true;
    } catch (error) {
      fill(this, before, this.heading(title), errorNotice(error));
      return false;
    }
  }
}

/**
 * A section named by its h2 (`id`, `title`). With `action` ({label, onclick}) the heading
 * shares a row with a secondary button (such as a refresh).
 */
export function panel({ id, title, action = null, children = [] }) {
  const heading = h("h2", { id }, title);
  return h(
    "section",
    { class: "panel", "aria-labelledby": id },
    action
      ? h(
          "div",
          { class: "panel-heading" },
          heading,
          h(
            "button",
            { type: "button", class: "button button-secondary", onclick: action.onclick },
            action.label,
          ),
        )
      : heading,
    children,
  );
}

/**
 * The buttons to the pages either side of a cursor-paged list and the page number between
 * them, or null when there is one page only. `back` and `forward` are ({label, enabled,
 * onclick}); a button that cannot be used is shown disabled.
 */
export function pager({ label, page, back, forward }) {
  if (!back.enabled && !forward.enabled) return null;
  const button = ({ label: text, enabled, onclick }) =>
    h(
      "button",
      { type: "button", class: "button button-secondary", disabled: !enabled, onclick },
      text,
    );
  return h(
    "nav",
    { class: "pager", "aria-label": label },
    button(back),
    h("span", { class: "page-number" }, page),
    button(forward),
  );
}

/**
 * After a page turn, focus stays on a pager button (re-rendered): the one pressed, or the other
 * at an end.
 */
export function focusPager(root) {
  [...root.querySelectorAll(".pager button:not([disabled])")].at(-1)?.focus();
}

/** What went wrong with a request, in words, with the API's own message when it sent one. */
export function errorNotice(error, { headingLevel = "h2" } = {}) {
  const status = error instanceof ApiError ? error.status : -1;
  const titles = {
    0: "error.unreachable",
    403: "error.forbidden",
    404: "error.not_found",
    409: "error.conflict",
    422: "error.invalid",
    503: "error.unavailable",
  };
  const title = titles[status] ?? "error.unexpected";
  const message = error instanceof ApiError ? error.apiMessage : null;
  return h(
    "div",
    { class: "notice notice-error", role: "alert" },
    h(headingLevel, { class: "notice-title" }, t(title, { status })),
    message ? h("p", { class: "api-message" }, message) : null,
    status === 0 ? h("p", {}, t("error.unreachable_hint")) : null,
  );
}

/**
 * A labelled input with its hint and (from the API's 422) its error, tied together with
 * aria-describedby so a screen reader reads them with the field.
 */
export function field({ id, label, hint, error, input }) {
  const hintId = hint ? `${id}-hint` : null;
  const errorId = error ? `${id}-error` : null;
  input.id = id;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  if (describedBy) input.setAttribute("aria-describedby", describedBy);
  if (error) input.setAttribute("aria-invalid", "true");
  return h(
    "div",
    { class: error ? "field field-invalid" : "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    error ? h("p", { class: "field-error", id: errorId }, error) : null,
    input,
  );
}

/**
 * A group of radio buttons in a fieldset with its legend and (from the API's 422) its error.
 * Ids follow `idPrefix`: `${idPrefix}-error` for the error, `${idPrefix}-${value}` for each
 * value's radio; the arguments are those of `choices`.
 */
export function choiceGroup({ legend, error, ...group }) {
  const errorId = `${group.idPrefix}-error`;
  return h(
    "fieldset",
    {
      class: error ? "field field-invalid" : "field",
      "aria-describedby": error ? errorId : null,
    },
    h("legend", {}, legend),
    error ? h("p", { class: "field-error", id: errorId }, error) : null,
    choices(group),
  );
}

/**
 * A radio button for each of `values`, with its label and, when `hint` is given, a hint it is
 * described by (`${id}-hint`). `label(value)` and `hint(value)` give their text; `onchange(value)`
 * is called once a value is chosen (the caller updates its draft and what depends on it).
 */
export function choices({
  name,
  idPrefix,
  values,
  checked,
  label,
  hint,
  onchange,
  inline = false,
}) {
  return values.map((value) => {
    const id = `${idPrefix}-${value}`;
    return h(
      "div",
      { class: inline ? "choice choice-inline" : "choice" },
      h("input", {
        type: "radio",
        name,
        id,
        value,
        checked: checked === value,
        "aria-describedby": hint ? `${id}-hint` : null,
        onchange: () => onchange(value),
      }),
      h("label", { for: id }, label(value)),
      hint ? h("p", { class: "hint", id: `${id}-hint` }, hint(value)) : null,
    );
  });
}

/** The errors of a form at its top, each a link to its field (focus moves here on submit). */
export function errorSummary(title, items) {
  const headingId = uid("error-summary");
  return h(
    "div",
    {
      class: "notice notice-error error-summary",
      role: "alert",
      tabindex: "-1",
      "aria-labelledby": headingId,
    },
    h("h2", { id: headingId, class: "notice-title" }, title),
    h(
      "ul",
      {},
      items.map(({ target, text }) =>
        h(
          "li",
          {},
          target
            ? h(
                "a",
                {
                  href: `#${target}`,
                  onclick: (event) => {
                    // The hash is the route: focus the field instead of following the link.
                    event.preventDefault();
                    document.getElementById(target)?.focus();
                  },
                },
                text,
              )
            : text,
        ),
      ),
    ),
  );
}

/** A <time> for an API timestamp, in the reader's locale. */
export function timeElement(iso, format) {
  if (!iso) return h("span", {}, t("common.never"));
  return h("time", { datetime: iso }, format(iso));
}

/** A description list of [term, description] pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs
      .filter(Boolean)
      .map(([term, description]) =>
        h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, description)),
      ),
  );
}

/**
 * A modal dialog that says what an action will do before it is done. `ask()` opens it and
 * resolves true once confirmed, false when cancelled (the button or Escape), when focus goes
 * back to `opener`; a confirmed action moves focus to its own result.
 */
export function confirmation() {
  const titleId = uid("confirm-title");
  const bodyId = uid("confirm-body");
  const title = h("h2", { id: titleId });
  const body = h("p", { id: bodyId });
  const yes = h("button", { type: "button", class: "button button-primary" });
  const no = h("button", { type: "button", class: "button button-secondary" }, t("common.cancel"));
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-labelledby": titleId, "aria-describedby": bodyId },
    title,
    body,
    h("div", { class: "actions" }, yes, no),
  );
  let settle = null;
  const finish = (answer) => {
    const resolve = settle;
    settle = null;
    if (dialog.open) dialog.close();
    resolve?.(answer);
  };
  yes.addEventListener("click", () => finish(true));
  no.addEventListener("click", () => finish(false));
  // Escape closes the dialog by itself: that is a cancel (after a confirm, settle is gone).
  dialog.addEventListener("close", () => finish(false));
  return {
    element: dialog,
    ask({ heading, text, confirm, danger = false }, opener = null) {
      title.textContent = heading;
      body.textContent = text;
      yes.textContent = confirm;
      yes.className = danger ? "button button-danger" : "button button-primary";
      dialog.showModal();
      return new Promise((resolve) => {
        settle = (answer) => {
          if (!answer) opener?.focus();
          resolve(answer);
        };
      });
    },
  };
}
