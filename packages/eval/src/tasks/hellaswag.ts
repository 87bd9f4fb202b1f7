import { pyCapitalize, pyStrip } from '../python-str.js';
import { MULTIPLE_CHOICE_ACC_NORM, metricList, str } from './common.js';
import type { Doc, TaskDefinition } from './task.js';

/**
 * The harness's hellaswag `preprocess`: strip, " [title]" → ". ", drop bracket groups (non-greedy, not crossing
 * newlines), then one left-to-right pass turning double spaces into single ones.
 */
export function hellaswagPreprocess(text: string): string {
  return pyStrip(text).split(' [title]').join('. ').replace(/\[[^\n]*?\]/g, '').split('  ').join(' ');
}

function processDoc(doc: Doc): Doc {
  const ctx = str(doc, 'ctx_a') + ' ' + pyCapitalize(str(doc, 'ctx_b'));
  return {
    ...doc,
    query: hellaswagPreprocess(str(doc, 'activity_label') + ': ' + ctx),
    choices: (doc.endings as string[]).map(hellaswagPreprocess),
    gold: Number.parseInt(String(doc.label).trim(), 10),
  };
}

export const hellaswag: TaskDefinition = {
  ...MULTIPLE_CHOICE_ACC_NORM,
  name: 'hellaswag',
  datasetPath: 'hellaswag',
  evalSplit: 'validation',
  schema: [
    { name: 'activity_label', type: 'string' },
    { name: 'ctx_a', type: 'string' },
    { name: 'ctx_b', type: 'string' },
    { name: 'endings', type: 'string[]' },
    { name: 'label', type: 'digit-string', note: '"0".."3"; the unlabeled test split cannot be evaluated' },
  ],
  checkRow(doc) {
    const label = Number.parseInt(String(doc.label).trim(), 10);
    const n = (doc.endings as string[]).length;
    if (label < 0 || label >= n) return `label ${JSON.stringify(doc.label)} is not an index into the ${n} endings.`;
    return undefined;
  },
  processDoc,
  docToText: (doc) => str(doc, 'query'),
  docToTarget: (doc) => doc.gold as number,
  docToChoice: (doc) => doc.choices as string[],
  config: {
    group: ['multiple_choice'],
    training_split: 'train',
    validation_split: 'validation',
    process_docs: '<function process_docs>',
    doc_to_text: '{{query}}',
    doc_to_target: '{{label}}',
    doc_to_choice: 'choices',
    metric_list: metricList(['acc', 'acc_norm']),
    output_type: 'multiple_choice',
    should_decontaminate: false,
  },
};
