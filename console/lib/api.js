// The admin API and website-sync API over fetch, with the signed-in administrator's bearer
// token. Errors are the API's `{"code", "message", "errors"?}`, raised as ApiError.
import { bearerToken } from "./session.js";

export class ApiError extends Error {
  /** status 0: the API could not be reached at all. */
  constructor(status, body) {
    super(body && typeof body.message === "string" ? body.message : `HTTP ${status}`);
    this.status = status;
    this.apiMessage = body && typeof body.message === "string" ? body.message : null;
    this.errors = body && Array.isArray(body.errors) ? body.errors : [];
  }

  /** The 422's field errors by path ("deep_links.courses" -> its message). */
  fieldErrors() {
    const byPath = new Map();
    for (const error of this.errors) {
      const path = String(error.path ?? "body");
      byPath.set(path, byPath.has(path) ? `${byPath.get(path)} ${error.message}` : error.message);
    }
    return byPath;
  }
}

export class Api {
  /**
   * baseUrl: where the functions are served ("" for the console's own origin, as under
   * `make run`); token: the session's at sign-in (each request sends the session's current
   * one: a Supabase session's is refreshed); onSignedOut: called on a 401, when the token
   * expired or is refused, or the Supabase session has ended.
   */
  constructor({ baseUrl, token, onSignedOut }) {
    this.baseUrl = (baseUrl ?? "").replace(/\/+$/, "");
    this.token = token;
    this.onSignedOut = onSignedOut;
  }

  admin(method, path, options) {
    return this.request(method, `/functions/v1/admin-api${path}`, options);
  }

  websiteSync(method, path, options) {
    return this.request(method, `/functions/v1/website-sync${path}`, options);
  }

  async request(method, path, { query, body } = {}) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
    }
    const queryString = search.toString();
    const url = `${this.baseUrl}${path}${queryString ? `?${queryString}` : ""}`;
    const headers = { authorization: `Bearer ${await this.bearer()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, null);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401) this.onSignedOut?.(error);
      throw error;
    }
    return data;
  }

  async bearer() {
    let token;
    try {
      token = await bearerToken();
    } catch {
      throw new ApiError(0, null); // the Supabase project could not be reached to refresh
    }
    if (token === undefined) return this.token;
    if (token === null) {
      const error = new ApiError(401, null);
      this.onSignedOut?.(error);
      throw error;
    }
    this.token = token;
    return token;
  }
}

/** The path segment for an id the user may have typed. */
export function segment(value) {
  return encodeURIComponent(String(value));
}
