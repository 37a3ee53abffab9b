// What a new organisation starts with: the platform default template of POST /orgs
// (portal_sync.admin.onboarding.PLATFORM_DEFAULT_TEMPLATE), shown before it is created. No
// route serves it yet (docs/console.md, "What the API lacks"), so this is a copy; the browser
// test compares what the onboarding screen shows with what POST /orgs then creates, so the two
// cannot drift apart unnoticed. Once the API serves it, defaultTemplate() fetches it instead.

const PLATFORM_DEFAULT_TEMPLATE = Object.freeze({
  enabled: true,
  signature_mode: "standard-webhooks",
  // null: the default mapping (contact, hlf_membership, hlf_courseenrollment).
  field_mapping: null,
  feature_ownership: Object.freeze({
    membership: "portal",
    courses: "portal",
    events: "app",
    peer_mentoring: "app",
    expenses: "app",
  }),
  deep_links: Object.freeze({
    membership: "https://minside.hlf.no/medlemskap",
    courses: "https://minside.hlf.no/kurs",
  }),
});

/** The template a new organisation's integration starts from. */
export async function defaultTemplate() {
  return PLATFORM_DEFAULT_TEMPLATE;
}
