// Signing in to the Supabase project config.json names, with supabase-js: its browser bundle
// (vendor/supabase.js, the lockfile's @supabase/supabase-js dist/umd/supabase.js) from the
// console's own origin, loaded only by a Supabase sign-in. Its session is kept in
// sessionStorage, as the console's own: it ends with the tab, and no other tab reads it.
import { updateSessionToken } from "./session.js";

const BUNDLE = "vendor/supabase.js";
const STORAGE_KEY = "portal-sync-console.supabase-auth";

let client = null;

function loadBundle() {
  if (globalThis.supabase?.createClient) return Promise.resolve(globalThis.supabase);
  return new Promise((resolve, reject) => {
    // A classic script (the UMD bundle defines the global `supabase`), which the CSP allows
    // as it is the console's own file.
    const script = document.createElement("script");
    script.src = BUNDLE;
    script.onload = () =>
      globalThis.supabase?.createClient
        ? resolve(globalThis.supabase)
        : reject(new Error(`${BUNDLE} did not define supabase`));
    script.onerror = () => reject(new Error(`${BUNDLE} could not be loaded`));
    document.head.append(script);
  });
}

/** The project's auth client (one per page); project: {url, anonKey}. */
export function supabaseAuth(project) {
  client ??= loadBundle()
    .then(({ createClient }) => {
      const supabase = createClient(project.url, project.anonKey, {
        auth: {
          storage: sessionStorage,
          storageKey: STORAGE_KEY,
          persistSession: true,
          autoRefreshToken: true,
          // Password sign-in only: no tokens arrive in the address (its hash is the route).
          detectSessionInUrl: false,
        },
      });
      // Each token supabase-js refreshes replaces the stored one at once, so that what reads
      // the session (the token's org_roles claim) reads the current one. Nothing here awaits
      // another supabase-js call: a callback that did would wait on supabase-js's own lock.
      supabase.auth.onAuthStateChange((event, session) => {
        if (session?.access_token) updateSessionToken(session.access_token);
      });
      return supabase.auth;
    })
    .catch((error) => {
      client = null; // tried again on the next sign-in or request
      throw error;
    });
  return client;
}
