import { pyLstrip } from '../python-str.js';
import { metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

interface LabeledChoices {
  text: string[];
  label: string[];
}

const answerKey = (doc: Record<string, unknown>) => pyLstrip(str(doc, 'answerKey'));

export const openbookqa: TaskDefinition = {
  name: 'openbookqa',
  version: 1.0,
  datasetPath: 'openbookqa',
  datasetName: 'main',
  evalSplit: 'test',
  fewshotSplit: 'train',
  sampler: 'default',
  outputType: 'multiple_choice',
  metrics: ['acc', 'acc_norm'],
  description: '',
  schema: [
    { name: 'id', type: 'string' },
    { name: 'question_stem', type: 'string' },
    { name: 'choices', type: 'labeled-choices' },
    { name: 'answerKey', type: 'string' },
  ],
  checkRow(doc) {
    const { label } = doc.choices as LabeledChoices;
    return label.includes(answerKey(doc))
      ? undefined
      : `answerKey ${JSON.stringify(doc.answerKey)} is not one of choices.label ${JSON.stringify(label)}.`;
  },
  // The raw question stem: no "Question: ... Answer:" wrapper.
  docToText: (doc) => str(doc, 'question_stem'),
  docToTarget: (doc) => (doc.choices as LabeledChoices).label.indexOf(answerKey(doc)),
  docToChoice: (doc) => (doc.choices as LabeledChoices).text,
  config: {
    training_split: 'train',
    validation_split: 'validation',
    test_split: 'test',
    doc_to_text: 'question_stem',
    doc_to_target: '{{choices.label.index(answerKey.lstrip())}}',
    doc_to_choice: '{{choices.text}}',
    metric_list: metricList(['acc', 'acc_norm']),
    output_type: 'multiple_choice',
    should_decontaminate: true,
    doc_to_decontamination_query: 'question_stem',
  },
};
