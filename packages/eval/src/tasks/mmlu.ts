import { pyStrip } from '../python-str.js';
import { metricList, str } from './common.js';
import type { TaskDefinition } from './task.js';

export type MmluCategory = 'stem' | 'other' | 'social_sciences' | 'humanities';

/** The 57 MMLU subjects and their categories, as in the harness's `_generate_configs.py`. */
export const MMLU_SUBJECTS: Readonly<Record<string, MmluCategory>> = {
  abstract_algebra: 'stem',
  anatomy: 'stem',
  astronomy: 'stem',
  business_ethics: 'other',
  clinical_knowledge: 'other',
  college_biology: 'stem',
  college_chemistry: 'stem',
  college_computer_science: 'stem',
  college_mathematics: 'stem',
  college_medicine: 'other',
  college_physics: 'stem',
  computer_security: 'stem',
  conceptual_physics: 'stem',
  econometrics: 'social_sciences',
  electrical_engineering: 'stem',
  elementary_mathematics: 'stem',
  formal_logic: 'humanities',
  global_facts: 'other',
  high_school_biology: 'stem',
  high_school_chemistry: 'stem',
  high_school_computer_science: 'stem',
  high_school_european_history: 'humanities',
  high_school_geography: 'social_sciences',
  high_school_government_and_politics: 'social_sciences',
  high_school_macroeconomics: 'social_sciences',
  high_school_mathematics: 'stem',
  high_school_microeconomics: 'social_sciences',
  high_school_physics: 'stem',
  high_school_psychology: 'social_sciences',
  high_school_statistics: 'stem',
  high_school_us_history: 'humanities',
  high_school_world_history: 'humanities',
  human_aging: 'other',
  human_sexuality: 'social_sciences',
  international_law: 'humanities',
  jurisprudence: 'humanities',
  logical_fallacies: 'humanities',
  machine_learning: 'stem',
  management: 'other',
  marketing: 'other',
  medical_genetics: 'other',
  miscellaneous: 'other',
  moral_disputes: 'humanities',
  moral_scenarios: 'humanities',
  nutrition: 'other',
  philosophy: 'humanities',
  prehistory: 'humanities',
  professional_accounting: 'other',
  professional_law: 'humanities',
  professional_medicine: 'other',
  professional_psychology: 'social_sciences',
  public_relations: 'social_sciences',
  security_studies: 'social_sciences',
  sociology: 'social_sciences',
  us_foreign_policy: 'social_sciences',
  virology: 'other',
  world_religions: 'humanities',
};

/** The `mmlu` group's subgroups in the harness's order (order of first appearance in the subject list). */
export const MMLU_CATEGORIES: readonly MmluCategory[] = ['stem', 'other', 'social_sciences', 'humanities'];

const LETTERS = ['A', 'B', 'C', 'D'];

export function mmluSubjectTask(subject: string): TaskDefinition {
  const category = MMLU_SUBJECTS[subject];
  if (category === undefined) throw new Error(`Unknown MMLU subject "${subject}".`);
  const words = subject.split('_').join(' ');
  return {
    name: `mmlu_${subject}`,
    alias: subject,
    group: { name: `mmlu_${category}`, alias: category },
    version: 0.0,
    datasetPath: 'hails/mmlu_no_train',
    datasetName: subject,
    evalSplit: 'test',
    fewshotSplit: 'dev',
    sampler: 'first_n',
    outputType: 'multiple_choice',
    metrics: ['acc'],
    // The YAML ends this with "\n\n", but Jinja rendering drops one trailing newline.
    description: `The following are multiple choice questions (with answers) about ${words}.\n`,
    schema: [
      { name: 'question', type: 'string' },
      { name: 'choices', type: 'string[]', note: 'exactly 4' },
      { name: 'answer', type: 'integer', note: '0..3' },
    ],
    checkRow(doc) {
      if ((doc.choices as string[]).length !== 4) return `choices must hold exactly 4 strings, got ${(doc.choices as string[]).length}.`;
      const answer = doc.answer as number;
      return answer >= 0 && answer <= 3 ? undefined : `answer must be 0..3, got ${answer}.`;
    },
    docToText(doc) {
      const c = doc.choices as string[];
      return `${pyStrip(str(doc, 'question'))}\nA. ${c[0]}\nB. ${c[1]}\nC. ${c[2]}\nD. ${c[3]}\nAnswer:`;
    },
    docToTarget: (doc) => doc.answer as number,
    docToChoice: () => LETTERS.slice(),
    config: {
      task_alias: subject,
      description: `The following are multiple choice questions (with answers) about ${words}.\n\n`,
      group: `mmlu_${category}`,
      group_alias: category,
      test_split: 'test',
      fewshot_split: 'dev',
      fewshot_config: { sampler: 'first_n' },
      doc_to_text: '{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:',
      doc_to_target: 'answer',
      doc_to_choice: LETTERS.slice(),
      metric_list: metricList(['acc']),
      output_type: 'multiple_choice',
      should_decontaminate: false,
    },
  };
}
