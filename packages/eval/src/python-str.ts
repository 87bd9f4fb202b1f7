/**
 * Python `str` semantics the harness's templates rely on, where JavaScript differs.
 */

// Characters for which Python's str.isspace() is true (JS `\s` adds U+FEFF and lacks U+001C..U+001F and U+0085).
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING_SPACE = new RegExp(`^[${PY_SPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);

/** Python `s.strip()`. */
export function pyStrip(s: string): string {
  return pyRstrip(pyLstrip(s));
}

/** Python `s.lstrip()`. */
export function pyLstrip(s: string): string {
  return s.replace(LEADING_SPACE, '');
}

/** Python `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(TRAILING_SPACE, '');
}

/** Python `len(s)`: the number of Unicode code points (not UTF-16 units). */
export function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// Characters whose title case differs from their upper case as a single code point (the Latin digraphs).
const TITLE_CASE: Record<string, string> = {
  '\u01c4': '\u01c5', '\u01c5': '\u01c5', '\u01c6': '\u01c5',
  '\u01c7': '\u01c8', '\u01c8': '\u01c8', '\u01c9': '\u01c8',
  '\u01ca': '\u01cb', '\u01cb': '\u01cb', '\u01cc': '\u01cb',
  '\u01f1': '\u01f2', '\u01f2': '\u01f2', '\u01f3': '\u01f2',
};

/** Python 3.8+ `s.capitalize()`: the first character title-cased, all the others lower-cased. */
export function pyCapitalize(s: string): string {
  if (s.length === 0) return s;
  const first = String.fromCodePoint(s.codePointAt(0)!);
  const rest = s.slice(first.length);
  return titleCase(first) + rest.toLowerCase();
}

function titleCase(ch: string): string {
  const mapped = TITLE_CASE[ch];
  if (mapped !== undefined) return mapped;
  // Multi-character expansions ("ß" → "SS", "ﬁ" → "FI") are title-cased as "Ss", "Fi".
  const upper = ch.toUpperCase();
  const head = String.fromCodePoint(upper.codePointAt(0)!);
  return head + upper.slice(head.length).toLowerCase();
}
