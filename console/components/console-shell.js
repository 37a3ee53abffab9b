// The console's frame: skip link, header with who is signed in, the organisation's screens as
// navigation, and the screen the route names in <main>. Which organisations the administrator
// works in, and their names, are the API's (GET /me, and GET /orgs on the Organisations page).
import { Screen } from "./common.js";
import { Api, ApiError } from "../lib/api.js";
import { fill, h } from "../lib/dom.js";
import { t } from "../lib/i18n.js";
import { currentRoute, isRoute, navigate, routeHref } from "../lib/router.js";
import { currentSession, endSession } from "../lib/session.js";
import "./sign-in.js";
import "./organizations.js";
import "./integration-settings.js";
import "./webhook-secret.js";
import "./sync-log.js";
import "./members.js";
import "./onboarding.js";
import "./webhook-health.js";
import "./audit-log.js";

// The screens of an organisation, in the navigation's order.
export const SCREENS = [
  { path: "integration", element: "ps-integration-settings", title: "integration.title" },
  { path: "secret", element: "ps-webhook-secret", title: "secret.title" },
  { path: "sync", element: "ps-sync-log", title: "sync.title" },
  { path: "members", element: "ps-members", title: "members.title" },
  { path: "health", element: "ps-webhook-health", title: "health.title" },
  { path: "audit", element: "ps-audit-log", title: "audit.title" },
];

