/** The harness-shaped results object (v0.4.2 `simple_evaluate` output), plus a truncation count. */

export type Stderr = number | 'N/A';

/** `{"acc,none": 0.43, "acc_stderr,none": 0.01, ..., "alias": "arc_easy"}`. */
export type ResultEntry = Record<string, number | string>;

export interface EvalResults {
  results: Record<string, ResultEntry>;
  /** Group rows only (present when a group such as `mmlu` ran). */
  groups?: Record<string, ResultEntry>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number | string>;
  'n-shot': Record<string, number>;
  config: {
    model: string;
    model_args: string;
    batch_size: number | string | null;
    batch_sizes: number[];
    device: string | null;
    use_cache: null;
    limit: number | null;
    bootstrap_iters: number;
    gen_kwargs: null;
  };
  git_hash: string | null;
  date: number;
  /** Per task: how many requests were cut on the left to fit the model's max length. */
  truncation: Record<string, { requests: number; truncated: number }>;
}

/** The value of `metric` (with filter `none`) in a result entry. */
export function metricValue(entry: ResultEntry | undefined, metric: string): number | undefined {
  const v = entry?.[`${metric},none`];
  return typeof v === 'number' ? v : undefined;
}

function fmt4(v: number | string): string {
  return typeof v === 'number' ? v.toFixed(4) : v;
}

function tableRows(results: EvalResults, column: 'results' | 'groups'): string[][] {
  const rows: string[][] = [];
  for (const [name, entry] of Object.entries(results[column] ?? {})) {
    let label = typeof entry.alias === 'string' ? entry.alias : name;
    let version = String(results.versions[name] ?? 'N/A');
    const nShot = String(results['n-shot'][name] ?? '');
    for (const [key, value] of Object.entries(entry)) {
      if (key === 'alias') continue;
      const [metric, filter = ''] = key.split(',');
      if (metric.endsWith('_stderr')) continue;
      const stderrKey = `${metric}_stderr,${filter}`;
      const hasStderr = stderrKey in entry;
      rows.push([label, version, filter, nShot, metric, fmt4(value), hasStderr ? '±' : '', hasStderr ? fmt4(entry[stderrKey]) : '']);
      label = '';
      version = '';
    }
  }
  return rows;
}

function markdownTable(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, c) => Math.max(3, h.length, ...rows.map((r) => r[c].length)));
  const pad = (s: string, c: number) => (rightAligned[c] ? s.padStart(widths[c]) : s.padEnd(widths[c]));
  const line = (cells: string[]) => `|${cells.map(pad).join('|')}|`;
  const rule = `|${widths.map((w, c) => (rightAligned[c] ? '-'.repeat(w - 1) + ':' : '-'.repeat(w))).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** The harness's `make_table` as Markdown: the results table, then the groups table when groups ran. */
export function formatMarkdown(results: EvalResults): string {
  const right = [false, true, false, true, false, true, false, true];
  const header = (first: string) => [first, 'Version', 'Filter', 'n-shot', 'Metric', 'Value', '', 'Stderr'];
  const parts = [markdownTable(header('Tasks'), tableRows(results, 'results'), right)];
  if (results.groups && Object.keys(results.groups).length > 0) {
    parts.push(markdownTable(header('Groups'), tableRows(results, 'groups'), right));
  }
  const truncated = Object.entries(results.truncation).filter(([, t]) => t.truncated > 0);
  if (truncated.length > 0) {
    parts.push(
      'Left-truncated to the model max length: ' +
        truncated.map(([task, t]) => `${task} ${t.truncated} of ${t.requests} requests`).join(', ') +
        '.',
    );
  }
  return parts.join('\n\n') + '\n';
}
