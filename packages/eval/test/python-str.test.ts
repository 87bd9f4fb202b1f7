import { describe, expect, it } from 'vitest';
import { codePointLength, pyCapitalize, pyLstrip, pyRstrip, pyStrip } from '@mamba-ts/eval';

// Expected values from CPython 3.11: 'ßa'.capitalize() == 'Ssa', 'ǆX'.capitalize() == 'ǅx',
// 'ﬁRE'.capitalize() == 'Fire', '\x1c a \ufeff\x85'.strip() == 'a \ufeff'.
describe('Python str semantics', () => {
  it('strip uses Python whitespace (U+001C..U+001F and U+0085 yes, U+FEFF no)', () => {
    expect(pyStrip('\x1c a \ufeff\x85')).toBe('a \ufeff');
    expect(pyStrip('\t\n  x y \u3000')).toBe('x y');
    expect(pyLstrip('  a ')).toBe('a ');
    expect(pyRstrip('  a \n\n')).toBe('  a');
  });

  it('capitalize title-cases the first character and lower-cases the rest', () => {
    expect(pyCapitalize('make SURE the soil drains')).toBe('Make sure the soil drains');
    expect(pyCapitalize('ßa')).toBe('Ssa');
    expect(pyCapitalize('ǆX')).toBe('ǅx');
    expect(pyCapitalize('ﬁRE')).toBe('Fire');
    expect(pyCapitalize('')).toBe('');
    expect(pyCapitalize('éTÉ')).toBe('Été');
  });

  it('len counts code points', () => {
    expect(codePointLength('a😀b')).toBe(3);
    expect('a😀b'.length).toBe(4);
  });
});
