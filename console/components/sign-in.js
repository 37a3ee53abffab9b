// Signing in. Under `make run` config.json lists the demo identities and their tokens (the
// local sign-in); a deployed console's config names the Supabase project instead.
import { fill, h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { navigate } from "../lib/router.js";
import { startSession } from "../lib/session.js";

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
    // TODO(issue 15): sign in with supabase-js against the project config.json names
    // (`supabase_url`, `supabase_anon_key`): supabase-js installed from the npm registry by the
    // lockfile and served from the console's own folder (no CDN), `auth.signInWithOtp` or
    // `signInWithPassword`, then the session's access_token as the bearer, refreshed by
    // `onAuthStateChange` (docs/console.md, "Signing in").
    return h(
      "div",
      { class: "notice notice-info", role: "status" },
      h("p", {}, t("signin.supabase_pending")),
    );
  }

  choose(identity) {
    const session = startSession(identity.token, identity);
    const organizations = session.organizations;
    if (organizations.length === 1) navigate(["orgs", organizations[0].id, "integration"]);
    else navigate([]);
  }
}

customElements.define("ps-sign-in", SignIn);
