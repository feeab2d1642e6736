// The "shown only once" box of the API key and webhook pages: a read-only field and a Copy
// button, with the value left selected when the clipboard is out of reach.
import { $ } from "./dom.js";
import { failed, say } from "./status.js";

export function showSecret(value) {
  $("secret").hidden = false;
  $("secret-value").value = value;
  $("secret-value").focus();
  $("secret-value").select();
}

export function hideSecret() {
  $("secret").hidden = true;
  $("secret-value").value = "";
}

async function copy() {
  try {
    await navigator.clipboard.writeText($("secret-value").value);
  } catch {
    $("secret-value").select();
    say("Press Ctrl+C (⌘C) to copy the selected value.");
    return;
  }
  say("Copied.", "success");
}

$("copy").addEventListener("click", () => copy().catch(failed));
