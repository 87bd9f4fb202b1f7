import { pyStrip } from '../python-str.js';
import { metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

const ANSWER_TO_INDEX: Record<string, number> = { '1': 0, '2': 1 };

/**
 * Partial scoring: the two choices are the sentence up to the blank with each option filled in (contexts), and the
 * rest of the sentence after the blank, stripped, is the shared continuation.
 */
export const winogrande: TaskDefinition = {
  name: 'winogrande',
  version: 1.0,
  datasetPath: 'winogrande',
  datasetName: 'winogrande_xl',
  evalSplit: 'validation',
  fewshotSplit: 'train',
  sampler: 'default',
  outputType: 'multiple_choice',
  metrics: ['acc'],
  description: '',
  schema: [
    { name: 'sentence', type: 'string', note: 'with one "_" blank' },
    { name: 'option1', type: 'string' },
    { name: 'option2', type: 'string' },
    { name: 'answer', type: 'string', note: '"1" or "2"; the unlabeled test split cannot be evaluated' },
  ],
  checkRow(doc) {
    if (!str(doc, 'sentence').includes('_')) return 'sentence has no "_" blank to fill.';
    if (!(str(doc, 'answer') in ANSWER_TO_INDEX)) return `answer must be "1" or "2", got ${JSON.stringify(doc.answer)}.`;
    return undefined;
  },
  docToText: (doc) => ANSWER_TO_INDEX[str(doc, 'answer')],
  docToTarget(doc) {
    const sentence = str(doc, 'sentence');
    return pyStrip(sentence.slice(sentence.indexOf('_') + 1));
  },
  docToChoice(doc) {
    const sentence = str(doc, 'sentence');
    const before = sentence.slice(0, sentence.indexOf('_'));
    return [before + str(doc, 'option1'), before + str(doc, 'option2')];
  },
  config: {
    training_split: 'train',
    validation_split: 'validation',
    doc_to_text: '<function doc_to_text>',
    doc_to_target: '<function doc_to_target>',
    doc_to_choice: '<function doc_to_choice>',
    metric_list: metricList(['acc']),
    output_type: 'multiple_choice',
    should_decontaminate: true,
    doc_to_decontamination_query: 'sentence',
  },
};
