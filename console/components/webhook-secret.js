// The webhook secret: its state, rotation (the new secret shown once, with a copy button and
// the grace period) and the API's test delivery with its result in words
// (POST /orgs/{orgId}/integration/webhook-secret[/test]).
import { Screen, errorNotice, facts, field, timeElement } from "./common.js";
import { ApiError, segment } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { formatDateTime, t } from "../lib/i18n.js";

const DEFAULT_GRACE_HOURS = 24;

class WebhookSecret extends Screen {
  async start() {
    this.rotated = null;
    this.rotateFailure = null;
    this.graceError = null;
    this.graceHours = String(DEFAULT_GRACE_HOURS);
    this.testResult = null;
    this.testFailure = null;
    try {
      this.view = await this.load();
    } catch (error) {
      fill(this, this.heading(t("secret.title")), errorNotice(error));
      return;
    }
    this.render();
  }

  load() {
    return this.context.api.admin("GET", `/orgs/${segment(this.context.orgId)}/integration`);
  }

  get base() {
    return `/orgs/${segment(this.context.orgId)}/integration/webhook-secret`;
  }

  render() {
    fill(
      this,
      this.heading(t("secret.title")),
      h("p", { class: "lead" }, t("secret.intro", { organization: this.context.organizationName })),
      this.statusSection(),
      this.rotateSection(),
      this.testSection(),
      this.confirmDialog(),
    );
  }

  statusSection() {
    const secret = this.view.webhook_secret;
    const previousValid =
      secret.previous_valid_until && new Date(secret.previous_valid_until) > new Date();
    return h(
      "section",
      { class: "panel", "aria-labelledby": "secret-status-heading" },
      h("h2", { id: "secret-status-heading" }, t("secret.current")),
      facts([
        [t("secret.endpoint"), h("code", { class: "break" }, this.view.webhook_url)],
        [t("integration.signature_mode"), t(`integration.mode.${this.view.signature_mode}`)],
        this.view.signature_mode === "header-key"
          ? [t("integration.header_name"), h("code", {}, this.view.header_name)]
          : null,
        [
          t("secret.state"),
          secret.configured
            ? t("secret.configured", { fingerprint: secret.fingerprint ?? "" })
            : t("secret.not_configured"),
        ],
        [t("secret.rotated_at"), timeElement(secret.updated_at, formatDateTime)],
        previousValid
          ? [
              t("secret.previous_valid_until"),
              timeElement(secret.previous_valid_until, formatDateTime),
            ]
          : null,
      ]),
    );
  }

  rotateSection() {
    const grace = h("input", {
      type: "number",
      name: "grace_period_hours",
      min: "0",
      max: "336",
      step: "1",
      inputmode: "numeric",
      value: this.graceHours,
      class: "input-short",
      oninput: (event) => (this.graceHours = event.target.value),
    });
    return h(
      "section",
      { class: "panel", "aria-labelledby": "rotate-heading" },
      h("h2", { id: "rotate-heading" }, t("secret.rotate_heading")),
      h("p", {}, t("secret.rotate_intro")),
      this.rotated ? this.newSecret(this.rotated) : null,
      this.rotateFailure ? errorNotice(this.rotateFailure, { headingLevel: "h3" }) : null,
      h(
        "form",
        { novalidate: true, onsubmit: (event) => this.requestRotation(event) },
        field({
          id: "grace-period-hours",
          label: t("secret.grace_label"),
          hint: t("secret.grace_hint"),
          error: this.graceError,
          input: grace,
        }),
        h("button", { type: "submit", class: "button button-primary" }, t("secret.rotate_button")),
      ),
    );
  }

