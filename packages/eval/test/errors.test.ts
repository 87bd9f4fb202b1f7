import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { applyLimit, getTask, loadSplit, resolveTasks, runEval } from '@mamba-ts/eval';
import { makeBigramModel } from './helpers/fake-model.js';

const dataDir = fileURLToPath(new URL('./data', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'eval-errors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeSplit(root: string, task: string, split: string, lines: string[]): void {
  mkdirSync(join(root, task), { recursive: true });
  writeFileSync(join(root, task, `${split}.jsonl`), lines.join('\n') + '\n');
}

describe('bad input', () => {
  const { model } = makeBigramModel();

  it('a missing data file names the file, the split and the expected schema', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    await expect(runEval({ model, tasks: ['arc_easy'], shots: 0, dataDir: empty })).rejects.toThrow(
      /^arc_easy: data file .*arc_easy\/test\.jsonl for split "test" does not exist; expected JSON Lines in the Hugging Face schema of allenai\/ai2_arc \(ARC-Easy\), one object per line with id \(string\), question \(string\), choices \(\{"text": list of strings, "label": list of strings\}\), answerKey \(string\)\.$/,
    );
  });

  it('a missing few-shot split is reported only when shots > 0', async () => {
    const root = join(tmp, 'no-train');
    mkdirSync(join(root, 'piqa'), { recursive: true });
    copyFileSync(join(dataDir, 'piqa', 'validation.jsonl'), join(root, 'piqa', 'validation.jsonl'));
    await expect(runEval({ model, tasks: ['piqa'], shots: 0, dataDir: root, bootstrapIters: 0 })).resolves.toBeDefined();
    await expect(runEval({ model, tasks: ['piqa'], shots: 1, dataDir: root })).rejects.toThrow(/piqa\/train\.jsonl for split "train" does not exist/);
  });

  it('rows with missing or mistyped fields name the line', () => {
    const root = join(tmp, 'rows');
    const good = '{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}';
    writeSplit(root, 'piqa', 'validation', [good, '{"goal": "g", "sol1": "a", "label": 1}']);
    expect(() => loadSplit(root, getTask('piqa'), 'validation')).toThrow(
      /piqa\/validation\.jsonl line 2: field "sol2" is missing; each row needs goal \(string\), sol1 \(string\), sol2 \(string\), label \(integer/,
    );
    writeSplit(root, 'piqa', 'validation', [good, '', '{"goal": "g", "sol1": "a", "sol2": "b", "label": "0"}']);
    expect(() => loadSplit(root, getTask('piqa'), 'validation')).toThrow(/line 3: field "label" must be an integer .*got "0"/);
    writeSplit(root, 'piqa', 'validation', ['{"goal": "g", "sol1": "a", "sol2": "b", "label": -1}']);
    expect(() => loadSplit(root, getTask('piqa'), 'validation')).toThrow(/line 1: label must be 0 or 1, got -1\./);
    writeSplit(root, 'piqa', 'validation', [good, '{"goal": "g",']);
    expect(() => loadSplit(root, getTask('piqa'), 'validation')).toThrow(/line 2 is not valid JSON/);
  });

  it('task-specific row checks', () => {
    const root = join(tmp, 'checks');
    writeSplit(root, 'winogrande', 'validation', ['{"sentence": "No blank here.", "option1": "a", "option2": "b", "answer": "1"}']);
    expect(() => loadSplit(root, getTask('winogrande'), 'validation')).toThrow(/line 1: sentence has no "_" blank/);
    writeSplit(root, 'winogrande', 'validation', ['{"sentence": "A _ b.", "option1": "a", "option2": "b", "answer": ""}']);
    expect(() => loadSplit(root, getTask('winogrande'), 'validation')).toThrow(/answer must be "1" or "2", got ""/);
    writeSplit(root, 'arc_easy', 'test', ['{"id": "x", "question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}']);
    expect(() => loadSplit(root, getTask('arc_easy'), 'test')).toThrow(/answerKey "C" is not one of choices.label \["A","B"\]/);
    const hs = '{"ind": 1, "activity_label": "a", "ctx_a": "b", "ctx_b": "c", "ctx": "b c", "endings": ["x", "y"], "source_id": "s", "split": "test", "split_type": "indomain", "label": ""}';
    writeSplit(root, 'hellaswag', 'validation', [hs]);
    expect(() => loadSplit(root, getTask('hellaswag'), 'validation')).toThrow(/field "label" must be a string of digits \("0".."3"; the unlabeled test split cannot be evaluated\)/);
    writeSplit(root, 'mmlu_virology', 'test', ['{"question": "q", "subject": "virology", "choices": ["a", "b", "c"], "answer": 0}']);
    expect(() => loadSplit(root, getTask('mmlu_virology'), 'test')).toThrow(/choices must hold exactly 4 strings, got 3/);
  });

  it('unknown task names list the known ones', () => {
    expect(() => resolveTasks(['arc_medium'])).toThrow(
      /^Unknown task "arc_medium"; known tasks: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande, openbookqa, mmlu, mmlu_stem, mmlu_other, mmlu_social_sciences, mmlu_humanities, and mmlu_<subject>/,
    );
  });

  it('shots larger than the few-shot pool', async () => {
    await expect(runEval({ model, tasks: ['openbookqa'], shots: 4, dataDir })).rejects.toThrow(
      /^openbookqa: 4-shot needs at least 4 documents in the few-shot pool \(split "train"\), but it has 3;/,
    );
    await expect(runEval({ model, tasks: ['mmlu_formal_logic'], shots: 3, dataDir })).rejects.toThrow(/mmlu_formal_logic: 3-shot .*split "dev"\), but it has 2/);
    await expect(runEval({ model, tasks: ['piqa'], shots: -1, dataDir })).rejects.toThrow(/shots must be a non-negative integer, got -1/);
  });

  it('--limit takes the first N documents, or a fraction rounded up', async () => {
    expect(applyLimit([1, 2, 3], 2)).toEqual([1, 2]);
    expect(applyLimit([1, 2, 3], 0.5)).toEqual([1, 2]);
    expect(applyLimit([1, 2, 3], undefined)).toEqual([1, 2, 3]);
    expect(() => applyLimit([1], 0)).toThrow(/limit must be a positive number/);
    const r = await runEval({ model, tasks: ['piqa'], shots: 0, dataDir, limit: 2, bootstrapIters: 0 });
    expect(r.truncation.piqa.requests).toBe(4);
    expect(r.config.limit).toBe(2);
  });

  it('the model must answer every request', async () => {
    const broken = { loglikelihood: async () => [] };
    await expect(runEval({ model: broken, tasks: ['piqa'], shots: 0, dataDir })).rejects.toThrow(/returned 0 loglikelihood results for 6 requests/);
  });
});
