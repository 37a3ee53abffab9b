// Hash routes (#/orgs/<id>/<screen>?filters): a static host serves one index.html, and a
// screen's address with its filters can be bookmarked and shared.

export function currentRoute() {
  const raw = location.hash.replace(/^#/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path
    .split("/")
    .filter(Boolean)
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    });
  return { parts, params: new URLSearchParams(query) };
}

/** "#/orgs/<id>/sync?status=error" from ["orgs", id, "sync"] and {status: "error"}. */
export function routeHref(parts, params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const path = parts.map((part) => encodeURIComponent(part)).join("/");
  const queryString = search.toString();
  return `#/${path}${queryString ? `?${queryString}` : ""}`;
}

export function navigate(parts, params) {
  location.hash = routeHref(parts, params);
}

/** Only hashes that are routes: "#main-content" (the skip link's) is not one. */
export function isRoute(hash) {
  return hash === "" || hash === "#" || hash.startsWith("#/");
}
