import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { TextTokenizer } from '@mamba-ts/ssm';
import { FIXTURES } from './helpers.js';

interface Case {
  text: string;
  ids: number[];
  tokens: string[];
  decoded: string;
}

const cases: Case[] = JSON.parse(readFileSync(`${FIXTURES}tokenizer/expected.json`, 'utf8'));

describe('GPT-NeoX-style byte-level BPE matches Python tokenizers', async () => {
  const tok = await TextTokenizer.fromDir(`${FIXTURES}tokenizer`);
  test('the fixture covers unicode, emoji, spaces, newlines and tabs', () => {
    const all = cases.map((c) => c.text).join('');
    for (const needle of ['é', '\u{1F600}', '  ', '\n', '\t', '<|endoftext|>']) expect(all).toContain(needle);
  });
  test.each(cases.map((c) => [JSON.stringify(c.text).slice(0, 40), c] as const))('%s', (_, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
    expect(tok.tokens(c.text)).toEqual(c.tokens);
    expect(tok.decode(c.ids)).toEqual(c.decoded);
  });
});

describe('bad tokenizer input', () => {
  test('a tokenizer.json that does not parse names the file', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/tok-`);
    writeFileSync(`${dir}/tokenizer.json`, '{"model": ');
    await expect(TextTokenizer.fromDir(dir)).rejects.toThrow(`${dir}/tokenizer.json: not valid JSON`);
    await expect(TextTokenizer.fromDir(`${dir}/missing`)).rejects.toThrow(/tokenizer.json: file not found/);
  });
});
