import type { Doc, MetricName, TaskDefinition } from './task.js';

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

/** What arc, hellaswag, openbookqa and piqa share (their harness YAMLs too): multiple choice, acc and acc_norm. */
export const MULTIPLE_CHOICE_ACC_NORM = {
  version: 1.0,
  fewshotSplit: 'train',
  sampler: 'default',
  outputType: 'multiple_choice',
  metrics: ['acc', 'acc_norm'],
  description: '',
} as const satisfies Partial<TaskDefinition>;

interface LabeledChoices {
  text: string[];
  label: string[];
}

/** Docs with `choices: {text, label}` and an answer key naming one label (arc, openbookqa). */
export function labeledChoices(answerKey: (doc: Doc) => string): Pick<TaskDefinition, 'checkRow' | 'docToTarget' | 'docToChoice'> {
  const labels = (doc: Doc) => (doc.choices as LabeledChoices).label;
  return {
    checkRow: (doc) =>
      labels(doc).includes(answerKey(doc))
        ? undefined
        : `answerKey ${JSON.stringify(doc.answerKey)} is not one of choices.label ${JSON.stringify(labels(doc))}.`,
    docToTarget: (doc) => labels(doc).indexOf(answerKey(doc)),
    docToChoice: (doc) => (doc.choices as LabeledChoices).text,
  };
}
