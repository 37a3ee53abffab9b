// The signed-in administrator, kept in sessionStorage: it ends with the browser tab, and no
// other tab or later visit reads the token. A Supabase sign-in's session is supabase-js's
// (lib/supabase-auth.js, loaded only for one): it refreshes the token, which is copied here.

const KEY = "portal-sync-console.session";

export function currentSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return stored && typeof stored.token === "string" ? stored : null;
  } catch {
    return null;
  }
}

/**
 * identity: {role, email, organizations: [{id, name}]}, as config.json names it; supabase:
 * the project ({url, anonKey}) of a Supabase sign-in, whose client refreshes the token.
 */
export function startSession(token, identity, supabase = null) {
  const session = {
    token,
    role: identity.role ?? null,
    email: identity.email ?? null,
    organizations: identity.organizations ?? [],
  };
  if (supabase) session.supabase = { url: supabase.url, anonKey: supabase.anonKey };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

/** Ends the session; a Supabase one is signed out of the project too (its refresh token). */
export function endSession() {
  const session = currentSession();
  sessionStorage.removeItem(KEY);
  if (session?.supabase) {
    import("./supabase-auth.js")
      .then(({ supabaseAuth }) => supabaseAuth(session.supabase))
      .then((auth) => auth.signOut())
      .catch(() => {});
  }
}

/** A refreshed access token (supabase-js's onAuthStateChange) replaces the stored one. */
export function updateSessionToken(token) {
  const session = currentSession();
  if (!session || session.token === token) return;
  session.token = token;
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

/**
 * The bearer token to send now, or null when the session has ended. A Supabase session's
 * comes from supabase-js's getSession(), which refreshes a token about to expire first (as
 * supabase-js's own clients ask it before each request). A refresh that could not reach the
 * project throws (status 0): the session is not ended for a network fault. Undefined when no
 * session is stored.
 */
export async function bearerToken() {
  const session = currentSession();
  if (!session) return undefined;
  if (!session.supabase) return session.token;
  const { supabaseAuth } = await import("./supabase-auth.js");
  const auth = await supabaseAuth(session.supabase);
  const { data, error } = await auth.getSession();
  const token = data?.session?.access_token ?? null;
  if (!token && error && (error.status === 0 || error.status >= 500)) {
    throw Object.assign(new Error(error.message), { unreachable: true });
  }
  if (token) updateSessionToken(token);
  return token;
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
