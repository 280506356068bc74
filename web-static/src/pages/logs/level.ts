// A log line's level, read from its text: an upper-case word (ERROR, WARN, …) or a
// `level=error` / `"level":"error"` field near the start.

export type Level = "error" | "warn" | "info" | "debug";

const WORD = /\b(FATAL|PANIC|CRIT(?:ICAL)?|ERROR|ERR|WARN(?:ING)?|INFO|NOTICE|DEBUG|TRACE)\b/;
const FIELD = /\blevel"?\s*[=:]\s*"?(fatal|panic|crit(?:ical)?|error|err|warn(?:ing)?|info|notice|debug|trace)\b/i;
// NGINX's error log: `2024/01/01 00:00:00 [error] 12#12: …`.
const BRACKET = /\[(emerg|alert|crit|error|warn|notice|info|debug)\]/i;

export function detectLevel(text: string): Level | null {
  const head = text.length > 300 ? text.slice(0, 300) : text;
  const found = head.match(WORD)?.[1] ?? head.match(FIELD)?.[1] ?? head.match(BRACKET)?.[1];
  if (found === undefined) return null;
  const word = found.toLowerCase();
  if (/^(fatal|panic|crit|critical|error|err|emerg|alert)$/.test(word)) return "error";
  if (word.startsWith("warn")) return "warn";
  if (word === "info" || word === "notice") return "info";
  return "debug";
}
