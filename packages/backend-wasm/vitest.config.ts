import { defineProject } from 'vitest/config';

const conditions = ['@mamba-ts/source', 'module', 'node', 'import', 'default'];

export default defineProject({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: { name: 'backend-wasm', include: ['test/**/*.test.ts'], globalSetup: ['test/ensure-wasm.ts'] },
});
