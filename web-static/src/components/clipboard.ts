// Copying to the clipboard. navigator.clipboard exists only in secure contexts (HTTPS or
// localhost), and a core is often reached over plain HTTP on a LAN, so fall back to the
// selection-based copy command there.

export async function copyText(text: string): Promise<boolean> {
  if (window.isSecureContext && navigator.clipboard) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission denied or document not focused: try the fallback below.
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  // Inside a modal <dialog> only its subtree is interactive, so select within the open dialog.
  const host = document.querySelector("dialog[open]") ?? document.body;
  host.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}
