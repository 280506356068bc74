// VM page: one QEMU/KVM guest's charts (CPU, memory against its maximum, disk I/O) with a range
// picker, and its state, source and vCPUs from the node's newest sample.

import { useMemo, useState } from "react";
import { metricsApi, type MetricsRange } from "../../api/metrics";
import { Link } from "../../app/router";
import { usePoll } from "../../hooks/usePoll";
import { ChartGrid } from "./ChartGrid";
import { formatBytes, formatPct, formatRate } from "./format";
import { RangePicker } from "./RangePicker";
import { named } from "./series";
import { latestPollMs, useLiveHistory } from "./useLiveHistory";
import { useNodeName } from "./useNodeName";

const VM_SERIES = ["cpu.pct", "mem.used", "mem.max", "disk.read_bps", "disk.write_bps"];

export function VmPage({ nodeId, name }: { nodeId: string; name: string }) {
  const [range, setRange] = useState<MetricsRange>("1h");
  const nodeName = useNodeName(nodeId);
  const latest = usePoll((signal) => metricsApi.latest(nodeId, signal), latestPollMs(range), { key: nodeId });
  const sample = latest.data?.sample ?? null;
  const vm = sample?.vms?.find((v) => v.name === name) ?? null;
  const live = useMemo(() => (sample === null || vm === null ? null : { t: sample.t, values: vm.values }), [sample, vm]);
  const history = useLiveHistory((signal) => metricsApi.vm(nodeId, name, range, VM_SERIES, signal), range, `${nodeId}:${name}`, live);
  const view = history.data;
  const t = view?.t ?? [];
  const charts = useMemo(
    () => [
      { title: "CPU", unit: formatPct, lines: named(view, [["cpu.pct", "% of one core"]]) },
      { title: "Memory", unit: formatBytes, lines: named(view, [["mem.used", "used"], ["mem.max", "max"]]) },
      { title: "Disk I/O", unit: formatRate, lines: named(view, [["disk.read_bps", "read"], ["disk.write_bps", "write"]]) },
    ],
    [view],
  );
  const error = history.error ?? latest.error;

  return (
    <div className="page monitoring-page" data-testid="vm-page" data-vm-name={name}>
      <div className="page-header">
        <div>
          <h1>
            <Link to="/overview">Overview</Link> / <Link to={`/nodes/${encodeURIComponent(nodeId)}`}>{nodeName}</Link> /{" "}
            <span data-testid="vm-title">{name}</span>
          </h1>
          {latest.data === null ? (
            <p className="muted">Loading…</p>
          ) : vm === null ? (
            <p className="muted" data-testid="vm-status">
              Not in the node's newest sample (stopped); its history is below.
            </p>
          ) : (
            <p className="container-facts" data-testid="vm-status">
              <span className={`badge badge-${vm.state === "running" ? "online" : "offline"}`}>{vm.state}</span>
              <span className="muted">found through {vm.source}</span>
              <span className="muted">{vm.vcpus > 0 ? `${vm.vcpus} vCPU${vm.vcpus === 1 ? "" : "s"}` : "vCPUs unknown"}</span>
            </p>
          )}
        </div>
        <RangePicker range={range} onChange={setRange} />
      </div>
      <ChartGrid charts={charts} t={t} pending={view === null} error={error} />
    </div>
  );
}
