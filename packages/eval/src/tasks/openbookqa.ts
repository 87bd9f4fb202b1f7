import { pyLstrip } from '../python-str.js';
import { MULTIPLE_CHOICE_ACC_NORM, labeledChoices, metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

const answerKey = (doc: Record<string, unknown>) => pyLstrip(str(doc, 'answerKey'));

export const openbookqa: TaskDefinition = {
  ...MULTIPLE_CHOICE_ACC_NORM,
  name: 'openbookqa',
  datasetPath: 'openbookqa',
  datasetName: 'main',
  evalSplit: 'test',
  schema: [
    { name: 'id', type: 'string' },
    { name: 'question_stem', type: 'string' },
    { name: 'choices', type: 'labeled-choices' },
    { name: 'answerKey', type: 'string' },
  ],
  ...labeledChoices(answerKey),
  // The raw question stem: no "Question: ... Answer:" wrapper.
  docToText: (doc) => str(doc, 'question_stem'),
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
