// Signing in. Under `make run` config.json lists the demo identities and their tokens (the
// local sign-in); a deployed console's config names the Supabase project instead, whose
// accounts sign in with their e-mail and password through supabase-js (lib/supabase-auth.js).
import { field } from "./common.js";
import { fill, h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { navigate } from "../lib/router.js";
import { startSession } from "../lib/session.js";
import { supabaseAuth } from "../lib/supabase-auth.js";

class SignIn extends HTMLElement {
  connectedCallback() {
    const mode = this.config?.mode;
    fill(
      this,
      h("h1", { tabindex: "-1" }, t("signin.title")),
      this.notice ? h("div", { class: "notice notice-info", role: "status" }, this.notice) : null,
      mode === "local" ? this.localSignIn() : this.supabaseSignIn(),
    );
  }

  localSignIn() {
    const identities = Array.isArray(this.config.identities) ? this.config.identities : [];
    return h(
      "section",
      { "aria-labelledby": "local-signin-heading" },
      h("h2", { id: "local-signin-heading" }, t("signin.local_heading")),
      h("p", {}, t("signin.local_intro")),
      h(
        "ul",
        { class: "identities" },
        identities.map((identity) =>
          h(
            "li",
            { class: "identity" },
            h(
              "button",
              {
                type: "button",
                class: "button button-primary",
                onclick: () => this.choose(identity),
              },
              t("signin.as", { role: t(`role.${identity.role}`) }),
            ),
            h(
              "p",
              { class: "identity-details" },
              identity.email,
              identity.organizations?.length
                ? ` · ${identity.organizations.map((o) => o.name ?? o.id).join(", ")}`
                : null,
            ),
          ),
        ),
      ),
    );
  }

  supabaseSignIn() {
    const project = supabaseProject(this.config);
    if (!project) {
      return h(
        "div",
        { class: "notice notice-error", role: "alert" },
        h("h2", { class: "notice-title" }, t("config.missing")),
        h("p", {}, t("signin.supabase_unconfigured")),
      );
    }
    this.problem = h("div", { class: "signin-problem" });
    this.email = h("input", {
      type: "email",
      name: "email",
      autocomplete: "username",
      required: true,
    });
    this.password = h("input", {
      type: "password",
      name: "password",
      autocomplete: "current-password",
      required: true,
    });
    this.submit = h(
      "button",
      { type: "submit", class: "button button-primary" },
      t("signin.submit"),
    );
    return h(
      "section",
      { "aria-labelledby": "supabase-signin-heading" },
      h("h2", { id: "supabase-signin-heading" }, t("signin.supabase_heading")),
      h("p", {}, t("signin.supabase_intro")),
      this.problem,
      h(
        "form",
        {
          class: "signin-form",
          onsubmit: (event) => {
            event.preventDefault();
            this.signInWithPassword(project);
          },
        },
        field({ id: "signin-email", label: t("signin.email"), input: this.email }),
        field({ id: "signin-password", label: t("signin.password"), input: this.password }),
        this.submit,
      ),
    );
  }

  async signInWithPassword(project) {
    this.submit.disabled = true;
    this.submit.textContent = t("signin.signing_in");
    fill(this.problem);
    let answer;
    try {
      const auth = await supabaseAuth(project);
      answer = await auth.signInWithPassword({
        email: this.email.value.trim(),
        password: this.password.value,
      });
    } catch (error) {
      answer = { error };
    }
    this.submit.disabled = false;
    this.submit.textContent = t("signin.submit");
    const session = answer.data?.session;
    if (answer.error || !session) {
      // Supabase Auth's own words ("Invalid login credentials", "Email not confirmed", the
      // access token hook's refusal of an inactive member).
      fill(
        this.problem,
        h(
          "div",
          { class: "notice notice-error", role: "alert" },
          h("h3", { class: "notice-title" }, t("signin.failed")),
          answer.error?.message ? h("p", { class: "api-message" }, answer.error.message) : null,
        ),
      );
      this.password.value = "";
      this.password.focus();
      return;
    }
    // Who the account is and where it may go are the API's answer (GET /me), not the token's.
    const identity = { role: null, email: session.user?.email ?? this.email.value.trim() };
    startSession(session.access_token, identity, project);
    // From "#/" straight after signing in, the shell asks the API (GET /me) where to go.
    if (location.hash === "#/") window.dispatchEvent(new HashChangeEvent("hashchange"));
    else navigate([]);
  }

  choose(identity) {
    const session = startSession(identity.token, identity);
    const organizations = session.organizations;
    if (organizations.length === 1) navigate(["orgs", organizations[0].id, "integration"]);
    else navigate([]);
  }
}

/** config.json's Supabase project ({url, anonKey}), or null when it names none. */
function supabaseProject(config) {
  const url = config?.supabase_url;
  const anonKey = config?.supabase_anon_key;
  return typeof url === "string" && url && typeof anonKey === "string" && anonKey
    ? { url, anonKey }
    : null;
}

customElements.define("ps-sign-in", SignIn);
