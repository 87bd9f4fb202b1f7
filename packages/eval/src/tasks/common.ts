import type { MetricName } from './task.js';

/** The harness's `metric_list` entries for the results' `configs` block. */
export function metricList(metrics: readonly MetricName[]): Record<string, unknown>[] {
  return metrics.map((metric) =>
    metric === 'perplexity'
      ? { metric, aggregation: 'perplexity', higher_is_better: false }
      : { metric, aggregation: 'mean', higher_is_better: true },
  );
}

export function str(doc: Record<string, unknown>, field: string): string {
  return doc[field] as string;
}
