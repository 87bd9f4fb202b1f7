import { describe, expect, test } from 'vitest';
import { runBackendConformance } from '@mamba-ts/tensor/testing';
import { registerWasmBackendSync } from '@mamba-ts/backend-wasm';

registerWasmBackendSync();
runBackendConformance('wasm', { describe, test, expect });
