import { MULTIPLE_CHOICE_ACC_NORM, metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

export const piqa: TaskDefinition = {
  ...MULTIPLE_CHOICE_ACC_NORM,
  name: 'piqa',
  datasetPath: 'piqa',
  evalSplit: 'validation',
  schema: [
    { name: 'goal', type: 'string' },
    { name: 'sol1', type: 'string' },
    { name: 'sol2', type: 'string' },
    { name: 'label', type: 'integer', note: '0 or 1; the unlabeled test split (-1) cannot be evaluated' },
  ],
  checkRow: (doc) => (doc.label === 0 || doc.label === 1 ? undefined : `label must be 0 or 1, got ${JSON.stringify(doc.label)}.`),
  docToText: (doc) => 'Question: ' + str(doc, 'goal') + '\nAnswer:',
  docToTarget: (doc) => doc.label as number,
  docToChoice: (doc) => [str(doc, 'sol1'), str(doc, 'sol2')],
  config: {
    training_split: 'train',
    validation_split: 'validation',
    doc_to_text: 'Question: {{goal}}\nAnswer:',
    doc_to_target: 'label',
    doc_to_choice: '{{[sol1, sol2]}}',
    metric_list: metricList(['acc', 'acc_norm']),
    output_type: 'multiple_choice',
    should_decontaminate: true,
    doc_to_decontamination_query: 'goal',
  },
};
