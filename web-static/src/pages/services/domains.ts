// Domain names as the core accepts them (core/src/validate.rs `domain`): at least two labels
// of letters, digits and `-` (or `*.` and one or more labels), at most 253 characters;
// international names become punycode (`bücher.example` → `xn--bcher-kva.example`). The form
// sends what the user typed: the core converts and stores the ASCII form, and its answer wins
// over anything checked here; the conversion shown in the form is the browser's own preview.

export const DOMAIN_MAX = 253;

export interface DomainCheck {
  /** The lower-case ASCII form the core will store, when the name is valid. */
  ascii: string | null;
  problem: string | null;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkDomain(raw: string): DomainCheck {
  const name = raw.trim();
  const invalid = (problem: string): DomainCheck => ({ ascii: null, problem });
  if (name === "") return invalid("Enter a domain name.");
  if (name.length > DOMAIN_MAX) return invalid(`A domain name has at most ${DOMAIN_MAX} characters.`);
  if (/\s/.test(name)) return invalid("A domain name has no spaces.");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(name)) return invalid("Leave out the scheme (http://): enter the name only.");
  if (/[/:?#@\\]/.test(name)) return invalid("Enter the name only, without a port or a path.");

  const wildcard = name.startsWith("*.");
  const rest = wildcard ? name.slice(2) : name;
  if (rest.includes("*")) return invalid("A wildcard may only be the whole first label, as in *.example.com.");

  let ascii: string;
  if (/^[\x20-\x7e]*$/.test(rest)) {
    ascii = rest.toLowerCase();
  } else {
    // International name: the URL parser applies the IDNA mapping the core applies.
    try {
      ascii = new URL(`http://${rest}/`).hostname;
    } catch {
      return invalid("This is not a valid international domain name.");
    }
  }
  const labels = ascii.split(".");
  if (labels.length < 2 && !wildcard) return invalid("Use a full name with at least two labels, like example.com.");
  if (labels.some((label) => label === "")) return invalid("A domain name has no empty labels (“..”, or a dot at either end).");
  const bad = labels.find((label) => !LABEL.test(label));
  if (bad !== undefined) {
    return invalid(
      bad.length > 63
        ? "Each label (part between dots) has at most 63 characters."
        : `“${bad}”: labels are letters, digits and “-”, not starting or ending with “-”.`,
    );
  }
  const full = (wildcard ? "*." : "") + ascii;
  if (full.length > DOMAIN_MAX) return invalid(`A domain name has at most ${DOMAIN_MAX} characters (in punycode).`);
  return { ascii: full, problem: null };
}

/** The non-empty lines of the domains box, trimmed, in order: index i is the core's `domains[i]`. */
export function domainLines(text: string): string[] {
  return text
    .split(/[\n,]/)
    .map((line) => line.trim())
    .filter((line) => line !== "");
}
