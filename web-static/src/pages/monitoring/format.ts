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
