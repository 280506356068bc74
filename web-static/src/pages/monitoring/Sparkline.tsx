// A sparkline as plain SVG: one polyline per run of values (a null is a gap), no axes. An
// overview row holds two of them, so a uPlot instance (and a canvas) per cell would cost more than
// it shows.

const WIDTH = 96;
const HEIGHT = 28;

/** Values are percentages (0–100); the scale is fixed so rows compare at a glance. */
export function Sparkline({ values, label, testId }: { values: readonly (number | null)[]; label: string; testId: string }) {
  const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
  const runs: string[] = [];
  let run: string[] = [];
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (run.length > 0) runs.push(run.join(" "));
      run = [];
      return;
    }
    const y = HEIGHT - 1 - (Math.min(Math.max(v, 0), 100) / 100) * (HEIGHT - 2);
    run.push(`${(i * step).toFixed(1)},${y.toFixed(1)}`);
  });
  if (run.length > 0) runs.push(run.join(" "));
  const points = values.filter((v) => v !== null).length;
  return (
    <svg
      className="sparkline"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      width={WIDTH}
      height={HEIGHT}
      role="img"
      aria-label={`${label}, last 30 minutes`}
      data-testid={testId}
      data-points={points}
    >
      <line className="sparkline-base" x1="0" y1={HEIGHT - 0.5} x2={WIDTH} y2={HEIGHT - 0.5} />
      {runs.map((pts, i) =>
        pts.includes(" ") ? (
          <polyline key={i} points={pts} />
        ) : (
          // A lone point between gaps: a dot, or it would not show at all.
          <circle key={i} cx={pts.split(",")[0]} cy={pts.split(",")[1]} r="1.5" />
        ),
      )}
    </svg>
  );
}
