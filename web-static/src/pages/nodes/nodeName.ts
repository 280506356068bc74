// The node-name grammar, the same as the core's: 1–63 characters of letters, digits, `-`, `_`
// and `.`, starting with a letter or digit. The core stays the authority; this only saves a
// round trip and explains the rule before the user submits.

export const NODE_NAME_MAX = 63;

/** Returns why `name` is not a valid node name, or null when it is. */
export function nodeNameProblem(name: string): string | null {
  if (name.length === 0) return "Enter a name for the node.";
  if (name.length > NODE_NAME_MAX) return `Use at most ${NODE_NAME_MAX} characters (this one has ${name.length}).`;
  if (!/^[A-Za-z0-9]/.test(name)) return "Start the name with a letter or a digit.";
  const bad = name.match(/[^A-Za-z0-9._-]/);
  if (bad) return `“${bad[0] === " " ? "space" : bad[0]}” is not allowed: use letters, digits, “-”, “_” and “.”.`;
  return null;
}