  newSecret(rotated) {
    const value = h("input", {
      type: "text",
      readonly: true,
      value: rotated.secret,
      class: "secret-value",
      spellcheck: "false",
      autocomplete: "off",
    });
    const copied = h("p", { class: "copied", role: "status", "aria-live": "polite" });
    return h(
      "div",
      {
        class: "notice notice-success new-secret",
        role: "region",
        "aria-labelledby": "new-secret-heading",
        tabindex: "-1",
      },
      h("h3", { id: "new-secret-heading", class: "notice-title" }, t("secret.new_heading")),
      h("p", {}, t("secret.new_once")),
      field({ id: "new-secret-value", label: t("secret.new_label"), input: value }),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "button button-primary",
            onclick: () => this.copy(rotated.secret, value, copied),
          },
          t("secret.copy"),
        ),
        h(
          "button",
          { type: "button", class: "button button-secondary", onclick: () => this.forget() },
          t("secret.stored"),
        ),
      ),
      copied,
      h(
        "p",
        { class: "grace" },
        rotated.previous_valid_until
          ? t("secret.previous_until", { time: formatDateTime(rotated.previous_valid_until) })
          : t("secret.previous_retired"),
      ),
      rotated.signature_mode === "header-key" && rotated.header_name
        ? h("p", {}, t("secret.header_key_note", { header: rotated.header_name }))
        : null,
      h("p", { class: "hint" }, t("secret.fingerprint", { fingerprint: rotated.fingerprint })),
    );
  }

  confirmDialog() {
    this.dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "confirm-retire-heading" },
      h("h2", { id: "confirm-retire-heading" }, t("secret.confirm_heading")),
      h("p", {}, t("secret.confirm_body")),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "button button-danger",
            onclick: () => {
              this.dialog.close();
              this.rotate(0);
            },
          },
          t("secret.confirm_yes"),
        ),
        h(
          "button",
          { type: "button", class: "button button-secondary", onclick: () => this.dialog.close() },
          t("common.cancel"),
        ),
      ),
    );
    return this.dialog;
  }

  testSection() {
    this.testOutput = h("div", { class: "test-result", role: "status", "aria-live": "polite" });
    this.renderTestResult();
    return h(
      "section",
      { class: "panel", "aria-labelledby": "test-heading" },
      h("h2", { id: "test-heading" }, t("secret.test_heading")),
      h("p", {}, t("secret.test_intro")),
      h(
        "button",
        {
          type: "button",
          class: "button button-primary",
          onclick: (event) => this.test(event.target),
        },
        t("secret.test_button"),
      ),
      this.testOutput,
    );
  }

  renderTestResult() {
    const result = this.testResult;
    fill(
      this.testOutput,
      this.testing ? h("p", {}, t("secret.test_sending")) : null,
      result
        ? h(
            "div",
            { class: result.verified ? "notice notice-success" : "notice notice-error" },
            h(
              "h3",
              { class: "notice-title" },
              result.verified ? t("secret.test_verified") : t("secret.test_refused"),
            ),
            h("p", { class: "api-message" }, result.message),
            facts([
              [t("secret.endpoint"), h("code", { class: "break" }, result.endpoint)],
              // No status: nothing was sent (no secret yet) or nothing answered; the message says which.
              result.status_code === null || result.status_code === undefined
                ? null
                : [
                    t("secret.test_answer"),
                    t("secret.test_status", { status: String(result.status_code) }),
                  ],
            ]),
          )
        : null,
      this.testFailure ? errorNotice(this.testFailure, { headingLevel: "h3" }) : null,
    );
  }

  requestRotation(event) {
    event.preventDefault();
    const hours = Number(this.graceHours);
    if (this.graceHours.trim() !== "" && hours === 0) {
      // 0 retires the previous secret at once: webhooks signed with it fail from now on.
      this.dialog.showModal();
      return;
    }
    this.rotate(this.graceHours.trim() === "" ? DEFAULT_GRACE_HOURS : hours);
  }

  async rotate(hours) {
    this.rotateFailure = null;
    this.graceError = null;
    this.rotated = null;
    try {
      this.rotated = await this.context.api.admin("POST", this.base, {
        body: { grace_period_hours: hours },
      });
    } catch (error) {
      const errors = error instanceof ApiError && error.status === 422 ? error.fieldErrors() : null;
      if (errors?.has("grace_period_hours")) this.graceError = errors.get("grace_period_hours");
      else this.rotateFailure = error;
    }
    if (this.rotated) {
      try {
        this.view = await this.load();
      } catch {
        // The new secret is shown all the same (it cannot be shown again); the state above
        // it is brought up to date on the next visit.
      }
    }
    this.render();
    this.querySelector(this.rotated ? ".new-secret" : "#grace-period-hours")?.focus();
  }

  async copy(secret, input, status) {
    try {
      await navigator.clipboard.writeText(secret);
      status.textContent = t("secret.copied");
    } catch {
      // No clipboard permission: the secret is selected for the reader to copy.
      input.focus();
      input.select();
      status.textContent = t("secret.copy_manually");
    }
  }

  forget() {
    this.rotated = null;
    this.render();
    this.querySelector("#grace-period-hours")?.focus();
    this.context.announce(t("secret.forgotten"));
  }

  async test(button) {
    this.testResult = null;
    this.testFailure = null;
    this.testing = true;
    button.disabled = true;
    this.renderTestResult();
    try {
      this.testResult = await this.context.api.admin("POST", `${this.base}/test`);
    } catch (error) {
      this.testFailure = error;
    }
    this.testing = false;
    button.disabled = false;
    this.renderTestResult();
    button.focus();
  }
}

customElements.define("ps-webhook-secret", WebhookSecret);
