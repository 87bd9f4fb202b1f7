import { metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

// The context is the passage up to its last literal space; the target is that space plus the last word.
function splitLastWord(text: string): { context: string; lastWord: string } {
  const pieces = text.split(' ');
  return { context: pieces.slice(0, -1).join(' '), lastWord: pieces[pieces.length - 1] };
}

export const lambadaOpenai: TaskDefinition = {
  name: 'lambada_openai',
  version: 1.0,
  datasetPath: 'EleutherAI/lambada_openai',
  datasetName: 'default',
  evalSplit: 'test',
  // The only split: demos come from the test set itself (with the evaluated passage excluded by content).
  fewshotSplit: 'test',
  sampler: 'default',
  outputType: 'loglikelihood',
  metrics: ['perplexity', 'acc'],
  description: '',
  schema: [{ name: 'text', type: 'string' }],
  docToText: (doc) => splitLastWord(str(doc, 'text')).context,
  docToTarget: (doc) => ' ' + splitLastWord(str(doc, 'text')).lastWord,
  config: {
    group: ['lambada'],
    test_split: 'test',
    doc_to_text: "{{text.split(' ')[:-1]|join(' ')}}",
    doc_to_target: "{{' '+text.split(' ')[-1]}}",
    metric_list: metricList(['perplexity', 'acc']),
    output_type: 'loglikelihood',
    should_decontaminate: true,
    doc_to_decontamination_query: '{{text}}',
  },
};
