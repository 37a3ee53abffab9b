// The console's words: strings/en.js holds every user-visible English string; a translation is
// one more file beside it with the same keys (strings/nb.js for Norwegian Bokmål), picked by
// `?lang=nb` or the browser's languages. A key a translation lacks is shown in English.
import english from "../strings/en.js";

let strings = english;

// A language tag's primary subtag, as file names use it ("nb-NO" -> "nb").
const PRIMARY = /^([a-z]{2,3})(?:-[A-Za-z0-9]{1,8})*$/;

export async function loadStrings(preferred) {
  for (const tag of preferred) {
    const match = PRIMARY.exec(String(tag ?? "").toLowerCase());
    if (!match) continue;
    const language = match[1];
    if (language === "en") break;
    try {
      const module = await import(`../strings/${language}.js`);
      strings = { ...english, ...module.default };
      break;
    } catch {
      // No translation into this language: try the next one the reader prefers.
    }
  }
  document.documentElement.lang = t("language");
  return strings;
}

export function t(key, params = {}) {
  let value = strings[key] ?? english[key];
  if (value === undefined) {
    console.warn(`console string missing: ${key}`);
    return key;
  }
  if (typeof value === "object") {
    const rule = new Intl.PluralRules(locale()).select(Number(params.count ?? 0));
    value = value[rule] ?? value.other;
  }
  return value.replace(/\{(\w+)\}/g, (whole, name) =>
    name in params ? formatValue(params[name]) : whole,
  );
}

/** Whether a string exists (a feature without a name of its own is shown by its key). */
export function has(key) {
  return key in strings || key in english;
}

export function locale() {
  return strings.locale ?? english.locale;
}

function formatValue(value) {
  return typeof value === "number" ? formatNumber(value) : String(value);
}

export function formatNumber(value) {
  return new Intl.NumberFormat(locale()).format(value);
}

export function formatDateTime(iso) {
  if (!iso) return t("common.never");
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "medium" }).format(
    moment,
  );
}
