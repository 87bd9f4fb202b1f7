import { test } from 'vitest';
test('quick', async () => { await import('../bench/quick-matmul.js'); }, 120000);
