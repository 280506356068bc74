// Units for chart axes and tables.

export function formatBytes(v: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Math.abs(v);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${(Math.sign(v) * value).toFixed(value >= 100 || i === 0 ? 0 : 1)} ${units[i] ?? "B"}`;
}

export const formatRate = (v: number): string => `${formatBytes(v)}/s`;
export const formatPct = (v: number): string => `${v.toFixed(1)} %`;

/** A figure without a known unit (custom metrics): up to 3 significant decimals, k/M/G above 10,000. */
export function formatNumber(v: number): string {
  const abs = Math.abs(v);
  if (abs >= 1e10) return `${(v / 1e9).toFixed(1)} G`;
  if (abs >= 1e7) return `${(v / 1e6).toFixed(1)} M`;
  if (abs >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(abs >= 1 ? 4 : 3)));
}

/** Unix seconds as local date and time. */
export function formatUnixTime(s: number): string {
  return new Date(s * 1000).toLocaleString();
}
