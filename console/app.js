// The admin console: loads its config and strings, then the shell renders the screen the
// address names (docs/console.md).
import { loadStrings } from "./lib/i18n.js";
import "./components/console-shell.js";

async function loadConfig() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  return response.json();
}

async function boot() {
  const requested = new URLSearchParams(location.search).get("lang");
  await loadStrings([requested, ...(navigator.languages ?? [])]);
  const shell = document.createElement("ps-console");
  try {
    shell.config = await loadConfig();
  } catch (error) {
    shell.configError = error;
  }
  document.body.replaceChildren(shell);
}

boot();
