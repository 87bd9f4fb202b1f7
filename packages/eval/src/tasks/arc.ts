import { MULTIPLE_CHOICE_ACC_NORM, labeledChoices, metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

function arcTask(name: 'arc_easy' | 'arc_challenge', datasetName: string): TaskDefinition {
  return {
    ...MULTIPLE_CHOICE_ACC_NORM,
    name,
    datasetPath: 'allenai/ai2_arc',
    datasetName,
    evalSplit: 'test',
    schema: [
      { name: 'id', type: 'string' },
      { name: 'question', type: 'string' },
      { name: 'choices', type: 'labeled-choices' },
      { name: 'answerKey', type: 'string' },
    ],
    ...labeledChoices((doc) => str(doc, 'answerKey')),
    docToText: (doc) => 'Question: ' + str(doc, 'question') + '\nAnswer:',
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
