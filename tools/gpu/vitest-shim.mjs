// The part of vitest's API that packages/backend-cuda/test uses, on Node's own test runner (node:test), so the
// bundled tests run with a bare `node --test` on a GPU host that has no node_modules.
import assert from 'node:assert/strict';
import * as nodeTest from 'node:test';

export const describe = (name, fn) => nodeTest.describe(name, fn);
export const beforeAll = (fn) => nodeTest.before(fn);
export const afterAll = (fn) => nodeTest.after(fn);

export function test(name, fn, timeout) {
  return nodeTest.test(name, timeout ? { timeout } : {}, fn);
}
test.skip = (name, fn) => nodeTest.test(name, { skip: true }, fn);
export const it = test;

const label = (message) => (message ? `${message}: ` : '');

function throwsMatching(error, expected, message) {
  const text = error instanceof Error ? error.message : String(error);
  if (expected === undefined) return;
  if (expected instanceof RegExp) assert.match(text, expected, `${label(message)}error message`);
  else assert.ok(text.includes(expected), `${label(message)}expected the error message to contain ${JSON.stringify(expected)}, got ${JSON.stringify(text)}`);
}

function matchers(actual, message, negate = false) {
  const check = (ok, what) => assert.ok(negate ? !ok : ok, `${label(message)}expected ${inspect(actual)} ${negate ? 'not ' : ''}${what}`);
  return {
    toBe: (expected) => (negate ? assert.notStrictEqual(actual, expected, message) : assert.strictEqual(actual, expected, message)),
    toEqual: (expected) => (negate ? assert.notDeepStrictEqual(actual, expected, message) : assert.deepStrictEqual(actual, expected, message)),
    toBeNull: () => check(actual === null, 'to be null'),
    toMatch: (re) => check(typeof actual === 'string' && (re instanceof RegExp ? re.test(actual) : actual.includes(re)), `to match ${re}`),
    toContain: (item) => check(actual.includes(item), `to contain ${inspect(item)}`),
    toBeGreaterThan: (n) => check(actual > n, `to be > ${n}`),
    toBeGreaterThanOrEqual: (n) => check(actual >= n, `to be ≥ ${n}`),
    toBeLessThan: (n) => check(actual < n, `to be < ${n}`),
    toBeLessThanOrEqual: (n) => check(actual <= n, `to be ≤ ${n}`),
    toBeCloseTo: (n, digits = 2) => check(Math.abs(actual - n) < 10 ** -digits / 2, `to be close to ${n}`),
    toThrow: (expected) => {
      let error;
      try {
        actual();
      } catch (e) {
        error = e;
      }
      if (negate) return assert.equal(error, undefined, `${label(message)}expected no throw, got ${error}`);
      assert.ok(error !== undefined, `${label(message)}expected the function to throw`);
      throwsMatching(error, expected, message);
    },
  };
}

function inspect(v) {
  try {
    return JSON.stringify(v)?.slice(0, 200) ?? String(v);
  } catch {
    return String(v);
  }
}

export function expect(actual, message) {
  const m = matchers(actual, message);
  m.not = matchers(actual, message, true);
  m.rejects = {
    toThrow: async (expected) => {
      let error;
      try {
        await actual;
      } catch (e) {
        error = e;
      }
      assert.ok(error !== undefined, `${label(message)}expected the promise to reject`);
      throwsMatching(error, expected, message);
    },
  };
  return m;
}
