// The health columns of `mqota device list --wide`, from the API's `health` of a device.

export interface DeviceHealthView {
  rssi?: number; freeHeap?: number; minFreeHeap?: number; uptimeS?: number; resetReason?: string;
  partitionSize?: number; elfSha256?: string; at: string;
}

export const HEALTH_COLUMNS = ['slot', 'rssi', 'heap', 'minHeap', 'uptime', 'reset', 'elf'];

const kib = (bytes: number | undefined) => (bytes === undefined ? undefined : `${Math.round(bytes / 1024)}K`);

/** 3d4h, 5h12m, 7m30s, 42s. */
export function formatUptime(seconds: number | undefined): string | undefined {
  if (seconds === undefined) return undefined;
  const d = Math.floor(seconds / 86400); const h = Math.floor((seconds % 86400) / 3600); const m = Math.floor((seconds % 3600) / 60); const s = seconds % 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${m}m`;
  return m ? `${m}m${s}s` : `${s}s`;
}

export function healthColumns(h: DeviceHealthView | null): Record<string, string | undefined> {
  if (!h) return {};
  return {
    rssi: h.rssi === undefined ? undefined : `${h.rssi}dBm`, heap: kib(h.freeHeap), minHeap: kib(h.minFreeHeap),
    uptime: formatUptime(h.uptimeS), reset: h.resetReason, elf: h.elfSha256?.slice(0, 12),
  };
}