class ConsoleShell extends HTMLElement {
  connectedCallback() {
    this.announcer = h("div", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    this.header = h("header", { class: "site-header" });
    this.navigation = h("nav", { class: "site-nav", "aria-label": t("nav.label") });
    this.main = h("main", { id: "main-content", tabindex: "-1" });
    const skip = h(
      "a",
      {
        class: "skip-link",
        href: "#main-content",
        onclick: (event) => {
          // The hash is the route: focus <main> instead of following the link.
          event.preventDefault();
          this.main.focus();
        },
      },
      t("nav.skip"),
    );
    this.replaceChildren(skip, this.header, this.navigation, this.main, this.announcer);
    this.firstRender = true;
    window.addEventListener("hashchange", () => {
      if (isRoute(location.hash)) this.render();
    });
    this.render();
  }

  announce(message) {
    // Emptied first so that the same message said twice is read twice.
    this.announcer.textContent = "";
    setTimeout(() => {
      this.announcer.textContent = message;
    }, 50);
  }

  signOut(notice) {
    endSession();
    this.caller = null;
    this.signedOutNotice = notice ?? null;
    navigate(["sign-in"]);
  }

  /**
   * GET /me, asked once per sign-in: who the administrator is and the organisations they
   * administer or coordinate. A failure is not kept, so the next screen asks again.
   */
  whoAmI(api, session) {
    if (this.caller?.token !== session.token) {
      const answer = api.admin("GET", "/me");
      this.caller = { token: session.token, answer };
      answer.catch(() => {
        if (this.caller?.answer === answer) this.caller = null;
      });
    }
    return this.caller.answer;
  }

  async render() {
    const { parts, params } = currentRoute();
    const session = currentSession();
    // Only the latest render shows anything: an earlier one may still wait for GET /me.
    const current = (this.renders = (this.renders ?? 0) + 1);
    const arrivedFromSignIn = this.signingIn;
    this.signingIn = false;
    if (this.configError) {
      this.show(null, t("app.title"), this.configProblem());
      return;
    }
    if (!session || parts[0] === "sign-in") {
      if (session && parts[0] === "sign-in") endSession();
      this.caller = null;
      this.signingIn = true;
      const signIn = document.createElement("ps-sign-in");
      signIn.config = this.config;
      signIn.notice = this.signedOutNotice;
      this.signedOutNotice = null;
      this.show(null, t("signin.title"), signIn);
      return;
    }
    const api = new Api({
      baseUrl: this.config.api_base_url ?? "",
      token: session.token,
      onSignedOut: () => this.signOut(t("signin.session_ended")),
    });
    const who = () => this.whoAmI(api, session);
    if (parts[0] === "orgs" && parts[1]) {
      const orgId = parts[1];
      const screen = SCREENS.find((candidate) => candidate.path === parts[2]);
      if (!screen) {
        navigate(["orgs", orgId, SCREENS[0].path]);
        return;
      }
      const caller = await this.callerOrNull(who);
      if (current !== this.renders) return;
      const organization = organizationOf(caller, session, orgId);
      const element = document.createElement(screen.element);
      element.context = {
        api,
        orgId,
        organizationName: organization?.name ?? orgId,
        params,
        announce: (message) => this.announce(message),
      };
      this.show({ session, orgId, organization, current: screen.path }, t(screen.title), element);
      return;
    }
    if (parts[0] === "new-organization") {
      // Onboarding is no organisation's screen (POST /orgs, global administrators).
      const onboarding = document.createElement("ps-onboarding");
      onboarding.context = { api, params, announce: (message) => this.announce(message) };
      this.show({ session }, t("onboarding.title"), onboarding);
      return;
    }
    if (arrivedFromSignIn) {
      // Straight from signing in, one organisation is the only place to go: its first screen
      // the role may see (a coordinator's is the members view).
      const caller = await this.callerOrNull(who);
      if (current !== this.renders) return;
      const [only, ...others] = caller?.organizations ?? [];
      if (only && !others.length && !caller.is_global_admin) {
        navigate(["orgs", only.id, only.role === "coordinator" ? "members" : SCREENS[0].path]);
        return;
      }
    }
    const home = document.createElement("ps-organizations");
    home.context = { api, session, who };
    this.show({ session }, t("orgs.title"), home);
  }

  /** GET /me's answer, or null when it failed (the screen then shows its own answer). */
  async callerOrNull(who) {
    try {
      return await who();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return null;
    }
  }

  show(navigation, title, element) {
    this.renderHeader(navigation?.session ?? null);
    this.renderNavigation(navigation);
    const organizationName = navigation?.organization?.name ?? navigation?.orgId;
    document.title = [title, organizationName, t("app.title")].filter(Boolean).join(" – ");
    if (!this.firstRender) {
      // After navigation, focus goes to the new screen's heading once it has rendered, so a
      // screen reader reads where the reader is (a first load starts at the top, as any page).
      const focusHeading = () => (this.main.querySelector("h1") ?? this.main).focus();
      if (element instanceof Screen) {
        element.addEventListener("screen-ready", focusHeading, { once: true });
      } else {
        requestAnimationFrame(focusHeading);
      }
    }
    this.firstRender = false;
    this.main.replaceChildren(element);
  }

  renderHeader(session) {
    const roleName = session?.role ? t(`role.${session.role}`) : null;
    fill(
      this.header,
      h(
        "div",
        { class: "site-header-inner" },
        h("a", { class: "site-title", href: session ? "#/" : "#/sign-in" }, t("app.title")),
        session
          ? h(
              "div",
              { class: "signed-in" },
              h(
                "span",
                {},
                t("header.signed_in_as", { who: session.email ?? t("header.someone") }),
                roleName ? h("span", { class: "role" }, ` (${roleName})`) : null,
              ),
              h(
                "button",
                { type: "button", class: "button button-secondary", onclick: () => this.signOut() },
                t("header.sign_out"),
              ),
            )
          : null,
      ),
    );
  }

  renderNavigation(navigation) {
    if (!navigation?.orgId) {
      this.navigation.hidden = true;
      this.navigation.replaceChildren();
      return;
    }
    this.navigation.hidden = false;
    const { orgId, organization, current } = navigation;
    fill(
      this.navigation,
      h(
        "div",
        { class: "site-nav-inner" },
        h(
          "p",
          { class: "organization" },
          h("span", { class: "organization-label" }, t("nav.organization")),
          " ",
          h("strong", {}, organization?.name ?? orgId),
          " ",
          h("a", { href: "#/", class: "change-organization" }, t("nav.change_organization")),
        ),
        h(
          "ul",
          { class: "screen-links" },
          SCREENS.map((screen) =>
            h(
              "li",
              {},
              h(
                "a",
                {
                  href: routeHref(["orgs", orgId, screen.path]),
                  "aria-current": screen.path === current ? "page" : null,
                },
                t(screen.title),
              ),
            ),
          ),
        ),
      ),
    );
  }

  configProblem() {
    return h(
      "div",
      {},
      h("h1", { tabindex: "-1" }, t("app.title")),
      h(
        "div",
        { class: "notice notice-error", role: "alert" },
        h("h2", { class: "notice-title" }, t("config.missing")),
        h("p", {}, t("config.missing_hint")),
      ),
    );
  }
}

/**
 * The organisation as the API named it: one the administrator administers or coordinates (GET
 * /me), else one listed on the Organisations page or onboarded in this session; null: only its
 * id is known.
 */
function organizationOf(caller, session, orgId) {
  return (
    caller?.organizations?.find((candidate) => candidate.id === orgId) ??
    session.organizations?.find((candidate) => candidate.id === orgId) ??
    null
  );
}

customElements.define("ps-console", ConsoleShell);
