// The signed-in administrator, kept in sessionStorage: it ends with the browser tab, and no
// other tab or later visit reads the token.

const KEY = "portal-sync-console.session";

export function currentSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return stored && typeof stored.token === "string" ? stored : null;
  } catch {
    return null;
  }
}

/** identity: {role, email, organizations: [{id, name}]}, as config.json names it. */
export function startSession(token, identity) {
  const session = {
    token,
    role: identity.role ?? null,
    email: identity.email ?? null,
    organizations: identity.organizations ?? [],
  };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export function endSession() {
  sessionStorage.removeItem(KEY);
}

/** An organisation opened by id (a global administrator's), listed from then on. */
export function rememberOrganization(session, id, name = null) {
  if (organizationsOf(session).some((organization) => organization.id === id)) return session;
  session.organizations = [...session.organizations, { id, name }];
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

/**
 * The organisations the administrator works in: those sign-in named, and those the token's
 * `org_roles` claim lists (the access token hook stamps a member's active roles into it). The
 * claim is read for navigation only; the API decides what the token may do.
 */
export function organizationsOf(session) {
  const known = new Map(
    session.organizations.map((organization) => [organization.id, organization]),
  );
  const roles = tokenClaims(session.token)?.org_roles;
  if (roles && typeof roles === "object") {
    for (const id of Object.keys(roles)) {
      if (!known.has(id)) known.set(id, { id, name: null });
    }
  }
  return [...known.values()];
}

export function tokenClaims(token) {
  const payload = String(token).split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (character) => character.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
