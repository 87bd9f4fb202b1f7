import { metricList, str } from './common.js';
import type { Doc, TaskDefinition } from './task.js';

interface LabeledChoices {
  text: string[];
  label: string[];
}

function checkAnswerKey(doc: Doc): string | undefined {
  const { label } = doc.choices as LabeledChoices;
  const key = str(doc, 'answerKey');
  return label.includes(key) ? undefined : `answerKey ${JSON.stringify(key)} is not one of choices.label ${JSON.stringify(label)}.`;
}

function arcTask(name: 'arc_easy' | 'arc_challenge', datasetName: string): TaskDefinition {
  return {
    name,
    version: 1.0,
    datasetPath: 'allenai/ai2_arc',
    datasetName,
    evalSplit: 'test',
    fewshotSplit: 'train',
    sampler: 'default',
    outputType: 'multiple_choice',
    metrics: ['acc', 'acc_norm'],
    description: '',
    schema: [
      { name: 'id', type: 'string' },
      { name: 'question', type: 'string' },
      { name: 'choices', type: 'labeled-choices' },
      { name: 'answerKey', type: 'string' },
    ],
    checkRow: checkAnswerKey,
    docToText: (doc) => 'Question: ' + str(doc, 'question') + '\nAnswer:',
    docToTarget: (doc) => (doc.choices as LabeledChoices).label.indexOf(str(doc, 'answerKey')),
    docToChoice: (doc) => (doc.choices as LabeledChoices).text,
    config: {
      group: ['ai2_arc'],
      training_split: 'train',
      validation_split: 'validation',
      test_split: 'test',
      doc_to_text: 'Question: {{question}}\nAnswer:',
      doc_to_target: '{{choices.label.index(answerKey)}}',
      doc_to_choice: '{{choices.text}}',
      metric_list: metricList(['acc', 'acc_norm']),
      output_type: 'multiple_choice',
      should_decontaminate: true,
      doc_to_decontamination_query: 'Question: {{question}}\nAnswer:',
    },
  };
}

export const arcEasy = arcTask('arc_easy', 'ARC-Easy');
export const arcChallenge = arcTask('arc_challenge', 'ARC-Challenge');
